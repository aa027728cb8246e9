"""Element-wise activations: ReLU, leaky ReLU, sigmoid, tanh.

Notation  x (any shape)  y = f(x) (the shape of x)  dy, dx (the shape of x)
Backward, for every activation f (the δ rule of backpropagation)
  dx = dy ⊙ f′(x)                                                                     (A1)
ReLU
  y = max(x, 0)                                                                       (A2)
  f′(x) = 0 if x ≤ 0 else 1      -- 0 at exactly x = 0, 1 at x = NaN, as PyTorch        (A3)
      read from y: y ≤ 0 exactly where x ≤ 0, and y is NaN where x is, so the cache keeps y
Leaky ReLU with slope α (``negative_slope``)
  y = x if x > 0 else α·x                                                             (A4)
  f′(x) = 1 if x > 0 else α      -- α at exactly x = 0, as PyTorch                     (A5)
Sigmoid
  y = 1 / (1 + e^(−x)) = e^x / (1 + e^x)                                              (A6)
      computed as 1/(1 + z) for x ≥ 0 and z/(1 + z) for x < 0 with z = e^(−|x|) ≤ 1,
      so no exponential overflows whatever the size of |x|
  f′(x) = y·(1 − y)              -- written with y, so the cache keeps y, not x        (A7)
Tanh
  y = tanh(x)                                                                         (A8)
  f′(x) = 1 − y²                 -- written with y, so the cache keeps y, not x        (A9)

Each cache holds one reference to an array, no copy. ReLU's, sigmoid's and tanh's keep y,
which the next layer keeps anyway: x, often a BatchNorm's output read by nothing else, is
then freed as the forward goes on (leaky ReLU keeps x: α < 0 would hide its sign in y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop import _native
from convprop._native import elementwise
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array


def _check_input(op: str, x: Any) -> None:
    require_array(op, "x", x)
    check_float_dtype(op, x=x)


@dataclass(frozen=True, slots=True)
class ReluCache:
    """What relu_backward needs.

    Fields
    ------
    y : Array (any shape)
        The forward output (a reference): its sign gives f′ (A3).
    """

    y: Array


def relu_forward(x: Array) -> tuple[Array, ReluCache]:
    """ReLU forward pass, equation (A2).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.

    Returns
    -------
    y : Array (the shape of x)
        max(x, 0), same dtype.
    cache : ReluCache
        For relu_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
    >>> y
    array([0., 0., 2.])
    >>> relu_backward(np.array([5.0, 6.0, 7.0]), cache)
    array([0., 0., 7.])
    """
    _check_input("relu", x)
    y = _relu(x)  # (A2)
    return y, ReluCache(y=y)


@_native.accelerated(elementwise.relu_forward)
def _relu(x: Array) -> Array:
    """(A2) in NumPy; compiled where the kernels serve x (the same bits)."""
    xp = get_xp(x)
    return xp.maximum(x, 0)  # (A2)


def relu_backward(dy: Array, cache: ReluCache) -> Array:
    """ReLU backward pass, equations (A1) and (A3).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : ReluCache
        From relu_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy where x > 0, 0 elsewhere (including x == 0).
    """
    y = cache.y
    check_upstream("relu_backward", dy, y.shape, y.dtype)
    return _relu_gradient(dy, y)


@_native.accelerated(elementwise.relu_backward)
def _relu_gradient(dy: Array, y: Array) -> Array:
    """(A1), (A3) in NumPy; compiled where the kernels serve dy and y (the same product)."""
    # (A3) f′ = 0 where y <= 0 (x <= 0), else 1: NaN compares false, so dy passes there as
    # in PyTorch
    derivative = ~(y <= 0)  # kept as booleans: no float copy
    return dy * derivative  # (A1) the product casts f′ to dy's dtype


def relu(x: Array) -> Array:
    """ReLU forward alone; see :func:`relu_forward`."""
    y, _ = relu_forward(x)
    return y


@dataclass(frozen=True, slots=True)
class LeakyReluCache:
    """What leaky_relu_backward needs.

    Fields
    ------
    x : Array (any shape)
        The forward input (a reference): its sign chooses 1 or α (A5).
    negative_slope : float
        α.
    """

    x: Array
    negative_slope: float


def _check_slope(negative_slope: Any) -> float:
    is_real = isinstance(negative_slope, (int, float)) and not isinstance(negative_slope, bool)
    if not (is_real and math.isfinite(negative_slope)):
        raise ParameterError(
            "leaky_relu: negative_slope must be a finite real number; expected e.g. 0.01, "
            f"got {negative_slope!r}"
        )
    return float(negative_slope)


def leaky_relu_forward(x: Array, *, negative_slope: float = 0.01) -> tuple[Array, LeakyReluCache]:
    """Leaky ReLU forward pass, equation (A4).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.
    negative_slope : float
        α, the slope for x ≤ 0 (PyTorch's default 0.01); any finite real number.

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x.
    cache : LeakyReluCache
        For leaky_relu_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.
    ParameterError
        When negative_slope is not a finite real number.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = leaky_relu_forward(np.array([-2.0, 0.0, 3.0]), negative_slope=0.5)
    >>> y
    array([-1.,  0.,  3.])
    >>> leaky_relu_backward(np.array([1.0, 1.0, 1.0]), cache)
    array([0.5, 0.5, 1. ])
    """
    _check_input("leaky_relu", x)
    alpha = _check_slope(negative_slope)
    xp = get_xp(x)
    y = xp.where(x > 0, x, x * alpha)  # (A4)
    return y, LeakyReluCache(x=x, negative_slope=alpha)


def leaky_relu_backward(dy: Array, cache: LeakyReluCache) -> Array:
    """Leaky ReLU backward pass, equations (A1) and (A5).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : LeakyReluCache
        From leaky_relu_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy where x > 0, α·dy elsewhere.
    """
    x = cache.x
    check_upstream("leaky_relu_backward", dy, x.shape, x.dtype)
    xp = get_xp(dy, x)
    derivative = xp.where(x > 0, 1.0, cache.negative_slope).astype(x.dtype)  # (A5)
    return dy * derivative  # (A1)


def leaky_relu(x: Array, *, negative_slope: float = 0.01) -> Array:
    """Leaky ReLU forward alone; see :func:`leaky_relu_forward`."""
    y, _ = leaky_relu_forward(x, negative_slope=negative_slope)
    return y


@dataclass(frozen=True, slots=True)
class SigmoidCache:
    """What sigmoid_backward needs.

    Fields
    ------
    y : Array (the shape of x)
        The forward output (a reference): f′ = y·(1 − y) (A7).
    """

    y: Array


def sigmoid_forward(x: Array) -> tuple[Array, SigmoidCache]:
    """Logistic sigmoid forward pass, equation (A6), without overflow for any x.

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.

    Returns
    -------
    y : Array (the shape of x)
        Values in [0, 1], same dtype as x.
    cache : SigmoidCache
        For sigmoid_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))
    >>> y
    array([0. , 0.5, 1. ])
    >>> sigmoid_backward(np.array([1.0, 1.0, 1.0]), cache)
    array([0.  , 0.25, 0.  ])
    """
    _check_input("sigmoid", x)
    xp = get_xp(x)
    z = xp.exp(-xp.abs(x))  # e^(−|x|) in (0, 1]: never overflows
    y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))  # (A6)
    return y, SigmoidCache(y=y)


def sigmoid_backward(dy: Array, cache: SigmoidCache) -> Array:
    """Sigmoid backward pass, equations (A1) and (A7).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : SigmoidCache
        From sigmoid_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy·y·(1 − y).
    """
    y = cache.y
    check_upstream("sigmoid_backward", dy, y.shape, y.dtype)
    derivative = y * (1 - y)  # (A7)
    return dy * derivative  # (A1)


def sigmoid(x: Array) -> Array:
    """Sigmoid forward alone; see :func:`sigmoid_forward`."""
    y, _ = sigmoid_forward(x)
    return y


@dataclass(frozen=True, slots=True)
class TanhCache:
    """What tanh_backward needs.

    Fields
    ------
    y : Array (the shape of x)
        The forward output (a reference): f′ = 1 − y² (A9).
    """

    y: Array


def tanh_forward(x: Array) -> tuple[Array, TanhCache]:
    """Hyperbolic tangent forward pass, equation (A8).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.

    Returns
    -------
    y : Array (the shape of x)
        Values in [−1, 1], same dtype as x.
    cache : TanhCache
        For tanh_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = tanh_forward(np.array([0.0, 1000.0]))
    >>> y
    array([0., 1.])
    >>> tanh_backward(np.array([3.0, 3.0]), cache)
    array([3., 0.])
    """
    _check_input("tanh", x)
    xp = get_xp(x)
    y = xp.tanh(x)  # (A8)
    return y, TanhCache(y=y)


def tanh_backward(dy: Array, cache: TanhCache) -> Array:
    """Tanh backward pass, equations (A1) and (A9).

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : TanhCache
        From tanh_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy·(1 − y²).
    """
    y = cache.y
    check_upstream("tanh_backward", dy, y.shape, y.dtype)
    derivative = 1 - y * y  # (A9)
    return dy * derivative  # (A1)


def tanh(x: Array) -> Array:
    """Tanh forward alone; see :func:`tanh_forward`."""
    y, _ = tanh_forward(x)
    return y
