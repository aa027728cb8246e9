# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Depthwise convolution (F1, B2, B3 with C/G = 1; DW1-DW3), compiled (src/depthwise.h).

Filter k reads channel k / M only (K = M*C, a channel multiplier M). The arrays are
C-contiguous float32 or float64 arrays of any shape, read flat; `geom` is the 15 integers
of the convolution (_runtime.CONV_FIELDS). Each call runs its planes without the GIL on up
to `threads` threads; a plane is computed by one thread, so the results do not depend on
the thread count.
"""

from convprop._native._runtime cimport (
    Block,
    ConvGeom,
    Flat,
    allocate,
    check_range,
    check_threads,
    conv_geometry,
    fits,
    run_parallel,
    scratch,
    take,
    team_size,
    wide_cols,
    wide_rows,
)

from convprop._native._runtime import CONV_FIELDS


cdef extern from *:
    """
    #define KERNELS "depthwise.h"
    #include "typed.h"
    """
    void depthwise_forward_f32(const float *x, const float *w, const float *b, float *y,
                               float *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_forward_f64(const double *x, const double *w, const double *b, double *y,
                               double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_backward_data_f32(const float *dy, const float *w, float *dx, float *scratch,
                                     const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                     Py_ssize_t hi) noexcept nogil
    void depthwise_backward_data_f64(const double *dy, const double *w, double *dx,
                                     double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                     Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_backward_weight_f32(const float *dy, const float *x, float *plane_sums,
                                       float *scratch, const Py_ssize_t *offs,
                                       const ConvGeom *g, Py_ssize_t k0, Py_ssize_t kc,
                                       Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_backward_weight_f64(const double *dy, const double *x, double *plane_sums,
                                       double *scratch, const Py_ssize_t *offs,
                                       const ConvGeom *g, Py_ssize_t k0, Py_ssize_t kc,
                                       Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_backward_both_f32(const float *dy, const float *x, const float *w, float *dx,
                                     float *plane_sums, float *scratch, const Py_ssize_t *offs,
                                     const ConvGeom *g, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void depthwise_backward_both_f64(const double *dy, const double *x, const double *w,
                                     double *dx, double *plane_sums, double *scratch,
                                     const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                     Py_ssize_t hi) noexcept nogil
    void depthwise_weight_sum_f32(const float *plane_sums, float *dw, Py_ssize_t N,
                                  Py_ssize_t k0, Py_ssize_t kc, Py_ssize_t RS) noexcept nogil
    void depthwise_weight_sum_f64(const double *plane_sums, double *dw, Py_ssize_t N,
                                  Py_ssize_t k0, Py_ssize_t kc, Py_ssize_t RS) noexcept nogil


cdef enum Pass:
    FORWARD          # (F1): x, w, b -> y, planes (n, k)
    BACKWARD_DATA    # (B3): dy, w -> dx, planes (n, c)
    BACKWARD_WEIGHT  # (B2): dy, x -> plane sums, planes (n, k) of filters [k0, k0 + kc)
    BACKWARD_BOTH    # (B3) and (B2), stride 1: dy, x, w -> dx, plane sums, planes (n, c)


cdef struct Depthwise:
    Pass which
    int kind                 # 4 (float) or 8 (double)
    const char *a            # x (FORWARD), dy (the backward passes)
    const char *b            # w (FORWARD, BACKWARD_DATA), x (BACKWARD_WEIGHT, BACKWARD_BOTH)
    const char *w            # w (BACKWARD_BOTH)
    const char *bias         # b or NULL (FORWARD)
    char *out                # y, dx (FORWARD, BACKWARD_DATA, BACKWARD_BOTH)
    char *plane_sums         # each plane's tap sums (BACKWARD_WEIGHT, BACKWARD_BOTH)
    char *scratch            # `scratch_bytes` per worker
    size_t scratch_bytes
    const Py_ssize_t *offs   # offs[t] = r*dil_h*Wr + s*dil_w: the wide offset of tap t
    ConvGeom g
    Py_ssize_t k0, kc        # BACKWARD_WEIGHT: the filters [k0, k0 + kc)


cdef Py_ssize_t depthwise_range(void *ctx, int worker, Py_ssize_t lo,
                                Py_ssize_t hi) noexcept nogil:
    cdef Depthwise *c = <Depthwise *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    if c.kind == 4:
        if c.which == FORWARD:
            depthwise_forward_f32(<const float *>c.a, <const float *>c.b, <const float *>c.bias,
                                  <float *>c.out, <float *>s, c.offs, &c.g, lo, hi)
        elif c.which == BACKWARD_DATA:
            depthwise_backward_data_f32(<const float *>c.a, <const float *>c.b, <float *>c.out,
                                        <float *>s, c.offs, &c.g, lo, hi)
        elif c.which == BACKWARD_WEIGHT:
            depthwise_backward_weight_f32(<const float *>c.a, <const float *>c.b,
                                          <float *>c.plane_sums, <float *>s, c.offs, &c.g,
                                          c.k0, c.kc, lo, hi)
        else:
            depthwise_backward_both_f32(<const float *>c.a, <const float *>c.b,
                                        <const float *>c.w, <float *>c.out,
                                        <float *>c.plane_sums, <float *>s, c.offs, &c.g, lo, hi)
    else:
        if c.which == FORWARD:
            depthwise_forward_f64(<const double *>c.a, <const double *>c.b,
                                  <const double *>c.bias, <double *>c.out, <double *>s, c.offs,
                                  &c.g, lo, hi)
        elif c.which == BACKWARD_DATA:
            depthwise_backward_data_f64(<const double *>c.a, <const double *>c.b,
                                        <double *>c.out, <double *>s, c.offs, &c.g, lo, hi)
        elif c.which == BACKWARD_WEIGHT:
            depthwise_backward_weight_f64(<const double *>c.a, <const double *>c.b,
                                          <double *>c.plane_sums, <double *>s, c.offs, &c.g,
                                          c.k0, c.kc, lo, hi)
        else:
            depthwise_backward_both_f64(<const double *>c.a, <const double *>c.b,
                                        <const double *>c.w, <double *>c.out,
                                        <double *>c.plane_sums, <double *>s, c.offs, &c.g, lo,
                                        hi)
    return 0


cdef void weight_sum(Depthwise *c, char *dw, Py_ssize_t k0, Py_ssize_t kc) noexcept nogil:
    """dw[k] for k in [k0, k0 + kc): each filter's N plane sums added in the order of n."""
    cdef Py_ssize_t RS = c.g.R * c.g.S
    if c.kind == 4:
        depthwise_weight_sum_f32(<const float *>c.plane_sums, <float *>dw, c.g.N, k0, kc, RS)
    else:
        depthwise_weight_sum_f64(<const double *>c.plane_sums, <double *>dw, c.g.N, k0, kc, RS)


