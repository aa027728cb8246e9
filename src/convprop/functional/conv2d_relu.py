"""Convolution with its bias, followed by a ReLU, as one op: a CNN layer as LeNet writes it.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  b (K,)  y, z, dz (N,K,P,Q)
(the letters and (F1), (B1)–(B3) of conv2d.py, (A1)–(A3) of activation.py)
Forward
  y = conv2d(x, w) + b                                                   -- (F1)    (CB1)
  z = max(y, 0), written over y: y is the op's own array, read by nothing else      (CB2)
Backward  (dz the shape of z)
  dy = dz ⊙ f′(z),  f′(z) = 0 if z ≤ 0 else 1   -- (A3): z > 0 exactly where y > 0,
                                                   and z is NaN exactly where y is     (CB3)
  (dx, dw, db) = conv2d_backward(dy): (B3), (B2), (B1) of that dy                      (CB4)

The chain rule through the two ops: (CB3) is relu_backward with z in place of y, which
gives the same f′ (max(y, 0) keeps y's sign, NaN and zeros; -0 becomes +0, where f′ = 0 either
way). The fusion saves the ReLU's own array and node: z is written into the convolution's
output, whose cache keeps x and w, never y; the backward forms dy in one pass, as the ReLU's
backward does, and hands it to the convolution's. The unfused chain is the test's witness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop import _native
from convprop._native import elementwise
from convprop.backend import Array, get_xp
from convprop.functional._checks import check_upstream
from convprop.functional.activation import _relu_gradient
from convprop.functional.conv2d import Conv2dCache, conv2d_backward, conv2d_forward


@dataclass(frozen=True, slots=True)
class Conv2dReluCache:
    """What conv2d_relu_backward needs.

    Fields
    ------
    conv : Conv2dCache
        The convolution's cache (x and w by reference, the geometry, the algorithms, their
        saved work; see :class:`convprop.functional.conv2d.Conv2dCache`).
    z : Array (N, K, P, Q)
        The output (a reference: the array the op returned), whose sign gives f′ (CB3).
    """

    conv: Conv2dCache
    z: Array


def conv2d_relu_forward(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> tuple[Array, Conv2dReluCache]:
    """Convolution, bias and ReLU forward: (CB1), (CB2).

    Parameters
    ----------
    x, w, b, stride, padding, dilation, groups, algorithm
        As :func:`convprop.functional.conv2d.conv2d_forward`, whose checks and errors apply.

    Returns
    -------
    z : Array (N, K, P, Q)
        max(conv2d(x, w) + b, 0), of x's dtype: relu(conv2d(...))'s values.
    cache : Conv2dReluCache
        For conv2d_relu_backward.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1.0, -2.0, 3.0]]]])                   # (1, 1, 1, 3)
    >>> z, cache = conv2d_relu_forward(x, np.ones((1, 1, 1, 2)), np.array([0.5]))
    >>> z                                                       # max([-0.5, 1.5], 0)
    array([[[[0. , 1.5]]]])
    >>> conv2d_relu_backward(np.array([[[[4.0, 5.0]]]]), cache)[1]   # dw: only z > 0 counts
    array([[[[-10.,  15.]]]])
    """
    # every path of conv2d_forward allocates y (zeros, or the algorithm's product made
    # contiguous): writing over it touches no input
    y, conv = conv2d_forward(x, w, b, stride=stride, padding=padding, dilation=dilation,
                             groups=groups, algorithm=algorithm)  # fmt: skip  # (CB1)
    return _relu_over(y), Conv2dReluCache(conv=conv, z=y)  # (CB2)


@_native.accelerated(elementwise.relu_in_place)
def _relu_over(y: Array) -> Array:
    """(CB2) as (A2), written over y; compiled where the kernels serve y (the same bits)."""
    xp = get_xp(y)
    return xp.maximum(y, 0, out=y)  # (CB2)


def conv2d_relu_backward(
    dz: Array, cache: Conv2dReluCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Convolution, bias and ReLU backward: (CB3), (CB4).

    Parameters
    ----------
    dz : Array (N, K, P, Q)
        Gradient of the loss with respect to z.
    cache : Conv2dReluCache
        From conv2d_relu_forward.
    need_dx : bool
        False skips the input gradient, as in conv2d_backward.

    Returns
    -------
    dx : Array (N, C, H, W) or None
        (B3) of dy; None when ``need_dx`` is False.
    dw : Array (K, C/G, R, S)
        (B2) of dy.
    db : Array (K,) or None
        (B1) of dy; None when the forward had no bias.
    """
    z = cache.z
    check_upstream("conv2d_relu_backward", dz, z.shape, z.dtype)
    dy = _relu_gradient(dz, z)  # (CB3)
    return conv2d_backward(dy, cache.conv, need_dx=need_dx)  # (CB4)
