"""Naive float64 references for pooling and linear layers: explicit loops, slow on purpose.

Each function is written from the equations of convprop.functional.pool2d (PS1, PS2, MP1-MP3,
AP1-AP3, AA1-AA4) and convprop.functional.linear (L1-L4); none calls the code under test.
Windows are walked in x's own coordinates: window (p, q) covers rows
``p*stride_h - pad_h <= h < p*stride_h - pad_h + R``; a row outside [0, H) is padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


def pool_output_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    """(PS1) / (PS2) along one axis, from real-number floor and ceil."""
    span = (size + 2 * pad - kernel) / stride
    if not ceil_mode:
        return math.floor(span) + 1  # (PS1)
    out = math.ceil(span) + 1  # (PS2)
    if (out - 1) * stride >= size + pad:  # the last window would start in the bottom padding
        out -= 1
    return out


def _window_rows(p: int, stride: int, pad: int, kernel: int) -> range:
    """Rows (in x coordinates, padding included) of window p."""
    start = p * stride - pad
    return range(start, start + kernel)


def max_pool2d_ref(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(MP1), (MP2): y (N, C, P, Q) and winner (N, C, P, Q, 2), the (h, w) of each maximum.

    Padding never wins; among equal maxima the first in row-major window order wins.
    """
    N, C, H, W = x.shape
    P = pool_output_size(H, kernel[0], stride[0], pad[0], ceil_mode)
    Q = pool_output_size(W, kernel[1], stride[1], pad[1], ceil_mode)
    y = np.zeros((N, C, P, Q))
    winner = np.zeros((N, C, P, Q, 2), dtype=int)
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    best, where = -math.inf, None
                    for h in _window_rows(p, stride[0], pad[0], kernel[0]):
                        for w in _window_rows(q, stride[1], pad[1], kernel[1]):
                            if not (0 <= h < H and 0 <= w < W):
                                continue  # padding (-inf) never wins
                            if where is None or x[n, c, h, w] > best:
                                best, where = x[n, c, h, w], (h, w)
                    y[n, c, p, q] = best
                    winner[n, c, p, q] = where
    return y, winner


def max_pool2d_backward_ref(
    dy: np.ndarray, winner: np.ndarray, x_shape: tuple[int, ...]
) -> np.ndarray:
    """(MP3): each dy[n, c, p, q] is added to x's cell winner[n, c, p, q]."""
    dx = np.zeros(x_shape)
    N, C, P, Q = dy.shape
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    h, w = winner[n, c, p, q]
                    dx[n, c, h, w] += dy[n, c, p, q]
    return dx


def _avg_divisor(p: int, size: int, kernel: int, stride: int, pad: int, include_pad: bool) -> int:
    """(AP1) along one axis."""
    start = p * stride - pad
    end = min(start + kernel, size + pad)
    return end - start if include_pad else min(end, size) - max(start, 0)


def avg_pool2d_ref(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
    ceil_mode: bool = False, count_include_pad: bool = True,
) -> np.ndarray:  # fmt: skip
    """(AP1), (AP2): y (N, C, P, Q), the window sum of real cells over the divisor."""
    N, C, H, W = x.shape
    P = pool_output_size(H, kernel[0], stride[0], pad[0], ceil_mode)
    Q = pool_output_size(W, kernel[1], stride[1], pad[1], ceil_mode)
    y = np.zeros((N, C, P, Q))
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    total = 0.0
                    for h in _window_rows(p, stride[0], pad[0], kernel[0]):
                        for w in _window_rows(q, stride[1], pad[1], kernel[1]):
                            if 0 <= h < H and 0 <= w < W:
                                total += x[n, c, h, w]
                    divisor = _avg_divisor(
                        p, H, kernel[0], stride[0], pad[0], count_include_pad
                    ) * _avg_divisor(q, W, kernel[1], stride[1], pad[1], count_include_pad)
                    y[n, c, p, q] = total / divisor
    return y


def avg_pool2d_backward_ref(
    dy: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
    pad: tuple[int, int], count_include_pad: bool = True,
) -> np.ndarray:  # fmt: skip
    """(AP3): dy[n, c, p, q] / divisor added to every real cell of window (p, q)."""
    N, C, H, W = x_shape
    dx = np.zeros(x_shape)
    _, _, P, Q = dy.shape
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    divisor = _avg_divisor(
                        p, H, kernel[0], stride[0], pad[0], count_include_pad
                    ) * _avg_divisor(q, W, kernel[1], stride[1], pad[1], count_include_pad)
                    for h in _window_rows(p, stride[0], pad[0], kernel[0]):
                        for w in _window_rows(q, stride[1], pad[1], kernel[1]):
                            if 0 <= h < H and 0 <= w < W:
                                dx[n, c, h, w] += dy[n, c, p, q] / divisor
    return dx


