"""Softmax and log-softmax along one axis, with their own gradients.

Notation  x, y, dy, dx (any shape);  sums Σ run along the axis ``dim``; p = softmax(x)
Forward
  z = x − max x          -- unchanged result, and exp(z) ≤ 1 never overflows, as (CE1)
  softmax:      y = exp(z) / Σ exp(z)                                                 (SM1)
  log_softmax:  y = z − log Σ exp(z)                                                  (SM3)
Backward  (∂p_j/∂x_k = p_j([j = k] − p_k) along the axis)
  softmax:      dx = y ⊙ (dy − Σ dy ⊙ y)                                              (SM2)
  log_softmax:  dx = dy − exp(y) ⊙ Σ dy                                               (SM4)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array


def _check(op: str, x: Array, dim: Any) -> int:
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    ndim = max(x.ndim, 1)
    if not isinstance(dim, int) or isinstance(dim, bool) or not -ndim <= dim < ndim:
        raise ParameterError(
            f"{op}: dim out of range; expected an int in [{-ndim}, {ndim - 1}], got {dim!r} "
            f"(x.shape={tuple(x.shape)})"
        )
    return int(dim % ndim)


@dataclass(frozen=True, slots=True)
class SoftmaxCache:
    """What softmax_backward and log_softmax_backward need.

    Fields
    ------
    y : Array (the shape of x)
        The forward output (softmax or log-softmax): x.size elements.
    dim : int
        The axis (non-negative).
    """

    y: Array
    dim: int


def softmax_forward(x: Array, dim: int) -> tuple[Array, SoftmaxCache]:
    """y = softmax(x) along ``dim``, equation (SM1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = softmax_forward(np.array([[0.0, 0.0], [1000.0, 0.0]]), dim=1)
    >>> y
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    axis = _check("softmax", x, dim)
    xp = get_xp(x)
    if x.size == 0:  # nothing to normalise (and max over an empty axis is undefined)
        return x.copy(), SoftmaxCache(x.copy(), axis)
    e = xp.exp(x - x.max(axis=axis, keepdims=True)) if x.ndim else xp.ones_like(x)
    y = e / e.sum(axis=axis, keepdims=True) if x.ndim else e  # (SM1)
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy: Array, cache: SoftmaxCache) -> Array:
    """dx = y ⊙ (dy − Σ dy ⊙ y), equation (SM2)."""
    y = cache.y
    check_upstream("softmax_backward", dy, tuple(y.shape), y.dtype)
    if y.ndim == 0:
        return get_xp(dy).zeros_like(dy)
    return y * (dy - (dy * y).sum(axis=cache.dim, keepdims=True))  # (SM2)


def log_softmax_forward(x: Array, dim: int) -> tuple[Array, SoftmaxCache]:
    """y = log softmax(x) along ``dim``, equation (SM3).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = log_softmax_forward(np.array([[0.0, 0.0]]), dim=1)
    >>> bool(np.allclose(y, np.log(0.5)))
    True
    """
    axis = _check("log_softmax", x, dim)
    xp = get_xp(x)
    if x.ndim == 0:
        return xp.zeros_like(x), SoftmaxCache(xp.zeros_like(x), 0)
    if x.size == 0:  # nothing to normalise (and max over an empty axis is undefined)
        return x.copy(), SoftmaxCache(x.copy(), axis)
    z = x - x.max(axis=axis, keepdims=True)
    y = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))  # (SM3)
    return y, SoftmaxCache(y, axis)


def log_softmax_backward(dy: Array, cache: SoftmaxCache) -> Array:
    """dx = dy − softmax ⊙ Σ dy, equation (SM4)."""
    y = cache.y
    check_upstream("log_softmax_backward", dy, tuple(y.shape), y.dtype)
    xp = get_xp(dy)
    if y.ndim == 0:
        return xp.zeros_like(dy)
    return dy - xp.exp(y) * dy.sum(axis=cache.dim, keepdims=True)  # (SM4)


def log_softmax(x: Array, dim: int) -> Array:
    """Log-softmax forward alone; see :func:`log_softmax_forward`."""
    y, _ = log_softmax_forward(x, dim)
    return y
