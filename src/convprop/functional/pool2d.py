"""2-D pooling: max and average, each a pure forward/backward pair.

(Adaptive average pooling, whose bins are not windows of one size and stride, is in
convprop.functional.adaptive_pool2d. Max pooling with dilation > 1 is the general form of
convprop.functional.pool_nd, (MPN1)-(MPN3); both give PyTorch's indices by (MPI1).)

Notation  x (N,C,H,W)  y (N,C,P,Q)  window R×S  stride (stride_h, stride_w)  padding (pad_h, pad_w)
Output size, shown for rows (columns alike with W, S, stride_w, pad_w), PyTorch's rule
  P = floor((H + 2*pad_h - R) / stride_h) + 1                                          (PS1)
  ceil_mode: P = ceil((H + 2*pad_h - R) / stride_h) + 1, then P -= 1 when
             (P-1)*stride_h >= H + pad_h: the last window starts inside x or the top padding (PS2)
Windows  (tap t = r*S + s, row-major; x_pad has pad_h rows on top and pad_h + extra_h below,
          extra_h = max((P-1)*stride_h + R - H - 2*pad_h, 0) being the ceil_mode overhang)
  window (p, q) reads x_pad[n, c, p*stride_h + r, q*stride_w + s] for every tap        (PS3)
  (the loops visit only the taps that read a cell of x, each over the windows where it
  does, and build x_pad only while it is small: convprop.functional.pool_windows, PN5)
Max pooling  (x_pad filled with -inf, so padding never wins)
  y[n,c,p,q] = max over taps of x_pad[n, c, p*stride_h + r, q*stride_w + s]              (MP1)
  argmax[n,c,p,q] = the FIRST tap in row-major order attaining (MP1)                    (MP2)
  dx_pad[n,c,h,w] = sum of dy[n,c,p,q] over the windows whose argmax tap lands on (h,w);
  dx = dx_pad without its border                                                       (MP3)
Average pooling  (x_pad filled with 0)
  start = p*stride_h - pad_h,  end = min(start + R, H + pad_h)
  rows[p] = end - start (count_include_pad)  or  min(end, H) - max(start, 0) (real rows only)
  divisor[p,q] = rows[p] * cols[q], or divisor_override where one is given              (AP1)
  y[n,c,p,q] = sum over taps of x_pad[n, c, p*stride_h + r, q*stride_w + s] / divisor[p,q] (AP2)
  dx_pad[n,c, p*stride_h + r, q*stride_w + s] += dy[n,c,p,q] / divisor[p,q], every tap (AP3)

Every window of (PS2) holds at least one real cell, because padding is at most half the
window (PyTorch's rule, enforced in convprop._shapes with the rest of the geometry, PS1-PS3):
a max is never taken over padding alone and an average never divides by zero.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop import _native, _shapes
from convprop._native import pool
from convprop._shapes import Pool2dGeometry, flag, pair
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.pool_nd import (
    MaxPoolNdCache,
    PoolNdGeometry,
    divisor_override_value,
    max_pool_nd_backward,
    max_pool_nd_forward,
    max_pool_nd_indices,
    tap_dtype,
    window_indices,
)
from convprop.functional.pool_windows import PoolWindows, pool_windows


def pool2d_geometry(
    op: str, x: Array, kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any
) -> Pool2dGeometry:
    """Validate a max or average pooling call and return its geometry (convprop._shapes).

    Raises
    ------
    DTypeError
        x is not a float32/float64 array.
    ShapeError
        x is not 4-D, has an empty C, H or W (N may be 0), or is smaller than the window
        even padded.
    ParameterError
        Non-positive kernel_size or stride, negative padding, padding above half the
        window, or a non-bool ceil_mode.
    """
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    return _shapes.pool2d_geometry(op, tuple(x.shape), kernel_size, stride, padding, ceil_mode)


@functools.lru_cache(maxsize=64)  # a pure function of a frozen geometry, asked every step
def _windows(geom: Pool2dGeometry) -> PoolWindows:
    """The taps and reads of the windows (PS3, PN5): convprop.functional.pool_windows."""
    return pool_windows(_nd(geom))


def _nd(geom: Pool2dGeometry) -> PoolNdGeometry:
    """The same geometry in the N-d form (dilation 1) that pool_windows and (MPI1) read."""
    return PoolNdGeometry(
        N=geom.N, C=geom.C, size=(geom.H, geom.W), kernel=(geom.R, geom.S),
        stride=(geom.stride_h, geom.stride_w), padding=(geom.pad_h, geom.pad_w),
        dilation=(1, 1), out=(geom.P, geom.Q), extra=(geom.extra_h, geom.extra_w),
    )  # fmt: skip


# ----------------------------------------------------------------------------- max pooling


@dataclass(frozen=True, slots=True)
class MaxPool2dCache:
    """What max_pool2d_backward needs.

    Fields
    ------
    argmax : Array (N, C, P, Q), int32 (int64 for a window of more than 2**31 - 1 taps)
        Tap index ``t = r*S + s`` of each window's maximum (MP2): N·C·P·Q integers.
    geom : Pool2dGeometry
        The normalised shapes and hyperparameters.
    x_dtype : dtype
        The forward dtype (dx comes back in it).
    """

    argmax: Array
    geom: Pool2dGeometry
    x_dtype: Any


def _first_real_tap(xp: ModuleType, geom: Pool2dGeometry) -> Array:
    """(P, Q): the first tap of each window that reads x itself rather than padding."""
    r0 = xp.maximum(geom.pad_h - geom.stride_h * xp.arange(geom.P), 0)  # (P,)
    s0 = xp.maximum(geom.pad_w - geom.stride_w * xp.arange(geom.Q), 0)  # (Q,)
    return r0[:, None] * geom.S + s0[None, :]


def max_pool2d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Array, MaxPool2dCache | MaxPoolNdCache]:
    """Max pooling forward pass, equations (MP1), (MP2); with dilation (MPN1), (MPN2).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64.
    kernel_size : int or (int, int)
        Window R×S, positive.
    stride : int, (int, int) or None
        Positive; None means ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int)
        ``(pad_h, pad_w)`` on both sides, filled with -inf; at most half the window.
    dilation : int or (int, int)
        Spacing of the window's cells, positive. Above 1 the general N-d pair runs
        (convprop.functional.pool_nd); 1 keeps the compiled path.
    ceil_mode : bool
        Output size by (PS2) instead of (PS1).

    Returns
    -------
    y : Array (N, C, P, Q)
        Same dtype as x.
    cache : MaxPool2dCache or MaxPoolNdCache
        For max_pool2d_backward; :func:`max_pool2d_indices` gives PyTorch's indices.

    Raises
    ------
    ShapeError, ParameterError, DTypeError
        Bad rank or size, hyperparameters or dtype; see :func:`pool2d_geometry`.

    Notes
    -----
    Ties go to the first maximum in row-major window order. A NaN always wins (the last NaN
    of a window, as in PyTorch), so NaN propagates. A window whose real cells are all -inf
    points at its first real cell, never at padding.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 5.0, 2.0], [3.0, 4.0, 0.0], [7.0, 6.0, 8.0]]]])
    >>> y, cache = max_pool2d_forward(x, 2, stride=1)
    >>> y[0, 0]
    array([[5., 5.],
           [7., 8.]])
    >>> max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)[0, 0]
    array([[0., 3., 0.],
           [0., 0., 0.],
           [3., 0., 4.]])
    """
    if pair("max_pool2d", "dilation", dilation, minimum=1) != (1, 1):
        return max_pool_nd_forward(
            "max_pool2d", x, 2, kernel_size, stride, padding, dilation, ceil_mode
        )  # (MPN1), (MPN2)
    geom = pool2d_geometry("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    y, argmax = _max_pool(x, geom)  # (MP1), (MP2)
    return y, MaxPool2dCache(argmax=argmax, geom=geom, x_dtype=x.dtype)


def _int32_taps(x: Array, geom: Pool2dGeometry) -> bool:
    """The compiled kernels hold tap indices in int32: windows of at most 2**31 - 1 taps."""
    return geom.R * geom.S <= 2**31 - 1


def _compiled_pays(x: Array, geom: Pool2dGeometry) -> bool:
    """int32 taps, and a window at most a few times as wide as x: the compiled forward
    steps through every column of the window, the NumPy loops only through the taps that
    read x (PN5)."""
    return _int32_taps(x, geom) and geom.S <= 4 * geom.W + 16


@_native.accelerated(pool.maxpool_forward, when=_compiled_pays)
def _max_pool(x: Array, geom: Pool2dGeometry) -> tuple[Array, Array]:
    """(MP1), (MP2): y and argmax (N, C, P, Q), one NumPy comparison per tap that reads x
    (PN5); compiled (one pass, the same tie and NaN rules) where the kernels serve x."""
    xp = get_xp(x)
    windows = _windows(geom)
    source = windows.source(xp, x, float("-inf"))  # x_pad (PS3): padding never wins; or x (PN5)
    y = xp.full(geom.y_shape, float("-inf"), dtype=x.dtype)
    argmax = xp.empty(geom.y_shape, dtype=tap_dtype(xp, (geom.R, geom.S)))
    argmax[...] = _first_real_tap(xp, geom)  # (MP2) where a window holds only -inf
    for t, outputs, cells in windows.cuts():
        value = source[cells]  # (PS3) or (PN5) -> the outputs' part of (N, C, P, Q)
        best, best_tap = y[outputs], argmax[outputs]  # views: written in place
        # Strictly greater: a later tap equal to the maximum keeps the first one (MP2).
        wins = (value > best) | xp.isnan(value)
        xp.copyto(best, value, where=wins)  # (MP1)
        xp.copyto(best_tap, t, where=wins)  # (MP2)
    return y, argmax


def max_pool2d_backward(dy: Array, cache: MaxPool2dCache | MaxPoolNdCache) -> Array:
    """Max pooling backward pass, equation (MP3); with dilation (MPN3).

    Parameters
    ----------
    dy : Array (N, C, P, Q)
        Gradient of the loss with respect to y.
    cache : MaxPool2dCache or MaxPoolNdCache
        From max_pool2d_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        Each dy element lands on its window's arg-max; padding receives nothing.
    """
    if isinstance(cache, MaxPoolNdCache):
        return max_pool_nd_backward(dy, cache)  # (MPN3)
    geom = cache.geom
    check_upstream("max_pool2d_backward", dy, geom.y_shape, cache.x_dtype)
    xp = get_xp(dy, cache.argmax)
    return _max_unpool(dy, xp.asarray(cache.argmax), geom)  # (MP3)


def _int32_argmax(dy: Array, argmax: Array, geom: Pool2dGeometry) -> bool:
    return _int32_taps(dy, geom)


@_native.accelerated(pool.maxpool_backward, when=_int32_argmax)
def _max_unpool(dy: Array, argmax: Array, geom: Pool2dGeometry) -> Array:
    """(MP3): dx (N, C, H, W), each dy added at its window's arg-max, one NumPy pass per tap;
    compiled where the kernels serve dy."""
    xp = get_xp(dy, argmax)
    windows = _windows(geom)
    d_source = xp.zeros(windows.source_shape(geom.x_shape), dtype=dy.dtype)  # dx_pad or dx
    for t, outputs, cells in windows.cuts():
        # Scatter-add: windows overlap when stride < kernel, so one cell can be the
        # arg-max of several windows (MP3).
        d_source[cells] += xp.where(argmax[outputs] == t, dy[outputs], 0)  # (MP3)
    return windows.gradient(xp, d_source)  # (MP3) dx_pad without its border


def max_pool2d(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Array:
    """Max pooling forward alone; see :func:`max_pool2d_forward` for the arguments."""
    y, _ = max_pool2d_forward(
        x, kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode
    )
    return y


def max_pool2d_indices(cache: MaxPool2dCache | MaxPoolNdCache) -> Array:
    """PyTorch's ``return_indices`` (MPI1): (N, C, P, Q) int64, h*W + w of each arg-max.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 5.0, 2.0], [3.0, 4.0, 0.0], [7.0, 6.0, 8.0]]]])
    >>> max_pool2d_indices(max_pool2d_forward(x, 2, stride=1)[1])[0, 0]
    array([[1, 1],
           [6, 8]])
    """
    if isinstance(cache, MaxPoolNdCache):
        return max_pool_nd_indices(cache)  # (MPI1)
    return window_indices(get_xp(cache.argmax), cache.argmax, _nd(cache.geom))  # (MPI1)


# ------------------------------------------------------------------------- average pooling


@dataclass(frozen=True, slots=True)
class AvgPool2dCache:
    """What avg_pool2d_backward needs.

    Fields
    ------
    divisor : Array (P, Q)
        Cells counted by each window (AP1), in the forward dtype: P·Q elements.
    geom : Pool2dGeometry
        The normalised shapes and hyperparameters.
    """

    divisor: Array
    geom: Pool2dGeometry


def _divisor(
    xp: ModuleType, geom: Pool2dGeometry, count_include_pad: bool, override: int | None
) -> Array:
    """Equation (AP1) -> (P, Q)."""
    if override is not None:
        return xp.full((geom.P, geom.Q), override)  # (AP1) the given divisor, every window
    counts = []
    for out, stride, pad, size, kernel in (
        (geom.P, geom.stride_h, geom.pad_h, geom.H, geom.R),
        (geom.Q, geom.stride_w, geom.pad_w, geom.W, geom.S),
    ):
        start = xp.arange(out) * stride - pad  # (AP1) first row of each window in x
        end = xp.minimum(start + kernel, size + pad)  # (AP1) the overhang never counts
        if count_include_pad:
            counts.append(end - start)  # (AP1)
        else:
            counts.append(xp.minimum(end, size) - xp.maximum(start, 0))  # (AP1)
    return counts[0][:, None] * counts[1][None, :]  # (AP1) -> (P, Q)


def avg_pool2d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[Array, AvgPool2dCache]:
    """Average pooling forward pass, equations (AP1), (AP2).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64.
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool2d_forward`; padding is filled with zeros.
    count_include_pad : bool
        True (PyTorch's default) divides by the window cells inside the padded input;
        False divides by the real cells only (AP1).
    divisor_override : int or None
        A nonzero divisor used for every window instead (AP1), as PyTorch's.

    Returns
    -------
    y : Array (N, C, P, Q)
        Same dtype as x.
    cache : AvgPool2dCache
        For avg_pool2d_backward.

    Raises
    ------
    ShapeError, ParameterError, DTypeError
        Bad rank or size, hyperparameters or dtype; see :func:`pool2d_geometry`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, cache = avg_pool2d_forward(x, 2)
    >>> y[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> avg_pool2d_forward(x, 3, stride=2, padding=1, count_include_pad=False)[0][0, 0]
    array([[ 2.5,  4. ],
           [ 8.5, 10. ]])
    """
    op = "avg_pool2d"
    geom = pool2d_geometry(op, x, kernel_size, stride, padding, ceil_mode)
    count_include_pad = flag(op, "count_include_pad", count_include_pad)
    override = divisor_override_value(op, divisor_override)
    xp = get_xp(x)
    windows = _windows(geom)
    source = windows.source(xp, x, 0.0)  # x_pad (PS3), or x itself (PN5)
    total = xp.zeros(geom.y_shape, dtype=x.dtype)
    for _, outputs, cells in windows.cuts():
        sums = total[outputs]  # a view: the windows this tap reads x for
        sums += source[cells]  # (AP2) window sums -> (N, C, P, Q)
    divisor = _divisor(xp, geom, count_include_pad, override).astype(x.dtype)  # (AP1) (P, Q)
    y = total / divisor  # (AP2)
    return y, AvgPool2dCache(divisor=divisor, geom=geom)


def avg_pool2d_backward(dy: Array, cache: AvgPool2dCache) -> Array:
    """Average pooling backward pass, equation (AP3), the adjoint of (AP2).

    Parameters
    ----------
    dy : Array (N, C, P, Q)
        Gradient of the loss with respect to y.
    cache : AvgPool2dCache
        From avg_pool2d_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        Each dy spread evenly over its window; the share of padded cells is dropped.
    """
    geom = cache.geom
    check_upstream("avg_pool2d_backward", dy, geom.y_shape, cache.divisor.dtype)
    xp = get_xp(dy, cache.divisor)
    share = dy / cache.divisor  # (AP3) -> (N, C, P, Q)
    windows = _windows(geom)
    d_source = xp.zeros(windows.source_shape(geom.x_shape), dtype=dy.dtype)  # dx_pad or dx
    for _, outputs, cells in windows.cuts():
        d_source[cells] += share[outputs]  # (AP3) scatter-add: windows overlap if stride < R
    return windows.gradient(xp, d_source)  # (AP3) dx_pad without its border


def avg_pool2d(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Array:
    """Average pooling forward alone; see :func:`avg_pool2d_forward` for the arguments."""
    y, _ = avg_pool2d_forward(
        x,
        kernel_size,
        stride=stride,
        padding=padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    return y
