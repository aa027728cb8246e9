"""Padding of the last axes: constant, reflect, replicate, circular (PyTorch's ``F.pad``).

Notation  x (any shape);  ``pad`` = (before_last, after_last, before_2nd_last, …), k pairs
for the last k axes, the last axis first (PyTorch's order); a negative pad crops.
For each padded axis of size L, with b = its pad before and a = its pad after:
  Lo = L + b + a                                     -- the padded size               (PD1)
  s(j) = j − b  for j in [0, Lo)                     -- the source of output j        (PD2)
Constant: y[…, j, …] = x[…, s(j), …] where 0 ≤ s(j) < L, else ``value``               (PD3)
The other modes send each s(j) outside [0, L) to a position inside it:
  reflect    idx(j) = −s           for s < 0;  2(L − 1) − s  for s ≥ L  (edge not repeated)
  replicate  idx(j) = 0            for s < 0;  L − 1         for s ≥ L
  circular   idx(j) = c + (j − max(b, 0)) mod L′,  c = max(0, −b), L′ = L − c − max(0, −a):
             the axis is cropped first, then wrapped (PyTorch's order)                (PD4)
  and y = x gathered along the axis: y[…, j, …] = x[…, idx(j), …], one axis after the
  other (so a corner is the reflection of a reflection, as PyTorch's)                 (PD5)
Backward  (both are linear maps; the backward is the adjoint)
  constant: dx[…, s(j), …] = dy[…, j, …] for the j with 0 ≤ s(j) < L  -- a slice       (PD6)
  gather modes: dx[…, i, …] = Σ_{j: idx(j) = i} dy[…, j, …], the axes in reverse order:
  the interior j (idx(j) = s(j)) copy back as one slice, then each padded j adds its
  dy into the position it was copied from                                             (PD7)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import (
    check_extent,
    check_output_size,
    check_upstream,
    require_array,
)

MODES = ("constant", "reflect", "replicate", "circular")


@dataclass(frozen=True, slots=True)
class AxisPad:
    """One padded axis: its size L, its pads and the source of each output position.

    Fields
    ------
    axis : int
        The axis of x (non-negative).
    size : int
        L.
    before, after : int
        b and a (negative crops).
    index : tuple[int, ...]
        idx(j) (PD4) for the gather modes; s(j) (PD2) for "constant": Lo entries.
    """

    axis: int
    size: int
    before: int
    after: int
    index: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PadCache:
    """What pad_backward needs.

    Fields
    ------
    axes : tuple[AxisPad, ...]
        One entry per padded axis: Lo integers each (no array of x's size is kept).
    mode : str
        One of MODES.
    x_shape : tuple[int, ...]
        The shape of x.
    y_shape : tuple[int, ...]
        The shape of y (and of dy).
    dtype : Any
        The dtype of x.
    """

    axes: tuple[AxisPad, ...]
    mode: str
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def _source(mode: str, j: int, L: int, before: int, after: int) -> int:
    """idx(j) of (PD4), or s(j) of (PD2) for "constant"."""
    s = j - before  # (PD2)
    if mode == "reflect":
        return -s if s < 0 else (2 * (L - 1) - s if s >= L else s)
    if mode == "replicate":
        return min(max(s, 0), L - 1)
    if mode == "circular":
        first = max(0, -before)
        kept = L - first - max(0, -after)  # L′, the cropped size
        return first + (j - max(before, 0)) % kept
    return s  # constant: read only where 0 <= s < L


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_pad(x: Any, pad: Any, mode: Any) -> tuple[int, ...]:
    op = "pad"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if mode not in MODES:
        raise ParameterError(f"{op}: unknown mode; expected one of {list(MODES)}, got {mode!r}")
    pads = tuple(pad) if isinstance(pad, (tuple, list)) else None
    if not pads or len(pads) % 2 or not all(_is_int(p) for p in pads):
        raise ParameterError(
            f"{op}: pad lists (before, after) pairs of ints, the last axis first; expected an "
            f"even number of ints, got {pad!r}"
        )
    k = len(pads) // 2
    if mode == "constant" and k > x.ndim:
        raise ShapeError(
            f"{op}: pad has {k} pairs but x has {x.ndim} axes; expected at most {x.ndim} "
            f"pairs, got pad={pads} (x.shape={tuple(x.shape)})"
        )
    if mode != "constant" and (k > 3 or x.ndim not in (k + 1, k + 2)):
        raise ShapeError(
            f"{op}: mode {mode!r} pads 1 to 3 trailing axes of an input with one or two more "
            f"(unbatched (C, …) or batched (N, C, …)); expected {k + 1} or {k + 2} dimensions "
            f"for {k} pairs, got {x.ndim} (x.shape={tuple(x.shape)}, pad={pads})"
        )
    out = list(x.shape)
    for pair in range(k):
        out[x.ndim - 1 - pair] += int(pads[2 * pair]) + int(pads[2 * pair + 1])  # (PD1)
    check_extent(op, "pad", tuple(abs(int(p)) for p in pads))
    check_output_size(op, tuple(max(n, 0) for n in out), x.dtype.itemsize, f"pad={pads}")
    return tuple(int(p) for p in pads)


def _check_axis(mode: str, x: Array, axis: int, before: int, after: int, pads: Any) -> None:
    L = x.shape[axis]
    where = f"(x.shape={tuple(x.shape)}, pad={pads}, axis {axis})"
    if L + before + after < (0 if mode == "constant" else 1):
        raise ShapeError(
            f"pad: the padded size of an axis must be positive; expected L + before + after "
            f"> 0, got {L} + {before} + {after} {where}"
        )
    if mode == "reflect" and not (before < L and after < L):
        raise ShapeError(
            f"pad: reflect mirrors inside the axis; expected pads smaller than its size {L}, "
            f"got ({before}, {after}) {where}"
        )
    kept = L - max(0, -before) - max(0, -after)
    if mode == "circular" and not (before <= kept and after <= kept):
        raise ShapeError(
            f"pad: circular wraps around at most once; expected pads of at most the size "
            f"{kept} left after cropping, got ({before}, {after}) {where}"
        )
    if mode == "replicate" and L == 0:
        raise ShapeError(f"pad: replicate needs a value to repeat; expected L > 0, got 0 {where}")


def _along(ndim: int, axis: int, index: Any) -> tuple[Any, ...]:
    """The index tuple that selects ``index`` along ``axis`` and everything elsewhere."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def pad_forward(
    x: Array, pad: Any, *, mode: str = "constant", value: float = 0.0
) -> tuple[Array, PadCache]:
    """Padding forward pass, equations (PD1)–(PD3), or (PD4), (PD5) for the other modes.

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.
    pad : tuple of ints
        (before, after) pairs for the last axes, the last axis first; negative values crop.
        "constant" pads up to all axes; the other modes 1 to 3 axes of an input with 1 or 2
        more (as PyTorch: (C, W) or (N, C, W) for one pair, and so on).
    mode : str
        "constant", "reflect", "replicate" or "circular".
    value : float
        The fill value of "constant".

    Returns
    -------
    y : Array
        x's shape with each padded axis of size Lo (PD1); same dtype.
    cache : PadCache
        For pad_backward.

    Raises
    ------
    ShapeError
        Too many pairs for x, an axis padded to size ≤ 0, reflect pads ≥ the size, circular
        pads beyond the size, replicate of an empty axis.
    DTypeError, ParameterError
        A bad dtype, pad or mode, or a value with a mode other than "constant".

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> pad_forward(x, (2, 1), mode="reflect")[0]
    array([[3., 2., 1., 2., 3., 2.]])
    >>> pad_forward(x, (1, -1), value=9.0)[0]
    array([[9., 1., 2.]])
    """
    pads = _check_pad(x, pad, mode)
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ParameterError(f"pad: value must be a real number; expected e.g. 0.0, got {value!r}")
    if mode != "constant" and value != 0:
        raise ParameterError(
            f"pad: only mode 'constant' fills with a value; expected value=0 for mode "
            f"{mode!r}, got {value!r}"
        )
    xp = get_xp(x)
    axes = []
    for pair in range(len(pads) // 2):
        axis = x.ndim - 1 - pair  # the last axis first
        before, after = pads[2 * pair], pads[2 * pair + 1]
        _check_axis(mode, x, axis, before, after, pads)
        L = x.shape[axis]
        index = tuple(_source(mode, j, L, before, after) for j in range(L + before + after))
        axes.append(AxisPad(axis, L, before, after, index))
    if mode == "constant":
        y_shape = list(x.shape)
        for entry in axes:
            y_shape[entry.axis] = len(entry.index)  # (PD1)
        y = xp.full(tuple(y_shape), value, dtype=x.dtype)
        y[_kept(axes, x.ndim, "y")] = x[_kept(axes, x.ndim, "x")]  # (PD3)
    else:
        y = x
        for entry in axes:
            y = xp.take(y, xp.asarray(entry.index), axis=entry.axis)  # (PD5)
    cache = PadCache(tuple(axes), mode, tuple(x.shape), tuple(y.shape), x.dtype)
    return y, cache


def _kept(axes: list[AxisPad] | tuple[AxisPad, ...], ndim: int, side: str) -> tuple[Any, ...]:
    """The slices of x (side "x") and of y (side "y") that (PD3) copies between."""
    index: list[Any] = [slice(None)] * ndim
    for entry in axes:
        first = max(0, -entry.before)  # the first source kept: a negative pad crops
        last = entry.size - max(0, -entry.after)
        if side == "x":
            index[entry.axis] = slice(first, max(first, last))
        else:
            start = max(0, entry.before)
            index[entry.axis] = slice(start, start + max(0, last - first))
    return tuple(index)


def pad_backward(dy: Array, cache: PadCache) -> Array:
    """Padding backward pass, equation (PD6), or (PD7) for the gather modes.

    Parameters
    ----------
    dy : Array (the shape of y)
        Gradient of the loss with respect to y.
    cache : PadCache
        From pad_forward.

    Returns
    -------
    dx : Array (the shape of x)
        Each entry of dy added back into the position of x it came from; 0 where x was
        cropped away.
    """
    check_upstream("pad_backward", dy, cache.y_shape, cache.dtype)
    xp = get_xp(dy)
    if cache.mode == "constant":
        dx = xp.zeros(cache.x_shape, dtype=dy.dtype)
        dx[_kept(cache.axes, dy.ndim, "x")] = dy[_kept(cache.axes, dy.ndim, "y")]  # (PD6)
        return dx
    grad = dy
    for entry in reversed(cache.axes):  # the adjoint undoes the last gather first
        grad = _gather_backward(xp, grad, entry)  # (PD7)
    return grad


def _gather_backward(xp: Any, grad: Array, entry: AxisPad) -> Array:
    """(PD7) along one axis: the sum of grad over the outputs j with idx(j) = i."""
    shape = list(grad.shape)
    shape[entry.axis] = entry.size
    dx = xp.zeros(tuple(shape), dtype=grad.dtype)
    ndim, axis, before = grad.ndim, entry.axis, entry.before
    first = max(0, before)  # the interior: the j with 0 <= s(j) < L map to idx(j) = s(j)
    last = min(len(entry.index), before + entry.size)
    if last > first:
        dx[_along(ndim, axis, slice(first - before, last - before))] += grad[
            _along(ndim, axis, slice(first, last))
        ]
    for j in (*range(first), *range(max(last, first), len(entry.index))):
        dx[_along(ndim, axis, entry.index[j])] += grad[_along(ndim, axis, j)]
    return dx


def pad(x: Array, pad: Any, *, mode: str = "constant", value: float = 0.0) -> Array:
    """Padding forward alone; see :func:`pad_forward`."""
    y, _ = pad_forward(x, pad, mode=mode, value=value)
    return y
