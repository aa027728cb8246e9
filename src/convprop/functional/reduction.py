"""Sum and mean over axes: the reductions a loss or a global pooling is built from.

Notation  x (any shape);  A the set of reduced axes (all of them when none are named);
          m = the number of elements summed into each output, Π_{a∈A} x.shape[a]
Forward
  y = Σ_{A} x            (keepdim keeps the reduced axes with size 1)                 (SUM1)
  y = (1/m) Σ_{A} x                                                                   (MEAN1)
Backward  (dy has the shape of y)
  dx = dy broadcast back over A          -- every summand gets the whole dy           (SUM2)
  dx = dy broadcast back over A, / m                                                  (MEAN2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array


@dataclass(frozen=True, slots=True)
class ReduceCache:
    """What sum_backward and mean_backward need (shapes only).

    Fields
    ------
    axes : tuple[int, ...]
        The reduced axes (non-negative, sorted).
    x_shape, y_shape : tuple[int, ...]
    dtype : dtype
    """

    axes: tuple[int, ...]
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    dtype: Any


def _axes(op: str, x: Array, dim: Any) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(x.ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    ndim = max(x.ndim, 1)
    bad = [
        d for d in dims if not isinstance(d, int) or isinstance(d, bool) or not -ndim <= d < ndim
    ]
    if bad or len({d % ndim for d in dims}) != len(dims):
        raise ParameterError(
            f"{op}: dim out of range or repeated; expected distinct ints in [{-ndim}, "
            f"{ndim - 1}], got {dim!r} (x.shape={tuple(x.shape)})"
        )
    return tuple(sorted(d % ndim for d in dims)) if x.ndim else ()


def sum_forward(x: Array, dim: Any = None, keepdim: bool = False) -> tuple[Array, ReduceCache]:
    """y = the sum of x over ``dim`` (all axes when None), equation (SUM1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = sum_forward(np.ones((2, 3)), dim=1)
    >>> y, sum_backward(np.array([1.0, 2.0]), cache)
    (array([3., 3.]), array([[1., 1., 1.],
           [2., 2., 2.]]))
    """
    require_array("sum", "x", x)
    axes = _axes("sum", x, dim)
    y = get_xp(x).asarray(x.sum(axis=axes, keepdims=bool(keepdim)), dtype=x.dtype)  # (SUM1)
    return y, ReduceCache(axes, tuple(x.shape), tuple(y.shape), x.dtype)


def _spread(dy: Array, cache: ReduceCache) -> Array:
    kept = tuple(1 if i in cache.axes else n for i, n in enumerate(cache.x_shape))
    xp = get_xp(dy)
    return xp.array(xp.broadcast_to(dy.reshape(kept), cache.x_shape), copy=True)


def sum_backward(dy: Array, cache: ReduceCache) -> Array:
    """dx = dy broadcast over the summed axes, equation (SUM2)."""
    check_upstream("sum_backward", dy, cache.y_shape, cache.dtype)
    return _spread(dy, cache)  # (SUM2)


def mean_forward(x: Array, dim: Any = None, keepdim: bool = False) -> tuple[Array, ReduceCache]:
    """y = the mean of x over ``dim`` (all axes when None), equation (MEAN1)."""
    require_array("mean", "x", x)
    axes = _axes("mean", x, dim)
    y = get_xp(x).asarray(x.mean(axis=axes, keepdims=bool(keepdim)), dtype=x.dtype)  # (MEAN1)
    return y, ReduceCache(axes, tuple(x.shape), tuple(y.shape), x.dtype)


def mean_backward(dy: Array, cache: ReduceCache) -> Array:
    """dx = dy broadcast over the averaged axes and divided by m, equation (MEAN2)."""
    check_upstream("mean_backward", dy, cache.y_shape, cache.dtype)
    m = math.prod(cache.x_shape[a] for a in cache.axes)
    dx = _spread(dy, cache)
    dx /= max(m, 1)  # (MEAN2)
    return dx
