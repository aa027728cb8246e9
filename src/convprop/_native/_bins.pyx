# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The FFT algorithm's products per frequency bin (T2, T3, T4), compiled (src/bins.h):
y[i] = A[i] @ B[i], complex, each bin computed whole by one thread, in registers.

The arrays are C-contiguous float32 or float64 arrays of any shape, read flat, each complex
stack given as its reals ((re, im) pairs). `dims` is the 6 integers (I, M, L, Nc, at, bt):
a holds A (I, M, L), or with `at` its transpose (I, L, M); b holds B (I, L, Nc), or with
`bt` its transpose (I, Nc, L); y is (I, M, Nc). Each call runs the bins [lo, hi) without
the GIL on up to `threads` threads.
"""

from convprop._native._runtime cimport (
    Block,
    Flat,
    SIZE_LIMIT,
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
    #define KERNELS "bins.h"
    #include "typed.h"
    """
    void bin_products_f32(const float *a, const float *bm, float *y, float *scratch,
                          Py_ssize_t M, Py_ssize_t L, Py_ssize_t Nc, int at, int bt,
                          Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void bin_products_f64(const double *a, const double *bm, double *y, double *scratch,
                          Py_ssize_t M, Py_ssize_t L, Py_ssize_t Nc, int at, int bt,
                          Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


BIN_FIELDS = ("I", "M", "L", "Nc", "at", "bt")
"""The 6 integers of ``dims``, in order."""


cdef struct Bins:
    int kind           # 4 (float) or 8 (double)
    const char *a
    const char *b
    char *y
    char *scratch      # `scratch_bytes` per worker
    size_t scratch_bytes
    Py_ssize_t M, L, Nc
    int at, bt


cdef Py_ssize_t bins_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Bins *c = <Bins *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    if c.kind == 4:
        bin_products_f32(<const float *>c.a, <const float *>c.b, <float *>c.y, <float *>s,
                         c.M, c.L, c.Nc, c.at, c.bt, lo, hi)
    else:
        bin_products_f64(<const double *>c.a, <const double *>c.b, <double *>c.y, <double *>s,
                         c.M, c.L, c.Nc, c.at, c.bt, lo, hi)
    return 0


def bin_products(a, b, y, tuple dims not None, Py_ssize_t lo, Py_ssize_t hi,
                 int threads=1):
    """y[i] = A[i] @ B[i] (complex) for the bins i in [lo, hi) (T2)-(T4).

    a: 2*I*M*L reals; b: 2*I*L*Nc; y (written): 2*I*M*Nc; all of one dtype.
    """
    cdef str op = "bin_products"
    cdef Bins c
    if len(dims) != 6:
        raise TypeError(
            f"{op}: dims holds {len(dims)} values; expected 6 ({', '.join(BIN_FIELDS)})"
        )
    cdef Py_ssize_t I = dims[0], at = dims[4], bt = dims[5]
    c.M, c.L, c.Nc = dims[1], dims[2], dims[3]
    cdef Py_ssize_t[3] a_dims = [2 * I, c.M, c.L]
    cdef Py_ssize_t[3] b_dims = [2 * I, c.L, c.Nc]
    cdef Py_ssize_t[3] y_dims = [2 * I, c.M, c.Nc]
    if (I < 1 or c.M < 1 or c.L < 1 or c.Nc < 1 or (at != 0 and at != 1)
            or (bt != 0 and bt != 1) or I > SIZE_LIMIT or not fits(a_dims, 3)
            or not fits(b_dims, 3) or not fits(y_dims, 3)):
        raise ValueError(
            f"{op}: invalid dimensions (I, M, L, Nc, at, bt); expected positive sizes whose "
            f"products fit and at, bt 0 or 1, got "
            f"{', '.join(f'{f}={v}' for f, v in zip(BIN_FIELDS, dims))}"
        )
    c.at, c.bt = <int>at, <int>bt
    check_range(lo, hi, I, op, "I bins")
    check_threads(threads, op)
    cdef Flat fa = take(a, op, "a", 0, 2 * I * c.M * c.L, False, "2*I*M*L", BIN_FIELDS, dims)
    c.kind = fa.kind
    cdef Flat fb = take(b, op, "b", c.kind, 2 * I * c.L * c.Nc, False, "2*I*L*Nc", BIN_FIELDS,
                        dims)
    cdef Flat fy = take(y, op, "y", c.kind, 2 * I * c.M * c.Nc, True, "2*I*M*Nc", BIN_FIELDS,
                        dims)
    c.a, c.b, c.y = fa.data, fb.data, fy.data
    # B's rows padded to Ncp complex columns, then A's rows where A is stored transposed
    cdef Py_ssize_t cb = 32 // c.kind, Ncp = (c.Nc + cb - 1) // cb * cb  # BIN_CB of bins.h
    cdef int workers = team_size(lo, hi, threads)
    cdef Block work = scratch(2 * c.L * Ncp + (2 * c.M * c.L if at else 0), c.kind, workers)
    c.scratch, c.scratch_bytes = work.data, work.stride
    with nogil:
        run_parallel(bins_range, &c, lo, hi, workers, 1)
