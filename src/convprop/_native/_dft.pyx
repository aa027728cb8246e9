# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The FFT algorithm's short transforms (T7, T8) as products with DFT matrices, compiled
(src/dft.h), DFT_LANES planes at a time.

The arrays are C-contiguous float32 or float64 arrays of any shape, read flat; the half
spectra (Lh*Wb, M) complex are given as their 2*Lh*Wb*M reals ((re, im) pairs). `dims` is
the 6 integers (M, h, w, Lh, Wb, conj). Each call runs the planes [lo, hi) without the GIL
on up to `threads` threads.
"""

from convprop._native._runtime cimport (
    Block,
    Flat,
    check_range,
    check_threads,
    fits,
    run_parallel,
    scratch,
    take,
    team_size,
)


cdef extern from *:
    """
    #define KERNELS "dft.h"
    #include "typed.h"
    """
    enum:
        DFT_LANES
    void dft_small_forward_f32(const float *a, const float *coef, float *spec, float *scratch,
                               Py_ssize_t M, Py_ssize_t h, Py_ssize_t w, Py_ssize_t Lh,
                               Py_ssize_t Wb, int conj, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil
    void dft_small_forward_f64(const double *a, const double *coef, double *spec,
                               double *scratch, Py_ssize_t M, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t Lh, Py_ssize_t Wb, int conj, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil
    void dft_small_inverse_f32(const float *spec, const float *coef, float *planes,
                               float *scratch, Py_ssize_t M, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t Lh, Py_ssize_t Wb, int conj, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil
    void dft_small_inverse_f64(const double *spec, const double *coef, double *planes,
                               double *scratch, Py_ssize_t M, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t Lh, Py_ssize_t Wb, int conj, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil


DFT_FIELDS = ("M", "h", "w", "Lh", "Wb", "conj")
"""The 6 integers of ``dims``, in order."""


cdef struct Dft:
    bint forward         # (T7), else (T8)
    int kind             # 4 (float) or 8 (double)
    const char *source   # planes (T7), spec (T8)
    const char *coef
    char *target         # spec (T7), planes (T8)
    char *scratch        # `scratch_bytes` per worker
    size_t scratch_bytes
    Py_ssize_t M, h, w, Lh, Wb
    int conj


cdef Py_ssize_t dft_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Dft *c = <Dft *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    if c.kind == 4 and c.forward:
        dft_small_forward_f32(<const float *>c.source, <const float *>c.coef, <float *>c.target,
                              <float *>s, c.M, c.h, c.w, c.Lh, c.Wb, c.conj, lo, hi)
    elif c.kind == 4:
        dft_small_inverse_f32(<const float *>c.source, <const float *>c.coef, <float *>c.target,
                              <float *>s, c.M, c.h, c.w, c.Lh, c.Wb, c.conj, lo, hi)
    elif c.forward:
        dft_small_forward_f64(<const double *>c.source, <const double *>c.coef,
                              <double *>c.target, <double *>s, c.M, c.h, c.w, c.Lh, c.Wb,
                              c.conj, lo, hi)
    else:
        dft_small_inverse_f64(<const double *>c.source, <const double *>c.coef,
                              <double *>c.target, <double *>s, c.M, c.h, c.w, c.Lh, c.Wb,
                              c.conj, lo, hi)
    return 0


cdef object dft_small(bint forward, str op, source, coef, target, tuple dims, Py_ssize_t lo,
                      Py_ssize_t hi, int threads):
    cdef Dft c
    c.forward = forward
    if len(dims) != 6:
        raise TypeError(
            f"{op}: dims holds {len(dims)} values; expected 6 ({', '.join(DFT_FIELDS)})"
        )
    c.M, c.h, c.w, c.Lh, c.Wb = dims[0], dims[1], dims[2], dims[3], dims[4]
    cdef Py_ssize_t conj = dims[5]
    cdef Py_ssize_t[3] spec_dims = [c.M, 2 * c.Lh, c.Wb]
    cdef Py_ssize_t[3] plane_dims = [c.M, c.h, c.w]
    if (c.M < 1 or c.h < 1 or c.w < 1 or c.Lh < 1 or c.Wb < 1 or c.h > 1024 or c.w > 1024
            or c.Lh > 1024 or c.Wb > 1024 or (conj != 0 and conj != 1)
            or not fits(spec_dims, 3) or not fits(plane_dims, 3)):
        raise ValueError(
            f"{op}: invalid dimensions (M, h, w, Lh, Wb, conj); expected positive sizes, h, w, "
            f"Lh and Wb at most 1024 and conj 0 or 1, got "
            f"{', '.join(f'{f}={v}' for f, v in zip(DFT_FIELDS, dims))}"
        )
    c.conj = <int>conj
    check_range(lo, hi, c.M, op, "M planes")
    check_threads(threads, op)
    cdef Py_ssize_t n_planes = c.M * c.h * c.w, n_spec = 2 * c.Lh * c.Wb * c.M
    cdef Py_ssize_t n_coef = 2 * c.Wb * c.w + 2 * c.Lh * c.h
    cdef Flat fs, fc, ft
    if forward:  # coef: Cw, Sw (Wb x w each), then Ch, Sh (Lh x h each)
        fs = take(source, op, "planes", 0, n_planes, False, "M*h*w", DFT_FIELDS, dims)
        fc = take(coef, op, "coef", fs.kind, n_coef, False, "2*Wb*w + 2*Lh*h", DFT_FIELDS, dims)
        ft = take(target, op, "spec", fs.kind, n_spec, True, "2*Lh*Wb*M", DFT_FIELDS, dims)
    else:  # coef: Ch, Sh (Lh x h each), then E (w x 2*Wb)
        fs = take(source, op, "spec", 0, n_spec, False, "2*Lh*Wb*M", DFT_FIELDS, dims)
        fc = take(coef, op, "coef", fs.kind, n_coef, False, "2*Lh*h + 2*Wb*w", DFT_FIELDS, dims)
        ft = take(target, op, "planes", fs.kind, n_planes, True, "M*h*w", DFT_FIELDS, dims)
    c.kind, c.source, c.coef, c.target = fs.kind, fs.data, fc.data, ft.data
    cdef Py_ssize_t elements
    if forward:
        elements = (c.h * c.w + 2 * c.h * c.Wb) * DFT_LANES
    else:
        elements = (2 * c.Lh * c.Wb + 2 * c.h * c.Wb + c.h * c.w) * DFT_LANES
    cdef int workers = team_size(lo, hi, threads)
    cdef Block work = scratch(elements, c.kind, workers)
    c.scratch, c.scratch_bytes = work.data, work.stride
    with nogil:
        run_parallel(dft_range, &c, lo, hi, workers, DFT_LANES)
    return None


def dft_small_forward(planes, coef, spec, tuple dims not None, Py_ssize_t lo, Py_ssize_t hi,
                      int threads=1):
    """(T7) for the planes m in [lo, hi) of planes (M, h, w): spec[(u*Wb + v)*M + m] = the
    sum over i of (Ch[u, i] + i*Sh[u, i]) times the sum over j of (Cw[v, j] + i*Sw[v, j])
    * planes[m, i, j], as (re, im) pairs; with conj, the complex conjugate.

    planes: M*h*w elements; coef: Cw, Sw (Wb x w each), then Ch, Sh (Lh x h each);
    spec (written): 2*Lh*Wb*M reals; all of one dtype.
    """
    return dft_small(True, "dft_small_forward", planes, coef, spec, dims, lo, hi, threads)


def dft_small_inverse(spec, coef, planes, tuple dims not None, Py_ssize_t lo, Py_ssize_t hi,
                      int threads=1):
    """(T8) for the planes m in [lo, hi): planes[m] from the half spectra spec (conjugated
    first with conj), along the rows with Ch, Sh, then along the columns with E.

    spec: 2*Lh*Wb*M reals; coef: Ch, Sh (Lh x h each), then E (w x 2*Wb);
    planes (written): M*h*w elements; all of one dtype.
    """
    return dft_small(False, "dft_small_inverse", spec, coef, planes, dims, lo, hi, threads)
