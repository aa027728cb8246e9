# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One Adam/AdamW step (ADAM2-ADAM7) in one pass over the elements, compiled (src/adam.h).

The arrays are C-contiguous float32 or float64 arrays of one dtype and size, any shape,
read flat, updated in place. Each call runs the elements [lo, hi) without the GIL on up to
`threads` threads, in chunks of whole cache lines (ELEMENT_ALIGN elements).
"""

from convprop._native._runtime cimport (
    AdamScalars,
    Flat,
    check_range,
    check_threads,
    run_parallel,
    take,
)


cdef extern from *:
    """
    #define KERNELS "adam.h"
    #include "typed.h"
    """
    void adam_step_f32(float *p, const float *g, float *m, float *v, float *vmax,
                       const AdamScalars *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void adam_step_f64(double *p, const double *g, double *m, double *v, double *vmax,
                       const AdamScalars *a, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


# elements per chunk: whole cache lines of float64
cdef enum:
    ELEMENT_ALIGN = 64

SCALARS = (
    "decay", "l2", "weight", "beta2", "one_minus_beta2", "bc2_sqrt", "eps", "step_size",
    "maximize", "amsgrad", "decoupled",
)
"""The 11 values of ``scalars``, in order (see AdamScalars in src/common.h)."""


cdef struct Adam:
    int kind            # 4 (float) or 8 (double)
    char *p
    const char *g
    char *m
    char *v
    char *vmax          # NULL without amsgrad
    AdamScalars a


cdef Py_ssize_t adam_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Adam *c = <Adam *>ctx
    if c.kind == 4:
        adam_step_f32(<float *>c.p, <const float *>c.g, <float *>c.m, <float *>c.v,
                      <float *>c.vmax, &c.a, lo, hi)
    else:
        adam_step_f64(<double *>c.p, <const double *>c.g, <double *>c.m, <double *>c.v,
                      <double *>c.vmax, &c.a, lo, hi)
    return 0


def adam_step(p, g, m, v, vmax, tuple scalars not None, Py_ssize_t lo, Py_ssize_t hi,
              int threads=1):
    """(ADAM2)-(ADAM7) in place for the elements [lo, hi), each operation in the order and
    precision of the NumPy code of Adam.step: the same bits.

    p, m, v (written), g: n elements each; vmax (written): n elements, or None without
    amsgrad; all of p's dtype. scalars: (decay, l2, weight, beta2, one_minus_beta2,
    bc2_sqrt, eps, step_size, maximize, amsgrad, decoupled), see SCALARS.
    """
    cdef str op = "adam_step"
    cdef Adam c
    if len(scalars) != 11:
        raise TypeError(
            f"{op}: scalars holds {len(scalars)} values; expected 11 ({', '.join(SCALARS)})"
        )
    c.a.decay, c.a.l2, c.a.weight, c.a.beta2 = scalars[0], scalars[1], scalars[2], scalars[3]
    c.a.one_minus_beta2, c.a.bc2_sqrt, c.a.eps = scalars[4], scalars[5], scalars[6]
    c.a.step_size = scalars[7]
    c.a.maximize, c.a.amsgrad, c.a.decoupled = bool(scalars[8]), bool(scalars[9]), bool(scalars[10])
    if c.a.amsgrad == (vmax is None):
        raise ValueError(
            f"{op}: expected vmax exactly when amsgrad is set, got amsgrad={bool(c.a.amsgrad)} "
            f"and vmax {'None' if vmax is None else 'an array'}"
        )
    check_threads(threads, op)
    cdef Flat fp = take(p, op, "p", 0, -1, True, None, None, None)
    check_range(lo, hi, fp.count, op, "the elements of p")
    c.kind = fp.kind
    cdef Py_ssize_t n = fp.count
    cdef Flat fg = take(g, op, "g", c.kind, n, False, "the size of p", None, None)
    cdef Flat fm = take(m, op, "m", c.kind, n, True, "the size of p", None, None)
    cdef Flat fv = take(v, op, "v", c.kind, n, True, "the size of p", None, None)
    cdef Flat fvmax
    c.p, c.g, c.m, c.v, c.vmax = fp.data, fg.data, fm.data, fv.data, NULL
    if vmax is not None:
        fvmax = take(vmax, op, "vmax", c.kind, n, True, "the size of p", None, None)
        c.vmax = fvmax.data
    with nogil:
        run_parallel(adam_range, &c, lo, hi, threads, ELEMENT_ALIGN)
