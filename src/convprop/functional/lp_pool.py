"""Power-average (LP) pooling, PyTorch's lp_pool1d and lp_pool2d: pure pairs.

Notation  x (N, C, *size)  y (N, C, *out)  with D = 1 or 2 axes and no padding; norm p
          (finite, nonzero); K = Π kernel_a, the cells of a full window; |w_o| the cells of
          window o inside x (K, except where ceil_mode cuts the last window short)
Forward  (windows, output size and |w_o| as convprop.functional.pool_nd: PN1-PN3, APN1)
  S[n, c, o] = Σ_{cells i of window o} x[n, c, i]^p                                     (LPP1)
  Z = (K / |w_o|) · S,   y = Z^(1/p)         (for a full window y = (Σ x^p)^(1/p))       (LPP2)
Backward
  dx[n, c, i] = Σ_{windows o holding i} dy[n, c, o] · (K / |w_o|) · x[n, c, i]^(p−1) / y[o]^(p−1)
                                                                                        (LPP3)
  where Z[o] = 0, window o passes no gradient: its dy counts as 0                        (LPP4)
p = 2 is L2-norm pooling: y = ‖x_window‖ and dx = dy · (K/|w|) · x / y. At Z = 0 the norm
has no derivative; 0 is its subgradient of least norm, and PyTorch's documented rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.pool_nd import (
    AvgPoolNdCache,
    avg_pool_nd_backward,
    avg_pool_nd_forward,
    ntuple,
)


def real_power(xp: ModuleType, base: Array, exponent: float) -> Array:
    """``base ** exponent`` with NumPy's real results, without floating-point warnings.

    NaN for a negative base and a non-integer exponent; ±inf for zero to a negative power;
    an odd integer exponent keeps the base's sign.

    Examples
    --------
    >>> import numpy as np
    >>> real_power(np, np.array([-8.0, 0.0, 8.0]), 1 / 3)
    array([nan,  0.,  2.])
    >>> real_power(np, np.array([-2.0, 0.0, 2.0]), 3.0)
    array([-8.,  0.,  8.])
    """
    magnitude = xp.abs(base)
    if exponent < 0:
        zero = magnitude == 0
        power = xp.where(zero, xp.inf, xp.power(xp.where(zero, 1, magnitude), exponent))
    else:
        power = xp.power(magnitude, exponent)
    if not float(exponent).is_integer():
        return xp.where(base < 0, xp.nan, power)
    if int(exponent) % 2:
        return xp.where(xp.signbit(base), -power, power)
    return power


def check_norm(op: str, norm_type: Any) -> float:
    """The norm p as a float: a finite, nonzero number."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)):
        raise ParameterError(
            f"{op}: norm_type must be a number; expected e.g. 2, got {norm_type!r}"
        )
    if not math.isfinite(norm_type) or norm_type == 0:
        raise ParameterError(
            f"{op}: norm_type must be finite and nonzero; expected e.g. 1, 2 or 3, got "
            f"{norm_type!r} (for p = inf, max-pool the absolute values)"
        )
    return float(norm_type)


@dataclass(frozen=True, slots=True)
class LpPoolCache:
    """What lp_pool1d_backward / lp_pool2d_backward need.

    Fields
    ------
    x : Array (N, C, *size)
        The input, for x^(p−1) in (LPP3): N·C·Π size elements (a reference, not a copy).
    y, Z : Array (N, C, *out)
        The output and the scaled sum of (LPP2): 2·N·C·Π out elements.
    sums : AvgPoolNdCache
        The window means S / |w| of x^p (APN1, APN2): Π out elements of divisor.
    p : float
        The norm.
    K : int
        Cells of a full window.
    op : str
        The public op's name, for the messages of backward.
    """

    x: Array
    y: Array
    Z: Array
    sums: AvgPoolNdCache
    p: float
    K: int
    op: str


def lp_pool_nd_forward(
    op: str, x: Array, dims: int, norm_type: Any, kernel_size: Any, stride: Any, ceil_mode: bool
) -> tuple[Array, LpPoolCache]:
    """LP pooling over ``dims`` axes, equations (LPP1), (LPP2); ``op`` names the caller."""
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    p = check_norm(op, norm_type)
    kernel = ntuple(op, "kernel_size", kernel_size, dims, minimum=1)
    xp = get_xp(x)
    powers = real_power(xp, x, p)  # (LPP1) x^p; avg_pool_nd_forward checks the shapes
    # The window means S/|w| of x^p (LPP1): average pooling, no padding, so |w| counts the
    # cells inside x and the ceil_mode overhang is left out (APN1).
    mean, sums = avg_pool_nd_forward(op, powers, dims, kernel, stride, 0, ceil_mode, True, None)
    K = math.prod(kernel)
    Z = mean * K  # (LPP2) = (K / |w|) · S
    y = real_power(xp, Z, 1.0 / p)  # (LPP2)
    return y, LpPoolCache(x=x, y=y, Z=Z, sums=sums, p=p, K=K, op=op)


