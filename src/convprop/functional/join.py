"""Concatenation and stacking of several arrays: the joins of Inception, DenseNet and U-Net.

Notation  x_1 … x_m arrays;  dim the axis joined along
Concatenate (the x_i agree on every axis but dim, of sizes n_1 … n_m there)
  y[…, o_i + j, …] = x_i[…, j, …],  o_i = n_1 + … + n_(i−1)   (x_1 … x_m end to end)  (CAT1)
  dx_i = dy[…, o_i : o_i + n_i, …]     -- each input gets back its own slice         (CAT2)
Stack (the x_i share one shape)
  y[…, i, …] = x_i   (a new axis at dim)                                              (ST1)
  dx_i = dy[…, i, …]                                                                  (ST2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array


def _check_arrays(op: str, given: Any) -> list[Array]:
    arrays: list[Array] = list(given)
    if not arrays:
        raise ShapeError(f"{op}: nothing to join; expected at least one array, got none")
    for index, array in enumerate(arrays):
        require_array(op, f"tensors[{index}]", array)
    get_xp(*arrays)
    return arrays


def _axis(op: str, dim: Any, ndim: int, shapes: list[tuple[int, ...]]) -> int:
    if not isinstance(dim, int) or isinstance(dim, bool) or not -ndim <= dim < ndim:
        raise ParameterError(
            f"{op}: dim out of range; expected an int in [{-ndim}, {ndim - 1}], got {dim!r} "
            f"(shapes {shapes})"
        )
    return dim % ndim


@dataclass(frozen=True, slots=True)
class CatCache:
    """What cat_backward needs (sizes only).

    Fields
    ------
    dim : int
        The axis joined along (non-negative).
    sizes : tuple[int, ...]
        n_1 … n_m, each input's size along dim.
    dtypes : tuple
        Each input's dtype.
    y_shape : tuple[int, ...]
    y_dtype : dtype
    """

    dim: int
    sizes: tuple[int, ...]
    dtypes: tuple[Any, ...]
    y_shape: tuple[int, ...]
    y_dtype: Any


def cat_forward(arrays: Any, dim: int = 0) -> tuple[Array, CatCache]:
    """Concatenate along ``dim``, equation (CAT1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = cat_forward([np.zeros((2, 1)), np.ones((2, 2))], dim=1)
    >>> y.tolist(), [g.shape for g in cat_backward(y, cache)]
    ([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]], [(2, 1), (2, 2)])
    """
    arrays = _check_arrays("cat", arrays)
    shapes = [tuple(a.shape) for a in arrays]
    ndim = len(shapes[0])
    axis = _axis("cat", dim, max(ndim, 1), shapes)
    for shape in shapes:
        if (
            len(shape) != ndim
            or ndim == 0
            or any(shape[i] != shapes[0][i] for i in range(ndim) if i != axis)
        ):
            raise ShapeError(
                f"cat: the arrays must agree on every axis but dim={axis}; expected shapes "
                f"like {shapes[0]} apart from axis {axis}, got {shapes}"
            )
    y = get_xp(*arrays).concatenate(arrays, axis=axis)  # (CAT1)
    sizes = tuple(shape[axis] for shape in shapes)
    dtypes = tuple(a.dtype for a in arrays)
    return y, CatCache(axis, sizes, dtypes, tuple(y.shape), y.dtype)


def cat_backward(dy: Array, cache: CatCache) -> tuple[Array, ...]:
    """Each input's slice of dy, equation (CAT2); fresh arrays."""
    check_upstream("cat_backward", dy, cache.y_shape, cache.y_dtype)
    xp = get_xp(dy)
    grads, start = [], 0
    for size, dtype in zip(cache.sizes, cache.dtypes, strict=True):
        window = [slice(None)] * dy.ndim
        window[cache.dim] = slice(start, start + size)
        grads.append(xp.array(dy[tuple(window)], dtype=dtype, copy=True))  # (CAT2)
        start += size
    return tuple(grads)


@dataclass(frozen=True, slots=True)
class StackCache:
    """What stack_backward needs.

    Fields
    ------
    dim : int
        The new axis (non-negative).
    dtypes : tuple
        Each input's dtype.
    y_shape : tuple[int, ...]
    y_dtype : dtype
    """

    dim: int
    dtypes: tuple[Any, ...]
    y_shape: tuple[int, ...]
    y_dtype: Any


def stack_forward(arrays: Any, dim: int = 0) -> tuple[Array, StackCache]:
    """Stack along a new axis ``dim``, equation (ST1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = stack_forward([np.zeros(3), np.ones(3)], dim=1)
    >>> y.shape, [g.shape for g in stack_backward(y, cache)]
    ((3, 2), [(3,), (3,)])
    """
    arrays = _check_arrays("stack", arrays)
    shapes = [tuple(a.shape) for a in arrays]
    if any(shape != shapes[0] for shape in shapes):
        raise ShapeError(
            f"stack: the arrays must share one shape; expected every shape {shapes[0]}, "
            f"got {shapes}"
        )
    axis = _axis("stack", dim, len(shapes[0]) + 1, shapes)
    y = get_xp(*arrays).stack(arrays, axis=axis)  # (ST1)
    return y, StackCache(axis, tuple(a.dtype for a in arrays), tuple(y.shape), y.dtype)


def stack_backward(dy: Array, cache: StackCache) -> tuple[Array, ...]:
    """Each input's plane of dy, equation (ST2); fresh arrays."""
    check_upstream("stack_backward", dy, cache.y_shape, cache.y_dtype)
    xp = get_xp(dy)
    moved = xp.moveaxis(dy, cache.dim, 0)
    return tuple(
        xp.array(moved[i], dtype=dtype, copy=True)  # (ST2)
        for i, dtype in enumerate(cache.dtypes)
    )
