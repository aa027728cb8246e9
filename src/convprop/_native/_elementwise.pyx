# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Element-wise activations (A1-A3) and the sum of two arrays (AR1, AR2), compiled
(src/elementwise.h).

The arrays are C-contiguous float32 or float64 arrays of one dtype and size, any shape,
read flat. Each call runs the elements [lo, hi) without the GIL on up to `threads`
threads, in chunks of whole cache lines (ELEMENT_ALIGN elements).
"""

from convprop._native._runtime cimport Flat, check_range, check_threads, run_parallel, take


cdef extern from *:
    """
    #define KERNELS "elementwise.h"
    #include "typed.h"
    """
    void relu_forward_f32(const float *x, float *y, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void relu_forward_f64(const double *x, double *y, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void relu_backward_f32(const float *dy, const float *x, float *dx, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil
    void relu_backward_f64(const double *dy, const double *x, double *dx, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil
    void add_forward_f32(const float *a, const float *b, float *y, Py_ssize_t lo,
                         Py_ssize_t hi) noexcept nogil
    void add_forward_f64(const double *a, const double *b, double *y, Py_ssize_t lo,
                         Py_ssize_t hi) noexcept nogil
    void add_backward_f32(const float *dy, float *da, float *db, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil
    void add_backward_f64(const double *dy, double *da, double *db, Py_ssize_t lo,
                          Py_ssize_t hi) noexcept nogil


# elements per chunk of the element-wise loops: whole cache lines of float64
cdef enum:
    ELEMENT_ALIGN = 64


cdef struct Relu:
    int kind           # 4 (float) or 8 (double)
    const char *dy     # backward only
    const char *x      # x (forward), y = max(x, 0) (backward: its sign gives f')
    char *out          # y (forward), dx (backward)


cdef Py_ssize_t forward_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Relu *c = <Relu *>ctx
    if c.kind == 4:
        relu_forward_f32(<const float *>c.x, <float *>c.out, lo, hi)
    else:
        relu_forward_f64(<const double *>c.x, <double *>c.out, lo, hi)
    return 0


cdef Py_ssize_t backward_range(void *ctx, int worker, Py_ssize_t lo,
                               Py_ssize_t hi) noexcept nogil:
    cdef Relu *c = <Relu *>ctx
    if c.kind == 4:
        relu_backward_f32(<const float *>c.dy, <const float *>c.x, <float *>c.out, lo, hi)
    else:
        relu_backward_f64(<const double *>c.dy, <const double *>c.x, <double *>c.out, lo, hi)
    return 0


def relu_forward(x, y, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(A2) y = max(x, 0) for the elements [lo, hi), as NumPy's maximum: a NaN stays NaN
    and -0 becomes +0.

    x: n elements; y (written): n elements of x's dtype.
    """
    cdef str op = "relu_forward"
    cdef Relu c
    check_threads(threads, op)
    cdef Flat fx = take(x, op, "x", 0, -1, False, None, None, None)
    check_range(lo, hi, fx.count, op, "the elements of x")
    c.kind = fx.kind
    cdef Flat fy = take(y, op, "y", c.kind, fx.count, True, "the size of x", None, None)
    c.x, c.out, c.dy = fx.data, fy.data, NULL
    with nogil:
        run_parallel(forward_range, &c, lo, hi, threads, ELEMENT_ALIGN)


def relu_backward(dy, y, dx, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(A1), (A3) dx = dy * (y > 0) for the elements [lo, hi), y = max(x, 0) the forward's
    output (y > 0 exactly where x > 0): a product, not a select, so that dx is NumPy's
    dy * (y > 0) bit for bit, -0 and NaN included.

    dy: n elements; y: n elements; dx (written): n elements, all of dy's dtype.
    """
    cdef str op = "relu_backward"
    cdef Relu c
    check_threads(threads, op)
    cdef Flat fdy = take(dy, op, "dy", 0, -1, False, None, None, None)
    check_range(lo, hi, fdy.count, op, "the elements of dy")
    c.kind = fdy.kind
    cdef Flat fy = take(y, op, "y", c.kind, fdy.count, False, "the size of dy", None, None)
    cdef Flat fdx = take(dx, op, "dx", c.kind, fdy.count, True, "the size of dy", None, None)
    c.dy, c.x, c.out = fdy.data, fy.data, fdx.data
    with nogil:
        run_parallel(backward_range, &c, lo, hi, threads, ELEMENT_ALIGN)


cdef struct Sum:
    int kind           # 4 (float) or 8 (double)
    const char *a      # forward: a; backward: dy
    const char *b      # forward: b
    char *out          # forward: y; backward: da
    char *out2         # backward: db


cdef Py_ssize_t add_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Sum *c = <Sum *>ctx
    if c.kind == 4:
        add_forward_f32(<const float *>c.a, <const float *>c.b, <float *>c.out, lo, hi)
    else:
        add_forward_f64(<const double *>c.a, <const double *>c.b, <double *>c.out, lo, hi)
    return 0


cdef Py_ssize_t add_backward_range(void *ctx, int worker, Py_ssize_t lo,
                                   Py_ssize_t hi) noexcept nogil:
    cdef Sum *c = <Sum *>ctx
    if c.kind == 4:
        add_backward_f32(<const float *>c.a, <float *>c.out, <float *>c.out2, lo, hi)
    else:
        add_backward_f64(<const double *>c.a, <double *>c.out, <double *>c.out2, lo, hi)
    return 0


def add_forward(a, b, y, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(AR1) y = a + b for the elements [lo, hi), arrays of one size and dtype.

    a, b: n elements; y (written): n elements of a's dtype.
    """
    cdef str op = "add_forward"
    cdef Sum c
    check_threads(threads, op)
    cdef Flat fa = take(a, op, "a", 0, -1, False, None, None, None)
    check_range(lo, hi, fa.count, op, "the elements of a")
    c.kind = fa.kind
    cdef Flat fb = take(b, op, "b", c.kind, fa.count, False, "the size of a", None, None)
    cdef Flat fy = take(y, op, "y", c.kind, fa.count, True, "the size of a", None, None)
    c.a, c.b, c.out, c.out2 = fa.data, fb.data, fy.data, NULL
    with nogil:
        run_parallel(add_range, &c, lo, hi, threads, ELEMENT_ALIGN)


def add_backward(dy, da, db, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(AR2) da = dy and db = dy for the elements [lo, hi), both written in one pass.

    dy: n elements; da, db (written): n elements of dy's dtype each.
    """
    cdef str op = "add_backward"
    cdef Sum c
    check_threads(threads, op)
    cdef Flat fdy = take(dy, op, "dy", 0, -1, False, None, None, None)
    check_range(lo, hi, fdy.count, op, "the elements of dy")
    c.kind = fdy.kind
    cdef Flat fda = take(da, op, "da", c.kind, fdy.count, True, "the size of dy", None, None)
    cdef Flat fdb = take(db, op, "db", c.kind, fdy.count, True, "the size of dy", None, None)
    c.a, c.b, c.out, c.out2 = fdy.data, NULL, fda.data, fdb.data
    with nogil:
        run_parallel(add_backward_range, &c, lo, hi, threads, ELEMENT_ALIGN)
