"""Adaptive max pooling: a fixed output size P×Q, as PyTorch's adaptive_max_pool2d.

Notation  x (N,C,H,W)  y (N,C,P,Q); bins as (AA1): rows start_p ≤ h < end_p, columns
          start_q ≤ w < end_q; bins may differ in size and overlap
  y[n,c,p,q] = max over the bin's cells of x[n,c,h,w]                                   (AMP1)
  idx[n,c,p,q] = h·W + w of the first cell in row-major order attaining (AMP1);
                 a NaN wins (the last NaN of the bin), as PyTorch                        (AMP2)
  dx[n,c] (flattened to H·W cells)[idx[n,c,p,q]] += dy[n,c,p,q]                          (AMP3)

The bins are walked as "taps" (i, j) < (the tallest bin, the widest bin): tap (i, j) of bin
(p, q) reads cell (min(start_p + i, end_p − 1), min(start_q + j, end_q − 1)). A short bin
reads its last row or column again; a repeated cell never beats itself under the strict
comparison, and the last NaN stays the last, so (AMP2) holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.adaptive_pool2d import adaptive_output_size


@dataclass(frozen=True, slots=True)
class AdaptiveMaxPool2dCache:
    """What adaptive_max_pool2d_backward needs.

    Fields
    ------
    indices : Array (N, C, P, Q), int64
        Flat cell h·W + w of each bin's maximum in x[n, c] (AMP2): N·C·P·Q integers; also
        PyTorch's ``return_indices``.
    x_shape : tuple of int
        (N, C, H, W).
    x_dtype : dtype
        The forward dtype (dx comes back in it).
    """

    indices: Array
    x_shape: tuple[int, int, int, int]
    x_dtype: Any


def _bins(xp: ModuleType, size: int, out: int) -> tuple[Array, Array, int]:
    """(AA1): start (out,), end (out,) and the largest bin."""
    bins = xp.arange(out)
    start = (bins * size) // out  # (AA1) floor(p*H/P)
    end = -((-(bins + 1) * size) // out)  # (AA1) ceil((p+1)*H/P)
    largest = max(-(-(b + 1) * size // out) - b * size // out for b in range(out))
    return start, end, largest


def adaptive_max_pool2d_forward(x: Array, output_size: Any) -> tuple[Array, AdaptiveMaxPool2dCache]:
    """Adaptive max pooling forward pass, equations (AMP1), (AMP2).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64 (N may be 0).
    output_size : int or (int, int)
        P×Q, positive; an entry None keeps that axis's input size. 1 is global max pooling.

    Returns
    -------
    y : Array (N, C, P, Q)
        Same dtype as x.
    cache : AdaptiveMaxPool2dCache
        For adaptive_max_pool2d_backward; ``cache.indices`` are PyTorch's indices.

    Raises
    ------
    ShapeError
        x is not 4-D or has an empty C, H or W.
    ParameterError
        output_size is not a positive int or pair.
    DTypeError
        x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 7.0, 2.0], [9.0, 3.0, 9.0]]]])
    >>> y, cache = adaptive_max_pool2d_forward(x, (1, 2))   # columns {0, 1} and {1, 2}
    >>> y
    array([[[[9., 9.]]]])
    >>> cache.indices                                       # the tie in bin 1: the first 9
    array([[[[3, 5]]]])
    >>> adaptive_max_pool2d_backward(np.array([[[[1.0, 2.0]]]]), cache)
    array([[[[0., 0., 0.],
             [1., 0., 2.]]]])
    """
    op = "adaptive_max_pool2d"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if x.ndim != 4 or min(x.shape[1:]) < 1:
        raise ShapeError(
            f"{op}: x must be 4-D (N, C, H, W) and non-empty; expected 4 dimensions with C, H, "
            f"W >= 1 (N may be 0), got {x.ndim} (x.shape={tuple(x.shape)})"
        )
    N, C, H, W = (int(v) for v in x.shape)
    P, Q = adaptive_output_size(op, output_size, (H, W))
    xp = get_xp(x)
    row_start, row_end, rows = _bins(xp, H, P)
    col_start, col_end, cols = _bins(xp, W, Q)
    y = xp.full((N, C, P, Q), float("-inf"), dtype=x.dtype)
    indices = xp.empty((N, C, P, Q), dtype=xp.int64)
    indices[...] = row_start[:, None] * W + col_start[None, :]  # (AMP2) an all −∞ bin
    for i in range(rows):
        h = xp.minimum(row_start + i, row_end - 1)[:, None]  # (P, 1)
        for j in range(cols):
            w = xp.minimum(col_start + j, col_end - 1)[None, :]  # (1, Q)
            value = x[:, :, h, w]  # (N, C, P, Q)
            # Strictly greater: a later cell equal to the maximum keeps the first (AMP2).
            wins = (value > y) | xp.isnan(value)
            xp.copyto(y, value, where=wins)  # (AMP1)
            xp.copyto(indices, h * W + w, where=wins)  # (AMP2)
    return y, AdaptiveMaxPool2dCache(indices=indices, x_shape=(N, C, H, W), x_dtype=x.dtype)


def adaptive_max_pool2d_backward(dy: Array, cache: AdaptiveMaxPool2dCache) -> Array:
    """Adaptive max pooling backward pass, equation (AMP3).

    Parameters
    ----------
    dy : Array (N, C, P, Q)
        Gradient of the loss with respect to y.
    cache : AdaptiveMaxPool2dCache
        From adaptive_max_pool2d_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        Each dy element added at its bin's arg-max; overlapping bins add up.
    """
    N, C, H, W = cache.x_shape
    P, Q = (int(v) for v in cache.indices.shape[2:])
    check_upstream("adaptive_max_pool2d_backward", dy, (N, C, P, Q), cache.x_dtype)
    xp = get_xp(dy, cache.indices)
    dx = xp.zeros((N * C, H * W), dtype=dy.dtype)
    planes = xp.arange(N * C)[:, None]  # (N·C, 1)
    # Scatter-add: overlapping bins can share their arg-max cell (AMP3).
    xp.add.at(dx, (planes, cache.indices.reshape(N * C, P * Q)), dy.reshape(N * C, P * Q))
    return dx.reshape(N, C, H, W)


def adaptive_max_pool2d(x: Array, output_size: Any) -> Array:
    """Adaptive max pooling forward alone; see :func:`adaptive_max_pool2d_forward`."""
    return adaptive_max_pool2d_forward(x, output_size)[0]
