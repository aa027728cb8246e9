# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Max pooling (MP1-MP3), compiled (src/pool.h).

The arrays are C-contiguous arrays of any shape, read flat: x, y, dy, dx float32 or
float64, argmax int32 (the tap r*S + s of each window's maximum); `geom` is the 12 integers
of the pooling (_runtime.POOL_FIELDS). Each call runs the planes (n, c) of [lo, hi)
without the GIL on up to `threads` threads.
"""

from libc.stdint cimport int32_t

from convprop._native._runtime cimport (
    Flat,
    PoolGeom,
    check_range,
    check_threads,
    pool_geometry,
    run_parallel,
    take,
)

from convprop._native._runtime import POOL_FIELDS


cdef extern from *:
    """
    #define KERNELS "pool.h"
    #include "typed.h"
    """
    void maxpool_forward_f32(const float *x, float *y, int32_t *argmax, const PoolGeom *g,
                             Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void maxpool_forward_f64(const double *x, double *y, int32_t *argmax, const PoolGeom *g,
                             Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    Py_ssize_t maxpool_backward_f32(const float *dy, const int32_t *argmax, float *dx,
                                    const PoolGeom *g, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    Py_ssize_t maxpool_backward_f64(const double *dy, const int32_t *argmax, double *dx,
                                    const PoolGeom *g, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


cdef struct MaxPool:
    int kind             # 4 (float) or 8 (double)
    const char *source   # x (forward), dy (backward)
    char *target         # y (forward), dx (backward)
    int32_t *argmax      # written by the forward pass, read by the backward pass
    PoolGeom g


cdef Py_ssize_t forward_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef MaxPool *c = <MaxPool *>ctx
    if c.kind == 4:
        maxpool_forward_f32(<const float *>c.source, <float *>c.target, c.argmax, &c.g, lo, hi)
    else:
        maxpool_forward_f64(<const double *>c.source, <double *>c.target, c.argmax, &c.g, lo,
                            hi)
    return 0


cdef Py_ssize_t backward_range(void *ctx, int worker, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil:
    cdef MaxPool *c = <MaxPool *>ctx
    if c.kind == 4:
        return maxpool_backward_f32(<const float *>c.source, c.argmax, <float *>c.target, &c.g,
                                    lo, hi)
    return maxpool_backward_f64(<const double *>c.source, c.argmax, <double *>c.target, &c.g,
                                lo, hi)


def maxpool_forward(x, y, argmax, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(MP1), (MP2) for the planes (n, c) in [lo, hi): y = each window's maximum over its
    real cells, argmax = the tap r*S + s of its first maximum in row-major order (a NaN
    always wins; padding never does).

    x: N*C*H*W elements; y (written): N*C*P*Q of x's dtype; argmax (written): N*C*P*Q int32.
    """
    cdef str op = "max_pool2d_forward"
    cdef MaxPool c
    pool_geometry(geom, &c.g, op)
    check_range(lo, hi, c.g.N * c.g.C, op, "N*C planes")
    check_threads(threads, op)
    cdef Py_ssize_t ny = c.g.N * c.g.C * c.g.P * c.g.Q
    cdef Flat fx = take(x, op, "x", 0, c.g.N * c.g.C * c.g.H * c.g.W, False, "N*C*H*W",
                        POOL_FIELDS, geom)
    c.kind = fx.kind
    cdef Flat fy = take(y, op, "y", c.kind, ny, True, "N*C*P*Q", POOL_FIELDS, geom)
    cdef Flat fa = take(argmax, op, "argmax", -4, ny, True, "N*C*P*Q", POOL_FIELDS, geom)
    c.source, c.target, c.argmax = fx.data, fy.data, <int32_t *>fa.data
    with nogil:
        run_parallel(forward_range, &c, lo, hi, threads, 1)


def maxpool_backward(dy, argmax, dx, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi,
                     int threads=1):
    """(MP3) for the planes (n, c) in [lo, hi): dx[n, c, h, w] = the sum of dy over the
    windows whose arg-max tap lands on (h, w). Returns the number of arg-max entries that
    point outside their window's cells of x (refused, not added).

    dy: N*C*P*Q elements; argmax: N*C*P*Q int32; dx (written): N*C*H*W of dy's dtype.
    """
    cdef str op = "max_pool2d_backward"
    cdef MaxPool c
    pool_geometry(geom, &c.g, op)
    check_range(lo, hi, c.g.N * c.g.C, op, "N*C planes")
    check_threads(threads, op)
    cdef Py_ssize_t ny = c.g.N * c.g.C * c.g.P * c.g.Q
    cdef Flat fdy = take(dy, op, "dy", 0, ny, False, "N*C*P*Q", POOL_FIELDS, geom)
    c.kind = fdy.kind
    cdef Flat fa = take(argmax, op, "argmax", -4, ny, False, "N*C*P*Q", POOL_FIELDS, geom)
    cdef Flat fdx = take(dx, op, "dx", c.kind, c.g.N * c.g.C * c.g.H * c.g.W, True, "N*C*H*W",
                         POOL_FIELDS, geom)
    c.source, c.target, c.argmax = fdy.data, fdx.data, <int32_t *>fa.data
    cdef Py_ssize_t invalid
    with nogil:
        invalid = run_parallel(backward_range, &c, lo, hi, threads, 1)
    return invalid
