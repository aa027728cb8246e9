"""Smooth activations: GELU (exact and tanh form), SiLU, ELU.

Notation  x (any shape)  y = f(x) (the shape of x)  dy, dx (the shape of x)
Backward, for each of them the δ rule (A1): dx = dy ⊙ f′(x)
GELU, exact: x weighted by the standard normal distribution function Φ
  Φ(x) = ½·(1 + erf(x/√2))                                                            (GE1)
  y = x·Φ(x)                                                                          (GE2)
  f′(x) = Φ(x) + x·φ(x),  φ(x) = e^(−x²/2)/√(2π)  -- product rule, Φ′ = φ             (GE3)
GELU, approximate='tanh' (Hendrycks and Gimpel's tanh form of Φ)
  u = √(2/π)·(x + κ·x³),  κ = 0.044715;  t = tanh(u)                                  (GE4)
  y = ½·x·(1 + t)                                                                     (GE5)
  f′(x) = ½·(1 + t) + ½·x·(1 − t²)·√(2/π)·(1 + 3κ·x²)   -- product and chain rules   (GE6)
SiLU (swish with β = 1)
  y = x·σ(x)                                                                          (SI1)
  f′(x) = σ(x)·(1 + x·(1 − σ(x)))     -- product rule with σ′ = σ(1 − σ), (A7)        (SI2)
ELU with scale α (``alpha``)
  y = x if x > 0 else α·(e^x − 1)     -- e^x − 1 by expm1, exact near 0               (EL1)
  f′(x) = 1 if x > 0 else α·e^x       -- α at exactly x = 0, as PyTorch                (EL2)

Each cache holds a reference to the forward input x (alive anyway); GELU's exact form and
SiLU also keep Φ(x) and σ(x) (x.size elements each), which spares the backward a second
erf or exponential, the costliest functions of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, erf, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.activation import sigmoid

KAPPA = 0.044715
"""κ of the tanh form of GELU (GE4)."""

APPROXIMATIONS = ("none", "tanh")


def _check_input(op: str, x: Any) -> None:
    require_array(op, "x", x)
    check_float_dtype(op, x=x)


@dataclass(frozen=True, slots=True)
class GeluCache:
    """What gelu_backward needs.

    Fields
    ------
    x : Array (any shape)
        The forward input (a reference): φ and t are recomputed from it (GE3, GE6).
    approximate : str
        "none" (GE1–GE3) or "tanh" (GE4–GE6).
    cdf : Array (the shape of x) or None
        Φ(x) (GE1) for the exact form: x.size elements; None for the tanh form.
    """

    x: Array
    approximate: str
    cdf: Array | None = None


def gelu_forward(x: Array, *, approximate: str = "none") -> tuple[Array, GeluCache]:
    """GELU forward pass, equations (GE1), (GE2), or (GE4), (GE5) with ``approximate="tanh"``.

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.
    approximate : str
        "none" (the exact form with erf, PyTorch's default) or "tanh".

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x.
    cache : GeluCache
        For gelu_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.
    ParameterError
        When approximate is neither "none" nor "tanh".

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = gelu_forward(np.array([-1.0, 0.0, 1.0]))
    >>> y.round(6)
    array([-0.158655,  0.      ,  0.841345])
    >>> gelu_backward(np.array([1.0, 1.0, 1.0]), cache).round(6)
    array([-0.083315,  0.5     ,  1.083315])
    """
    _check_input("gelu", x)
    if approximate not in APPROXIMATIONS:
        raise ParameterError(
            f"gelu: unknown approximation; expected one of {list(APPROXIMATIONS)}, got "
            f"{approximate!r}"
        )
    xp = get_xp(x)
    if approximate == "tanh":
        t = xp.tanh(math.sqrt(2 / math.pi) * (x + KAPPA * (x * x * x)))  # (GE4)
        y = 0.5 * x * (1 + t)  # (GE5)
        return y.astype(x.dtype, copy=False), GeluCache(x=x, approximate=approximate)
    cdf = 0.5 * (1 + erf(xp, x * math.sqrt(0.5)))  # (GE1)
    y = x * cdf  # (GE2)
    return y.astype(x.dtype, copy=False), GeluCache(x=x, approximate=approximate, cdf=cdf)


def gelu_backward(dy: Array, cache: GeluCache) -> Array:
    """GELU backward pass, equations (A1) with (GE3), or (GE6) for the tanh form.

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : GeluCache
        From gelu_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy ⊙ f′(x).
    """
    x = cache.x
    check_upstream("gelu_backward", dy, x.shape, x.dtype)
    xp = get_xp(dy, x)
    if cache.approximate == "tanh":
        x_sq = x * x
        t = xp.tanh(math.sqrt(2 / math.pi) * (x + KAPPA * (x_sq * x)))  # (GE4)
        inner_derivative = math.sqrt(2 / math.pi) * (1 + 3 * KAPPA * x_sq)
        derivative = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner_derivative  # (GE6)
    else:
        pdf = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))  # φ(x)
        derivative = cache.cdf + x * pdf  # (GE3), Φ(x) of the forward (GE1)
    return (dy * derivative).astype(x.dtype, copy=False)  # (A1)


def gelu(x: Array, *, approximate: str = "none") -> Array:
    """GELU forward alone; see :func:`gelu_forward`."""
    y, _ = gelu_forward(x, approximate=approximate)
    return y


@dataclass(frozen=True, slots=True)
class SiluCache:
    """What silu_backward needs.

    Fields
    ------
    x : Array (any shape)
        The forward input (a reference).
    s : Array (the shape of x)
        σ(x) (A6), for (SI2): x.size elements.
    """

    x: Array
    s: Array


def silu_forward(x: Array) -> tuple[Array, SiluCache]:
    """SiLU forward pass, equation (SI1), with the overflow-free sigmoid of (A6).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.

    Returns
    -------
    y : Array (the shape of x)
        x·σ(x), same dtype.
    cache : SiluCache
        For silu_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = silu_forward(np.array([-1.0, 0.0, 2.0]))
    >>> y.round(6)
    array([-0.268941,  0.      ,  1.761594])
    >>> silu_backward(np.array([1.0, 1.0, 1.0]), cache).round(6)
    array([0.072329, 0.5     , 1.090784])
    """
    _check_input("silu", x)
    s = sigmoid(x)  # (A6)
    return x * s, SiluCache(x=x, s=s)  # (SI1)


def silu_backward(dy: Array, cache: SiluCache) -> Array:
    """SiLU backward pass, equations (A1) and (SI2).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : SiluCache
        From silu_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy·σ(x)·(1 + x·(1 − σ(x))).
    """
    x, s = cache.x, cache.s
    check_upstream("silu_backward", dy, x.shape, x.dtype)
    derivative = s * (1 + x * (1 - s))  # (SI2)
    return dy * derivative  # (A1)


def silu(x: Array) -> Array:
    """SiLU forward alone; see :func:`silu_forward`."""
    y, _ = silu_forward(x)
    return y


@dataclass(frozen=True, slots=True)
class EluCache:
    """What elu_backward needs.

    Fields
    ------
    x : Array (any shape)
        The forward input (a reference): its sign and e^x give f′ (EL2).
    alpha : float
        α.
    """

    x: Array
    alpha: float


def _check_alpha(alpha: Any) -> float:
    is_real = isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
    if not (is_real and math.isfinite(alpha)):
        raise ParameterError(
            f"elu: alpha must be a finite real number; expected e.g. 1.0, got {alpha!r}"
        )
    return float(alpha)


def elu_forward(x: Array, *, alpha: float = 1.0) -> tuple[Array, EluCache]:
    """ELU forward pass, equation (EL1).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.
    alpha : float
        α, the value that y tends to as x → −∞ is −α (PyTorch's default 1.0).

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x.
    cache : EluCache
        For elu_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.
    ParameterError
        When alpha is not a finite real number.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = elu_forward(np.array([-1000.0, 0.0, 2.0]), alpha=0.5)
    >>> y
    array([-0.5,  0. ,  2. ])
    >>> elu_backward(np.array([1.0, 1.0, 1.0]), cache)
    array([0. , 0.5, 1. ])
    """
    _check_input("elu", x)
    a = _check_alpha(alpha)
    xp = get_xp(x)
    negative = xp.expm1(xp.minimum(x, 0)) * a  # min(x, 0): e^x never overflows
    y = xp.where(x > 0, x, negative)  # (EL1)
    return y, EluCache(x=x, alpha=a)


def elu_backward(dy: Array, cache: EluCache) -> Array:
    """ELU backward pass, equations (A1) and (EL2).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : EluCache
        From elu_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy where x > 0, dy·α·e^x elsewhere.
    """
    x = cache.x
    check_upstream("elu_backward", dy, x.shape, x.dtype)
    xp = get_xp(dy, x)
    derivative = xp.where(x > 0, 1, xp.exp(xp.minimum(x, 0)) * cache.alpha)  # (EL2)
    return dy * derivative.astype(x.dtype, copy=False)  # (A1)


def elu(x: Array, *, alpha: float = 1.0) -> Array:
    """ELU forward alone; see :func:`elu_forward`."""
    y, _ = elu_forward(x, alpha=alpha)
    return y
