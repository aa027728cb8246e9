"""Reshape, permute (transpose) and indexing: ops that move elements without changing them.

Each forward is a linear map that picks or reorders entries of x; each backward is its
adjoint, which puts every entry of dy back where it came from.
Reshape   x (any shape) -> y (any shape of the same size), row-major order
  y.ravel() = x.ravel()                                                               (RS1)
  dx = dy.reshape(x.shape)                                                            (RS2)
Permute   axes a permutation of range(x.ndim)
  y[i_a0, i_a1, ...] = x[i_0, i_1, ...]   i.e. y = x.transpose(axes)                  (TR1)
  dx = dy.transpose(inverse of axes)                                                   (TR2)
Indexing  y = x[index]  (ints, slices, None, Ellipsis, integer or boolean arrays)
  y[j] = x[index(j)]                                                                   (IX1)
  dx = zeros like x;  dx[index(j)] += dy[j] for every j    -- an index named twice
       (advanced indexing may repeat one) receives the sum of its dy entries          (IX2)
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array


@dataclass(frozen=True, slots=True)
class ReshapeCache:
    """What reshape_backward needs (shapes only).

    Fields
    ------
    x_shape, y_shape : tuple[int, ...]
    dtype : dtype
    """

    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def reshape_forward(x: Array, shape: tuple[int, ...]) -> tuple[Array, ReshapeCache]:
    """y = x viewed with another shape of the same size, equation (RS1).

    ``shape`` may hold one -1 (inferred), as NumPy's and PyTorch's reshape.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = reshape_forward(np.arange(6.0), (2, -1))
    >>> y.shape, reshape_backward(y, cache).shape
    ((2, 3), (6,))
    """
    require_array("reshape", "x", x)
    try:
        y = x.reshape(shape)  # (RS1) row-major
    except (ValueError, TypeError) as error:
        raise ShapeError(
            f"reshape: cannot view x as {shape}; expected a shape with {x.size} elements "
            f"(at most one -1), got {shape} (x.shape={tuple(x.shape)})"
        ) from error
    return y, ReshapeCache(tuple(x.shape), tuple(y.shape), x.dtype)


def reshape_backward(dy: Array, cache: ReshapeCache) -> Array:
    """dx = dy viewed with x's shape, equation (RS2); a fresh array."""
    check_upstream("reshape_backward", dy, cache.y_shape, cache.dtype)
    return get_xp(dy).array(dy.reshape(cache.x_shape), copy=True)  # (RS2)


@dataclass(frozen=True, slots=True)
class PermuteCache:
    """What permute_backward needs.

    Fields
    ------
    axes : tuple[int, ...]
        The permutation applied in the forward.
    y_shape : tuple[int, ...]
    dtype : dtype
    """

    axes: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def permute_forward(x: Array, axes: tuple[int, ...]) -> tuple[Array, PermuteCache]:
    """y = x with its axes reordered, y.shape[i] = x.shape[axes[i]], equation (TR1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = permute_forward(np.zeros((2, 3, 4)), (2, 0, 1))
    >>> y.shape, permute_backward(y, cache).shape
    ((4, 2, 3), (2, 3, 4))
    """
    require_array("permute", "x", x)
    ndim = x.ndim
    in_range = all(
        isinstance(a, numbers.Integral) and not isinstance(a, bool) and -ndim <= a < ndim
        for a in axes
    )
    normalised = tuple(int(a) % ndim for a in axes) if in_range and ndim else tuple(axes)
    if not in_range or sorted(normalised) != list(range(ndim)):
        raise ParameterError(
            f"permute: axes must be a permutation of the dimensions; expected an order of "
            f"{list(range(x.ndim))}, got {list(axes)} (x.shape={tuple(x.shape)})"
        )
    y = x.transpose(normalised)  # (TR1)
    return y, PermuteCache(normalised, tuple(y.shape), x.dtype)


def permute_backward(dy: Array, cache: PermuteCache) -> Array:
    """dx = dy with the inverse permutation, equation (TR2); a fresh array."""
    check_upstream("permute_backward", dy, cache.y_shape, cache.dtype)
    inverse = [0] * len(cache.axes)
    for position, axis in enumerate(cache.axes):
        inverse[axis] = position
    return get_xp(dy).array(dy.transpose(inverse), copy=True)  # (TR2)


@dataclass(frozen=True, slots=True)
class GetitemCache:
    """What getitem_backward needs.

    Fields
    ------
    index : object
        The index as given (ints, slices, None, Ellipsis, arrays); integer and boolean
        arrays are kept by reference.
    basic : bool
        True when the index has no arrays: every element of x is picked at most once.
    x_shape, y_shape : tuple[int, ...]
    dtype : dtype
    """

    index: Any
    basic: bool
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(part is None or part is Ellipsis or isinstance(part, (int, slice)) for part in parts)


def getitem_forward(x: Array, index: Any) -> tuple[Array, GetitemCache]:
    """y = x[index], equation (IX1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(4.0)
    >>> y, cache = getitem_forward(x, np.array([0, 0, 3]))
    >>> getitem_backward(np.array([1.0, 2.0, 5.0]), cache)
    array([3., 0., 0., 5.])
    """
    require_array("getitem", "x", x)
    try:
        y = x[index]  # (IX1)
    except IndexError as error:
        raise ShapeError(
            f"getitem: the index does not fit x; expected indices inside x.shape="
            f"{tuple(x.shape)}, got {index!r} ({error})"
        ) from error
    y = get_xp(x).asarray(y)
    return y, GetitemCache(index, _is_basic(index), tuple(x.shape), tuple(y.shape), x.dtype)


def getitem_backward(dy: Array, cache: GetitemCache) -> Array:
    """dx: each dy entry added back at the place it was read from, equation (IX2)."""
    check_upstream("getitem_backward", dy, cache.y_shape, cache.dtype)
    xp = get_xp(dy)
    dx = xp.zeros(cache.x_shape, dtype=cache.dtype)
    if cache.basic:
        dx[cache.index] = dy  # (IX2) basic indexing picks each element at most once
    else:
        xp.add.at(dx, cache.index, dy)  # (IX2) repeated indices add up
    return dx
