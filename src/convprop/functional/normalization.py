"""Batch normalisation over the channels of NCHW activations.

Notation  x, y, dy, dx (N,C,H,W)  γ gamma, β beta, running_mean, running_var (C,)
  every sum and mean below runs over n, h, w for each channel c;  m = N·H·W
Forward in training mode
  μ[c] = (1/m) Σ x[n,c,h,w]                                                           (BN1)
  σ²[c] = (1/m) Σ (x[n,c,h,w] − μ[c])²      -- the biased variance normalises         (BN2)
  invstd[c] = 1/√(σ²[c] + eps);  x̂ = (x − μ)·invstd                                   (BN3)
  y = γ·x̂ + β                                                                         (BN4)
  running_mean′ = (1 − momentum)·running_mean + momentum·μ                             (BN5)
  running_var′ = (1 − momentum)·running_var + momentum·σ²·m/(m − 1)
                                            -- the unbiased variance, as PyTorch       (BN6)
Forward in inference mode: (BN4) with the running statistics in place of the batch's
  invstd[c] = 1/√(running_var[c] + eps);  x̂ = (x − running_mean)·invstd                (BN7)
Backward
  dβ[c] = Σ dy                                                                        (BN8)
  dγ[c] = Σ dy·x̂                                                                      (BN9)
  dx̂ = dy·γ                                                                           (BN10)
  training: μ and σ² depend on x, which adds two terms to the direct path dx̂·invstd:
  dx = (1/m)·invstd·(m·dx̂ − Σ dx̂ − x̂·Σ(dx̂·x̂))                                       (BN11)
  inference: the statistics are constants, so dx = dx̂·invstd                          (BN12)
  (BN11) per channel, with Σ dx̂ = γ·Σ dy and Σ dx̂·x̂ = γ·Σ dy·x̂ (γ is constant over n, h, w):
  dx = γ·invstd·(dy − (1/m)·Σ dy − x̂·(1/m)·Σ dy·x̂)                                   (BN13)
  -- the compiled backward's form: one pass for the two sums (BN8, BN9), one for dx

The op is pure: it never writes into running_mean or running_var. The updated statistics
(BN5, BN6) come back in the cache as fresh arrays for the layer to store.

Compiled (convprop._native.batchnorm): the statistics (BN1, BN2) and the sums (BN8, BN9) per
channel in float64, one thread per channel; y (BN3, BN4) and dx (BN13 or BN12) plane by
plane. The NumPy code below stays the reference; both agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop import _native
from convprop._native import batchnorm
from convprop._shapes import typed_key
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional._prepared import PreparedCalls, arrays_signature

AXES = (0, 2, 3)
"""The axes n, h, w that every statistic of a channel sums over."""


@dataclass(frozen=True, slots=True)
class BatchNorm2dCache:
    """What batch_norm2d_backward needs, and the updated running statistics.

    Fields
    ------
    x : Array (N, C, H, W)
        The forward input (a reference, no copy); x̂ is recomputed from it in backward,
        which saves an N·C·H·W array.
    mean : Array (C,)
        μ (BN1) in training mode, running_mean in inference mode.
    invstd : Array (C,)
        1/√(σ² + eps) (BN3) or 1/√(running_var + eps) (BN7).
    gamma : Array (C,)
        γ (a reference).
    training : bool
        Which backward applies: (BN11) or (BN12).
    new_running_mean, new_running_var : Array (C,)
        (BN5) and (BN6): fresh arrays in training mode; in inference mode the input
        running_mean and running_var themselves, unchanged.
    """

    x: Array
    mean: Array
    invstd: Array
    gamma: Array
    training: bool
    new_running_mean: Array
    new_running_var: Array


def _check_inputs(op: str, x: Array, per_channel: dict[str, Array]) -> None:
    require_array(op, "x", x)
    for name, array in per_channel.items():
        require_array(op, name, array)
    check_float_dtype(op, x=x, **per_channel)
    if x.ndim != 4:
        raise ShapeError(
            f"{op}: x must be (N, C, H, W); expected 4 dimensions, got {x.ndim} "
            f"(x.shape={tuple(x.shape)})"
        )
    C = x.shape[1]
    for name, array in per_channel.items():
        if tuple(array.shape) != (C,):
            raise ShapeError(
                f"{op}: {name} must hold one value per channel; expected shape (C,)=({C},), "
                f"got {tuple(array.shape)} (x.shape={tuple(x.shape)}, "
                f"{name}.shape={tuple(array.shape)})"
            )


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_hyperparameters(op: str, training: Any, momentum: Any, eps: Any) -> None:
    if not isinstance(training, bool):
        raise ParameterError(
            f"{op}: training must be a bool; expected True or False, got {training!r}"
        )
    if training and not (_is_real(momentum) and 0 <= momentum <= 1):  # unused in inference
        raise ParameterError(
            f"{op}: momentum is the weight of the batch statistics; expected a number in "
            f"[0, 1], got {momentum!r}"
        )
    if not (_is_real(eps) and 0 < eps < math.inf):
        raise ParameterError(
            f"{op}: eps keeps the division finite; expected a finite number > 0, got {eps!r}"
        )


def batch_norm2d_forward(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, BatchNorm2dCache]:
    """Batch normalisation forward pass: (BN1)–(BN6) in training, (BN7) and (BN4) in inference.

    Parameters
    ----------
    x : Array (N, C, H, W)
        float32 or float64.
    gamma, beta : Array (C,)
        Scale γ and shift β; same dtype as x.
    running_mean, running_var : Array (C,)
        The running statistics; read, never written.
    training : bool
        True normalises with the batch statistics and updates the running ones; False
        normalises with the running statistics.
    momentum : float
        Weight of the batch statistic in the running average (BN5, BN6), in [0, 1].
    eps : float
        Added to the variance for stability; > 0.

    Returns
    -------
    y : Array (N, C, H, W)
        Same dtype as x.
    cache : BatchNorm2dCache
        For batch_norm2d_backward; ``cache.new_running_mean`` and ``cache.new_running_var``
        hold the running statistics after this call.

    Raises
    ------
    ShapeError
        When x is not 4-D, a per-channel array is not (C,), or training mode has a single
        value per channel (N·H·W = 1), whose variance is undefined.
    DTypeError, ParameterError, BackendError
        Bad dtypes, hyperparameters, or mixed devices.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)
    >>> ones, zeros = np.ones(1), np.zeros(1)
    >>> y, cache = batch_norm2d_forward(x, ones, zeros, zeros, ones, training=True)
    >>> y.ravel().round(4)
    array([-1.,  1.])
    >>> cache.new_running_mean, cache.new_running_var
    (array([0.2]), array([1.1]))
    """
    check_batch_norm2d("batch_norm2d", x, gamma, beta, running_mean, running_var, training,
                       momentum, eps)  # fmt: skip
    y, *statistics = _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    return y, batch_norm2d_cache(x, gamma, training, statistics)


def batch_norm2d_cache(
    x: Array, gamma: Array, training: bool, statistics: list[Array]
) -> BatchNorm2dCache:
    """The cache of a forward whose (BN1)–(BN7) gave ``statistics``: μ (or running_mean),
    invstd and the running statistics after the call, in that order."""
    mean, invstd, new_running_mean, new_running_var = statistics
    return BatchNorm2dCache(
        x=x,
        mean=mean,
        invstd=invstd,
        gamma=gamma,
        training=training,
        new_running_mean=new_running_mean,
        new_running_var=new_running_var,
    )


CHECKED: PreparedCalls[bool] = PreparedCalls()
"""Signatures of :func:`check_batch_norm2d` calls that passed (functional/_prepared.py): the
op, the five arrays' types, shapes and dtypes, and training, momentum and eps with their
types."""


def check_batch_norm2d(
    op: str,
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    training: Any,
    momentum: Any,
    eps: Any,
) -> None:
    """The checks of :func:`batch_norm2d_forward` (and of the ops built on it), under the name
    ``op``: arrays, dtypes, shapes, one device, the hyperparameters, and more than one value
    per channel in training. A signature that passed before passes again (:data:`CHECKED`)."""
    arrays = arrays_signature(x, gamma, beta, running_mean, running_var)
    key = None if arrays is None else (op, *arrays, *map(typed_key, (training, momentum, eps)))
    if CHECKED.recall(key):
        return
    per_channel = {"gamma": gamma, "beta": beta, "running_mean": running_mean}
    _check_inputs(op, x, {**per_channel, "running_var": running_var})
    _check_hyperparameters(op, training, momentum, eps)
    get_xp(x, gamma, beta, running_mean, running_var)  # refuses arrays of two devices
    N, _, H, W = x.shape
    m = N * H * W
    if training and m <= 1:
        raise ShapeError(
            f"{op}: training mode needs more than 1 value per channel to estimate a variance; "
            f"expected N·H·W > 1, got N·H·W={m} (x.shape={tuple(x.shape)})"
        )
    CHECKED.keep(key, True)


@_native.accelerated(batchnorm.batch_norm2d_normalize)
def _normalize(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[Array, Array, Array, Array, Array]:
    """(BN1)–(BN7) in NumPy: y, μ (or running_mean), invstd and the running statistics after
    the call; compiled where the kernels serve the arrays (the statistics in float64)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    m = N * H * W
    if training:
        mean = x.mean(axis=AXES)  # (BN1) -> (C,)
        centred = x - mean.reshape(1, C, 1, 1)
        var = (centred * centred).mean(axis=AXES)  # (BN2) -> (C,)
        invstd = 1 / xp.sqrt(var + eps)  # (BN3) -> (C,)
        new_running_mean = (1 - momentum) * running_mean + momentum * mean  # (BN5)
        new_running_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))  # (BN6)
    else:
        mean = running_mean
        invstd = 1 / xp.sqrt(running_var + eps)  # (BN7) -> (C,)
        new_running_mean, new_running_var = running_mean, running_var
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd.reshape(1, C, 1, 1)  # (BN3) or (BN7)
    y = gamma.reshape(1, C, 1, 1) * xhat + beta.reshape(1, C, 1, 1)  # (BN4)
    return y, mean, invstd, new_running_mean, new_running_var


