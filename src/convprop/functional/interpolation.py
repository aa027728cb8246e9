"""Resampling (``F.interpolate``): nearest and (bi/tri)linear, axis by axis.

Notation  x (N, C, L1[, L2[, L3]]): D = 1, 2 or 3 spatial axes;  y (N, C, Lo1[, …])
For each spatial axis of input size L and output size Lo:
  Lo = size, or floor(L·scale_factor)                                                 (UP1)
  r = (L − 1)/(Lo − 1)  (0 when Lo = 1)        align_corners=True: the corner pixels'
                                               centres coincide
  r = 1/scale_factor    when scale_factor is given and recompute_scale_factor is not True
  r = L/Lo              otherwise                                                     (UP2)
Nearest (the products rounded to single precision before the floor, as PyTorch's kernels)
  idx(j) = min(floor(j·r), L − 1)             "nearest" (PyTorch's, not centred)
  idx(j) = min(floor((j + ½)·r), L − 1)       "nearest-exact" (pixel centres)         (UP3)
Linear: output j reads the source coordinate
  src(j) = j·r                           align_corners=True
  src(j) = max((j + ½)·r − ½, 0)         otherwise (centre to centre)                 (UP4)
  i0 = min(floor(src), L − 1),  i1 = min(i0 + 1, L − 1),
  λ1 = min(max(src − i0, 0), 1),  λ0 = 1 − λ1     (Lo = L without align_corners: the
                                                   identity, i0 = i1 = j, λ1 = 0)     (UP5)
Forward, along one axis (the others untouched), the spatial axes one after the other:
  nearest: y[…, j, …] = x[…, idx(j), …];   linear: y = λ0(j)·x[…, i0(j), …] + λ1(j)·x[…, i1(j), …]
  -- bilinear and trilinear are linear along each axis in turn (the weights are
     products, so the order changes only the rounding)                               (UP6)
Backward: each axis's map is y = A·x with A (Lo, L) holding λ0, λ1 (or a single 1);
  the backward is Aᵀ, a scatter-add, the axes in reverse order (i0, i1 and idx never
  decrease with j, so the j that read one i form a run, summed a step at a time):
  dx[…, i, …] = Σ_j (λ0(j)·[i0(j) = i] + λ1(j)·[i1(j) = i])·dy[…, j, …]              (UP7)
"""

from __future__ import annotations

import itertools
import math
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

MODE_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,),
             "bilinear": (2,), "trilinear": (3,)}  # fmt: skip
"""The number of spatial axes D each mode accepts (as PyTorch)."""


@dataclass(frozen=True, slots=True)
class AxisMap:
    """One spatial axis's map (UP3)–(UP5): host lists of Lo entries each.

    Fields
    ------
    axis : int
        The axis of x (2, 3 or 4).
    size : int
        L, the input size.
    index0, index1 : tuple[int, ...]
        idx(j) (nearest; index1 unused) or i0(j), i1(j) (linear).
    lambda0, lambda1 : tuple[float, ...]
        λ0(j), λ1(j) (linear); empty for nearest.
    """

    axis: int
    size: int
    index0: tuple[int, ...]
    index1: tuple[int, ...]
    lambda0: tuple[float, ...]
    lambda1: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class InterpolateCache:
    """What interpolate_backward needs.

    Fields
    ------
    axes : tuple[AxisMap, ...]
        One per spatial axis: 4·Lo numbers each at most (no array of x's size is kept).
    x_shape, y_shape : tuple[int, ...]
        The shapes of x and of y (and dy).
    dtype : Any
        The dtype of x.
    """

    axes: tuple[AxisMap, ...]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def _per_axis(name: str, value: Any, D: int, kind: type) -> tuple[Any, ...]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * D
    ok = len(values) == D and all(
        isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool)
        for v in values
    )
    if not ok:
        raise ParameterError(
            f"interpolate: {name} needs one value per spatial axis; expected a number or "
            f"{D} numbers, got {value!r}"
        )
    return values


