"""Flatten: view trailing dimensions as one, the bridge from conv features to a linear layer.

Notation  x (N, C, H, W)  y (N, C*H*W)   (shown for start_dim=1; any rank and start_dim work)
Forward
  y[n, c*H*W + h*W + w] = x[n, c, h, w]      (row-major order, as PyTorch's flatten)    (FL1)
Backward  (dy has the shape of y)
  dx[n, c, h, w] = dy[n, c*H*W + h*W + w]    -- the inverse reshape                     (FL2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array

OP = "flatten"


@dataclass(frozen=True, slots=True)
class FlattenCache:
    """What flatten_backward needs (shapes only: no array is kept).

    Fields
    ------
    x_shape : tuple[int, ...]
        Shape of the forward input, e.g. (N, C, H, W).
    y_shape : tuple[int, ...]
        Shape of the forward output, e.g. (N, C*H*W).
    x_dtype : dtype
        The forward dtype.
    """

    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    x_dtype: Any


def flatten_forward(x: Array, *, start_dim: int = 1) -> tuple[Array, FlattenCache]:
    """Flatten forward pass, equation (FL1).

    Parameters
    ----------
    x : Array (N, C, H, W) or any rank >= 1
        Input, float32 or float64.
    start_dim : int
        First dimension merged (with all that follow); negative counts from the end.

    Returns
    -------
    y : Array (N, C*H*W) for start_dim=1
        Same dtype as x. Like PyTorch's flatten it may share memory with x (a reshape); ops
        never write into their inputs or outputs, so sharing is safe.
    cache : FlattenCache
        For flatten_backward.

    Raises
    ------
    ShapeError
        x is 0-D.
    ParameterError
        start_dim is not an int in [-x.ndim, x.ndim).
    DTypeError
        x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(12.0).reshape(2, 3, 1, 2)
    >>> y, cache = flatten_forward(x)
    >>> y.shape
    (2, 6)
    >>> flatten_backward(y, cache).shape
    (2, 3, 1, 2)
    """
    require_array(OP, "x", x)
    check_float_dtype(OP, x=x)
    x_shape = tuple(int(v) for v in x.shape)
    if len(x_shape) == 0:
        raise ShapeError(f"{OP}: x must have at least 1 dimension; expected ndim >= 1, got 0")
    ndim = len(x_shape)
    is_int = isinstance(start_dim, int) and not isinstance(start_dim, bool)
    if not is_int or not -ndim <= start_dim < ndim:
        raise ParameterError(
            f"{OP}: start_dim out of range; expected an int in [{-ndim}, {ndim - 1}], got "
            f"{start_dim!r} (x.shape={x_shape})"
        )
    start = start_dim % ndim
    y_shape = (*x_shape[:start], math.prod(x_shape[start:]))
    y = x.reshape(y_shape)  # (FL1) row-major
    return y, FlattenCache(x_shape=x_shape, y_shape=y_shape, x_dtype=x.dtype)


def flatten_backward(dy: Array, cache: FlattenCache) -> Array:
    """Flatten backward pass, equation (FL2).

    Parameters
    ----------
    dy : Array (N, C*H*W)
        Gradient of the loss with respect to y.
    cache : FlattenCache
        From flatten_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        A fresh array (never a view of dy).
    """
    check_upstream("flatten_backward", dy, cache.y_shape, cache.x_dtype)
    xp = get_xp(dy)
    return xp.array(dy.reshape(cache.x_shape), copy=True)  # (FL2) the inverse reshape


def flatten(x: Array, *, start_dim: int = 1) -> Array:
    """Flatten forward alone; see :func:`flatten_forward` for the arguments."""
    y, _ = flatten_forward(x, start_dim=start_dim)
    return y