cdef Block tap_offsets(ConvGeom *g):
    """offs[t] = r*dil_h*Wr + s*dil_w: the wide offset of tap t = r*S + s (depthwise.h)."""
    cdef Block offs = allocate(g.R * g.S, sizeof(Py_ssize_t))
    cdef Py_ssize_t *o = <Py_ssize_t *>offs.data
    cdef Py_ssize_t Wr = wide_cols(g), r, s
    for r in range(g.R):
        for s in range(g.S):
            o[r * g.S + s] = r * g.dil_h * Wr + s * g.dil_w
    return offs


cdef Block plane_sums(ConvGeom *g, Py_ssize_t filters, int kind):
    """The tap sums of N*filters planes, R*S each; past the size limit there is no memory
    for them either."""
    cdef Py_ssize_t[3] dims = [g.N, filters, g.R * g.S]
    if not fits(dims, 3):
        raise MemoryError(f"{g.N} x {filters} x {g.R * g.S} tap sums")
    return allocate(g.N * filters * g.R * g.S, kind)


cdef int check_multiplier(ConvGeom *g, str op, tuple geom) except -1:
    if g.K % g.C != 0:
        raise ValueError(
            f"{op}: K={g.K} is not a multiple of C={g.C}; expected K = M*C filters for a "
            f"channel multiplier M, got geometry "
            f"{', '.join(f'{f}={v}' for f, v in zip(CONV_FIELDS, geom))}"
        )
    return 0


