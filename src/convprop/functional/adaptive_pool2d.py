"""Adaptive average pooling: a fixed output size P×Q, as PyTorch's adaptive_avg_pool2d.

Notation  x (N,C,H,W)  y (N,C,P,Q); bins may differ in size and overlap
  bin p covers rows start_p = floor(p*H/P) <= h < end_p = ceil((p+1)*H/P)              (AA1)
  M_h[p,h] = 1 / (end_p - start_p) inside bin p, else 0;  M_w (Q,W) likewise           (AA2)
  y[n,c] = M_h @ x[n,c] @ M_w^T                                                        (AA3)
  dx[n,c] = M_h^T @ dy[n,c] @ M_w  -- the adjoint of (AA3)                             (AA4)
Non-finite values (the products above multiply a NaN or ±∞ by the zeros of M_h, M_w)
  y[n,c,p,:] = mean of x[n,c,start_p:end_p,:] over rows, then likewise over columns     (AA5)
  dx[n,c,start_p:end_p,:] += dy[n,c,p,:] / (end_p - start_p), then likewise over columns (AA6)

``output_size=1`` is global average pooling. A NaN or ±∞ stays inside the bins that hold
it, as in PyTorch: where x (forward) or dy (backward) is not finite (one ``isfinite`` pass),
the bins are summed by slices (AA5), (AA6) instead of the matrix products. Where every bin
is the whole plane (global average pooling), M_h and M_w hold no zeros: the forward's
products keep a NaN or ±∞ in its bin, and x needs no check; the backward's (AA4) is then one
product per cell, dx[n,c,h,w] = (dy[n,c]·M_h[0,h])·M_w[0,w], written as such (the bits of the
matrix products, without their 2·N·C small products of matrices).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop._shapes import _is_int
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.pool_nd import ntuple


@dataclass(frozen=True, slots=True)
class AdaptiveAvgPool2dCache:
    """What adaptive_avg_pool2d_backward needs.

    Fields
    ------
    M_h : Array (P, H)
        Row-averaging matrix (AA2): P·H elements.
    M_w : Array (Q, W)
        Column-averaging matrix (AA2): Q·W elements.
    N, C : int
        Batch and channels of x.
    """

    M_h: Array
    M_w: Array
    N: int
    C: int


def adaptive_output_size(op: str, output_size: Any, size: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch's output_size: an int, or one entry per axis where None keeps the input size.

    Examples
    --------
    >>> adaptive_output_size("adaptive_avg_pool2d", (None, 3), (7, 5))
    (7, 3)
    """
    dims = len(size)
    if isinstance(output_size, (tuple, list)) and len(output_size) == dims:
        given = [n if v is None else v for v, n in zip(output_size, size, strict=True)]
        return ntuple(op, "output_size", given, dims, minimum=1)
    if not _is_int(output_size):
        kind = {1: "an int or a 1-tuple", 2: "an int or a pair of ints"}.get(
            dims, f"an int or {dims} ints"
        )
        raise ParameterError(
            f"{op}: output_size must be {kind} (None keeps an axis); expected e.g. 2 or "
            f"{(2,) * dims}, got {output_size!r}"
        )
    return ntuple(op, "output_size", output_size, dims, minimum=1)


def _bin_matrix(xp: ModuleType, size: int, out: int, dtype: Any) -> Array:
    """(AA1), (AA2): the (out, size) matrix that averages each bin; NumPy's made once per
    (size, out, dtype) and kept read-only (a layer meets the same sizes on every call: 14 µs
    of the 51 that ResNet-20's global pooling took on one image)."""
    if xp.__name__ != "numpy":  # device arrays are made afresh
        return _make_bin_matrix(xp, size, out, dtype)
    return _host_bin_matrix(xp, size, out, xp.dtype(dtype).str)


@functools.lru_cache(maxsize=128)
def _host_bin_matrix(xp: ModuleType, size: int, out: int, dtype: str) -> Array:
    matrix = _make_bin_matrix(xp, size, out, dtype)
    matrix.flags.writeable = False  # shared by every call of these sizes
    return matrix


