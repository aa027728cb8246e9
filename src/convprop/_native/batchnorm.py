"""Batch normalisation (BN1)-(BN13), compiled: two kernels each way, the statistics (or the
gradient sums) per channel, then y (or dx) per plane.

Notation  x, y, dy, dx (N,C,H,W) read as (N,C,L), L = H·W  γ gamma, β beta (C,)  m = N·L
(normalization's derivation block)
  μ = (1/m) Σ x,  σ² = (1/m) Σ (x − μ)²                                          (BN1), (BN2)
  invstd = 1/√(σ² + eps),  x̂ = (x − μ)·invstd,  y = γ·x̂ + β                       (BN3), (BN4)
  dβ = Σ dy,  dγ = Σ dy·x̂                                                        (BN8), (BN9)
  training:  dx = γ·invstd·(dy − (1/m)·Σ dy − x̂·(1/m)·Σ dy·x̂)                    (BN13)
  inference: dx = (dy·γ)·invstd                                                  (BN10), (BN12)
With a ReLU after it (functional/batch_norm_relu.py), z = max(y, 0) is written in y's pass
(BR2), and the backward forms dy = dz·f′(y) as it reads dz (BR3), y recomputed from x.
The statistics and the gradient sums are taken per channel in float64 (one thread per
channel, each channel's planes in the order of n), NumPy's in the array's dtype: the same
values to rounding. The element-wise passes round in NumPy's order, so that the inference
forward and backward are NumPy's bits.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import threads_for, twin
from convprop._native._compiled import kernels


def _not_empty(x: Any, *rest: Any, **named: Any) -> bool:
    """The kernels need at least one element (an empty batch takes the NumPy code)."""
    return bool(x.size > 0)


def _per_channel(a: Any, dtype: Any) -> Any:
    return numpy.ascontiguousarray(a, dtype=dtype)


def _statistics(x: Any) -> tuple[Any, Any]:
    """(BN1), (BN2) of x (N, C, L) C-contiguous: μ and σ² (C,) in float64."""
    N, C, L = x.shape
    mean, var = numpy.empty(C), numpy.empty(C)
    work = 4 * x.size  # two passes, widened to float64
    kernels.batchnorm_stats(x, mean, var, N, C, L, 0, C, threads_for(C, work))
    return mean, var


@twin(arrays="x, gamma, beta, running_mean, running_var", requires=_not_empty)
def batch_norm2d_normalize(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[Any, Any, Any, Any, Any]:
    """(BN1)-(BN7): y and the per-channel μ, invstd and running statistics, as the
    reference returns them (x (N, C, H, W), the others (C,), all of x's dtype)."""
    return _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps, False)


@twin(arrays="x, gamma, beta, running_mean, running_var", requires=_not_empty)
def batch_norm2d_relu_normalize(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[Any, Any, Any, Any, Any]:
    """(BR1), (BR2): :func:`batch_norm2d_normalize` with z = max(y, 0) in place of y, written
    in the same pass."""
    return _normalize(x, gamma, beta, running_mean, running_var, training, momentum, eps, True)


def _normalize(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
    relu: bool,
) -> tuple[Any, Any, Any, Any, Any]:
    N, C = x.shape[0], x.shape[1]
    x3 = numpy.ascontiguousarray(x).reshape(N, C, -1)  # (N, C, L)
    L = x3.shape[2]
    dtype = x.dtype
    if training:
        mean64, var64 = _statistics(x3)  # (BN1), (BN2) in float64
        mean = mean64.astype(dtype)
        var = var64.astype(dtype)
        invstd = (1 / numpy.sqrt(var64 + eps)).astype(dtype)  # (BN3) -> (C,)
        m = N * L
        new_running_mean = (1 - momentum) * running_mean + momentum * mean  # (BN5)
        new_running_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))  # (BN6)
    else:
        mean = running_mean
        invstd = 1 / numpy.sqrt(running_var + eps)  # (BN7) -> (C,), NumPy's own values
        new_running_mean, new_running_var = running_mean, running_var
    y = numpy.empty(x.shape, dtype=dtype)
    per_channel = (_per_channel(a, dtype) for a in (mean, invstd, gamma, beta))
    threads = threads_for(N * C, 2 * x.size)  # a load, a store and four operations per element
    kernels.batchnorm_apply(x3, *per_channel, y, C, L, 0, N * C, threads, relu=relu)
    # (BN3), (BN4), and with `relu` (BR2)
    return y, mean, invstd, new_running_mean, new_running_var


