"""The FFT algorithm's short transforms (T7), (T8), compiled: both DFT-matrix products on
blocks of planes that stay in the core's cache (conv2d_fft's derivation block).

  a^[u, v] = sum_i e^{-2πi u (r0 + i·sh)/Lh} sum_j e^{-2πi v (c0 + j·sw)/Lw} a[i, j]    (T7)
  a[r0 + i·sh, c0 + j·sw] = 1/(Lh·Lw) sum_{u,v} c_v Re( a^[u,v] e^{+2πi(...)} )         (T8)
The products' sums run in another order than NumPy's: the same values to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel
from convprop._native._compiled import kernels


def dft_small_forward(planes: Any, coef: Any, Lh: int, Wb: int, conj: bool = False) -> Any:
    """(T7): planes (M, h, w) -> the half spectra (Lh·Wb, M) complex, conjugated with
    ``conj``; ``coef`` holds the DFT matrices Cw, Sw (Wb × w) then Ch, Sh (Lh × h),
    flattened, of the planes' dtype."""
    planes = numpy.ascontiguousarray(planes)
    M, h, w = planes.shape
    spec = numpy.empty((Lh * Wb, M), dtype=numpy.result_type(planes.dtype, numpy.complex64))
    dims = (M, h, w, Lh, Wb, int(conj))
    work = 8 * spec.size * (h + w)  # the multiply-adds of the two products
    coef = numpy.ascontiguousarray(coef)
    parallel(kernels.dft_small_forward, M, work, planes, coef, spec.view(planes.dtype), dims)
    return spec


def dft_small_inverse(spec: Any, coef: Any, Lh: int, h: int, w: int, conj: bool = False) -> Any:
    """(T8): the half spectra (Lh·Wb, M) complex (conjugated first with ``conj``) ->
    planes (M, h, w); ``coef`` holds Ch, Sh (Lh × h) then E (w × 2·Wb), flattened, of the
    spectra's real dtype."""
    spec = numpy.ascontiguousarray(spec)
    real = spec.real.dtype
    F, M = spec.shape
    planes = numpy.empty((M, h, w), dtype=real)
    dims = (M, h, w, Lh, F // Lh, int(conj))
    work = 8 * spec.size * (h + w)
    coef = numpy.ascontiguousarray(coef)
    parallel(kernels.dft_small_inverse, M, work, spec.view(real), coef, planes, dims)
    return planes
