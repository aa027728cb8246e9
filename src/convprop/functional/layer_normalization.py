"""Layer normalisation: each sample standardised over its last axes, then scaled and shifted.

Notation  x (*, D1, …, Dk)  normalized_shape = (D1, …, Dk)  M = D1·…·Dk
          γ gamma, β beta (D1, …, Dk) or None;  x viewed as x2 (R, M), one row per sample
Forward  (LN1)–(LN3) of functional/_standardize.py on each row, then
  y = γ ⊙ x̂ + β                   -- element-wise over the normalised axes           (LN4)
Backward  (Σ_r runs over the R rows)
  dβ = Σ_r dy                                                                         (LN5)
  dγ = Σ_r dy ⊙ x̂                                                                     (LN6)
  dx̂ = dy ⊙ γ   (dy where γ is None), then dx by (LN8) on each row                    (LN7)
Unlike batch normalisation, the statistics belong to one sample, so training and
inference compute the same thing and there are no running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional._standardize import (
    check_eps,
    row_statistics,
    standardized,
    standardized_backward,
)


@dataclass(frozen=True, slots=True)
class LayerNormCache:
    """What layer_norm_backward needs.

    Fields
    ------
    x : Array (*, D1, …, Dk)
        The forward input (a reference); x̂ is recomputed from it, which saves a copy.
    mean, invstd : Array (R, 1)
        μ (LN1) and 1/√(σ² + eps) (LN3) of each row: 2·R elements.
    gamma : Array (D1, …, Dk) or None
        γ (a reference).
    has_beta : bool
        Whether β was given (its gradient is then returned, else None).
    normalized_shape : tuple[int, ...]
        (D1, …, Dk).
    """

    x: Array
    mean: Array
    invstd: Array
    gamma: Array | None
    has_beta: bool
    normalized_shape: tuple[int, ...]


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def normalized_shape_of(op: str, normalized_shape: Any) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of ints (an int is one axis), as PyTorch accepts it."""
    if isinstance(normalized_shape, int) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else None
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ParameterError(
            f"{op}: normalized_shape names the last axes to normalise; expected an int or a "
            f"non-empty tuple of ints, got {normalized_shape!r}"
        )
    return tuple(int(d) for d in shape)


def _check(op: str, x: Any, shape: tuple[int, ...], gamma: Any, beta: Any) -> None:
    require_array(op, "x", x)
    for name, array in (("weight", gamma), ("bias", beta)):
        if array is not None:
            require_array(op, name, array)
    check_float_dtype(op, x=x, weight=gamma, bias=beta)
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != shape:
        raise ShapeError(
            f"{op}: the last axes of x must be normalized_shape; expected x.shape ending in "
            f"{shape}, got x.shape={tuple(x.shape)}"
        )
    for name, array in (("weight", gamma), ("bias", beta)):
        if array is not None and tuple(array.shape) != shape:
            raise ShapeError(
                f"{op}: {name} must have the normalised shape; expected {shape}, got "
                f"{tuple(array.shape)} (x.shape={tuple(x.shape)})"
            )


def layer_norm_forward(
    x: Array,
    normalized_shape: Any,
    gamma: Array | None = None,
    beta: Array | None = None,
    *,
    eps: float = 1e-5,
) -> tuple[Array, LayerNormCache]:
    """Layer normalisation forward pass, equations (LN1)–(LN4).

    Parameters
    ----------
    x : Array (*, D1, …, Dk)
        float32 or float64; any leading axes (none for a single sample).
    normalized_shape : int or tuple of ints
        (D1, …, Dk), the trailing axes each sample is standardised over.
    gamma, beta : Array (D1, …, Dk) or None
        Element-wise scale and shift (None: 1 and 0).
    eps : float
        Added to the variance; a finite number > 0.

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x.
    cache : LayerNormCache
        For layer_norm_backward.

    Raises
    ------
    ShapeError
        When x does not end in normalized_shape, or gamma/beta have another shape.
    DTypeError, ParameterError, BackendError
        Bad dtypes, normalized_shape or eps, or mixed devices.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = layer_norm_forward(np.array([[1.0, 3.0], [0.0, 4.0]]), 2, eps=1e-12)
    >>> y
    array([[-1.,  1.],
           [-1.,  1.]])
    """
    op = "layer_norm"
    shape = normalized_shape_of(op, normalized_shape)
    _check(op, x, shape, gamma, beta)
    epsilon = check_eps(op, eps)
    get_xp(x, gamma, beta)
    M = _size(shape)
    x2 = x.reshape(x.size // M if M else 0, M)  # (R, M)
    mean, invstd = row_statistics(x2, epsilon)  # (LN1)–(LN3)
    y = standardized(x2, mean, invstd).reshape(x.shape)  # (LN3)
    if gamma is not None:
        y = y * gamma  # (LN4)
    if beta is not None:
        y = y + beta  # (LN4)
    cache = LayerNormCache(
        x=x, mean=mean, invstd=invstd, gamma=gamma, has_beta=beta is not None,
        normalized_shape=shape,
    )  # fmt: skip
    return y, cache


def layer_norm_backward(
    dy: Array, cache: LayerNormCache
) -> tuple[Array, Array | None, Array | None]:
    """Layer normalisation backward pass, equations (LN5)–(LN7) and (LN8).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : LayerNormCache
        From layer_norm_forward.

    Returns
    -------
    dx : Array (the shape of x)
        (LN8) on each row.
    dgamma : Array (D1, …, Dk) or None
        (LN6); None when gamma was None.
    dbeta : Array (D1, …, Dk) or None
        (LN5); None when beta was None.
    """
    x = cache.x
    check_upstream("layer_norm_backward", dy, x.shape, x.dtype)
    shape, gamma = cache.normalized_shape, cache.gamma
    dy2 = dy.reshape(cache.mean.shape[0], _size(shape))  # (R, M)
    xhat = standardized(x.reshape(dy2.shape), cache.mean, cache.invstd)  # (LN3), recomputed
    dbeta = dy2.sum(axis=0).reshape(shape) if cache.has_beta else None  # (LN5)
    dgamma = None
    dxhat = dy2  # (LN7) with γ = 1
    if gamma is not None:
        dgamma = (dy2 * xhat).sum(axis=0).reshape(shape)  # (LN6)
        dxhat = dy2 * gamma.reshape(1, -1)  # (LN7)
    dx = standardized_backward(dxhat, xhat, cache.invstd).reshape(x.shape)  # (LN8)
    return dx, dgamma, dbeta


def layer_norm(
    x: Array,
    normalized_shape: Any,
    gamma: Array | None = None,
    beta: Array | None = None,
    *,
    eps: float = 1e-5,
) -> Array:
    """Layer normalisation forward alone; see :func:`layer_norm_forward`."""
    y, _ = layer_norm_forward(x, normalized_shape, gamma, beta, eps=eps)
    return y
