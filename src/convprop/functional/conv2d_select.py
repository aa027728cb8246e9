"""The ``auto`` algorithm choice: a cost model, per pass.

Each algorithm's time for one pass is estimated as arithmetic at an algorithm-specific
rate plus the memory it moves at a bandwidth; the cheapest algorithm that does not
decline the case wins. ``direct`` never declines, so ``auto`` never does either.

Passes: "forward" (y), "data" (dx, equation B3), "weight" (dw, equation B2).
"""

from __future__ import annotations

import math

from convprop._shapes import ConvGeometry

# Effective rates of one CPU core-pair, in floating-point operations and bytes per second.
GEMM_FLOPS = 60e9  # large batched matmul
SMALL_GEMM_FLOPS = 8e9  # matmul/einsum with a dimension below 16
MEMORY_BYTES = 4e9  # strided copies and slice-adds
FFT_FLOPS = 6e9  # scipy.fft, counted as 5·L·log2(L) per real transform


def _gemm_rate(*dims: int) -> float:
    return GEMM_FLOPS if min(dims) >= 16 else SMALL_GEMM_FLOPS


def _estimate(name: str, geom: ConvGeometry, pass_name: str, itemsize: int) -> float:
    G = geom.groups
    C_g, K_g = geom.C // G, geom.K // G
    taps = geom.R * geom.S
    outputs = geom.N * geom.P * geom.Q
    macs: float = 2.0 * outputs * geom.K * C_g * taps
    x_bytes = geom.N * geom.C * geom.H * geom.W * itemsize
    cols_bytes = outputs * geom.C * taps * itemsize
    if name == "direct":
        # one einsum per tap; the input gradient convolves the stride-dilated dy
        waste = geom.stride_h * geom.stride_w if pass_name == "data" else 1
        return (macs * waste / _gemm_rate(C_g, K_g) / 2) + taps * (x_bytes + cols_bytes / taps) / (
            MEMORY_BYTES
        )
    if name == "im2col":
        return macs / _gemm_rate(C_g * taps, K_g) + 2 * cols_bytes / MEMORY_BYTES
    if name == "fft":
        Hp, Wp = geom.padded_hw
        length = Hp * Wp
        n_transforms = geom.N * (geom.C + geom.K) + geom.K * C_g
        fft_cost = 5.0 * length * math.log2(max(length, 2)) * n_transforms / FFT_FLOPS
        spectral = 8.0 * length / 2 * geom.N * geom.K * C_g / _gemm_rate(C_g, K_g)
        return fft_cost + spectral
    if name == "winograd":
        tiles = geom.N * math.ceil(geom.P / 2) * math.ceil(geom.Q / 2)
        spectral = 2.0 * 16 * tiles * geom.K * C_g / _gemm_rate(C_g, K_g)
        transforms = 16 * 3 * tiles * (geom.C + geom.K) * itemsize / MEMORY_BYTES
        return spectral + transforms
    raise KeyError(name)


def choose(geom: ConvGeometry, pass_name: str, dtype: str, candidates: list[str]) -> str:
    """Return the cheapest of ``candidates`` (algorithms that accept this case) for one pass.

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (8, 64, 32, 32), (64, 64, 9, 9), None,
    ...                   stride=1, padding=4, dilation=1, groups=1)
    >>> choose(g, "forward", "float32", ["direct", "im2col", "fft"])
    'fft'
    """
    itemsize = 8 if dtype == "float64" else 4
    return min(candidates, key=lambda name: _estimate(name, geom, pass_name, itemsize))