def lp_pool_nd_backward(dy: Array, cache: LpPoolCache) -> Array:
    """LP pooling backward, equations (LPP3), (LPP4): dy (N, C, *out) -> dx (N, C, *size)."""
    check_upstream(f"{cache.op}_backward", dy, cache.y.shape, cache.y.dtype)
    xp = get_xp(dy, cache.y)
    zero = cache.Z == 0
    # dy/dZ = Z^(1/p − 1) / p = y / (p·Z); a window with Z = 0 passes nothing (LPP4).
    dZ = xp.where(zero, 0, dy * cache.y / (cache.p * xp.where(zero, 1, cache.Z)))  # (LPP4)
    dpowers = avg_pool_nd_backward(dZ * cache.K, cache.sums)  # (LPP3) (K/|w|)·… to each cell
    return dpowers * (cache.p * real_power(xp, cache.x, cache.p - 1.0))  # (LPP3) d(x^p)/dx


def lp_pool1d_forward(
    x: Array, norm_type: float, kernel_size: Any, *, stride: Any = None, ceil_mode: bool = False
) -> tuple[Array, LpPoolCache]:
    """1-D power-average pooling forward pass, equations (LPP1), (LPP2).

    Parameters
    ----------
    x : Array (N, C, L)
        Input, float32 or float64 (N may be 0).
    norm_type : float
        p, finite and nonzero (p = 1: window sums; p = 2: Euclidean norms).
    kernel_size, stride : int or (int,)
        Window and step (None: the window); no padding.
    ceil_mode : bool
        Output length by (PN2); the short last window is scaled by K/|w| (LPP2).

    Returns
    -------
    y : Array (N, C, L_out)
    cache : LpPoolCache

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[3.0, 4.0, 1.0, -1.0, 5.0]]])
    >>> lp_pool1d_forward(x, 2, 2)[0]   # ‖(3, 4)‖, ‖(1, −1)‖
    array([[[5.        , 1.41421356]]])
    >>> lp_pool1d_forward(x, 2, 2, ceil_mode=True)[0][0, 0, 2]   # (2·5²)^(1/2): K/|w| = 2
    np.float64(7.0710678118654755)
    """
    return lp_pool_nd_forward("lp_pool1d", x, 1, norm_type, kernel_size, stride, ceil_mode)


def lp_pool1d_backward(dy: Array, cache: LpPoolCache) -> Array:
    """1-D power-average pooling backward pass, equations (LPP3), (LPP4)."""
    return lp_pool_nd_backward(dy, cache)


def lp_pool1d(x: Array, norm_type: float, kernel_size: Any, **hyper: Any) -> Array:
    """1-D power-average pooling forward alone; see :func:`lp_pool1d_forward`."""
    return lp_pool1d_forward(x, norm_type, kernel_size, **hyper)[0]


def lp_pool2d_forward(
    x: Array, norm_type: float, kernel_size: Any, *, stride: Any = None, ceil_mode: bool = False
) -> tuple[Array, LpPoolCache]:
    """2-D power-average pooling forward pass, equations (LPP1), (LPP2).

    Parameters
    ----------
    x : Array (N, C, H, W)
        Input, float32 or float64 (N may be 0).
    norm_type : float
        p, finite and nonzero.
    kernel_size, stride : int or (int, int)
        Window R×S and step (None: the window); no padding.
    ceil_mode : bool
        Output size by (PN2); short windows are scaled by K/|w| (LPP2).

    Returns
    -------
    y : Array (N, C, P, Q)
    cache : LpPoolCache

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, 2.0], [2.0, 4.0]]]])
    >>> y, cache = lp_pool2d_forward(x, 2, 2)
    >>> y                                   # sqrt(1 + 4 + 4 + 16)
    array([[[[5.]]]])
    >>> lp_pool2d_backward(np.array([[[[10.0]]]]), cache)   # dy · x / y  (LPP3, p = 2)
    array([[[[2., 4.],
             [4., 8.]]]])
    """
    return lp_pool_nd_forward("lp_pool2d", x, 2, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_backward(dy: Array, cache: LpPoolCache) -> Array:
    """2-D power-average pooling backward pass, equations (LPP3), (LPP4)."""
    return lp_pool_nd_backward(dy, cache)


def lp_pool2d(x: Array, norm_type: float, kernel_size: Any, **hyper: Any) -> Array:
    """2-D power-average pooling forward alone; see :func:`lp_pool2d_forward`."""
    return lp_pool2d_forward(x, norm_type, kernel_size, **hyper)[0]
