"""Naive float64 references for pooling in 1-3 dimensions: explicit loops, slow on purpose.

Written from the equations of docs/derivations.md section 23 (PN1-PN4, MPN1-MPN3, MPI1,
APN1-APN3, LPP1-LPP4, AMP1-AMP3, MU1-MU3) and section 10 (AA1); none calls the code under
test. Windows are walked in x's own coordinates: tap r of window o reads cell
``o*stride - pad + r*dil`` on each axis, and a cell outside [0, size) is padding.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def out_size(size: int, kernel: int, stride: int, pad: int, dil: int, ceil_mode: bool) -> int:
    """(PN1) / (PN2) along one axis, from real-number floor and ceil."""
    span = (size + 2 * pad - dil * (kernel - 1) - 1) / stride
    if not ceil_mode:
        return math.floor(span) + 1  # (PN1)
    out = math.ceil(span) + 1  # (PN2)
    if (out - 1) * stride >= size + pad:
        out -= 1
    return out


Axes = tuple[int, ...]


def _geometry(
    x_shape: Axes, kernel: Axes, stride: Axes, pad: Axes, dil: Axes, ceil_mode: bool
) -> tuple[Axes, Axes]:
    sizes = tuple(x_shape[2:])
    outs = tuple(
        out_size(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(sizes, kernel, stride, pad, dil, strict=True)
    )
    return sizes, outs


def _cells(o: Axes, kernel: Axes, stride: Axes, pad: Axes, dil: Axes) -> list[Axes]:
    """Every tap's cell of window o, in row-major tap order (PN3), in x's coordinates."""
    return [
        tuple(oa * s - p + ra * d for oa, ra, s, p, d in zip(o, r, stride, pad, dil, strict=True))
        for r in itertools.product(*(range(k) for k in kernel))
    ]


def _real_cells(o: Axes, kernel: Axes, stride: Axes, sizes: Axes) -> list[Axes]:
    """The cells of window o inside x, for windows without padding or dilation."""
    flat = (0,) * len(kernel), (1,) * len(kernel)
    return [cell for cell in _cells(o, kernel, stride, *flat) if _inside(cell, sizes)]


def _inside(cell: tuple[int, ...], sizes: tuple[int, ...]) -> bool:
    return all(0 <= c < n for c, n in zip(cell, sizes, strict=True))


def _flat(cell: tuple[int, ...], sizes: tuple[int, ...]) -> int:
    """(MPI1): row-major position of a cell in its plane."""
    index = 0
    for c, n in zip(cell, sizes, strict=True):
        index = index * n + c
    return index


def max_pool_ref(
    x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...],
    dil: tuple[int, ...], ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(MPN1), (MPN2), (MPI1): y (N, C, *out) and the flat index of each window's winner.

    Padding never wins; among equal maxima the first tap in row-major order wins; a NaN
    replaces the running maximum whenever it comes (the last NaN wins).
    """
    N, C = x.shape[:2]
    sizes, outs = _geometry(x.shape, kernel, stride, pad, dil, ceil_mode)
    y = np.zeros((N, C, *outs))
    winner = np.zeros((N, C, *outs), dtype=np.int64)
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in outs)):
            best, where = -math.inf, None
            for cell in _cells(o, kernel, stride, pad, dil):
                if not _inside(cell, sizes):
                    continue  # padding (-inf) never wins
                value = x[(n, c, *cell)]
                if where is None or value > best or math.isnan(value):
                    best, where = value, cell
            assert where is not None, "a window without a real cell (PN4)"
            y[(n, c, *o)] = best
            winner[(n, c, *o)] = _flat(where, sizes)
    return y, winner


def scatter_ref(dy: np.ndarray, winner: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """(MPN3), (AMP3): each dy[n, c, o] added to the cell winner[n, c, o] of x[n, c]."""
    N, C = x_shape[:2]
    dx = np.zeros((N, C, math.prod(x_shape[2:])))
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in dy.shape[2:])):
            dx[n, c, winner[(n, c, *o)]] += dy[(n, c, *o)]
    return dx.reshape(x_shape)


def _divisor(
    o: Axes, sizes: Axes, kernel: Axes, stride: Axes, pad: Axes, include_pad: bool,
    override: int | None,
) -> int:  # fmt: skip
    """(APN1): the product of the per-axis counts of (AP1), or the override."""
    if override is not None:
        return override
    divisor = 1
    for oa, n, k, s, p in zip(o, sizes, kernel, stride, pad, strict=True):
        start = oa * s - p
        end = min(start + k, n + p)
        divisor *= end - start if include_pad else min(end, n) - max(start, 0)
    return divisor


def avg_pool_ref(
    x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...],
    ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None,
) -> np.ndarray:  # fmt: skip
    """(APN1), (APN2): the window sum of real cells over the divisor."""
    N, C = x.shape[:2]
    ones = (1,) * len(kernel)
    sizes, outs = _geometry(x.shape, kernel, stride, pad, ones, ceil_mode)
    y = np.zeros((N, C, *outs))
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in outs)):
            cells = [cell for cell in _cells(o, kernel, stride, pad, ones) if _inside(cell, sizes)]
            total = sum(x[(n, c, *cell)] for cell in cells)
            divisor = _divisor(o, sizes, kernel, stride, pad, count_include_pad, divisor_override)
            y[(n, c, *o)] = total / divisor
    return y


