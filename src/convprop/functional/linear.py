"""Fully connected (linear) layer in PyTorch's layout: a 1×1 convolution on a 1×1 image.

Notation  x (N,C)  w (K,C)  b (K,)  y (N,K)    (C in-features, K out-features)
  x may be (*, C), as in PyTorch: n then runs over every position of the leading axes
  (N = their product; x viewed as (N, C), y returned as (*, K)); a 1-D x (C,) gives y (K,).
Forward
  y[n,k] = b[k] + sum_c x[n,c] * w[k,c],   i.e.  y = x @ w^T + b                   (L1)
Backward  (dy has the shape of y; the matrix-product derivative of (L1))
  dw[k,c] = sum_n dy[n,k] * x[n,c],        i.e.  dw = dy^T @ x                     (L2)
  dx[n,c] = sum_k dy[n,k] * w[k,c],        i.e.  dx = dy @ w                       (L3)
  db[k]   = sum_n dy[n,k]                                                          (L4)
"""

from __future__ import annotations

from dataclasses import dataclass

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import check_upstream, require_array

OP = "linear"


@dataclass(frozen=True, slots=True)
class LinearCache:
    """What linear_backward needs.

    Fields
    ------
    x : Array (N, C)
        The forward input viewed as (N, C) (a reference, not a copy: N·C elements already
        alive).
    lead : tuple of int
        The leading axes of the input, ``x_input.shape[:-1]`` (``(N,)`` for a 2-D input).
    w : Array (K, C)
        The weights (a reference).
    has_bias : bool
        Whether a bias was given (db is None otherwise).
    """

    x: Array
    w: Array
    has_bias: bool
    lead: tuple[int, ...]


def _shapes(x: Array, w: Array, b: Array | None) -> str:
    """The shapes, for a message (written only when a check refuses)."""
    shapes = f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
    return shapes if b is None else f"{shapes}, b.shape={tuple(b.shape)}"


def _check_shapes(x: Array, w: Array, b: Array | None) -> None:
    if x.ndim < 1:
        raise ShapeError(
            f"{OP}: x must be (*, C); expected at least 1 dimension, got {x.ndim} "
            f"({_shapes(x, w, b)})"
        )
    if w.ndim != 2:
        raise ShapeError(
            f"{OP}: w must be 2-D (K, C); expected 2 dimensions, got {w.ndim} ({_shapes(x, w, b)})"
        )
    if min(*x.shape, *w.shape) < 1:
        raise ShapeError(
            f"{OP}: every dimension must be >= 1; expected non-empty arrays ({_shapes(x, w, b)})"
        )
    if x.shape[-1] != w.shape[1]:
        raise ShapeError(
            f"{OP}: x has C={x.shape[-1]} features but w expects C={w.shape[1]}; expected "
            f"x.shape[-1] == w.shape[1], got {x.shape[-1]} != {w.shape[1]} "
            f"({_shapes(x, w, b)})"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ShapeError(
            f"{OP}: b must have shape (K,) = ({w.shape[0]},); expected ({w.shape[0]},), got "
            f"{tuple(b.shape)} ({_shapes(x, w, b)})"
        )


def linear_forward(x: Array, w: Array, b: Array | None = None) -> tuple[Array, LinearCache]:
    """Linear forward pass, equation (L1).

    Parameters
    ----------
    x : Array (N, C)
        Input, float32 or float64.
    w : Array (K, C)
        Weights in PyTorch's (out_features, in_features) layout; same dtype as x.
    b : Array (K,) or None
        Bias.

    Returns
    -------
    y : Array (N, K)
        Same dtype as x.
    cache : LinearCache
        For linear_backward.

    Raises
    ------
    ShapeError
        x or w not 2-D, an empty dimension, C mismatch, or b not of shape (K,).
    DTypeError, BackendError
        Non-float or mixed dtypes, or mixed NumPy/CuPy arrays.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0]])
    >>> w = np.array([[1.0, 0.0], [1.0, -1.0], [0.5, 0.5]])
    >>> y, cache = linear_forward(x, w, np.array([0.0, 1.0, 0.0]))
    >>> y
    array([[1. , 0. , 1.5]])
    >>> dx, dw, db = linear_backward(np.array([[1.0, 2.0, -1.0]]), cache)
    >>> dx, db
    (array([[ 2.5, -2.5]]), array([ 1.,  2., -1.]))
    """
    require_array(OP, "x", x)
    require_array(OP, "w", w)
    if b is not None:
        require_array(OP, "b", b)
    xp = get_xp(x, w, b)
    check_float_dtype(OP, x=x, w=w, b=b)
    _check_shapes(x, w, b)
    lead = tuple(x.shape[:-1])
    x = x.reshape(-1, x.shape[-1])  # (*, C) -> (N, C), N the product of the leading axes
    y = x @ w.T  # (L1) (N, C) @ (C, K) -> (N, K)
    if b is not None:
        y = y + b  # (L1) the bias, broadcast over n
    y = xp.ascontiguousarray(y, dtype=x.dtype).reshape(*lead, w.shape[0])  # -> (*, K)
    return y, LinearCache(x=x, w=w, has_bias=b is not None, lead=lead)


def linear_backward(
    dy: Array, cache: LinearCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Linear backward pass: equations (L3), (L2), (L4).

    Parameters
    ----------
    dy : Array (*, K)
        Gradient of the loss with respect to y (the forward output's shape).
    cache : LinearCache
        From linear_forward.
    need_dx : bool
        False skips the input gradient.

    Returns
    -------
    dx : Array (*, C) or None
        (L3), in the forward input's shape; None when ``need_dx`` is False.
    dw : Array (K, C)
        (L2).
    db : Array (K,) or None
        (L4); None when the forward had no bias.
    """
    K, C = cache.w.shape
    check_upstream("linear_backward", dy, (*cache.lead, K), cache.x.dtype)
    xp = get_xp(dy, cache.x, cache.w)
    dy = dy.reshape(-1, K)  # (*, K) -> (N, K)
    dw = dy.T @ cache.x  # (L2) (K, N) @ (N, C) -> (K, C)
    dx = (dy @ cache.w).reshape(*cache.lead, C) if need_dx else None  # (L3) -> (*, C)
    db = dy.sum(axis=0) if cache.has_bias else None  # (L4) -> (K,)
    return (
        None if dx is None else xp.ascontiguousarray(dx),
        xp.ascontiguousarray(dw),
        None if db is None else xp.ascontiguousarray(db),
    )


def linear(x: Array, w: Array, b: Array | None = None) -> Array:
    """Linear forward alone; see :func:`linear_forward` for the arguments."""
    y, _ = linear_forward(x, w, b)
    return y
