"""1-D pooling, PyTorch's max_pool1d, avg_pool1d and adaptive_avg_pool1d: pure pairs.

x (N, C, L) -> y (N, C, L_out). Max and average pooling are convprop.functional.pool_nd
with one spatial axis: (PN1)-(PN4), (MPN1)-(MPN3), (MPI1), (APN1)-(APN3). Where a 2-D pair
is faster, the signal is lifted to an image of one row: max pooling without dilation (the
compiled 2-D kernel) and adaptive average pooling:
  y = pool2d(x viewed as (N, C, 1, L), window (1, k), stride (1, s), padding (0, p))
      viewed as (N, C, L_out);  adaptive: output size (1, L_out)                         (PL1)
  dx = pool2d_backward(dy viewed as (N, C, 1, L_out)) viewed as (N, C, L)                (PL2)
A view changes no value, so (PL2) is the adjoint (or derivative) of (PL1) exactly when the
2-D backward is that of the 2-D forward; with one row, PyTorch's flat index h·W + w is w.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from convprop import _native
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.adaptive_pool2d import (
    AdaptiveAvgPool2dCache,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_output_size,
)
from convprop.functional.pool2d import (
    MaxPool2dCache,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_indices,
)
from convprop.functional.pool_nd import (
    AvgPoolNdCache,
    MaxPoolNdCache,
    PoolNdGeometry,
    avg_pool_nd_backward,
    avg_pool_nd_forward,
    max_pool_nd_backward,
    max_pool_nd_forward,
    max_pool_nd_indices,
    pool_nd_geometry,
)


@dataclass(frozen=True, slots=True)
class LiftedMaxPool1dCache:
    """What max_pool1d_backward needs after the compiled 2-D pair ran on one-row images.

    Fields
    ------
    lifted : MaxPool2dCache
        The 2-D cache on x viewed as (N, C, 1, L) (PL1): N·C·L_out int32 tap indices.
    y_shape : tuple of int
        (N, C, L_out).
    """

    lifted: MaxPool2dCache
    y_shape: tuple[int, int, int]


def max_pool1d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Array, MaxPoolNdCache | LiftedMaxPool1dCache]:
    """1-D max pooling forward pass, equations (MPN1), (MPN2) (or PL1 over MP1, MP2).

    Parameters
    ----------
    x : Array (N, C, L)
        Input, float32 or float64 (N may be 0).
    kernel_size, stride, padding, dilation : int or (int,)
        Window, step (None: the window), padding on both ends (−∞, at most half the
        window) and spacing of the window's cells.
    ceil_mode : bool
        Output length by (PN2) instead of (PN1).

    Returns
    -------
    y : Array (N, C, L_out)
        Same dtype as x.
    cache : MaxPoolNdCache or LiftedMaxPool1dCache
        For max_pool1d_backward; :func:`max_pool1d_indices` gives PyTorch's indices (MPI1).
        Without dilation a NumPy input runs the compiled 2-D pair on one-row images (PL1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]]])
    >>> y, cache = max_pool1d_forward(x, 2, stride=2, dilation=2)   # cells (0, 2), (2, 4), (4, 6)
    >>> y
    array([[[4., 5., 5.]]])
    >>> max_pool1d_backward(np.array([[[1.0, 2.0, 3.0]]]), cache)
    array([[[0., 0., 1., 0., 5., 0., 0.]]])
    """
    geom = pool_nd_geometry("max_pool1d", x, 1, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool1d(x, geom, kernel_size, stride, padding, dilation, ceil_mode)


def _undilated(x: Array, geom: PoolNdGeometry, *hyperparameters: Any) -> bool:
    """The 2-D kernel's windows are dense."""
    return bool(geom.dilation == (1,))


@_native.twin(arrays="x", requires=_undilated)
def _lifted_max_pool1d(
    x: Array, geom: PoolNdGeometry, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
    ceil_mode: bool,
) -> tuple[Array, LiftedMaxPool1dCache]:  # fmt: skip
    """(PL1) over (MP1), (MP2): the compiled 2-D kernel on one-row images."""
    y, lifted = max_pool2d_forward(
        x[:, :, None, :], (1, geom.kernel[0]), stride=(1, geom.stride[0]),
        padding=(0, geom.padding[0]), ceil_mode=ceil_mode,
    )  # fmt: skip
    y_shape = (geom.N, geom.C, geom.out[0])
    cache = LiftedMaxPool1dCache(lifted=cast(MaxPool2dCache, lifted), y_shape=y_shape)
    return y.reshape(y_shape), cache


