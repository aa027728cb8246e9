# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The bias of a convolution, compiled (src/bias.h): (F1)'s bias term added in place and
its gradient (B1).

y and dy are (N, K, PQ) arrays, C-contiguous, of any shape with that many elements, read
flat; b and db (K,), of their dtype (float32 or float64). Each call runs its planes without
the GIL on up to `threads` threads.
"""

from convprop._native._runtime cimport (
    Block,
    Flat,
    allocate,
    check_range,
    check_threads,
    fits,
    run_parallel,
    take,
)


cdef extern from *:
    """
    #define KERNELS "bias.h"
    #include "typed.h"
    """
    void add_bias_f32(float *y, const float *b, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo,
                      Py_ssize_t hi) noexcept nogil
    void add_bias_f64(double *y, const double *b, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo,
                      Py_ssize_t hi) noexcept nogil
    void bias_grad_f32(const float *dy, double *parts, Py_ssize_t K, Py_ssize_t PQ,
                       Py_ssize_t k0, Py_ssize_t kc, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void bias_grad_f64(const double *dy, double *parts, Py_ssize_t K, Py_ssize_t PQ,
                       Py_ssize_t k0, Py_ssize_t kc, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void bias_grad_sum_f32(const double *parts, float *db, Py_ssize_t N, Py_ssize_t k0,
                           Py_ssize_t kc) noexcept nogil
    void bias_grad_sum_f64(const double *parts, double *db, Py_ssize_t N, Py_ssize_t k0,
                           Py_ssize_t kc) noexcept nogil


cdef struct Bias:
    int kind            # 4 (float) or 8 (double)
    char *y             # add_bias: y, updated in place
    const char *b
    const char *dy      # bias_grad
    double *parts       # bias_grad: each plane's sum, in double
    Py_ssize_t K, PQ
    Py_ssize_t k0, kc   # bias_grad: the filters [k0, k0 + kc)


cdef Py_ssize_t add_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Bias *c = <Bias *>ctx
    if c.kind == 4:
        add_bias_f32(<float *>c.y, <const float *>c.b, c.K, c.PQ, lo, hi)
    else:
        add_bias_f64(<double *>c.y, <const double *>c.b, c.K, c.PQ, lo, hi)
    return 0


cdef Py_ssize_t grad_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Bias *c = <Bias *>ctx
    if c.kind == 4:
        bias_grad_f32(<const float *>c.dy, c.parts, c.K, c.PQ, c.k0, c.kc, lo, hi)
    else:
        bias_grad_f64(<const double *>c.dy, c.parts, c.K, c.PQ, c.k0, c.kc, lo, hi)
    return 0


cdef Py_ssize_t planes_of(Flat a, str name, Py_ssize_t K, Py_ssize_t PQ, str op) except -1:
    """N*K, the planes of an (N, K, PQ) array a; a ValueError where a has another size."""
    cdef Py_ssize_t[2] dims = [K, PQ]
    if K < 1 or PQ < 1 or not fits(dims, 2) or a.count % (K * PQ) != 0:
        raise ValueError(
            f"{op}: {name} of {a.count} elements is not (N, {K}, {PQ}); expected positive K "
            f"and PQ and a multiple of K*PQ elements, got K={K}, PQ={PQ}"
        )
    return a.count // PQ


def add_bias(y, b, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(F1)'s bias term in place for the planes (n, k) in [lo, hi): y[n, k, :] += b[k].

    y (updated): N*K*PQ elements; b: K elements of y's dtype.
    """
    cdef str op = "add_bias"
    cdef Bias c
    check_threads(threads, op)
    cdef Flat fy = take(y, op, "y", 0, -1, True, None, None, None)
    c.kind = fy.kind
    check_range(lo, hi, planes_of(fy, "y", K, PQ, op), op, "N*K planes")
    cdef Flat fb = take(b, op, "b", c.kind, K, False, "K", None, None)
    c.y, c.b, c.dy, c.parts, c.K, c.PQ = fy.data, fb.data, NULL, NULL, K, PQ
    with nogil:
        run_parallel(add_range, &c, lo, hi, threads, 1)


def bias_grad(dy, db, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(B1) db[k] = the sum of dy[n, k, :] over n and the PQ positions, for the filters k in
    [lo, hi); each plane summed in double, the N planes of a filter added in the order of n,
    whatever thread took a plane. Filters outside [lo, hi) are not written.

    dy: N*K*PQ elements; db (written): K elements of dy's dtype.
    """
    cdef str op = "bias_grad"
    cdef Bias c
    check_threads(threads, op)
    cdef Flat fdy = take(dy, op, "dy", 0, -1, False, None, None, None)
    c.kind = fdy.kind
    cdef Py_ssize_t N = planes_of(fdy, "dy", K, PQ, op) // K
    check_range(lo, hi, K, op, "K filters")
    cdef Flat fdb = take(db, op, "db", c.kind, K, True, "K", None, None)
    # plane by plane in memory order, each plane's sum apart (see bias_grad in bias.h)
    c.k0, c.kc, c.K, c.PQ, c.dy, c.y, c.b = lo, hi - lo, K, PQ, fdy.data, NULL, NULL
    cdef Py_ssize_t planes = N * c.kc
    cdef Block parts = allocate(planes, sizeof(double))
    c.parts = <double *>parts.data
    with nogil:
        if planes > 0:
            run_parallel(grad_range, &c, 0, planes, threads, 1)
        if c.kind == 4:
            bias_grad_sum_f32(c.parts, <float *>fdb.data, N, c.k0, c.kc)
        else:
            bias_grad_sum_f64(c.parts, <double *>fdb.data, N, c.k0, c.kc)