cdef object depthwise(Pass which, str op, a, b, bias, out, tuple geom, Py_ssize_t lo,
                      Py_ssize_t hi, int threads):
    """The three separate passes: two inputs and one output, sizes by role."""
    cdef Depthwise c
    c.which = which
    if which != FORWARD and bias is not None:
        raise TypeError(
            f"{op}: only the forward pass takes a bias; expected None, got {type(bias).__name__}"
        )
    conv_geometry(geom, &c.g, op)
    check_threads(threads, op)
    check_multiplier(&c.g, op, geom)
    cdef ConvGeom *g = &c.g
    cdef Py_ssize_t nx = g.N * g.C * g.H * g.W, ny = g.N * g.K * g.P * g.Q, nw = g.K * g.R * g.S
    cdef Flat fa, fb, fo, fbias
    if which == FORWARD:
        check_range(lo, hi, g.N * g.K, op, "N*K planes")
        fa = take(a, op, "x", 0, nx, False, "N*C*H*W", CONV_FIELDS, geom)
        fb = take(b, op, "w", fa.kind, nw, False, "K*R*S", CONV_FIELDS, geom)
        fo = take(out, op, "y", fa.kind, ny, True, "N*K*P*Q", CONV_FIELDS, geom)
    elif which == BACKWARD_DATA:
        check_range(lo, hi, g.N * g.C, op, "N*C planes")
        fa = take(a, op, "dy", 0, ny, False, "N*K*P*Q", CONV_FIELDS, geom)
        fb = take(b, op, "w", fa.kind, nw, False, "K*R*S", CONV_FIELDS, geom)
        fo = take(out, op, "dx", fa.kind, nx, True, "N*C*H*W", CONV_FIELDS, geom)
    else:
        check_range(lo, hi, g.K, op, "K filters")
        fa = take(a, op, "dy", 0, ny, False, "N*K*P*Q", CONV_FIELDS, geom)
        fb = take(b, op, "x", fa.kind, nx, False, "N*C*H*W", CONV_FIELDS, geom)
        fo = take(out, op, "dw", fa.kind, nw, True, "K*R*S", CONV_FIELDS, geom)
    c.kind = fa.kind
    c.a, c.b, c.w, c.out, c.bias = fa.data, fb.data, NULL, fo.data, NULL
    if bias is not None:  # (F1)'s bias, added with the copy out
        fbias = take(bias, op, "b", c.kind, g.K, False, "K", CONV_FIELDS, geom)
        c.bias = fbias.data
    # each worker's wide region, a wide plane between two margins and the per-tap sums
    cdef Py_ssize_t Wr = wide_cols(g), Hr = wide_rows(g)
    # the weight pass runs over the N planes of each filter in [lo, hi)
    cdef int workers = (team_size(0, g.N * (hi - lo), threads) if which == BACKWARD_WEIGHT
                        else team_size(lo, hi, threads))
    cdef Block work = scratch(3 * Hr * Wr + g.P * Wr, c.kind, workers)
    cdef Block offs = tap_offsets(g)
    cdef Block sums
    c.scratch, c.scratch_bytes, c.offs = work.data, work.stride, <Py_ssize_t *>offs.data
    if which != BACKWARD_WEIGHT:
        with nogil:
            run_parallel(depthwise_range, &c, lo, hi, workers, 1)
        return None
    if hi == lo:
        return None
    # (B2) plane by plane in memory order, each plane's tap sums apart, then each filter's N
    # shares added in the order of n (see depthwise_backward_weight in depthwise.h)
    c.k0, c.kc = lo, hi - lo
    sums = plane_sums(g, c.kc, c.kind)
    c.plane_sums = sums.data
    with nogil:
        run_parallel(depthwise_range, &c, 0, g.N * c.kc, workers, 1)
        weight_sum(&c, c.out, c.k0, c.kc)
    return None