@twin(arrays="dy, x, mean, invstd, gamma", requires=_not_empty)
def batch_norm2d_gradients(
    dy: Any, x: Any, mean: Any, invstd: Any, gamma: Any, training: bool
) -> tuple[Any, Any, Any]:
    """(BN8)-(BN10), then (BN13) in training or (BN12) in inference: dx (N, C, H, W),
    dgamma and dbeta (C,), of dy's dtype."""
    return _gradients(dy, x, mean, invstd, gamma, None, training)


@twin(arrays="dz, x, mean, invstd, gamma, beta", requires=_not_empty)
def batch_norm2d_relu_gradients(
    dz: Any, x: Any, mean: Any, invstd: Any, gamma: Any, beta: Any, training: bool
) -> tuple[Any, Any, Any]:
    """(BR3), (BR4): :func:`batch_norm2d_gradients` of dy = dz·f′(y), each pass forming dy as
    it reads dz (y recomputed from x as the forward made it): no array for dy."""
    return _gradients(dz, x, mean, invstd, gamma, beta, training)


def _gradients(
    dy: Any, x: Any, mean: Any, invstd: Any, gamma: Any, beta: Any, training: bool
) -> tuple[Any, Any, Any]:
    N, C = x.shape[0], x.shape[1]
    dtype = dy.dtype
    dy3 = numpy.ascontiguousarray(dy).reshape(N, C, -1)  # (N, C, L)
    x3 = numpy.ascontiguousarray(x).reshape(N, C, -1)
    L = x3.shape[2]
    mean, invstd, gamma = (_per_channel(a, dtype) for a in (mean, invstd, gamma))
    gate = {} if beta is None else {"relu_gamma": gamma, "relu_beta": _per_channel(beta, dtype)}
    sum_dy, sum_dy_xhat = numpy.empty(C), numpy.empty(C)
    work = 6 * dy.size  # two arrays read, widened to float64, two sums
    kernels.batchnorm_grad_sums(
        dy3, x3, mean, invstd, sum_dy, sum_dy_xhat, N, C, L, 0, C, threads_for(C, work), **gate
    )  # (BN8), (BN9) in float64, of dz·f′(y) (BR3) where gated
    dx = numpy.empty(dy.shape, dtype=dtype)
    if training:
        m = N * L
        scale = (gamma.astype(numpy.float64) * invstd).astype(dtype)  # (BN13) γ·invstd
        mean_dy = (sum_dy / m).astype(dtype)
        mean_dy_xhat = (sum_dy_xhat / m).astype(dtype)
        kernels.batchnorm_grad_input(
            dy3, x3, mean, invstd, scale, mean_dy, mean_dy_xhat, dx, C, L, 0, N * C,
            threads_for(N * C, 3 * dy.size), **gate,
        )  # fmt: skip  # (BN13): two arrays read, one written
    else:
        frozen_gate = {} if beta is None else {"relu_x": x3, "relu_mean": mean,
                                               "relu_beta": gate["relu_beta"]}  # fmt: skip
        kernels.batchnorm_grad_frozen(
            dy3,
            gamma,
            invstd,
            dx,
            C,
            L,
            0,
            N * C,
            threads_for(N * C, 2 * dy.size),
            **frozen_gate,
        )  # (BN10), (BN12)
    return dx, sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)  # dx, (BN9), (BN8)