def _bin(p: int, size: int, out: int) -> range:
    """(AA1): rows floor(p*size/out) <= h < ceil((p+1)*size/out)."""
    return range(math.floor(p * size / out), math.ceil((p + 1) * size / out))


def adaptive_avg_pool2d_ref(x: np.ndarray, out: tuple[int, int]) -> np.ndarray:
    """(AA3): y[n, c, p, q] = the mean of x[n, c] over bin p × bin q."""
    N, C, H, W = x.shape
    y = np.zeros((N, C, *out))
    for n in range(N):
        for c in range(C):
            for p in range(out[0]):
                for q in range(out[1]):
                    rows, cols = _bin(p, H, out[0]), _bin(q, W, out[1])
                    total = sum(x[n, c, h, w] for h in rows for w in cols)
                    y[n, c, p, q] = total / (len(rows) * len(cols))
    return y


def adaptive_avg_pool2d_backward_ref(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """(AA4): dy[n, c, p, q] / (bin size) added to every cell of bin p × bin q."""
    N, C, H, W = x_shape
    dx = np.zeros(x_shape)
    _, _, P, Q = dy.shape
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    rows, cols = _bin(p, H, P), _bin(q, W, Q)
                    for h in rows:
                        for w in cols:
                            dx[n, c, h, w] += dy[n, c, p, q] / (len(rows) * len(cols))
    return dx


def linear_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """(L1): y[n, k] = b[k] + sum_c x[n, c] w[k, c]."""
    N, C = x.shape
    K = w.shape[0]
    y = np.zeros((N, K))
    for n in range(N):
        for k in range(K):
            y[n, k] = 0.0 if b is None else b[k]
            for c in range(C):
                y[n, k] += x[n, c] * w[k, c]
    return y


def linear_backward_ref(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L3), (L2), (L4): dx[n, c], dw[k, c], db[k] as explicit sums."""
    N, C = x.shape
    K = w.shape[0]
    dx, dw, db = np.zeros((N, C)), np.zeros((K, C)), np.zeros(K)
    for n in range(N):
        for k in range(K):
            db[k] += dy[n, k]  # (L4)
            for c in range(C):
                dw[k, c] += dy[n, k] * x[n, c]  # (L2)
                dx[n, c] += dy[n, k] * w[k, c]  # (L3)
    return dx, dw, db


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central differences of a scalar function f at x, one coordinate at a time (float64)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        up = f(x.copy())
        x[i] = saved - eps
        down = f(x.copy())
        x[i] = saved
        grad[i] = (up - down) / (2 * eps)
    return grad


# ---------------------------------------------- the pooling cases the tests share


class PoolCase(NamedTuple):
    name: str
    x_shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "ceil_mode": self.ceil_mode}

    @property
    def ref_args(self) -> tuple[Any, ...]:
        return (self.kernel, self.stride, self.padding, self.ceil_mode)


POOL_CASES = [
    PoolCase("2x2-stride2", (2, 3, 4, 4), (2, 2), (2, 2), (0, 0), False),
    PoolCase("3x3-stride1-overlap", (2, 2, 5, 5), (3, 3), (1, 1), (0, 0), False),
    PoolCase("3x3-stride2-pad1", (1, 2, 5, 6), (3, 3), (2, 2), (1, 1), False),
    PoolCase("2x3-nonsquare-pad", (2, 2, 5, 7), (2, 3), (1, 2), (1, 1), False),
    PoolCase("ceil-overhang", (1, 2, 5, 5), (2, 2), (2, 2), (0, 0), True),
    PoolCase("ceil-pad-overlap", (1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True),
    PoolCase("ceil-last-window-dropped", (1, 2, 4, 4), (2, 2), (3, 3), (1, 1), True),
    PoolCase("ceil-nonsquare", (2, 1, 6, 5), (3, 2), (2, 3), (1, 0), True),
    PoolCase("window-equals-input", (2, 3, 3, 4), (3, 4), (1, 1), (0, 0), False),
    PoolCase("stride-above-kernel", (1, 2, 7, 7), (2, 2), (3, 3), (0, 0), False),
    PoolCase("1x1-stride2", (1, 2, 3, 3), (1, 1), (2, 2), (0, 0), False),
    PoolCase("remainder-rows", (1, 1, 7, 5), (3, 3), (2, 2), (0, 0), False),
    # the compiled 2x2 / stride 2 path over rows long enough for vector loops, odd sizes
    PoolCase("2x2-stride2-wide-odd", (2, 3, 9, 21), (2, 2), (2, 2), (0, 0), False),
    PoolCase("2x2-stride2-wide-ceil", (1, 2, 7, 19), (2, 2), (2, 2), (0, 0), True),
]
