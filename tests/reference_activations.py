"""Naive float64 references for activations, dropout, batch norm and the losses.

Written from the equations of convprop.functional.activation (A*), dropout (DO*),
normalization (BN*) and loss (CE*, MSE*) with explicit loops over elements, slow on purpose,
and independent of the code under test. Also the central finite differences the tests use.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _elementwise(x: np.ndarray, f: Callable[[float], float]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = f(float(x[index]))
    return out


def relu(x: np.ndarray) -> np.ndarray:
    """(A2) y = max(x, 0)."""
    return _elementwise(x, lambda v: v if v > 0 else 0.0)


def relu_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(A1), (A3) dx = dy·[x > 0]."""
    return np.asarray(dy, dtype=np.float64) * _elementwise(x, lambda v: 1.0 if v > 0 else 0.0)


def leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    """(A4) y = x for x > 0, slope·x otherwise."""
    return _elementwise(x, lambda v: v if v > 0 else slope * v)


def leaky_relu_grad(x: np.ndarray, dy: np.ndarray, slope: float) -> np.ndarray:
    """(A1), (A5) dx = dy·(1 if x > 0 else slope)."""
    return np.asarray(dy, dtype=np.float64) * _elementwise(x, lambda v: 1.0 if v > 0 else slope)


def _sigmoid_scalar(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    return math.exp(v) / (1.0 + math.exp(v))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """(A6) y = 1/(1 + e^(−x))."""
    return _elementwise(x, _sigmoid_scalar)


def sigmoid_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(A1), (A7) dx = dy·σ(x)·(1 − σ(x))."""
    derivative = _elementwise(x, lambda v: _sigmoid_scalar(v) * (1.0 - _sigmoid_scalar(v)))
    return np.asarray(dy, dtype=np.float64) * derivative


def tanh(x: np.ndarray) -> np.ndarray:
    """(A8) y = tanh(x)."""
    return _elementwise(x, math.tanh)


def tanh_grad(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(A1), (A9) dx = dy·(1 − tanh(x)²)."""
    return np.asarray(dy, dtype=np.float64) * _elementwise(x, lambda v: 1.0 - math.tanh(v) ** 2)


def dropout(x: np.ndarray, mask: np.ndarray, p: float) -> np.ndarray:
    """(DO3) y = x·mask/(1 − p) element by element (0 when p = 1)."""
    out = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        if mask[index]:
            out[index] = float(x[index]) / (1.0 - p)
    return out


def batch_norm2d_train(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BN1)–(BN4) with explicit sums; returns y, the batch mean and the biased variance."""
    N, C, H, W = x.shape
    m = N * H * W
    y = np.empty(x.shape)
    mean = np.zeros(C)
    var = np.zeros(C)
    for c in range(C):
        total = 0.0
        for n, h, w in np.ndindex(N, H, W):
            total += float(x[n, c, h, w])
        mean[c] = total / m  # (BN1)
        squares = 0.0
        for n, h, w in np.ndindex(N, H, W):
            squares += (float(x[n, c, h, w]) - mean[c]) ** 2
        var[c] = squares / m  # (BN2)
        for n, h, w in np.ndindex(N, H, W):
            xhat = (float(x[n, c, h, w]) - mean[c]) / math.sqrt(var[c] + eps)  # (BN3)
            y[n, c, h, w] = gamma[c] * xhat + beta[c]  # (BN4)
    return y, mean, var


def batch_norm2d_running(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    m: int,
    momentum: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(BN5), (BN6): the running averages, the variance made unbiased by m/(m − 1)."""
    new_mean = np.empty(len(mean))
    new_var = np.empty(len(var))
    for c in range(len(mean)):
        new_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean[c]
        new_var[c] = (1 - momentum) * running_var[c] + momentum * var[c] * m / (m - 1)
    return new_mean, new_var


def batch_norm2d_train_grad(
    x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dgamma, dbeta of the training-mode forward from the Jacobian, element by element.

    For positions i, j of one channel (m of them) the chain rule through μ and σ² gives
    ∂x̂_j/∂x_i = invstd·([i = j] − 1/m − x̂_i·x̂_j/m), and dx_i = Σ_j dy_j·γ·∂x̂_j/∂x_i;
    this is not the closed form (BN11) that the implementation uses.
    """
    N, C, H, W = x.shape
    m = N * H * W
    _, mean, var = batch_norm2d_train(x, np.ones(C), np.zeros(C), eps)
    dx = np.zeros(x.shape)
    dgamma = np.zeros(C)
    dbeta = np.zeros(C)
    positions = list(np.ndindex(N, H, W))
    for c in range(C):
        invstd = 1.0 / math.sqrt(var[c] + eps)
        xhat = {pos: (float(x[pos[0], c, pos[1], pos[2]]) - mean[c]) * invstd for pos in positions}
        for pos_j in positions:
            dy_j = float(dy[pos_j[0], c, pos_j[1], pos_j[2]])
            dbeta[c] += dy_j  # (BN8)
            dgamma[c] += dy_j * xhat[pos_j]  # (BN9)
            for pos_i in positions:
                kronecker = 1.0 if pos_i == pos_j else 0.0
                dxhat_j_dx_i = invstd * (kronecker - 1.0 / m - xhat[pos_i] * xhat[pos_j] / m)
                dx[pos_i[0], c, pos_i[1], pos_i[2]] += dy_j * gamma[c] * dxhat_j_dx_i
    return dx, dgamma, dbeta


def batch_norm2d_eval(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
) -> np.ndarray:
    """(BN7), (BN4) with the running statistics."""
    y = np.empty(x.shape)
    for n, c, h, w in np.ndindex(x.shape):
        xhat = (float(x[n, c, h, w]) - running_mean[c]) / math.sqrt(running_var[c] + eps)
        y[n, c, h, w] = gamma[c] * xhat + beta[c]
    return y


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """(CE1)–(CE3) row by row: −mean_n log softmax[n, labels[n]]."""
    N = logits.shape[0]
    total = 0.0
    for n in range(N):
        row = [float(v) for v in logits[n]]
        shift = max(row)
        log_sum = math.log(sum(math.exp(v - shift) for v in row))
        total += -((row[int(labels[n])] - shift) - log_sum)
    return total / N


def softmax_cross_entropy_grad(logits: np.ndarray, labels: np.ndarray, dloss: float) -> np.ndarray:
    """(CE4) dlogits[n,k] = dloss·(softmax[n,k] − [k = labels[n]])/N."""
    N, K = logits.shape
    dlogits = np.empty((N, K))
    for n in range(N):
        row = [float(v) for v in logits[n]]
        shift = max(row)
        denominator = sum(math.exp(v - shift) for v in row)
        for k in range(K):
            probability = math.exp(row[k] - shift) / denominator
            onehot = 1.0 if k == int(labels[n]) else 0.0
            dlogits[n, k] = dloss * (probability - onehot) / N
    return dlogits


def mse_loss(pred: np.ndarray, target: np.ndarray) -> float:
    """(MSE1) the mean of (pred − target)² over all elements."""
    total = 0.0
    for index in np.ndindex(pred.shape):
        total += (float(pred[index]) - float(target[index])) ** 2
    return total / pred.size


def mse_loss_grad(pred: np.ndarray, target: np.ndarray, dloss: float) -> np.ndarray:
    """(MSE2) dpred = dloss·2·(pred − target)/numel."""
    out = np.empty(pred.shape)
    for index in np.ndindex(pred.shape):
        out[index] = dloss * 2.0 * (float(pred[index]) - float(target[index])) / pred.size
    return out


def numerical_gradient(
    objective: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-6
) -> np.ndarray:
    """Central differences (f(x + step·e) − f(x − step·e)) / (2·step) for every element of x."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + step
        plus = objective(x.copy())
        x[index] = saved - step
        minus = objective(x.copy())
        x[index] = saved
        grad[index] = (plus - minus) / (2 * step)
    return grad