def depthwise_forward(x, w, b, y, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(F1) with C/G = 1 for the planes (n, k) in [lo, hi): y[n, k] = b[k] + the sum over
    (r, s) of w[k, r, s] times x_pad[n, k / M] at the tap's offset.

    x: N*C*H*W elements; w: K*R*S; b: K or None; y (written): N*K*P*Q, of x's dtype.
    """
    return depthwise(FORWARD, "depthwise_forward", x, w, b, y, geom, lo, hi, threads)


def depthwise_backward_data(dy, w, b, dx, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi,
                            int threads=1):
    """(B3) with C/G = 1 for the planes (n, c) in [lo, hi): dx, the full convolution of the
    stride-dilated dy with rot180(w); cells never read stay zero.

    dy: N*K*P*Q elements; w: K*R*S; b: None (only the forward pass takes a bias);
    dx (written): N*C*H*W, of dy's dtype.
    """
    return depthwise(BACKWARD_DATA, "depthwise_backward_data", dy, w, b, dx, geom, lo, hi,
                     threads)


def depthwise_backward_weight(dy, x, b, dw, tuple geom not None, Py_ssize_t lo, Py_ssize_t hi,
                              int threads=1):
    """(B2) with C/G = 1 for the filters k in [lo, hi): dw[k, r, s] = the sum over (n, p, q)
    of dy[n, k, p, q] times the x_pad cell its tap (r, s) reads; each filter's N plane sums
    added in the order of n, whatever thread took a plane. Filters outside [lo, hi) are not
    written.

    dy: N*K*P*Q elements; x: N*C*H*W; b: None; dw (written): K*R*S, of dy's dtype.
    """
    return depthwise(BACKWARD_WEIGHT, "depthwise_backward_weight", dy, x, b, dw, geom, lo, hi,
                     threads)


def depthwise_backward(dy, x, w, dx, dw, tuple geom not None, int threads=1):
    """(B3) and (B2) of a depthwise layer with stride 1 in one pass over dy, for all planes:
    the bits of depthwise_backward_data and depthwise_backward_weight.

    dy: N*K*P*Q elements; x: N*C*H*W; w: K*R*S; dx (written): N*C*H*W; dw (written): K*R*S,
    all of dy's dtype.
    """
    cdef str op = "depthwise_backward"
    cdef Depthwise c
    c.which = BACKWARD_BOTH
    conv_geometry(geom, &c.g, op)
    check_threads(threads, op)
    cdef ConvGeom *g = &c.g
    if g.K % g.C != 0 or g.stride_h != 1 or g.stride_w != 1:
        raise ValueError(
            f"{op}: expected K a multiple of C and stride 1, got K={g.K}, C={g.C}, "
            f"stride=({g.stride_h}, {g.stride_w})"
        )
    cdef Py_ssize_t nx = g.N * g.C * g.H * g.W, ny = g.N * g.K * g.P * g.Q, nw = g.K * g.R * g.S
    cdef Flat fdy = take(dy, op, "dy", 0, ny, False, "N*K*P*Q", CONV_FIELDS, geom)
    c.kind = fdy.kind
    cdef Flat fx = take(x, op, "x", c.kind, nx, False, "N*C*H*W", CONV_FIELDS, geom)
    cdef Flat fw = take(w, op, "w", c.kind, nw, False, "K*R*S", CONV_FIELDS, geom)
    cdef Flat fdx = take(dx, op, "dx", c.kind, nx, True, "N*C*H*W", CONV_FIELDS, geom)
    cdef Flat fdw = take(dw, op, "dw", c.kind, nw, True, "K*R*S", CONV_FIELDS, geom)
    c.a, c.b, c.w, c.out, c.bias = fdy.data, fx.data, fw.data, fdx.data, NULL
    # dxr and xr (Hr*Wr each), then dy's wide plane between margins of up to Hr*Wr each
    cdef Py_ssize_t Wr = wide_cols(g), Hr = wide_rows(g)
    cdef int workers = team_size(0, g.N * g.C, threads)
    cdef Block offs = tap_offsets(g)
    cdef Block sums = plane_sums(g, g.K, c.kind)
    cdef Block work = scratch(4 * Hr * Wr + g.P * Wr, c.kind, workers)
    c.scratch, c.scratch_bytes, c.offs = work.data, work.stride, <Py_ssize_t *>offs.data
    c.plane_sums = sums.data
    with nogil:
        run_parallel(depthwise_range, &c, 0, g.N * g.C, workers, 1)
        weight_sum(&c, fdw.data, 0, g.K)
    return None