def batch_norm2d_backward(dy: Array, cache: BatchNorm2dCache) -> tuple[Array, Array, Array]:
    """Batch normalisation backward pass: (BN8)–(BN10), then (BN11) or (BN12).

    Parameters
    ----------
    dy : Array (N, C, H, W)
        Gradient of the loss with respect to y.
    cache : BatchNorm2dCache
        From batch_norm2d_forward.

    Returns
    -------
    dx : Array (N, C, H, W)
        (BN11) after a training-mode forward, (BN12) after an inference-mode one.
    dgamma : Array (C,)
        (BN9).
    dbeta : Array (C,)
        (BN8).
    """
    x = cache.x
    check_upstream("batch_norm2d_backward", dy, x.shape, x.dtype)
    return _gradients(dy, x, cache.mean, cache.invstd, cache.gamma, cache.training)


@_native.accelerated(batchnorm.batch_norm2d_gradients)
def _gradients(
    dy: Array, x: Array, mean: Array, invstd: Array, gamma: Array, training: bool
) -> tuple[Array, Array, Array]:
    """(BN8)–(BN12) in NumPy: dx, dgamma, dbeta; compiled where the kernels serve the
    arrays (BN13, the sums in float64)."""
    N, C, H, W = x.shape
    m = N * H * W
    invstd = invstd.reshape(1, C, 1, 1)
    xhat = (x - mean.reshape(1, C, 1, 1)) * invstd  # (BN3) or (BN7), recomputed
    dbeta = dy.sum(axis=AXES)  # (BN8) -> (C,)
    dgamma = (dy * xhat).sum(axis=AXES)  # (BN9) -> (C,)
    dxhat = dy * gamma.reshape(1, C, 1, 1)  # (BN10)
    if training:
        sum_dxhat = dxhat.sum(axis=AXES, keepdims=True)  # (1, C, 1, 1)
        sum_dxhat_xhat = (dxhat * xhat).sum(axis=AXES, keepdims=True)  # (1, C, 1, 1)
        dx = (invstd / m) * (m * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)  # (BN11)
    else:
        dx = dxhat * invstd  # (BN12)
    return dx, dgamma, dbeta


def batch_norm2d(
    x: Array,
    gamma: Array,
    beta: Array,
    running_mean: Array,
    running_var: Array,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array:
    """Batch normalisation forward alone; see :func:`batch_norm2d_forward`.

    The updated running statistics are discarded: a layer that keeps them calls
    :func:`batch_norm2d_forward` and reads them from the cache.
    """
    y, _ = batch_norm2d_forward(
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        training=training,
        momentum=momentum,
        eps=eps,
    )
    return y