def output_sizes(
    x_shape: tuple[int, ...], size: Any, scale_factor: Any
) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """The output sizes (UP1) and the factors given per axis (None where size was given)."""
    D = len(x_shape) - 2
    if (size is None) == (scale_factor is None):
        raise ParameterError(
            "interpolate: give exactly one of size and scale_factor; expected one of them, "
            f"got size={size!r}, scale_factor={scale_factor!r}"
        )
    factors: tuple[float | None, ...] = (None,) * D
    if size is not None:
        sizes = tuple(int(s) for s in _per_axis("size", size, D, int))
    else:
        given = tuple(float(f) for f in _per_axis("scale_factor", scale_factor, D, float))
        if not all(math.isfinite(f) and f > 0 for f in given):
            raise ParameterError(
                f"interpolate: scale_factor must be finite and > 0; expected e.g. 2.0, got "
                f"{scale_factor!r}"
            )
        sizes = tuple(math.floor(L * f) for L, f in zip(x_shape[2:], given, strict=True))  # (UP1)
        factors = given
    if not all(s > 0 for s in sizes):
        raise ShapeError(
            f"interpolate: the output sizes must be positive; expected every size > 0, got "
            f"{sizes} (x.shape={tuple(x_shape)}, size={size!r}, scale_factor={scale_factor!r})"
        )
    return sizes, factors


def _ratio(L: int, Lo: int, factor: float | None, align_corners: bool) -> float:
    """r of (UP2) for the linear modes (double precision, as PyTorch's)."""
    if align_corners:
        return (L - 1) / (Lo - 1) if Lo > 1 else 0.0
    return 1.0 / factor if factor is not None else L / Lo


def _float32(value: float) -> float:
    """Round to single precision (the arithmetic of PyTorch's nearest-neighbour indices)."""
    import struct

    return float(struct.unpack("f", struct.pack("f", value))[0])