def avg_pool_backward_ref(
    dy: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    pad: tuple[int, ...], count_include_pad: bool = True, divisor_override: int | None = None,
) -> np.ndarray:  # fmt: skip
    """(APN3): dy[n, c, o] / divisor added to every real cell of window o."""
    N, C = x_shape[:2]
    sizes = tuple(x_shape[2:])
    ones = (1,) * len(kernel)
    dx = np.zeros(x_shape)
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in dy.shape[2:])):
            divisor = _divisor(o, sizes, kernel, stride, pad, count_include_pad, divisor_override)
            for cell in _cells(o, kernel, stride, pad, ones):
                if _inside(cell, sizes):
                    dx[(n, c, *cell)] += dy[(n, c, *o)] / divisor
    return dx


def lp_pool_ref(
    x: np.ndarray, p: float, kernel: tuple[int, ...], stride: tuple[int, ...],
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(LPP1), (LPP2): y and the scaled window sum Z, both (N, C, *out)."""
    N, C = x.shape[:2]
    flat = (0,) * len(kernel), (1,) * len(kernel)
    sizes, outs = _geometry(x.shape, kernel, stride, *flat, ceil_mode)
    K = math.prod(kernel)
    y, Z = np.zeros((N, C, *outs)), np.zeros((N, C, *outs))
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in outs)):
            cells = _real_cells(o, kernel, stride, sizes)
            S = sum(x[(n, c, *cell)] ** p for cell in cells)  # (LPP1)
            Z[(n, c, *o)] = K / len(cells) * S  # (LPP2)
            y[(n, c, *o)] = _real_power(Z[(n, c, *o)], 1 / p)  # (LPP2)
    return y, Z


def _real_power(z: float, exponent: float) -> float:
    """z ** exponent over the reals: NaN for a negative z and a non-integer exponent."""
    if z >= 0:
        return float(z**exponent)
    if not float(exponent).is_integer():
        return math.nan
    return float(z ** int(exponent))


def lp_pool_backward_ref(
    dy: np.ndarray, x: np.ndarray, p: float, kernel: tuple[int, ...], stride: tuple[int, ...],
    ceil_mode: bool = False,
) -> np.ndarray:  # fmt: skip
    """(LPP3), (LPP4): dy (K/|w|) x^(p-1) / y^(p-1) summed over the windows; 0 where Z = 0."""
    y, Z = lp_pool_ref(x, p, kernel, stride, ceil_mode)
    N, C = x.shape[:2]
    sizes = tuple(x.shape[2:])
    K = math.prod(kernel)
    dx = np.zeros(x.shape)
    for n, c in itertools.product(range(N), range(C)):
        for o in itertools.product(*(range(v) for v in y.shape[2:])):
            if Z[(n, c, *o)] == 0:
                continue  # (LPP4)
            cells = _real_cells(o, kernel, stride, sizes)
            for cell in cells:
                dx[(n, c, *cell)] += (
                    dy[(n, c, *o)]
                    * K
                    / len(cells)
                    * x[(n, c, *cell)] ** (p - 1)
                    / y[(n, c, *o)] ** (p - 1)
                )  # (LPP3)
    return dx


def _bin(index: int, size: int, out: int) -> range:
    """(AA1): cells floor(p*size/out) <= h < ceil((p+1)*size/out)."""
    return range(math.floor(index * size / out), math.ceil((index + 1) * size / out))


def adaptive_max_pool2d_ref(x: np.ndarray, out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(AMP1), (AMP2): y and the flat index h*W + w of each bin's first maximum."""
    N, C, H, W = x.shape
    y = np.zeros((N, C, *out))
    winner = np.zeros((N, C, *out), dtype=np.int64)
    for n, c, p, q in itertools.product(range(N), range(C), range(out[0]), range(out[1])):
        best, where = -math.inf, None
        for h in _bin(p, H, out[0]):
            for w in _bin(q, W, out[1]):
                if where is None or x[n, c, h, w] > best or math.isnan(x[n, c, h, w]):
                    best, where = x[n, c, h, w], h * W + w
        y[n, c, p, q], winner[n, c, p, q] = best, where
    return y, winner


def adaptive_avg_pool1d_ref(x: np.ndarray, out: int) -> np.ndarray:
    """(PL1) read directly: the mean of each bin (AA1) of the signal."""
    N, C, L = x.shape
    y = np.zeros((N, C, out))
    for n, c, o in itertools.product(range(N), range(C), range(out)):
        cells = _bin(o, L, out)
        y[n, c, o] = sum(x[n, c, i] for i in cells) / len(cells)
    return y


def max_unpool2d_ref(
    x: np.ndarray, indices: np.ndarray, out: tuple[int, int], dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(MU2), (MU3): y, written in row-major order (the last write stays), and dx for dy."""
    N, C = x.shape[:2]
    H, W = out
    y = np.zeros((N, C, H * W))
    writer: dict[tuple[int, int, int], tuple[int, ...]] = {}
    for n, c in itertools.product(range(N), range(C)):
        for p, q in itertools.product(range(x.shape[2]), range(x.shape[3])):
            cell = int(indices[n, c, p, q])
            y[n, c, cell] = x[n, c, p, q]  # (MU2) a later entry overwrites
            writer[(n, c, cell)] = (n, c, p, q)
    dx = np.zeros(x.shape)
    for (n, c, cell), entry in writer.items():
        dx[entry] = dy.reshape(N, C, H * W)[n, c, cell]  # (MU3) the written entry only
    return y.reshape(N, C, H, W), dx
