"""3-D pooling, PyTorch's max_pool3d and avg_pool3d: pure pairs over (N, C, D, H, W).

The equations are those of convprop.functional.pool_nd with three spatial axes: output
size (PN1), (PN2), windows (PN3), (PN4); max pooling (MPN1)-(MPN3) with PyTorch's flat
indices (MPI1); average pooling (APN1)-(APN3).
"""

from __future__ import annotations

from typing import Any

from convprop.backend import Array
from convprop.functional.pool_nd import (
    AvgPoolNdCache,
    MaxPoolNdCache,
    avg_pool_nd_backward,
    avg_pool_nd_forward,
    max_pool_nd_backward,
    max_pool_nd_forward,
)


def max_pool3d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Array, MaxPoolNdCache]:
    """3-D max pooling forward pass, equations (MPN1), (MPN2).

    Parameters
    ----------
    x : Array (N, C, D, H, W)
        Input, float32 or float64 (N may be 0).
    kernel_size, stride, padding, dilation : int or (int, int, int)
        Window, step (None: the window), padding on both sides (−∞, at most half the
        window) and spacing of the window's cells.
    ceil_mode : bool
        Output size by (PN2) instead of (PN1).

    Returns
    -------
    y : Array (N, C, D_out, H_out, W_out)
        Same dtype as x.
    cache : MaxPoolNdCache
        For max_pool3d_backward; ``pool_nd.max_pool_nd_indices(cache)`` gives PyTorch's
        indices (MPI1).

    Raises
    ------
    ShapeError, ParameterError, DTypeError
        See :func:`convprop.functional.pool_nd.pool_nd_geometry`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> y, cache = max_pool3d_forward(x, 2)
    >>> y.ravel()
    array([7.])
    >>> max_pool3d_backward(np.array([[[[[5.0]]]]]), cache).ravel()
    array([0., 0., 0., 0., 0., 0., 0., 5.])
    """
    return max_pool_nd_forward(
        "max_pool3d", x, 3, kernel_size, stride, padding, dilation, ceil_mode
    )


def max_pool3d_backward(dy: Array, cache: MaxPoolNdCache) -> Array:
    """3-D max pooling backward pass, equation (MPN3): dy (N, C, *out) -> dx (N, C, D, H, W)."""
    return max_pool_nd_backward(dy, cache)


def max_pool3d(x: Array, kernel_size: Any, **hyper: Any) -> Array:
    """3-D max pooling forward alone; see :func:`max_pool3d_forward` for the arguments."""
    return max_pool3d_forward(x, kernel_size, **hyper)[0]


def avg_pool3d_forward(
    x: Array,
    kernel_size: Any,
    *,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[Array, AvgPoolNdCache]:
    """3-D average pooling forward pass, equations (APN1), (APN2).

    Parameters
    ----------
    x : Array (N, C, D, H, W)
        Input, float32 or float64 (N may be 0).
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool3d_forward`; padding is filled with zeros.
    count_include_pad : bool
        True divides by the window's cells inside the padded input, False by its real
        cells only (APN1).
    divisor_override : int or None
        A nonzero divisor used for every window instead (APN1).

    Returns
    -------
    y : Array (N, C, D_out, H_out, W_out)
        Same dtype as x.
    cache : AvgPoolNdCache
        For avg_pool3d_backward.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    >>> avg_pool3d_forward(x, 2)[0].ravel()
    array([3.5])
    >>> avg_pool3d_forward(x, 2, divisor_override=4)[0].ravel()
    array([7.])
    """
    return avg_pool_nd_forward(
        "avg_pool3d", x, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
        divisor_override,
    )  # fmt: skip


def avg_pool3d_backward(dy: Array, cache: AvgPoolNdCache) -> Array:
    """3-D average pooling backward pass, equation (APN3), the adjoint of (APN2)."""
    return avg_pool_nd_backward(dy, cache)


def avg_pool3d(x: Array, kernel_size: Any, **hyper: Any) -> Array:
    """3-D average pooling forward alone; see :func:`avg_pool3d_forward` for the arguments."""
    return avg_pool3d_forward(x, kernel_size, **hyper)[0]
