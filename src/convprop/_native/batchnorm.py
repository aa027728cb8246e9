"""Batch normalisation (BN1)-(BN13), compiled: two kernels each way, the statistics (or the
gradient sums) per channel, then y (or dx) per plane.

Notation  x, y, dy, dx (N,C,H,W) read as (N,C,L), L = H·W  γ gamma, β beta (C,)  m = N·L
(normalization's derivation block)
  μ = (1/m) Σ x,  σ² = (1/m) Σ (x − μ)²                                          (BN1), (BN2)
  invstd = 1/√(σ² + eps),  x̂ = (x − μ)·invstd,  y = γ·x̂ + β                       (BN3), (BN4)
  dβ = Σ dy,  dγ = Σ dy·x̂                                                        (BN8), (BN9)
  training:  dx = γ·invstd·(dy − (1/m)·Σ dy − x̂·(1/m)·Σ dy·x̂)                    (BN13)
  inference: dx = (dy·γ)·invstd                                                  (BN10), (BN12)
The statistics and the gradient sums are taken per channel in float64 (one thread per
channel, each channel's planes in the order of n), NumPy's in the array's dtype: the same
values to rounding. The element-wise passes round in NumPy's order, so that the inference
forward and backward are NumPy's bits.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel, threads_for, twin
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
    parallel(
        kernels.batchnorm_apply,
        N * C,
        2 * x.size,  # a load, a store and four operations per element
        x3,
        _per_channel(mean, dtype),
        _per_channel(invstd, dtype),
        _per_channel(gamma, dtype),
        _per_channel(beta, dtype),
        y,
        C,
        L,
    )  # (BN3), (BN4)
    return y, mean, invstd, new_running_mean, new_running_var


@twin(arrays="dy, x, mean, invstd, gamma", requires=_not_empty)
def batch_norm2d_gradients(
    dy: Any, x: Any, mean: Any, invstd: Any, gamma: Any, training: bool
) -> tuple[Any, Any, Any]:
    """(BN8)-(BN10), then (BN13) in training or (BN12) in inference: dx (N, C, H, W),
    dgamma and dbeta (C,), of dy's dtype."""
    N, C = x.shape[0], x.shape[1]
    dtype = dy.dtype
    dy3 = numpy.ascontiguousarray(dy).reshape(N, C, -1)  # (N, C, L)
    x3 = numpy.ascontiguousarray(x).reshape(N, C, -1)
    L = x3.shape[2]
    mean, invstd, gamma = (_per_channel(a, dtype) for a in (mean, invstd, gamma))
    sum_dy, sum_dy_xhat = numpy.empty(C), numpy.empty(C)
    work = 6 * dy.size  # two arrays read, widened to float64, two sums
    kernels.batchnorm_grad_sums(
        dy3, x3, mean, invstd, sum_dy, sum_dy_xhat, N, C, L, 0, C, threads_for(C, work)
    )  # (BN8), (BN9) in float64
    dx = numpy.empty(dy.shape, dtype=dtype)
    if training:
        m = N * L
        scale = (gamma.astype(numpy.float64) * invstd).astype(dtype)  # (BN13) γ·invstd
        mean_dy = (sum_dy / m).astype(dtype)
        mean_dy_xhat = (sum_dy_xhat / m).astype(dtype)
        parallel(
            kernels.batchnorm_grad_input,
            N * C,
            3 * dy.size,  # two arrays read, one written
            dy3, x3, mean, invstd, scale, mean_dy, mean_dy_xhat, dx, C, L,
        )  # fmt: skip  # (BN13)
    else:
        parallel(
            kernels.batchnorm_grad_frozen, N * C, 2 * dy.size, dy3, gamma, invstd, dx, C, L
        )  # (BN10), (BN12)
    return dx, sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)  # dx, (BN9), (BN8)
