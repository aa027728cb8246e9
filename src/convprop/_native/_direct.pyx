# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The direct algorithm's sums, compiled (src/direct.h): (F1) as (DS2) over output rows and
(B2) as (DS3) over slices of output rows, for layers with few taps (C/G*R*S) per filter,
where im2col's product would be too thin for the BLAS.

The arrays are C-contiguous float32 or float64 arrays of any shape, read flat; `geom` is
the 15 integers of the convolution (_runtime.CONV_FIELDS) and `groups` its G. Each call
runs its rows (or slices) without the GIL on up to `threads` threads; a row (a slice) is
summed by one thread and the slices' partials are added in a fixed order, so the results
do not depend on the thread count.
"""

from libc.string cimport memset

from convprop._native._runtime cimport (
    Block,
    ConvGeom,
    Flat,
    allocate,
    check_count,
    check_range,
    check_threads,
    conv_geometry,
    fits,
    run_parallel,
    scratch,
    take,
    take_float,
    team_size,
)

from convprop._native._runtime import CONV_FIELDS


cdef extern from *:
    """
    #define KERNELS "direct.h"
    #include "typed.h"
    #if !defined(WIDE_KERNELS) /* never called there: wide_kernels_run() is 0 */
    #define direct_forward_wide_f32(x, wt, b, y, s, o, g, G, Kpad, bl, lo, hi) ((void)0)
    #define direct_forward_wide_f64(x, wt, b, y, s, o, g, G, Kpad, bl, lo, hi) ((void)0)
    #define direct_weight_wide_f32(x, dy, p, s, o, g, G, Kpad, Tpad, n, lo, hi) ((void)0)
    #define direct_weight_wide_f64(x, dy, p, s, o, g, G, Kpad, Tpad, n, lo, hi) ((void)0)
    #define direct_weight_wide16_f32(x, dy, p, s, o, g, G, Kpad, Tpad, n, lo, hi) ((void)0)
    #define direct_weight_wide16_f64(x, dy, p, s, o, g, G, Kpad, Tpad, n, lo, hi) ((void)0)
    #endif
    """
    enum:
        DR  # the most output rows per pass over the weight gradient's partials (DS3)
        DIRECT_COLUMNS
        DIRECT_FILTERS
        DIRECT_WIDE
        DIRECT_WIDE16
        DIRECT_WIDE_FILTERS
    int wide_kernels_run() noexcept nogil
    Py_ssize_t round_up(Py_ssize_t a, Py_ssize_t b) noexcept nogil
    Py_ssize_t direct_cols(const ConvGeom *g) noexcept nogil
    Py_ssize_t direct_span(const ConvGeom *g, Py_ssize_t outputs) noexcept nogil
    Py_ssize_t direct_region_outputs(const ConvGeom *g, Py_ssize_t Cg, int itemsize) noexcept nogil
    Py_ssize_t direct_region_row(const ConvGeom *g, Py_ssize_t outputs, Py_ssize_t r) noexcept nogil
    Py_ssize_t direct_weight_regions(Py_ssize_t outputs) noexcept nogil
    int direct_forward_blocking(const ConvGeom *g, Py_ssize_t Kg, Py_ssize_t taps,
                                int itemsize, int wide) noexcept nogil
    int direct_weight_blocking(Py_ssize_t Kg, Py_ssize_t taps, int itemsize,
                               int wide) noexcept nogil
    Py_ssize_t direct_filter_block(int blocking, int itemsize) noexcept nogil
    Py_ssize_t direct_tap_block(int blocking) noexcept nogil
    void direct_filters_f32(const float *w, float *wt, Py_ssize_t G, Py_ssize_t Kg,
                            Py_ssize_t taps, Py_ssize_t Kpad, Py_ssize_t KB) noexcept nogil
    void direct_filters_f64(const double *w, double *wt, Py_ssize_t G, Py_ssize_t Kg,
                            Py_ssize_t taps, Py_ssize_t Kpad, Py_ssize_t KB) noexcept nogil
    void direct_forward_f32(const float *x, const float *wt, const float *b, float *y,
                            float *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                            Py_ssize_t G, Py_ssize_t Kpad, int blocking, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil
    void direct_forward_f64(const double *x, const double *wt, const double *b, double *y,
                            double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                            Py_ssize_t G, Py_ssize_t Kpad, int blocking, Py_ssize_t lo,
                            Py_ssize_t hi) noexcept nogil
    void direct_forward_wide_f32(const float *x, const float *wt, const float *b, float *y,
                                 float *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                 Py_ssize_t G, Py_ssize_t Kpad, int blocking, Py_ssize_t lo,
                                 Py_ssize_t hi) noexcept nogil
    void direct_forward_wide_f64(const double *x, const double *wt, const double *b,
                                 double *y, double *scratch, const Py_ssize_t *offs,
                                 const ConvGeom *g, Py_ssize_t G, Py_ssize_t Kpad, int blocking,
                                 Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_f32(const float *x, const float *dy, float *partials, float *scratch,
                           const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t G,
                           Py_ssize_t Kpad, Py_ssize_t Tpad, Py_ssize_t slices, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil
    void direct_weight_f64(const double *x, const double *dy, double *partials,
                           double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                           Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad, Py_ssize_t slices,
                           Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_wide_f32(const float *x, const float *dy, float *partials,
                                float *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad, Py_ssize_t slices,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_wide_f64(const double *x, const double *dy, double *partials,
                                double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad, Py_ssize_t slices,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_wide16_f32(const float *x, const float *dy, float *partials,
                                  float *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                  Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad,
                                  Py_ssize_t slices, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_wide16_f64(const double *x, const double *dy, double *partials,
                                  double *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                  Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad,
                                  Py_ssize_t slices, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void direct_weight_sum_f32(const float *partials, float *dw, float *row, Py_ssize_t G,
                               Py_ssize_t Kg, Py_ssize_t taps, Py_ssize_t Kpad, Py_ssize_t Tpad,
                               Py_ssize_t slices) noexcept nogil
    void direct_weight_sum_f64(const double *partials, double *dw, double *row, Py_ssize_t G,
                               Py_ssize_t Kg, Py_ssize_t taps, Py_ssize_t Kpad,
                               Py_ssize_t Tpad, Py_ssize_t slices) noexcept nogil


cdef struct Direct:
    int kind               # 4 (float) or 8 (double)
    const char *x
    const char *wt         # forward: the filters in blocks, tap after tap (direct_filters)
    const char *b          # forward: the bias or NULL
    const char *dy         # weight
    char *y                # forward
    char *partials         # weight: one (G, Tpad, Kpad) partial sum per slice
    char *scratch          # `scratch_bytes` per worker
    size_t scratch_bytes
    const Py_ssize_t *offs
    ConvGeom g
    Py_ssize_t G, Kpad, Tpad, slices
    int blocking           # DIRECT_COLUMNS, DIRECT_FILTERS, DIRECT_WIDE, DIRECT_WIDE16 or
                           # DIRECT_WIDE_FILTERS


cdef Py_ssize_t forward_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Direct *c = <Direct *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    cdef bint wide = (c.blocking == DIRECT_WIDE or c.blocking == DIRECT_WIDE16
                      or c.blocking == DIRECT_WIDE_FILTERS)
    if wide and c.kind == 4:
        direct_forward_wide_f32(<const float *>c.x, <const float *>c.wt, <const float *>c.b,
                                <float *>c.y, <float *>s, c.offs, &c.g, c.G, c.Kpad, c.blocking,
                                lo, hi)
    elif wide:
        direct_forward_wide_f64(<const double *>c.x, <const double *>c.wt, <const double *>c.b,
                                <double *>c.y, <double *>s, c.offs, &c.g, c.G, c.Kpad, c.blocking,
                                lo, hi)
    elif c.kind == 4:
        direct_forward_f32(<const float *>c.x, <const float *>c.wt, <const float *>c.b,
                           <float *>c.y, <float *>s, c.offs, &c.g, c.G, c.Kpad, c.blocking, lo,
                           hi)
    else:
        direct_forward_f64(<const double *>c.x, <const double *>c.wt, <const double *>c.b,
                           <double *>c.y, <double *>s, c.offs, &c.g, c.G, c.Kpad, c.blocking, lo,
                           hi)
    return 0


cdef Py_ssize_t weight_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Direct *c = <Direct *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    if c.blocking == DIRECT_WIDE and c.kind == 4:
        direct_weight_wide_f32(<const float *>c.x, <const float *>c.dy, <float *>c.partials,
                               <float *>s, c.offs, &c.g, c.G, c.Kpad, c.Tpad, c.slices, lo, hi)
    elif c.blocking == DIRECT_WIDE:
        direct_weight_wide_f64(<const double *>c.x, <const double *>c.dy, <double *>c.partials,
                               <double *>s, c.offs, &c.g, c.G, c.Kpad, c.Tpad, c.slices, lo, hi)
    elif c.blocking == DIRECT_WIDE16 and c.kind == 4:
        direct_weight_wide16_f32(<const float *>c.x, <const float *>c.dy, <float *>c.partials,
                                 <float *>s, c.offs, &c.g, c.G, c.Kpad, c.Tpad, c.slices, lo, hi)
    elif c.blocking == DIRECT_WIDE16:
        direct_weight_wide16_f64(<const double *>c.x, <const double *>c.dy,
                                 <double *>c.partials, <double *>s, c.offs, &c.g, c.G, c.Kpad,
                                 c.Tpad, c.slices, lo, hi)
    elif c.kind == 4:
        direct_weight_f32(<const float *>c.x, <const float *>c.dy, <float *>c.partials,
                          <float *>s, c.offs, &c.g, c.G, c.Kpad, c.Tpad, c.slices, lo, hi)
    else:
        direct_weight_f64(<const double *>c.x, <const double *>c.dy, <double *>c.partials,
                          <double *>s, c.offs, &c.g, c.G, c.Kpad, c.Tpad, c.slices, lo, hi)
    return 0


cdef int check_groups(ConvGeom *g, Py_ssize_t G, str op) except -1:
    if G < 1 or g.C % G != 0 or g.K % G != 0:
        raise ValueError(
            f"{op}: groups={G} does not divide C={g.C} and K={g.K}; expected a positive G "
            f"with C and K multiples of G, got groups={G}"
        )
    return 0


cdef int check_sizes(ConvGeom *g, Py_ssize_t G, Py_ssize_t Kpad, Py_ssize_t Tpad,
                     Py_ssize_t slices, int itemsize, str op, tuple geom) except -1:
    """The sums' own sizes (direct.h): w (K, C/G*R*S), the filters padded to Kpad and the
    taps to Tpad per group, `slices` partial sums of that size, and DR regions (of rows
    of x_pad) and turned rows of dy per thread must all fit; checked before any array is
    read."""
    cdef Py_ssize_t Cg = g.C // G, taps = Cg * g.R * g.S
    cdef Py_ssize_t outputs = direct_region_outputs(g, Cg, itemsize)
    cdef Py_ssize_t[2] w_dims = [g.K, taps]
    cdef Py_ssize_t[4] partial_dims = [slices, G, Tpad, Kpad]
    cdef Py_ssize_t[4] region_dims = [DR, Cg, direct_span(g, outputs), direct_cols(g)]
    cdef Py_ssize_t[3] dyT_dims = [DR, g.Q, Kpad]
    if not (fits(w_dims, 2) and fits(partial_dims, 4) and fits(region_dims, 4)
            and fits(dyT_dims, 3)):
        raise ValueError(
            f"{op}: the geometry's sizes overflow; expected the filters (K, C/G*R*S), "
            f"{slices} partial sums (G, C/G*R*S, K/G) and the row regions to fit, got "
            f"groups={G}, {', '.join(f'{f}={v}' for f, v in zip(CONV_FIELDS, geom))}"
        )
    return 0


cdef inline Py_ssize_t tap_offset(ConvGeom *g, Py_ssize_t outputs, Py_ssize_t rows,
                                  Py_ssize_t cols, Py_ssize_t t) noexcept nogil:
    """(DS1): where tap t = (c, r, s) of an output row's first column lies in its region
    of `rows` rows per channel (direct.h's direct_region, for `outputs` output rows)."""
    cdef Py_ssize_t ch = t // (g.R * g.S), r = t // g.S % g.R, s = t % g.S
    return (ch * rows + direct_region_row(g, outputs, r)) * cols + s * g.dil_w


_BLOCKINGS = {
    "columns": DIRECT_COLUMNS, "filters": DIRECT_FILTERS, "wide": DIRECT_WIDE,
    "wide16": DIRECT_WIDE16, "wide_filters": DIRECT_WIDE_FILTERS,
}
_NAMES = {number: name for name, number in _BLOCKINGS.items()}


cdef int choose_blocking(ConvGeom *g, Py_ssize_t G, int itemsize, object blocking, bint weight,
                         str op) except -1:
    """The blocking a call runs: direct.h's choice where `blocking` is None, else the one
    named, where it can run ("filters": the forward with unit column stride; "wide" and
    "wide16": a CPU with AVX-512; "wide_filters": both)."""
    cdef Py_ssize_t Kg = g.K // G, taps = g.C // G * g.R * g.S
    if blocking is None:
        if weight:
            return direct_weight_blocking(Kg, taps, itemsize, wide_kernels_run())
        return direct_forward_blocking(g, Kg, taps, itemsize, wide_kernels_run())
    can = {"columns": True, "filters": not weight and g.stride_w == 1,
           "wide": bool(wide_kernels_run()), "wide16": bool(wide_kernels_run()),
           "wide_filters": not weight and g.stride_w == 1 and bool(wide_kernels_run())}
    if not can.get(blocking, False):
        raise ValueError(
            f"{op}: blocking {blocking!r} cannot run here; expected None or one of "
            f"{[name for name, ok in can.items() if ok]}, got {blocking!r} "
            f"(stride_w={g.stride_w}, wide blocking runs: {bool(wide_kernels_run())})"
        )
    return _BLOCKINGS[blocking]


def direct_forward(x, w, b, y, tuple geom not None, Py_ssize_t groups, Py_ssize_t lo, Py_ssize_t hi,
                   int threads=1, blocking=None):
    """(F1) as its sum (DS2) for the output rows (n, g, p) in [lo, hi): each row's input
    rows copied once into a region, the sums in registers (direct.h), in the blocking
    :func:`direct_blocking` names, or the one `blocking` names (the same bits in any).

    x: N*C*H*W elements; w: K*(C/G)*R*S; b: K or None; y (written): N*K*P*Q, of x's dtype.
    """
    cdef str op = "direct_forward"
    cdef Direct c
    conv_geometry(geom, &c.g, op)
    check_threads(threads, op)
    cdef ConvGeom *g = &c.g
    check_groups(g, groups, op)
    check_range(lo, hi, g.N * groups * g.P, op, "N*G*P output rows")
    cdef Flat fx = take_float(x, op, "x", False)
    c.kind = fx.kind
    cdef Py_ssize_t Cg = g.C // groups, Kg = g.K // groups, taps = Cg * g.R * g.S
    c.blocking = choose_blocking(g, groups, c.kind, blocking, False, op)
    cdef Py_ssize_t KB = direct_filter_block(c.blocking, c.kind)
    cdef Py_ssize_t Kpad = round_up(Kg, KB if KB > 64 // c.kind else 64 // c.kind)
    check_sizes(g, groups, Kpad, taps, 1, c.kind, op, geom)
    check_count(fx, op, "x", g.N * g.C * g.H * g.W, "N*C*H*W", CONV_FIELDS, geom)
    cdef Flat fw = take(w, op, "w", c.kind, g.K * taps, False, "K*(C/G)*R*S",
                        CONV_FIELDS + ("G",), geom + (groups,))
    cdef Flat fy = take(y, op, "y", c.kind, g.N * g.K * g.P * g.Q, True, "N*K*P*Q", CONV_FIELDS,
                        geom)
    cdef Flat fb
    c.b = NULL
    if b is not None:
        fb = take(b, op, "b", c.kind, g.K, False, "K", CONV_FIELDS, geom)
        c.b = fb.data
    cdef Py_ssize_t outputs = direct_region_outputs(g, Cg, c.kind)
    cdef Py_ssize_t rows = direct_span(g, outputs), cols = direct_cols(g)
    cdef int workers = team_size(lo, hi, threads)
    cdef Block wt = allocate(groups * taps * Kpad, c.kind)
    cdef Block offs = allocate(taps, sizeof(Py_ssize_t))
    cdef Block work = scratch(Cg * rows * cols, c.kind, workers)
    cdef Py_ssize_t *o = <Py_ssize_t *>offs.data
    cdef Py_ssize_t t
    for t in range(taps):
        o[t] = tap_offset(g, outputs, rows, cols, t)  # (DS1)
    c.x, c.wt, c.y, c.dy, c.partials = fx.data, wt.data, fy.data, NULL, NULL
    c.scratch, c.scratch_bytes, c.offs = work.data, work.stride, o
    c.G, c.Kpad = groups, Kpad
    with nogil:
        if c.kind == 4:
            direct_filters_f32(<const float *>fw.data, <float *>wt.data, groups, Kg, taps, Kpad,
                               KB)
        else:
            direct_filters_f64(<const double *>fw.data, <double *>wt.data, groups, Kg, taps,
                               Kpad, KB)
        run_parallel(forward_range, &c, lo, hi, workers, 1)
    return None


def direct_weight(dy, x, dw, tuple geom not None, Py_ssize_t groups, Py_ssize_t slices,
                  Py_ssize_t lo, Py_ssize_t hi, int threads=1, blocking=None):
    """(B2) as (DS3): the N*G*P output rows cut into `slices` slices; the slices in [lo, hi)
    are summed, each into a partial of its own, then every slice's partial is added into dw
    in slice order (the slices outside [lo, hi) count as zero). `blocking`: as in
    direct_forward, "columns", "wide" or "wide16".

    dy: N*K*P*Q elements; x: N*C*H*W; dw (written): K*(C/G)*R*S, of dy's dtype.
    """
    cdef str op = "direct_weight"
    cdef Direct c
    conv_geometry(geom, &c.g, op)
    check_threads(threads, op)
    cdef ConvGeom *g = &c.g
    check_groups(g, groups, op)
    if slices < 1 or slices > g.N * groups * g.P:
        raise ValueError(
            f"{op}: slices must be in [1, {g.N * groups * g.P}] (output rows), got {slices}"
        )
    check_range(lo, hi, slices, op, "slices")
    cdef Flat fdy = take_float(dy, op, "dy", False)
    c.kind = fdy.kind
    cdef Py_ssize_t Cg = g.C // groups, Kg = g.K // groups, taps = Cg * g.R * g.S
    c.blocking = choose_blocking(g, groups, c.kind, blocking, True, op)
    cdef Py_ssize_t Kpad = round_up(Kg, direct_filter_block(c.blocking, c.kind))
    cdef Py_ssize_t Tpad = round_up(taps, direct_tap_block(c.blocking))
    check_sizes(g, groups, Kpad, Tpad, slices, c.kind, op, geom)
    check_count(fdy, op, "dy", g.N * g.K * g.P * g.Q, "N*K*P*Q", CONV_FIELDS, geom)
    cdef Flat fx = take(x, op, "x", c.kind, g.N * g.C * g.H * g.W, False, "N*C*H*W", CONV_FIELDS,
                        geom)
    cdef Flat fdw = take(dw, op, "dw", c.kind, g.K * taps, True, "K*(C/G)*R*S",
                         CONV_FIELDS + ("G",), geom + (groups,))
    cdef Py_ssize_t outputs = direct_region_outputs(g, Cg, c.kind)
    cdef Py_ssize_t rows = direct_span(g, outputs), cols = direct_cols(g)
    cdef int workers = team_size(lo, hi, threads)
    cdef Py_ssize_t per_slice = groups * Tpad * Kpad
    cdef Block partials = allocate(slices * per_slice, c.kind)
    cdef Block offs = allocate(Tpad, sizeof(Py_ssize_t))
    cdef Block row = allocate(Kpad, c.kind)  # direct_weight_sum's
    cdef Block work = scratch(direct_weight_regions(outputs) * Cg * rows * cols
                              + DR * g.Q * Kpad, c.kind, workers)
    cdef Py_ssize_t *o = <Py_ssize_t *>offs.data
    cdef Py_ssize_t t
    for t in range(Tpad):
        o[t] = tap_offset(g, outputs, rows, cols, t) if t < taps else 0  # (DS1)
    c.x, c.dy, c.partials, c.wt, c.b, c.y = fx.data, fdy.data, partials.data, NULL, NULL, NULL
    c.scratch, c.scratch_bytes, c.offs = work.data, work.stride, o
    c.G, c.Kpad, c.Tpad, c.slices = groups, Kpad, Tpad, slices
    # the slices [lo, hi) zero their own partials (direct_weight); the others count as zero
    cdef size_t slice_bytes = <size_t>per_slice * <size_t>c.kind
    with nogil:
        memset(partials.data, 0, <size_t>lo * slice_bytes)
        memset(partials.data + <size_t>hi * slice_bytes, 0, <size_t>(slices - hi) * slice_bytes)
        run_parallel(weight_range, &c, lo, hi, workers, 1)
        if c.kind == 4:
            direct_weight_sum_f32(<const float *>partials.data, <float *>fdw.data,
                                  <float *>row.data, groups, Kg, taps, Kpad, Tpad, slices)
        else:
            direct_weight_sum_f64(<const double *>partials.data, <double *>fdw.data,
                                  <double *>row.data, groups, Kg, taps, Kpad, Tpad, slices)
    return None


cdef int check_query(ConvGeom *g, tuple geom, Py_ssize_t groups, int itemsize,
                     str op) except -1:
    conv_geometry(geom, g, op)
    if groups < 1 or g.C % groups != 0 or g.K % groups != 0 or (itemsize != 4 and itemsize != 8):
        raise ValueError(
            f"{op}: expected groups dividing C={g.C} and K={g.K} and an itemsize of 4 or 8, "
            f"got groups={groups}, itemsize={itemsize}"
        )
    return 0


def direct_blocking(tuple geom not None, Py_ssize_t groups, int itemsize, bint weight=False):
    """The register blocking direct_forward (or with `weight`, direct_weight) chooses for a
    layer: "filters" (VK = 4 filters by VQ = 64/itemsize columns, stride-1 columns only),
    "columns" (DQ = 6 columns, or taps, by DK = 64/itemsize filters), "wide" (WQ = 8
    columns, or taps, by 128/itemsize filters), "wide16" (16 columns, or taps, by
    64/itemsize filters) or "wide_filters" (8 filters by 128/itemsize columns, the forward
    with stride-1 columns only); the last three only where the CPU has AVX-512."""
    cdef str op = "direct_blocking"
    cdef ConvGeom g
    check_query(&g, geom, groups, itemsize, op)
    return _NAMES[choose_blocking(&g, groups, itemsize, None, weight, op)]


def direct_region_rows(tuple geom not None, Py_ssize_t groups, int itemsize):
    """How many consecutive output rows of one image and group the direct sums read from one
    region (DS1): up to DR = 8 rows sharing the rows of x_pad they read, where that copies no
    more rows than a region per row and the region stays within 256 KB; else 1 (a region per
    output row, of the R rows it reads)."""
    cdef str op = "direct_region_rows"
    cdef ConvGeom g
    check_query(&g, geom, groups, itemsize, op)
    return direct_region_outputs(&g, g.C // groups, itemsize)


def wide_blockings_run():
    """Whether this build has the AVX-512 blockings ("wide", "wide16") and this CPU runs them
    (x86-64-v4)."""
    return bool(wide_kernels_run())
