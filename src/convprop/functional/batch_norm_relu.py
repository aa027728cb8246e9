"""Batch normalisation followed by a ReLU, as one op: the pair a CNN block writes as BN → ReLU.

Notation  x, z, dz, dx (N,C,H,W)  γ gamma, β beta (C,)  m = N·H·W
(the letters and (BN1)–(BN13) of normalization.py, (A2), (A3) of activation.py)
Forward
  y = γ·x̂ + β, with μ, invstd, x̂ and the running statistics of (BN1)–(BN7)           (BR1)
  z = max(y, 0)                                                      -- (A2) of y    (BR2)
Backward  (dz the shape of z)
  dy = dz ⊙ f′(y),  f′(y) = 0 if y ≤ 0 else 1,  y recomputed from x by (BR1)   -- (A3)  (BR3)
  dβ = Σ dy,  dγ = Σ dy·x̂,  dx = (BN13) in training or (BN12) in inference, of dy     (BR4)

The chain rule through the two ops, nothing more: (BR1) is (BN4), (BR3) is (A1) with (A3),
and (BR4) is batch_norm2d_backward of the dy that relu_backward would return. What the fusion
changes is the passes over memory. Separately, the forward reads x twice and writes y (BN),
then reads y and writes z (ReLU); the backward reads dz and y and writes dy (ReLU), then reads
dy and x twice and writes dx (BN): thirteen passes over an array of x's size, two of them
into arrays of their own. Fused, z is written in y's pass, and each backward pass forms dy as
it reads dz, y recomputed from x in the forward's order of rounding (the same bits, so the
same f′): eight passes, no y and no dy. The unfused chain is the test's witness.

Compiled (convprop._native.batchnorm): the BatchNorm kernels with the ReLU's gate; the NumPy
code below is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from convprop import _native
from convprop._native import batchnorm
from convprop.backend import Array
from convprop.functional._checks import check_upstream
from convprop.functional.activation import relu
from convprop.functional.normalization import (
    BatchNorm2dCache,
    _gradients,
    _normalize,
    batch_norm2d_cache,
    check_batch_norm2d,
)


@dataclass(frozen=True, slots=True)
class BatchNorm2dReluCache:
    """What batch_norm2d_relu_backward needs, and the updated running statistics.

    Fields
    ------
    bn : BatchNorm2dCache
        The normalisation's cache (x by reference, μ and invstd (C,), γ, the mode and the
        running statistics after the call): nothing of x's size is stored.
    beta : Array (C,)
        β (a reference), with which (BR3) recomputes y.
    """

    bn: BatchNorm2dCache
    beta: Array

    @property
    def new_running_mean(self) -> Array:
        """(BN5) after a training-mode call; running_mean itself in inference mode."""
        return self.bn.new_running_mean

    @property
    def new_running_var(self) -> Array:
        """(BN6) after a training-mode call; running_var itself in inference mode."""
        return self.bn.new_running_var


def batch_norm2d_relu_forward(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, BatchNorm2dReluCache]:
    """BatchNorm then ReLU forward: (BR1), (BR2).

    Parameters
    ----------
    x, gamma, beta, running_mean, running_var, training, momentum, eps
        As :func:`convprop.functional.normalization.batch_norm2d_forward`: x (N, C, H, W),
        the others (C,), of x's dtype; the running statistics are read, never written.

    Returns
    -------
    z : Array (N, C, H, W)
        max(γ·x̂ + β, 0), same dtype as x: the values relu(batch_norm2d(...)) returns.
    cache : BatchNorm2dReluCache
        For batch_norm2d_relu_backward; ``cache.new_running_mean`` and
        ``cache.new_running_var`` hold the running statistics after this call.

    Raises
    ------
    ShapeError, DTypeError, ParameterError, BackendError
        As :func:`convprop.functional.normalization.batch_norm2d_forward`, under the name
        ``batch_norm2d_relu``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    >>> ones, zeros = np.ones(1), np.zeros(1)
    >>> z, cache = batch_norm2d_relu_forward(x, ones, zeros, zeros, ones, training=True)
    >>> z.ravel().round(4)
    array([0., 1.])
    >>> dz = np.array([2.0, 5.0]).reshape(z.shape)
    >>> dx, dgamma, dbeta = batch_norm2d_relu_backward(dz, cache)  # dy = [0, 5]: y[0] < 0
    >>> dgamma.round(4), dbeta
    (array([5.]), array([5.]))
    """
    check_batch_norm2d("batch_norm2d_relu", x, gamma, beta, running_mean, running_var,
                       training, momentum, eps)  # fmt: skip
    z, *statistics = _normalize_relu(
        x, gamma, beta, running_mean, running_var, training, momentum, eps
    )
    bn = batch_norm2d_cache(x, gamma, training, statistics)
    return z, BatchNorm2dReluCache(bn=bn, beta=beta)


@_native.accelerated(batchnorm.batch_norm2d_relu_normalize)
def _normalize_relu(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[Array, Array, Array, Array, Array]:
    """(BR1), (BR2) as the two ops: z, μ (or running_mean), invstd and the running
    statistics; compiled in one pass where the kernels serve the arrays."""
    y, mean, invstd, new_running_mean, new_running_var = _normalize(
        x, gamma, beta, running_mean, running_var, training, momentum, eps
    )  # (BR1)
    return relu(y), mean, invstd, new_running_mean, new_running_var  # (BR2)


def batch_norm2d_relu_backward(
    dz: Array, cache: BatchNorm2dReluCache
) -> tuple[Array, Array, Array]:
    """BatchNorm then ReLU backward: (BR3), (BR4).

    Parameters
    ----------
    dz : Array (N, C, H, W)
        Gradient of the loss with respect to z.
    cache : BatchNorm2dReluCache
        From batch_norm2d_relu_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        (BR4): (BN13) after a training-mode forward, (BN12) after an inference-mode one.
    dgamma : Array (C,)
        Σ dy·x̂ (BN9 of dy).
    dbeta : Array (C,)
        Σ dy (BN8 of dy).
    """
    bn = cache.bn
    check_upstream("batch_norm2d_relu_backward", dz, bn.x.shape, bn.x.dtype)
    return _relu_gradients(dz, bn.x, bn.mean, bn.invstd, bn.gamma, cache.beta, bn.training)


@_native.accelerated(batchnorm.batch_norm2d_relu_gradients)
def _relu_gradients(
    dz: Array, x: Array, mean: Array, invstd: Array, gamma: Array, beta: Array, training: bool
) -> tuple[Array, Array, Array]:
    """(BR3), (BR4) as the two ops: dy, then the normalisation's gradients of it; compiled
    where the kernels serve the arrays (dy formed in each pass, never stored)."""
    C = x.shape[1]
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd.reshape(1, C, 1, 1)  # (BN3) or (BN7)
    y = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)  # (BR1) as the forward
    dy = dz * ~(y <= 0)  # (BR3) f′ = 0 where y <= 0, else 1 (NaN: 1), as (A3)
    return _gradients(dy, x, mean, invstd, gamma, training)  # (BR4)
