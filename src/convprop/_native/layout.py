"""The FFT algorithm's layout changes, compiled: strided copies between planes and the
transforms' spatial-first layout (conv2d_fft's (T1)-(T3)).

  spatial_to_planes:  out[m, i, j] = src[r0 + i*sh, c0 + j*sw, m]
  planes_to_spatial:  out[r0 + i*sh, c0 + j*sw, m] = src[m, i, j]
Copies: NumPy's slicing exactly.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel
from convprop._native._compiled import kernels


def spatial_to_planes(
    src: Any, rows: int, cols: int, start: tuple[int, int], step: tuple[int, int]
) -> Any:
    """src (Lh, Lw, M) -> (M, rows, cols): out[m, i, j] = src[r0 + i*sh, c0 + j*sw, m]."""
    src = numpy.ascontiguousarray(src)
    Lh, Lw = src.shape[0], src.shape[1]
    M = src.size // (Lh * Lw)
    out = numpy.empty((M, rows, cols), dtype=src.dtype)
    layout = (Lh, Lw, M, rows, cols, *start, *step)
    parallel(kernels.spatial_to_planes, M, out.size, src, out, layout)
    return out


def planes_to_spatial(src: Any, out: Any, start: tuple[int, int], step: tuple[int, int]) -> None:
    """out[r0 + i*sh, c0 + j*sw, m] = src[m, i, j] for src (M, rows, cols), out (Lh, Lw, M)
    C-contiguous; the other cells of ``out`` keep their values."""
    src = numpy.ascontiguousarray(src)
    M, rows, cols = src.shape[0], src.shape[1], src.shape[2]
    layout = (out.shape[0], out.shape[1], M, rows, cols, *start, *step)
    parallel(kernels.planes_to_spatial, M, src.size, src, out, layout)
