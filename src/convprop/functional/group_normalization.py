"""Group normalisation: the channels of each sample standardised in G groups.

Notation  x (N, C, *) with L = the product of the trailing sizes (1 when there are none)
          G groups of C/G consecutive channels;  γ gamma, β beta (C,) or None
  x viewed as x2 (N·G, (C/G)·L): one row per (sample n, group g)                      (GN1)
Forward  (LN1)–(LN3) of functional/_standardize.py on each row, then per channel
  y[n, c, …] = γ[c]·x̂[n, c, …] + β[c]                                                (GN2)
Backward  (Σ runs over n and the trailing positions of channel c)
  dβ[c] = Σ dy[n, c, …];   dγ[c] = Σ dy[n, c, …]·x̂[n, c, …]                          (GN3)
  dx̂ = dy·γ[c]  (dy where γ is None), then dx by (LN8) on each row of (GN1)           (GN4)
G = 1 standardises each sample over all its channels (layer normalisation over (C, *)
with per-channel γ, β); G = C standardises each channel alone (instance normalisation).
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
class GroupNormCache:
    """What group_norm_backward needs.

    Fields
    ------
    x : Array (N, C, *)
        The forward input (a reference); x̂ is recomputed from it, which saves a copy.
    mean, invstd : Array (N·G, 1)
        μ (LN1) and 1/√(σ² + eps) (LN3) of each (sample, group): 2·N·G elements.
    gamma : Array (C,) or None
        γ (a reference).
    has_beta : bool
        Whether β was given (its gradient is then returned, else None).
    num_groups : int
        G.
    """

    x: Array
    mean: Array
    invstd: Array
    gamma: Array | None
    has_beta: bool
    num_groups: int


def _check(x: Any, num_groups: Any, gamma: Any, beta: Any) -> None:
    op = "group_norm"
    require_array(op, "x", x)
    for name, array in (("weight", gamma), ("bias", beta)):
        if array is not None:
            require_array(op, name, array)
    check_float_dtype(op, x=x, weight=gamma, bias=beta)
    if x.ndim < 2:
        raise ShapeError(
            f"{op}: x must be (N, C, *); expected at least 2 dimensions, got {x.ndim} "
            f"(x.shape={tuple(x.shape)})"
        )
    C = x.shape[1]
    if not (isinstance(num_groups, int) and not isinstance(num_groups, bool) and num_groups > 0):
        raise ParameterError(
            f"{op}: num_groups must be a positive int; expected >= 1, got {num_groups!r}"
        )
    if C % num_groups:
        raise ShapeError(
            f"{op}: the channels must split into equal groups; expected C divisible by "
            f"num_groups={num_groups}, got C={C} (x.shape={tuple(x.shape)})"
        )
    for name, array in (("weight", gamma), ("bias", beta)):
        if array is not None and tuple(array.shape) != (C,):
            raise ShapeError(
                f"{op}: {name} must hold one value per channel; expected shape (C,)=({C},), "
                f"got {tuple(array.shape)} (x.shape={tuple(x.shape)})"
            )


def _per_channel(a: Array, ndim: int) -> Array:
    """(C,) viewed as (1, C, 1, …) to broadcast against x (N, C, *)."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def group_norm_forward(
    x: Array,
    num_groups: int,
    gamma: Array | None = None,
    beta: Array | None = None,
    *,
    eps: float = 1e-5,
) -> tuple[Array, GroupNormCache]:
    """Group normalisation forward pass, equations (GN1), (LN1)–(LN3) and (GN2).

    Parameters
    ----------
    x : Array (N, C, *)
        float32 or float64; any number of trailing axes (none included).
    num_groups : int
        G, which must divide C.
    gamma, beta : Array (C,) or None
        Per-channel scale and shift (None: 1 and 0).
    eps : float
        Added to the variance; a finite number > 0.

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x.
    cache : GroupNormCache
        For group_norm_backward.

    Raises
    ------
    ShapeError
        When x has fewer than 2 axes, C is not a multiple of G, or gamma/beta are not (C,).
    DTypeError, ParameterError, BackendError
        Bad dtypes, num_groups or eps, or mixed devices.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 3.0, 10.0, 20.0]]).reshape(1, 4, 1)
    >>> y, cache = group_norm_forward(x, 2, eps=1e-12)
    >>> y.ravel()
    array([-1.,  1., -1.,  1.])
    """
    _check(x, num_groups, gamma, beta)
    epsilon = check_eps("group_norm", eps)
    get_xp(x, gamma, beta)
    N = x.shape[0]
    x2 = x.reshape(N * num_groups, x.size // (N * num_groups) if x.size else 0)  # (GN1)
    mean, invstd = row_statistics(x2, epsilon)  # (LN1)–(LN3)
    y = standardized(x2, mean, invstd).reshape(x.shape)  # (LN3)
    if gamma is not None:
        y = y * _per_channel(gamma, x.ndim)  # (GN2)
    if beta is not None:
        y = y + _per_channel(beta, x.ndim)  # (GN2)
    cache = GroupNormCache(
        x=x, mean=mean, invstd=invstd, gamma=gamma, has_beta=beta is not None,
        num_groups=num_groups,
    )  # fmt: skip
    return y, cache


def group_norm_backward(
    dy: Array, cache: GroupNormCache
) -> tuple[Array, Array | None, Array | None]:
    """Group normalisation backward pass, equations (GN3), (GN4) and (LN8).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : GroupNormCache
        From group_norm_forward.

    Returns
    -------
    dx : Array (the shape of x)
        (LN8) on each (sample, group).
    dgamma : Array (C,) or None
        (GN3); None when gamma was None.
    dbeta : Array (C,) or None
        (GN3); None when beta was None.
    """
    x = cache.x
    check_upstream("group_norm_backward", dy, x.shape, x.dtype)
    rows = cache.mean.shape[0]
    x2_shape = (rows, x.size // rows if x.size else 0)
    xhat = standardized(x.reshape(x2_shape), cache.mean, cache.invstd).reshape(x.shape)
    sum_axes = (0, *range(2, x.ndim))  # n and the trailing positions of each channel
    dbeta = dy.sum(axis=sum_axes) if cache.has_beta else None  # (GN3) -> (C,)
    dgamma = None
    dxhat = dy  # (GN4) with γ = 1
    if cache.gamma is not None:
        dgamma = (dy * xhat).sum(axis=sum_axes)  # (GN3) -> (C,)
        dxhat = dy * _per_channel(cache.gamma, x.ndim)  # (GN4)
    dx2 = standardized_backward(
        dxhat.reshape(x2_shape), xhat.reshape(x2_shape), cache.invstd
    )  # (LN8) -> (N·G, (C/G)·L)
    return dx2.reshape(x.shape), dgamma, dbeta


def group_norm(
    x: Array,
    num_groups: int,
    gamma: Array | None = None,
    beta: Array | None = None,
    *,
    eps: float = 1e-5,
) -> Array:
    """Group normalisation forward alone; see :func:`group_norm_forward`."""
    y, _ = group_norm_forward(x, num_groups, gamma, beta, eps=eps)
    return y
