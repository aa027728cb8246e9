"""Naive references for the training utilities: clipping, schedules, augmentation.

Written from the labelled equations of convprop.nn.utils.clip_grad (CLIP1-CLIP5),
convprop.optim.schedules / one_cycle / plateau / sequential (LR3-LR10) and
convprop.data.augment (AUG1-AUG3), with plain Python loops and the math module, slow on
purpose and independent of the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


# ---------------------------------------------------------------------------------------------
# Gradient clipping
# ---------------------------------------------------------------------------------------------
def grad_norm(grads: Sequence[np.ndarray], p: float) -> float:
    """(CLIP1)-(CLIP2): the p-norm of every entry of every gradient, as one vector."""
    entries = [abs(float(v)) for g in grads for v in np.asarray(g, np.float64).ravel()]
    if not entries:
        return 0.0
    if p == math.inf:
        return max(entries)
    return sum(e**p for e in entries) ** (1.0 / p)


def clip_grad_norm(
    grads: Sequence[np.ndarray], max_norm: float, p: float
) -> tuple[float, list[np.ndarray]]:
    """(CLIP3)-(CLIP4): the norm before clipping and the scaled gradients."""
    total = grad_norm(grads, p)
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    scaled = []
    for g in grads:
        out = np.empty(np.shape(g), np.float64)
        for index in np.ndindex(out.shape):
            out[index] = coefficient * float(g[index])
        scaled.append(out)
    return total, scaled


def clip_grad_value(grads: Sequence[np.ndarray], v: float) -> list[np.ndarray]:
    """(CLIP5): each entry into [-v, v]."""
    clipped = []
    for g in grads:
        out = np.empty(np.shape(g), np.float64)
        for index in np.ndindex(out.shape):
            out[index] = min(max(float(g[index]), -v), v)
        clipped.append(out)
    return clipped


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------
def linear_lr(base: float, start: float, end: float, total: int, t: int) -> float:
    """(LR3)."""
    fraction = min(t, total) / total
    return base * (start + (end - start) * fraction)


def one_cycle(
    t: int,
    *,
    max_lr: float,
    total: int,
    pct: float = 0.3,
    anneal: str = "cos",
    low: float = 0.85,
    high: float = 0.95,
    div: float = 25.0,
    final_div: float = 1e4,
    three_phase: bool = False,
) -> tuple[float, float]:
    """(LR4)-(LR6): the rate and momentum of step t."""
    eta0 = max_lr / div
    eta_min = eta0 / final_div
    if three_phase:
        phases = [
            (pct * total - 1, eta0, max_lr, high, low),
            (2 * pct * total - 2, max_lr, eta0, low, high),
            (total - 1, eta0, eta_min, high, high),
        ]
    else:
        phases = [
            (pct * total - 1, eta0, max_lr, high, low),
            (total - 1, max_lr, eta_min, low, high),
        ]

    def interpolate(a: float, b: float, s: float) -> float:
        if anneal == "cos":
            return b + (a - b) * (1 + math.cos(math.pi * s)) / 2
        return a + (b - a) * s

    start = 0.0
    for i, (end, lr_a, lr_b, m_a, m_b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            s = (t - start) / (end - start)
            return interpolate(lr_a, lr_b, s), interpolate(m_a, m_b, s)
        start = end
    raise AssertionError("unreachable")


def plateau_rates(
    metrics: Sequence[float],
    lr: float,
    *,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> list[float]:
    """(LR7)-(LR8): the rate after each metric."""

    def improves(x: float, best: float) -> bool:
        if mode == "min":
            bar = best * (1 - threshold) if threshold_mode == "rel" else best - threshold
            return x < bar
        bar = best * (1 + threshold) if threshold_mode == "rel" else best + threshold
        return x > bar

    best = math.inf if mode == "min" else -math.inf
    bad = wait = 0
    rates = []
    for x in metrics:
        if improves(x, best):
            best, bad = x, 0
        else:
            bad += 1
        if wait > 0:
            wait, bad = wait - 1, 0
        if bad > patience:
            lowered = max(lr * factor, min_lr)
            if lr - lowered > eps:
                lr = lowered
            wait, bad = cooldown, 0
        rates.append(lr)
    return rates


def sequential_lr(
    rates: Sequence[Callable[[int], float]], milestones: Sequence[int], t: int
) -> float:
    """(LR9)-(LR10): schedule i, counted from its milestone, where i milestones are <= t."""
    i = sum(1 for m in milestones if m <= t)
    start = milestones[i - 1] if i > 0 else 0
    return rates[i](t - start)


# ---------------------------------------------------------------------------------------------
# Augmentation, one image at a time
# ---------------------------------------------------------------------------------------------
def random_crop(
    x: np.ndarray,
    tops: Sequence[int],
    lefts: Sequence[int],
    size: tuple[int, int],
    pad: tuple[int, int],
    fill: float = 0.0,
) -> np.ndarray:
    """(AUG1): image b padded by ``pad`` = (pad_h, pad_w) of ``fill``, cut at (tops[b],
    lefts[b]) to ``size``."""
    N, C, H, W = x.shape
    h, w = size
    out = np.full((N, C, h, w), fill, x.dtype)
    for b in range(N):
        for c in range(C):
            for r in range(h):
                for s in range(w):
                    i, j = tops[b] + r - pad[0], lefts[b] + s - pad[1]
                    if 0 <= i < H and 0 <= j < W:
                        out[b, c, r, s] = x[b, c, i, j]
    return out


def horizontal_flip(x: np.ndarray, flips: Sequence[bool]) -> np.ndarray:
    """(AUG2): image b mirrored left-right where flips[b]."""
    out = np.array(x, copy=True)
    W = x.shape[3]
    for b in range(x.shape[0]):
        if flips[b]:
            for s in range(W):
                out[b, :, :, s] = x[b, :, :, W - 1 - s]
    return out
