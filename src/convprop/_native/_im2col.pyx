# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""im2col (I1) and its adjoint col2im (I5), compiled (src/im2col.h).

The arrays are C-contiguous float32 or float64 arrays of any shape, read flat; `geom` is
the 15 integers of the convolution (_runtime.CONV_FIELDS). Each call runs the planes
(n, c) of [lo, hi) without the GIL on up to `threads` threads.
"""

from convprop._native._runtime cimport (
    ConvGeom,
    Flat,
    check_range,
    check_threads,
    conv_geometry,
    run_parallel,
    take,
)

from convprop._native._runtime import CONV_FIELDS


cdef extern from *:
    """
    #define KERNELS "im2col.h"
    #include "typed.h"
    """
    void im2col_f32(const float *x, float *cols, const ConvGeom *g, int wide, Py_ssize_t lo,
                    Py_ssize_t hi) noexcept nogil
    void im2col_f64(const double *x, double *cols, const ConvGeom *g, int wide, Py_ssize_t lo,
                    Py_ssize_t hi) noexcept nogil
    void col2im_f32(const float *dcols, float *dx, const ConvGeom *g, Py_ssize_t lo,
                    Py_ssize_t hi) noexcept nogil
    void col2im_f64(const double *dcols, double *dx, const ConvGeom *g, Py_ssize_t lo,
                    Py_ssize_t hi) noexcept nogil


cdef struct Columns:
    int kind             # 4 (float) or 8 (double)
    const char *source   # x for im2col, dcols for col2im
    char *target         # cols for im2col, dx for col2im
    ConvGeom g
    int wide             # im2col: (I7)'s order


cdef Py_ssize_t im2col_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Columns *c = <Columns *>ctx
    if c.kind == 4:
        im2col_f32(<const float *>c.source, <float *>c.target, &c.g, c.wide, lo, hi)
    else:
        im2col_f64(<const double *>c.source, <double *>c.target, &c.g, c.wide, lo, hi)
    return 0


cdef Py_ssize_t col2im_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Columns *c = <Columns *>ctx
    if c.kind == 4:
        col2im_f32(<const float *>c.source, <float *>c.target, &c.g, lo, hi)
    else:
        col2im_f64(<const double *>c.source, <double *>c.target, &c.g, lo, hi)
    return 0


def im2col(x, cols, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1,
           bint wide=False):
    """(I1) for the planes (n, c) in [lo, hi): cols[n, c, r, s, p, q] =
    x_pad[n, c, p*stride_h + r*dil_h, q*stride_w + s*dil_w], zero where a tap reads
    padding; with `wide`, the same values in (I7)'s order (C, R, S, N, P, Q).

    x: N*C*H*W elements; cols (written): N*C*R*S*P*Q elements, of x's dtype.
    """
    cdef str op = "im2col"
    cdef Columns c
    conv_geometry(geom, &c.g, op)
    check_range(lo, hi, c.g.N * c.g.C, op, "N*C planes")
    check_threads(threads, op)
    cdef Flat xa = take(x, op, "x", 0, c.g.N * c.g.C * c.g.H * c.g.W, False, "N*C*H*W",
                        CONV_FIELDS, geom)
    c.kind = xa.kind
    cdef Flat ca = take(cols, op, "cols", c.kind, c.g.N * c.g.C * c.g.R * c.g.S * c.g.P * c.g.Q,
                        True, "N*C*R*S*P*Q", CONV_FIELDS, geom)
    c.source, c.target, c.wide = xa.data, ca.data, wide
    with nogil:
        run_parallel(im2col_range, &c, lo, hi, threads, 1)


def col2im(dcols, dx, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(I5) for the planes (n, c) in [lo, hi): dx[n, c, h, w] = the sum of dcols over every
    (r, s, p, q) whose tap reads (h, w), the adjoint of (I1); padding cells receive nothing.

    dcols: N*C*R*S*P*Q elements; dx (written): N*C*H*W elements, of dcols' dtype.
    """
    cdef str op = "col2im"
    cdef Columns c
    conv_geometry(geom, &c.g, op)
    check_range(lo, hi, c.g.N * c.g.C, op, "N*C planes")
    check_threads(threads, op)
    cdef Flat da = take(dcols, op, "dcols", 0, c.g.N * c.g.C * c.g.R * c.g.S * c.g.P * c.g.Q,
                        False, "N*C*R*S*P*Q", CONV_FIELDS, geom)
    c.kind = da.kind
    cdef Flat xa = take(dx, op, "dx", c.kind, c.g.N * c.g.C * c.g.H * c.g.W, True, "N*C*H*W",
                        CONV_FIELDS, geom)
    c.source, c.target, c.wide = da.data, xa.data, 0
    with nogil:
        run_parallel(col2im_range, &c, lo, hi, threads, 1)