def _nearest_map(axis: int, L: int, Lo: int, factor: float | None, exact: bool, D: int) -> AxisMap:
    """idx(j) of (UP3), with the rounding of PyTorch's kernels for float64 input."""
    if D == 2 and Lo == L and not exact:
        index = tuple(range(Lo))  # PyTorch's 2-D kernel copies when the sizes agree
    elif D == 2 and Lo == 2 * L and not exact:
        index = tuple(j // 2 for j in range(Lo))  # and halves when Lo = 2L
    else:
        r = 1.0 / factor if factor is not None else L / Lo  # (UP2)
        if D == 2:  # the 2-D kernel's r and j·r are single precision
            r = _float32(1.0 / factor) if factor is not None else _float32(_float32(L) / Lo)
        offset = 0.5 if exact else 0.0
        if D == 2 and not exact:
            sources = [_float32(_float32(j) * r) for j in range(Lo)]
        else:  # the product in double, rounded to single before the floor
            sources = [_float32((j + offset) * r) for j in range(Lo)]
        index = tuple(min(math.floor(src), L - 1) for src in sources)  # (UP3)
    return AxisMap(axis, L, index, (), (), ())


def _linear_map(axis: int, L: int, Lo: int, factor: float | None, align: bool) -> AxisMap:
    if Lo == L and not align:
        ones = (1.0,) * Lo
        return AxisMap(axis, L, tuple(range(L)), tuple(range(L)), ones, (0.0,) * Lo)  # (UP5)
    r = _ratio(L, Lo, factor, align)  # (UP2)
    i0, i1, l0, l1 = [], [], [], []
    for j in range(Lo):
        src = j * r if align else max(r * (j + 0.5) - 0.5, 0.0)  # (UP4)
        first = min(math.floor(src), L - 1)  # (UP5)
        weight1 = min(max(src - first, 0.0), 1.0)
        i0.append(first)
        i1.append(first + 1 if first < L - 1 else first)
        l0.append(1.0 - weight1)
        l1.append(weight1)
    return AxisMap(axis, L, tuple(i0), tuple(i1), tuple(l0), tuple(l1))


def _check(x: Any, mode: Any, align_corners: Any) -> None:
    op = "interpolate"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if mode not in MODE_DIMS:
        raise ParameterError(f"{op}: unknown mode; expected one of {list(MODE_DIMS)}, got {mode!r}")
    if x.ndim - 2 not in MODE_DIMS[mode]:
        wanted = " or ".join(f"{d + 2}-D" for d in MODE_DIMS[mode])
        raise ShapeError(
            f"{op}: mode {mode!r} resamples {wanted} input (N, C, spatial…); expected "
            f"{wanted}, got {x.ndim}-D (x.shape={tuple(x.shape)})"
        )
    if mode.startswith("nearest") and align_corners is not None:
        raise ParameterError(
            f"{op}: align_corners applies to the linear modes only; expected None for mode "
            f"{mode!r}, got {align_corners!r}"
        )
    if align_corners is not None and not isinstance(align_corners, bool):
        raise ParameterError(
            f"{op}: align_corners must be a bool or None; expected True, False or None, got "
            f"{align_corners!r}"
        )


def interpolate_forward(
    x: Array,
    *,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> tuple[Array, InterpolateCache]:
    """Resampling forward pass, equations (UP1)–(UP6).

    Parameters
    ----------
    x : Array (N, C, L1[, L2[, L3]])
        float32 or float64; 3-D for "linear", 4-D for "bilinear", 5-D for "trilinear",
        any of them for the nearest modes.
    size : int or tuple of ints, optional
        The output spatial size (one for all axes, or one per axis).
    scale_factor : float or tuple of floats, optional
        The factor of each spatial size (exactly one of size and scale_factor).
    mode : str
        "nearest" (PyTorch's default), "nearest-exact", "linear", "bilinear", "trilinear".
    align_corners : bool or None
        Linear modes only: True maps corner centres onto corner centres (UP2, UP4);
        None means False, as in PyTorch.
    recompute_scale_factor : bool or None
        True maps coordinates with L/Lo rather than the given factor (UP2).

    Returns
    -------
    y : Array (N, C, Lo1[, …])
        Same dtype as x.
    cache : InterpolateCache
        For interpolate_backward.

    Raises
    ------
    ShapeError
        A mode given an input of the wrong rank, or an output size of 0.
    DTypeError, ParameterError
        A bad dtype, mode, size, factor or align_corners.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1.0, 2.0]]])
    >>> interpolate_forward(x, scale_factor=2)[0]
    array([[[1., 1., 2., 2.]]])
    >>> interpolate_forward(x, size=4, mode="linear", align_corners=True)[0].round(4)
    array([[[1.    , 1.3333, 1.6667, 2.    ]]])
    """
    _check(x, mode, align_corners)
    sizes, factors = output_sizes(tuple(x.shape), size, scale_factor)
    check_extent("interpolate", "the output size", sizes)
    y_shape = (*x.shape[:2], *sizes)
    check_output_size("interpolate", y_shape, x.dtype.itemsize, f"x.shape={tuple(x.shape)}")
    if recompute_scale_factor:
        factors = (None,) * len(factors)
    xp = get_xp(x)
    maps = []
    for d, (L, Lo, factor) in enumerate(zip(x.shape[2:], sizes, factors, strict=True)):
        if mode.startswith("nearest"):
            exact = mode == "nearest-exact"
            maps.append(_nearest_map(d + 2, L, Lo, factor, exact, x.ndim - 2))
        else:
            maps.append(_linear_map(d + 2, L, Lo, factor, bool(align_corners)))
    y = x
    for axis_map in maps:
        y = _resample(xp, y, axis_map)  # (UP6)
    return y, InterpolateCache(tuple(maps), tuple(x.shape), tuple(y.shape), x.dtype)


def _weights(xp: Any, values: tuple[float, ...], ndim: int, axis: int, dtype: Any) -> Array:
    """λ(j) as an array shaped to broadcast along ``axis``."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return xp.asarray(values, dtype=dtype).reshape(shape)


def _resample(xp: Any, x: Array, m: AxisMap) -> Array:
    """(UP6) along one axis."""
    gathered = xp.take(x, xp.asarray(m.index0), axis=m.axis)
    if not m.lambda0:
        return gathered  # nearest
    second = xp.take(x, xp.asarray(m.index1), axis=m.axis)
    weight0 = _weights(xp, m.lambda0, x.ndim, m.axis, x.dtype)
    weight1 = _weights(xp, m.lambda1, x.ndim, m.axis, x.dtype)
    return gathered * weight0 + second * weight1  # (UP6)


def interpolate_backward(dy: Array, cache: InterpolateCache) -> Array:
    """Resampling backward pass, equation (UP7).

    Parameters
    ----------
    dy : Array (N, C, Lo1[, …])
        Gradient of the loss with respect to y.
    cache : InterpolateCache
        From interpolate_forward.

    Returns
    -------
    dx : Array (N, C, L1[, …])
        Each dy entry added back, with its weight, to the inputs it was read from.
    """
    check_upstream("interpolate_backward", dy, cache.y_shape, cache.dtype)
    xp = get_xp(dy)
    grad = dy
    for m in reversed(cache.axes):  # Aᵀ of the last axis first
        shape = list(grad.shape)
        shape[m.axis] = m.size
        dx = xp.zeros(tuple(shape), dtype=grad.dtype)
        if not m.lambda0:
            _add_runs(xp, dx, grad, m.index0, m.axis)  # (UP7) nearest: Σ over the j reading i
        else:
            weight0 = _weights(xp, m.lambda0, grad.ndim, m.axis, grad.dtype)
            weight1 = _weights(xp, m.lambda1, grad.ndim, m.axis, grad.dtype)
            _add_runs(xp, dx, grad * weight0, m.index0, m.axis)  # (UP7)
            _add_runs(xp, dx, grad * weight1, m.index1, m.axis)  # (UP7)
        grad = dx
    return grad


def _add_runs(xp: Any, dx: Array, g: Array, index: tuple[int, ...], axis: int) -> None:
    """dx[…, i, …] += Σ_{j: index(j) = i} g[…, j, …], the scatter-add of (UP7).

    index(j) never decreases (floor of a non-decreasing source coordinate, UP3–UP5), so the
    j reading one i form a run; step k adds the k-th entry of every run at once (distinct
    targets: plain indexing, no ufunc.at). The steps are the longest run: 2 for ×2.
    """
    starts = [j for j in range(len(index)) if j == 0 or index[j] != index[j - 1]]
    ends = [*starts[1:], len(index)]
    for k in range(max(end - start for start, end in zip(starts, ends, strict=True))):
        runs = [
            r for r, (start, end) in enumerate(zip(starts, ends, strict=True)) if start + k < end
        ]
        sources = _as_index(xp, [starts[r] + k for r in runs])
        targets = _as_index(xp, [index[starts[r]] for r in runs])
        dx[(slice(None),) * axis + (targets,)] += g[(slice(None),) * axis + (sources,)]


def _as_index(xp: Any, positions: list[int]) -> Any:
    """A slice where the positions are evenly spaced (×2: every other one), else an array."""
    step = positions[1] - positions[0] if len(positions) > 1 else 1
    if step > 0 and all(b - a == step for a, b in itertools.pairwise(positions)):
        return slice(positions[0], positions[-1] + 1, step)
    return xp.asarray(positions)


def interpolate(
    x: Array,
    *,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Array:
    """Resampling forward alone; see :func:`interpolate_forward`."""
    y, _ = interpolate_forward(
        x, size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
        recompute_scale_factor=recompute_scale_factor,
    )  # fmt: skip
    return y