def _make_bin_matrix(xp: ModuleType, size: int, out: int, dtype: Any) -> Array:
    bins = xp.arange(out)
    start = (bins * size) // out  # (AA1) floor(p*H/P)
    end = -((-(bins + 1) * size) // out)  # (AA1) ceil((p+1)*H/P)
    cells = xp.arange(size)
    inside = (cells[None, :] >= start[:, None]) & (cells[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)  # (AA2) -> (out, size)


def _bounds(size: int, out: int) -> list[tuple[int, int]]:
    """(AA1): (start_p, end_p) of every bin."""
    return [(p * size // out, -(-(p + 1) * size // out)) for p in range(out)]


def _along(axis: int, index: slice) -> tuple[slice, ...]:
    """An index that takes ``index`` along ``axis`` and everything along the axes before."""
    return (slice(None),) * axis + (index,)


def _average_bins(xp: ModuleType, x: Array, axis: int, out: int) -> Array:
    """(AA5) along one axis: each bin's mean by a slice, so a NaN or ±∞ stays in its bins."""
    parts = [x[_along(axis, slice(s, e))].mean(axis=axis, keepdims=True)  # (AA5)
             for s, e in _bounds(x.shape[axis], out)]  # fmt: skip
    return xp.concatenate(parts, axis=axis)


def _spread_bins(xp: ModuleType, d: Array, axis: int, size: int) -> Array:
    """(AA6) along one axis: each bin's gradient added evenly into its cells."""
    shape = list(d.shape)
    shape[axis] = size
    dx = xp.zeros(shape, dtype=d.dtype)
    for p, (s, e) in enumerate(_bounds(size, d.shape[axis])):
        dx[_along(axis, slice(s, e))] += d[_along(axis, slice(p, p + 1))] / (e - s)  # (AA6)
    return dx


def adaptive_avg_pool2d_forward(x: Array, output_size: Any) -> tuple[Array, AdaptiveAvgPool2dCache]:
    """Adaptive average pooling forward pass, equations (AA1)-(AA3).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64.
    output_size : int or (int, int)
        P×Q, positive; may exceed H×W (bins then overlap). 1 is global average pooling.
        An entry None keeps that axis's input size (PyTorch's form).

    Returns
    -------
    y : Array (N, C, P, Q)
        Same dtype as x.
    cache : AdaptiveAvgPool2dCache
        For adaptive_avg_pool2d_backward.

    Raises
    ------
    ShapeError
        x is not 4-D or has an empty C, H or W (N may be 0).
    ParameterError
        output_size is not a positive int or pair.
    DTypeError
        x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(15.0).reshape(1, 1, 3, 5)
    >>> y, cache = adaptive_avg_pool2d_forward(x, 2)   # rows {0,1},{1,2}; columns {0,1,2},{2,3,4}
    >>> y[0, 0]
    array([[ 3.5,  5.5],
           [ 8.5, 10.5]])
    >>> adaptive_avg_pool2d_forward(x, 1)[0].ravel()   # global average
    array([7.])
    """
    op = "adaptive_avg_pool2d"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if x.ndim != 4 or min(x.shape[1:]) < 1:
        raise ShapeError(
            f"{op}: x must be 4-D (N, C, H, W) and non-empty; expected 4 dimensions with C, H, "
            f"W >= 1 (N may be 0), got {x.ndim} (x.shape={tuple(x.shape)})"
        )
    xp = get_xp(x)
    N, C, H, W = (int(v) for v in x.shape)
    P, Q = adaptive_output_size(op, output_size, (H, W))
    M_h = _bin_matrix(xp, H, P, x.dtype)  # (AA2) (P, H)
    M_w = _bin_matrix(xp, W, Q, x.dtype)  # (AA2) (Q, W)
    every_bin_whole = (P == 1 or H == 1) and (Q == 1 or W == 1)  # M_h, M_w without zeros
    if every_bin_whole or bool(xp.isfinite(x).all()):
        y = M_h @ x @ M_w.T  # (AA3) (P, H) @ (N, C, H, W) @ (W, Q) -> (N, C, P, Q)
    else:  # (AA5): 0·NaN in the products would spread a NaN over whole rows of bins
        y = _average_bins(xp, _average_bins(xp, x, 2, P), 3, Q)  # (AA5) -> (N, C, P, Q)
    return xp.ascontiguousarray(y), AdaptiveAvgPool2dCache(M_h=M_h, M_w=M_w, N=N, C=C)


def adaptive_avg_pool2d_backward(dy: Array, cache: AdaptiveAvgPool2dCache) -> Array:
    """Adaptive average pooling backward pass, equation (AA4).

    Parameters
    ----------
    dy : Array (N, C, P, Q)
        Gradient of the loss with respect to y.
    cache : AdaptiveAvgPool2dCache
        From adaptive_avg_pool2d_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
    """
    P, Q = cache.M_h.shape[0], cache.M_w.shape[0]
    check_upstream("adaptive_avg_pool2d_backward", dy, (cache.N, cache.C, P, Q), cache.M_h.dtype)
    xp = get_xp(dy, cache.M_h)
    H, W = cache.M_h.shape[1], cache.M_w.shape[1]
    if P == 1 and Q == 1:  # global: (AA4) with one bin, dx[h, w] = (dy·M_h[0, h])·M_w[0, w]
        m_h, m_w = cache.M_h[0, 0], cache.M_w[0, 0]  # every entry alike: 1/H and 1/W
        return xp.ascontiguousarray(xp.broadcast_to((dy * m_h) * m_w, (cache.N, cache.C, H, W)))
    if bool(xp.isfinite(dy).all()):
        dx = cache.M_h.T @ dy @ cache.M_w  # (AA4) (H, P) @ (N, C, P, Q) @ (Q, W) -> (N, C, H, W)
    else:  # (AA6): a NaN or ±∞ of dy reaches only its bin's cells
        dx = _spread_bins(xp, _spread_bins(xp, dy, 2, H), 3, W)  # (AA6) -> (N, C, H, W)
    return xp.ascontiguousarray(dx)


def adaptive_avg_pool2d(x: Array, output_size: Any) -> Array:
    """Adaptive average pooling forward alone; see :func:`adaptive_avg_pool2d_forward`."""
    y, _ = adaptive_avg_pool2d_forward(x, output_size)
    return y
