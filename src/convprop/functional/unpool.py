"""Max unpooling, PyTorch's max_unpool2d: each pooled value back at its arg-max, zeros elsewhere.

Notation  x (N,C,P,Q) pooled values  idx (N,C,P,Q) flat indices h·W + w into an (H, W)
          plane (max_pool2d's ``return_indices``)  y (N,C,H,W)
  default size  H = (P − 1)·stride_h − 2·pad_h + R  (W likewise); a given output_size
  must lie strictly within stride of it: H − stride_h < H_given < H + stride_h           (MU1)
  y[n,c] (flattened to H·W cells)[idx[n,c,p,q]] = x[n,c,p,q]; y = 0 on cells no index
  names; where several entries name one cell, the last in row-major order is written      (MU2)
  dx[n,c,p,q] = dy[n,c] (flattened)[idx[n,c,p,q]] for the entry written at its cell,
                0 for the entries overwritten                                            (MU3)

(MU3) is the derivative of (MU2): an overwritten entry does not reach y. PyTorch's
backward gives the cell's dy to every entry that names it; the two agree whenever the
indices of a plane are distinct (always so for windows that do not overlap, stride ≥
kernel). With overlapping windows max_pool2d can name one cell twice, both entries then
holding the same value; (MU3) keeps max_pool2d → max_unpool2d's gradient equal to the
identity on that cell, where PyTorch's counts it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.pool_nd import ntuple


@dataclass(frozen=True, slots=True)
class MaxUnpool2dCache:
    """What max_unpool2d_backward needs.

    Fields
    ------
    cells : Array (N·C·P·Q,), int64
        Each entry's cell in y flattened whole, (n·C + c)·H·W + idx (MU2): N·C·P·Q integers.
    written : Array (N·C·P·Q,), bool
        Whether the entry is the one written at its cell (MU2): N·C·P·Q booleans.
    x_shape, y_shape : tuple of int
        (N, C, P, Q) and (N, C, H, W).
    x_dtype : dtype
        The forward dtype.
    """

    cells: Array
    written: Array
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    x_dtype: Any


def unpool_output_size(
    op: str, in_size: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any, output_size: Any
) -> tuple[int, ...]:
    """Equation (MU1): the unpooled spatial size, PyTorch's rule.

    Examples
    --------
    >>> unpool_output_size("max_unpool2d", (2, 3), 2, None, 0, None)
    (4, 6)
    >>> unpool_output_size("max_unpool2d", (2, 3), 2, None, 0, (1, 2, 5, 7))
    (5, 7)
    """
    dims = len(in_size)
    kernel = ntuple(op, "kernel_size", kernel_size, dims, minimum=1)
    strides = kernel if stride is None else ntuple(op, "stride", stride, dims, minimum=1)
    pads = ntuple(op, "padding", padding, dims, minimum=0)
    default = tuple(
        (n - 1) * s - 2 * p + k for n, k, s, p in zip(in_size, kernel, strides, pads, strict=True)
    )  # (MU1)
    if output_size is None:
        return default
    given = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size]
    if len(given) == dims + 2:
        given = given[2:]  # PyTorch also takes (N, C, *size)
    sizes = ntuple(op, "output_size", given, dims, minimum=1)
    for axis, (size, near, s) in enumerate(zip(sizes, default, strides, strict=True)):
        if not near - s < size < near + s:  # (MU1)
            raise ParameterError(
                f"{op}: output_size {sizes} is too far from the default {default} on axis "
                f"{axis}; expected {near - s} < size < {near + s}, got {size} "
                f"(x spatial size {in_size}, kernel {kernel}, stride {strides}, padding {pads})"
            )
    return sizes


def _check_indices(op: str, x: Array, indices: Array, plane: int, shapes: str) -> None:
    require_array(op, "indices", indices)
    if indices.dtype.kind not in "iu":
        raise DTypeError(
            f"{op}: indices must be integers; expected an int64 array from max_pool2d's "
            f"return_indices, got dtype {indices.dtype} ({shapes})"
        )
    if tuple(indices.shape) != tuple(x.shape):
        raise ShapeError(
            f"{op}: indices must have the shape of x; expected {tuple(x.shape)}, got "
            f"{tuple(indices.shape)} ({shapes})"
        )
    # A host check of the values, once per call: an index outside the plane would write
    # into another channel's plane.
    if indices.size and bool(((indices < 0) | (indices >= plane)).any()):
        low, high = int(indices.min()), int(indices.max())
        raise ShapeError(
            f"{op}: indices must name cells of the output plane; expected 0 <= index < "
            f"{plane}, got values from {low} to {high} ({shapes})"
        )


def max_unpool2d_forward(
    x: Array,
    indices: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> tuple[Array, MaxUnpool2dCache]:
    """Max unpooling forward pass, equations (MU1), (MU2).

    Parameters
    ----------
    x : Array (N, C, P, Q)
        Pooled values, float32 or float64 (N may be 0).
    indices : Array (N, C, P, Q), integer
        Flat cell h·W + w of each value in its (H, W) plane, as max_pool2d returns them.
    kernel_size, stride, padding : int or (int, int)
        Those of the max_pool2d being inverted (stride None: the window).
    output_size : (H, W), (N, C, H, W) or None
        The plane size; None takes (MU1)'s default. Give it where the pooling dropped
        rows or columns (a window size that does not divide the input).

    Returns
    -------
    y : Array (N, C, H, W)
    cache : MaxUnpool2dCache

    Raises
    ------
    ShapeError
        x is not 4-D, indices differ in shape from x, or an index lies outside the plane.
    ParameterError
        Bad kernel_size, stride, padding, or an output_size not within stride of (MU1).
    DTypeError
        x is not float32/float64, or indices are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[5.0, 7.0]]]])
    >>> idx = np.array([[[[1, 7]]]])            # cells (0, 1) and (1, 3) of a 2×4 plane
    >>> y, cache = max_unpool2d_forward(x, idx, 2)
    >>> y
    array([[[[0., 5., 0., 0.],
             [0., 0., 0., 7.]]]])
    >>> max_unpool2d_backward(np.arange(8.0).reshape(1, 1, 2, 4), cache)
    array([[[[1., 7.]]]])
    """
    op = "max_unpool2d"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    shapes = f"x.shape={tuple(x.shape)}, indices.shape={tuple(getattr(indices, 'shape', ()))}"
    if x.ndim != 4 or min(x.shape[1:]) < 1:
        raise ShapeError(
            f"{op}: x must be 4-D (N, C, P, Q) with C, P, Q >= 1; expected 4 dimensions, got "
            f"{x.ndim} ({shapes})"
        )
    N, C, P, Q = (int(v) for v in x.shape)
    H, W = unpool_output_size(op, (P, Q), kernel_size, stride, padding, output_size)  # (MU1)
    _check_indices(op, x, indices, H * W, shapes + f", output (H, W)=({H}, {W})")
    xp = get_xp(x, indices)
    planes = xp.arange(N * C, dtype=xp.int64)[:, None] * (H * W)  # (N·C, 1)
    cells = (planes + indices.reshape(N * C, P * Q).astype(xp.int64)).reshape(-1)  # (MU2)
    order = xp.arange(cells.size, dtype=xp.int64)
    last = xp.full(N * C * H * W, -1, dtype=xp.int64)
    xp.maximum.at(last, cells, order)  # (MU2) the last entry naming each cell
    written = last[cells] == order  # (MU2)
    y = xp.zeros(N * C * H * W, dtype=x.dtype)
    y[cells[written]] = x.reshape(-1)[written]  # (MU2) one write per cell
    cache = MaxUnpool2dCache(
        cells=cells, written=written, x_shape=(N, C, P, Q), y_shape=(N, C, H, W),
        x_dtype=x.dtype,
    )  # fmt: skip
    return y.reshape(N, C, H, W), cache


def max_unpool2d_backward(dy: Array, cache: MaxUnpool2dCache) -> Array:
    """Max unpooling backward pass, equation (MU3): dy (N, C, H, W) -> dx (N, C, P, Q).

    Each written entry reads the gradient of its cell (a gather, the adjoint of MU2's
    scatter); an overwritten entry gets 0.
    """
    check_upstream("max_unpool2d_backward", dy, cache.y_shape, cache.x_dtype)
    xp = get_xp(dy, cache.cells)
    dx = xp.where(cache.written, dy.reshape(-1)[cache.cells], 0)  # (MU3)
    return dx.reshape(cache.x_shape)


def max_unpool2d(x: Array, indices: Array, kernel_size: Any, **hyper: Any) -> Array:
    """Max unpooling forward alone; see :func:`max_unpool2d_forward` for the arguments."""
    return max_unpool2d_forward(x, indices, kernel_size, **hyper)[0]