@_native.accelerated(_lifted_max_pool1d)
def _max_pool1d(
    x: Array, geom: PoolNdGeometry, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
    ceil_mode: bool,
) -> tuple[Array, MaxPoolNdCache | LiftedMaxPool1dCache]:  # fmt: skip
    """(MPN1), (MPN2) with one spatial axis; lifted to the compiled 2-D pair (PL1) where the
    kernels serve x and the windows are dense."""
    op = "max_pool1d"
    return max_pool_nd_forward(op, x, 1, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool1d_backward(dy: Array, cache: MaxPoolNdCache | LiftedMaxPool1dCache) -> Array:
    """1-D max pooling backward pass, equation (MPN3), or (PL2) over (MP3) for a cache of
    the compiled path: dy (N, C, L_out) -> dx (N, C, L)."""
    if isinstance(cache, MaxPoolNdCache):
        return max_pool_nd_backward(dy, cache)  # (MPN3)
    check_upstream("max_pool1d_backward", dy, cache.y_shape, cache.lifted.x_dtype)
    dx = max_pool2d_backward(dy[:, :, None, :], cache.lifted)  # (PL2) over (MP3)
    return dx.reshape(dx.shape[0], dx.shape[1], dx.shape[3])


def max_pool1d_indices(cache: MaxPoolNdCache | LiftedMaxPool1dCache) -> Array:
    """PyTorch's ``return_indices`` (MPI1): (N, C, L_out) int64, the position l of each
    maximum (for a one-row image h·W + w = w)."""
    if isinstance(cache, MaxPoolNdCache):
        return max_pool_nd_indices(cache)
    return max_pool2d_indices(cache.lifted).reshape(cache.y_shape)


def max_pool1d(x: Array, kernel_size: Any, **hyper: Any) -> Array:
    """1-D max pooling forward alone; see :func:`max_pool1d_forward` for the arguments."""
    return max_pool1d_forward(x, kernel_size, **hyper)[0]


def avg_pool1d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> tuple[Array, AvgPoolNdCache]:
    """1-D average pooling forward pass, equations (APN1), (APN2).

    Parameters
    ----------
    x : Array (N, C, L)
        Input, float32 or float64 (N may be 0).
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool1d_forward`; padding is filled with zeros.
    count_include_pad : bool
        True divides by the window's cells inside the padded input, False by its real
        cells only (APN1).

    Returns
    -------
    y : Array (N, C, L_out)
        Same dtype as x.
    cache : AvgPoolNdCache
        For avg_pool1d_backward.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    >>> avg_pool1d_forward(x, 3, stride=2, padding=1)[0]
    array([[[1., 3., 3.]]])
    >>> avg_pool1d_forward(x, 3, stride=2, padding=1, count_include_pad=False)[0]
    array([[[1.5, 3. , 4.5]]])
    """
    return avg_pool_nd_forward(
        "avg_pool1d", x, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )


def avg_pool1d_backward(dy: Array, cache: AvgPoolNdCache) -> Array:
    """1-D average pooling backward pass, equation (APN3), the adjoint of (APN2)."""
    return avg_pool_nd_backward(dy, cache)


def avg_pool1d(x: Array, kernel_size: Any, **hyper: Any) -> Array:
    """1-D average pooling forward alone; see :func:`avg_pool1d_forward` for the arguments."""
    return avg_pool1d_forward(x, kernel_size, **hyper)[0]


@dataclass(frozen=True, slots=True)
class AdaptiveAvgPool1dCache:
    """What adaptive_avg_pool1d_backward needs.

    Fields
    ------
    lifted : AdaptiveAvgPool2dCache
        The 2-D pair's cache on x viewed as (N, C, 1, L) (PL1): M_h is 1×1 and M_w is
        (L_out, L), so L_out·L + 1 elements.
    y_shape : tuple of int
        (N, C, L_out).
    """

    lifted: AdaptiveAvgPool2dCache
    y_shape: tuple[int, int, int]


def adaptive_avg_pool1d_forward(x: Array, output_size: Any) -> tuple[Array, AdaptiveAvgPool1dCache]:
    """Adaptive average pooling of a signal, equation (PL1) over (AA1)-(AA3).

    Parameters
    ----------
    x : Array (N, C, L)
        Input, float32 or float64 (N may be 0).
    output_size : int, (int,) or (None,)
        L_out, positive; None keeps L. 1 is global average pooling.

    Returns
    -------
    y : Array (N, C, L_out)
    cache : AdaptiveAvgPool1dCache

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[0.0, 1.0, 2.0, 3.0, 4.0]]])
    >>> adaptive_avg_pool1d_forward(x, 2)[0]   # bins {0, 1, 2} and {2, 3, 4}
    array([[[1., 3.]]])
    """
    op = "adaptive_avg_pool1d"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if x.ndim != 3 or min(x.shape[1:]) < 1:
        raise ShapeError(
            f"{op}: x must be 3-D (N, C, L) with C, L >= 1 (only N may be 0); expected 3 "
            f"dimensions, got {x.ndim} (x.shape={tuple(x.shape)})"
        )
    (L_out,) = adaptive_output_size(op, output_size, (int(x.shape[2]),))
    y, lifted = adaptive_avg_pool2d_forward(x[:, :, None, :], (1, L_out))  # (PL1)
    y_shape = (int(x.shape[0]), int(x.shape[1]), L_out)
    return get_xp(x).ascontiguousarray(y.reshape(y_shape)), AdaptiveAvgPool1dCache(lifted, y_shape)


def adaptive_avg_pool1d_backward(dy: Array, cache: AdaptiveAvgPool1dCache) -> Array:
    """Adaptive average pooling of a signal backward, equation (PL2) over (AA4).

    dy (N, C, L_out) -> dx (N, C, L).
    """
    check_upstream("adaptive_avg_pool1d_backward", dy, cache.y_shape, cache.lifted.M_h.dtype)
    dx = adaptive_avg_pool2d_backward(dy[:, :, None, :], cache.lifted)  # (PL2)
    return get_xp(dx).ascontiguousarray(dx[:, :, 0, :])


def adaptive_avg_pool1d(x: Array, output_size: Any) -> Array:
    """Adaptive average pooling of a signal, forward alone."""
    return adaptive_avg_pool1d_forward(x, output_size)[0]
