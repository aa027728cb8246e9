/* convprop._native: the forward sum (F1) computed as written, for layers with few taps.
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. The kernel works over a half-open
 * range [lo, hi) of output rows (n, g, p), so that threads can share one call without
 * writing the same element. Labels are those of docs/derivations.md.
 *
 *   y[n, g*Kg + k, p, q] = b[g*Kg + k] + sum_t wt[g, t, k] * xr[off_t + q*stride_w]      (DS2)
 *
 * over the taps t = (c, r, s) of the group g, xr holding the rows of x_pad that output row
 * (n, g, p) reads and off_t = (c*rows + r)*cols + s*dil_w (DS1): (F1) in another order.
 * im2col would copy every tap of x_pad into a column matrix and multiply it by W; where
 * C/G*R*S is small (a first layer: 1 or 3 channels) that product is too thin for the BLAS
 * to run near its peak. Here the rows one output row reads are copied once (`region`), for
 * up to DR output rows at a time where they share rows of x_pad (direct_region_outputs),
 * and the sum runs in registers (the blockings below).
 */

/* Five register blockings of the sum:
 * - any stride, "columns": DQ = 6 output columns times DK filters (64 bytes: two AVX2
 *   vectors), 12 AVX2 accumulators; per tap, the filter weights and DQ broadcast inputs
 *   (direct_columns.h);
 * - unit column stride, "filters": VK = 4 filters times VQ output columns (64 bytes), the
 *   inputs of a tap being VQ consecutive cells; per tap, the inputs and VK broadcast weights,
 *   and the sums stored as whole vectors (direct_filters.h);
 * - any stride, "wide" (AVX-512 only: WIDE_KERNEL): WQ = 8 columns times WK filters (two
 *   64-byte vectors), 16 of AVX-512's 32 registers. On AVX-512 the first two keep only 6 and
 *   4 accumulators of 64 bytes, too few to hide the multiply-add's latency: with this one
 *   ResNet-20's stage-2 and stage-3 layers (3x3, 32 and 64 filters, 16x16 and 8x8 planes)
 *   and res3x3 took 0.55-0.60 of the time of the best of the other two forward, 0.63-0.86
 *   for the weight gradient (DS3, CQ taps by CK filters);
 * - any stride, "wide16" (AVX-512 only): W16 = 16 columns times DK filters (one vector), 16
 *   accumulators too, for layers of 16 filters, which would leave half of each "wide" block
 *   empty: ResNet-20's stage-1 layers (3x3, 16 filters, 32x32 planes) took 0.82 of the time
 *   of the narrow blockings forward, 0.92 for the weight gradient (16 taps by 16 filters);
 * - unit column stride, forward only, "wide filters" (AVX-512 only): FK = 8 filters times
 *   FQ = two vectors of consecutive columns, 16 accumulators, "filters" widened: per tap two
 *   vector loads of inputs and 8 broadcast weights, the sums stored as whole vectors (the
 *   transposed stores of the blocks of columns cost as much as a third of the multiply-adds
 *   where taps are few). */
#define DQ 6
#define DK (64 / (int)sizeof(T))
#define VK 4
#define DR 8 /* at most this many output rows per region (DS1) and per pass over the weight
                gradient's partials (DS3) */
#define VQ (64 / (int)sizeof(T))
#define WQ 8
#define WK (128 / (int)sizeof(T))
#define W16 16
#define FK 8                       /* filters per block of the "wide filters" blocking */
#define FQ (128 / (int)sizeof(T)) /* its consecutive output columns: two 64-byte vectors */

#if !defined(DIRECT_LAYOUT_ONCE)
#define DIRECT_LAYOUT_ONCE
/* The padded width of a region row: Q columns plus the few that a last block may read past
 * them (their sums are dropped): (W16 - 1) * stride_w for the largest block of columns, and
 * with unit stride 31 cells (the 32 float32 columns of a "wide filters" block). */
static inline Py_ssize_t direct_cols(const ConvGeom *g)
{
    const Py_ssize_t slack = (W16 - 1) * g->stride_w + (g->stride_w == 1 ? 16 : 0);
    return (g->Q - 1) * g->stride_w + (g->S - 1) * g->dil_w + 1 + slack;
}

/* The x_pad rows of a region per channel for `outputs` consecutive output rows of one
 * (n, g) (DS1): for one, the R rows the kernel's rows read (dil_h apart in x_pad, adjacent
 * in the region: a dilated kernel skips the rows between); for several, every x_pad row
 * from the first one's first to the last one's last, which the rows share. */
static inline Py_ssize_t direct_span(const ConvGeom *g, Py_ssize_t outputs)
{
    return outputs == 1 ? g->R : (outputs - 1) * g->stride_h + (g->R - 1) * g->dil_h + 1;
}

/* The rows of a region of `outputs` rows (per channel) that the first `used` of them read:
 * all of them for one output row, else the span of the `used` rows (a run cut short by the
 * end of the image or of a thread's chunk of rows reads fewer). */
static inline Py_ssize_t direct_span_used(const ConvGeom *g, Py_ssize_t outputs, Py_ssize_t used)
{
    return outputs == 1 ? g->R : (used - 1) * g->stride_h + (g->R - 1) * g->dil_h + 1;
}

#define DIRECT_REGION_BYTES (256 * 1024) /* a region of several rows stays within L2 */

/* Output rows per region: DR where their shared span copies no more rows than DR regions
 * of one row would (and makes fewer copies) and the region fits DIRECT_REGION_BYTES (else
 * fewer), 1 otherwise. ResNet-20's 3x3 layers (stride 1: 10 rows per 8 outputs instead of
 * 24) spent 12-19 % of their time copying regions row by row. */
static inline Py_ssize_t direct_region_outputs(const ConvGeom *g, Py_ssize_t Cg, int itemsize)
{
    Py_ssize_t outputs = DR;
    while (outputs > 1 && (double)Cg * (double)direct_span(g, outputs) *
                                  (double)direct_cols(g) * itemsize > DIRECT_REGION_BYTES)
        outputs /= 2;
    return direct_span(g, outputs) <= outputs * g->R ? outputs : 1;
}

/* Regions the weight gradient (DS3) keeps: one of several rows, or where a region holds one
 * row, one per row of a pass over the partials (DR at most). */
static inline Py_ssize_t direct_weight_regions(Py_ssize_t outputs) { return outputs == 1 ? DR : 1; }

/* Where kernel row r of an output row lies in a region of `outputs` rows: its row index. */
static inline Py_ssize_t direct_region_row(const ConvGeom *g, Py_ssize_t outputs, Py_ssize_t r)
{
    return outputs == 1 ? r : r * g->dil_h;
}

static inline Py_ssize_t round_up(Py_ssize_t a, Py_ssize_t b) { return (a + b - 1) / b * b; }

/* Ask, for writing, for the `bytes` that a block's stores will write one output row later
 * (row_bytes on, in the same filter's plane). A row's stores go to as many planes as there
 * are filters: too many interleaved streams for the hardware's prefetcher once y outgrows a
 * core's cache. lenet1's forward (25 taps, y 6.4 MB), timed alternately against the stores
 * alone: one thread 0.82-0.93, two 0.72-0.93; alex11 and dil3x3 (363 and 576 taps) level.
 * A prefetch never faults, so a last row's reach past y is harmless. */
static inline void direct_prefetch_next_row(const void *block, Py_ssize_t row_bytes,
                                            size_t bytes)
{
    const char *next = (const char *)block + row_bytes;
    __builtin_prefetch(next, 1, 3);
    __builtin_prefetch(next + bytes - 1, 1, 3);
}

/* The blockings, as the bindings name them. */
enum { DIRECT_COLUMNS = 0, DIRECT_FILTERS = 1, DIRECT_WIDE = 2, DIRECT_WIDE16 = 3,
       DIRECT_WIDE_FILTERS = 4 };

/* Which blocking sums a layer (DS2). With unit column stride, "filters" (VK x VQ) or
 * "columns" (DQ x DK): the second keeps 12 accumulators busy instead of 8 (measured 11-12 %
 * faster on 3x3 layers with 64 channels) but computes Q in blocks of DQ rather than VQ and
 * writes each block's sums one by one, a cost beside the taps' multiply-adds where there are
 * few taps (lenet1: 25). Each is charged the multiply-adds of its padded blocks: the 8
 * accumulators at 0.9 of the 12 (the rate that fits lenet1, lenet2, res3x3 and dil3x3's
 * timings), the transposed writes as 8 taps' worth per block. Where `wide` (the CPU runs
 * WIDE_KERNELs and the caller allows them), "wide" (WQ x WK) at 1.5 times the rate of the
 * others and "wide16" (W16 x DK) at 1.2 times, their padded blocks charged the same way
 * (their stores at the same cost): 16 filters (ResNet-20's first stage) fill a "wide16" block
 * and half of a "wide" one. With unit column stride, "wide filters" (FK x FQ: 8 filters by two
 * vectors of columns) at 1.5 times too, with no charge for its vector stores: the rate that
 * fits ResNet-20's first layers (27 and 144 taps, 32 columns: 0.64 and 0.72 of the time of
 * the best other), lenet1 (0.76), dil3x3 and big9x9 (0.95, 28 and 32 columns); res3x3's 56
 * columns fill 56/64 of its blocks, where "wide" stays ahead. */
static inline int direct_forward_blocking(const ConvGeom *g, Py_ssize_t Kg, Py_ssize_t taps,
                                          int itemsize, int wide)
{
    const Py_ssize_t vq = 64 / itemsize, dk = 64 / itemsize, wk = 128 / itemsize;
    const double writes = 1.0 + 8.0 / (double)taps;
    const double cols = (double)round_up(g->Q, DQ) * (double)round_up(Kg, dk) * writes;
    double best = cols;
    int blocking = DIRECT_COLUMNS;
    if (g->stride_w == 1) {
        const double unit = (double)round_up(g->Q, vq) * (double)round_up(Kg, 4) / 0.9;
        if (unit <= best) best = unit, blocking = DIRECT_FILTERS;
    }
    if (wide) { /* the stores do not get faster: charged at the narrow blockings' cost */
        const double stores = writes - 1.0;
        const double w =
            (double)round_up(g->Q, WQ) * (double)round_up(Kg, wk) * (1 / 1.5 + stores);
        const double w16 =
            (double)round_up(g->Q, W16) * (double)round_up(Kg, dk) * (1 / 1.2 + stores);
        if (w < best) best = w, blocking = DIRECT_WIDE;
        if (w16 < best) best = w16, blocking = DIRECT_WIDE16;
        if (g->stride_w == 1) { /* vector stores, as "filters": no charge for the writes */
            const double wf =
                (double)round_up(g->Q, 128 / itemsize) * (double)round_up(Kg, FK) / 1.5;
            if (wf < best) blocking = DIRECT_WIDE_FILTERS;
        }
    }
    return blocking;
}

/* Which blocking sums the weight gradient (DS3): "columns" (DQ taps by DK filters) or,
 * where `wide`, "wide" (WQ taps by WK filters) at 1.2 times its rate or "wide16" (W16 taps
 * by DK filters) at 1.1 times, each charged its padded blocks. */
static inline int direct_weight_blocking(Py_ssize_t Kg, Py_ssize_t taps, int itemsize, int wide)
{
    const Py_ssize_t dk = 64 / itemsize, wk = 128 / itemsize;
    const double cols = (double)round_up(taps, DQ) * (double)round_up(Kg, dk);
    const double w = (double)round_up(taps, WQ) * (double)round_up(Kg, wk) / 1.2;
    const double w16 = (double)round_up(taps, W16) * (double)round_up(Kg, dk) / 1.1;
    if (!wide || (cols <= w && cols <= w16)) return DIRECT_COLUMNS;
    return w <= w16 ? DIRECT_WIDE : DIRECT_WIDE16;
}

/* Filters per block of the weights' layout (direct_filters) and taps per block of the
 * weight gradient's partials, for a blocking. */
static inline Py_ssize_t direct_filter_block(int blocking, int itemsize)
{
    if (blocking == DIRECT_FILTERS) return VK;
    if (blocking == DIRECT_WIDE_FILTERS) return FK;
    return blocking == DIRECT_WIDE ? 128 / itemsize : 64 / itemsize;
}

/* Output rows per pass over a slice's partial sums (DS3): where rows are short, the
 * partial's blocks are loaded and stored once per few rows rather than once per row: 8 rows of
 * 8 columns (ResNet-20's stage 3: its weight gradient took 0.83-0.90 of the time with 4), 4
 * of up to 64 columns, else one. */
static inline Py_ssize_t direct_row_group(const ConvGeom *g)
{
    return g->Q <= 8 ? DR : g->Q <= 64 ? DR / 2 : 1;
}

static inline Py_ssize_t direct_tap_block(int blocking)
{
    return blocking == DIRECT_WIDE ? WQ : blocking == DIRECT_WIDE16 ? W16 : DQ;
}

/* dst[j * dst_stride + i] = src[i * src_stride + j] for the 16 rows i of src and its first
 * nq <= 16 columns j: a 16 x 16 block of float turned in registers, four rounds of exchanging
 * the off-diagonal blocks of 8, 4, 2 and 1 rows (each new row takes lanes of two old ones: a
 * two-vector permutation), in place of 256 strided scalar copies. The weight gradient (DS3)
 * turns each row of dy to (Q, Kpad) this way: scalar, that took 45 % of lenet1's weight
 * gradient (25 taps per filter: few multiply-adds per element turned). Only copies: the same
 * values, the same bits. A row of fewer than 16 columns is read whole where its 16 elements
 * lie before `end` (the columns past nq, of the next row, land in rows of the result that
 * are not stored), else copied in part. GCC only (DIRECT_TRANSPOSE16); other compilers keep
 * the element copy. */
/* GCC's vector extensions and __builtin_shuffle (CONVPROP_NO_TRANSPOSE16: the element copy) */
#if defined(__GNUC__) && !defined(__clang__) && !defined(CONVPROP_NO_TRANSPOSE16)
#define DIRECT_TRANSPOSE16 1
typedef float direct_v16sf __attribute__((vector_size(64), aligned(4)));
typedef int32_t direct_v16si __attribute__((vector_size(64)));

static inline __attribute__((always_inline)) void direct_transpose16(const float *src,
                                                                     Py_ssize_t src_stride,
                                                                     float *dst,
                                                                     Py_ssize_t dst_stride,
                                                                     Py_ssize_t nq,
                                                                     const float *end)
{
    static const direct_v16si lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    static const direct_v16si hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    static const direct_v16si lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    static const direct_v16si hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    static const direct_v16si lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    static const direct_v16si hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    static const direct_v16si lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    static const direct_v16si hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    direct_v16sf r[16];
    for (int i = 0; i < 16; ++i) {
        if (nq == 16 || end - (src + i * src_stride) >= 16) {
            memcpy(&r[i], src + i * src_stride, sizeof(r[i]));
        } else {
            r[i] = (direct_v16sf){0};
            memcpy(&r[i], src + i * src_stride, (size_t)nq * sizeof(float));
        }
    }
#define DIRECT_EXCHANGE(h, lo, hi)                                                              \
    for (int i = 0; i < 16; ++i)                                                                \
        if (!(i & (h))) {                                                                       \
            const direct_v16sf a = r[i], b = r[i + (h)];                                        \
            r[i] = __builtin_shuffle(a, b, lo);                                                 \
            r[i + (h)] = __builtin_shuffle(a, b, hi);                                           \
        }
    DIRECT_EXCHANGE(8, lo8, hi8)
    DIRECT_EXCHANGE(4, lo4, hi4)
    DIRECT_EXCHANGE(2, lo2, hi2)
    DIRECT_EXCHANGE(1, lo1, hi1)
#undef DIRECT_EXCHANGE
    for (Py_ssize_t j = 0; j < nq; ++j) memcpy(dst + j * dst_stride, &r[j], sizeof(r[j]));
}
#endif /* GCC */
#endif

/* wt[g, k / KB, t, k % KB] = w[g*Kg + k, c, r, s] for t = (c*R + r)*S + s, zero for k in
 * [Kg, Kpad): the weights of a block of KB filters tap after tap, contiguous. A copy made on
 * every call, before the sums: a block's taps are copied DIRECT_FILTER_TAPS at a time, so
 * that the rows of wt being written stay in the L1 cache, 16 filters at a time turned in
 * registers where the filters are float (DIRECT_TRANSPOSE16), the rest element by element
 * (lenet2's 64 x 800 weights: 30 us element by element, one filter at a time through the
 * whole block, a third of the forward of one image). */
#define DIRECT_FILTER_TAPS 16 /* the columns of direct_transpose16's block */
KERNEL void FN(direct_filters)(const T *w, T *wt, Py_ssize_t G, Py_ssize_t Kg, Py_ssize_t taps,
                               Py_ssize_t Kpad, Py_ssize_t KB)
{
    for (Py_ssize_t g = 0; g < G; ++g)
        for (Py_ssize_t k0 = 0; k0 < Kpad; k0 += KB) {
            T *block = wt + (g * (Kpad / KB) + k0 / KB) * taps * KB;
            for (Py_ssize_t t0 = 0; t0 < taps; t0 += DIRECT_FILTER_TAPS) {
                const Py_ssize_t t1 = taps - t0 < DIRECT_FILTER_TAPS ? taps : t0 + DIRECT_FILTER_TAPS;
                for (Py_ssize_t k = k0; k < k0 + KB;) {
#if defined(DIRECT_TRANSPOSE16)
                    if (sizeof(T) == sizeof(float) && k + 16 <= Kg && k - k0 + 16 <= KB) {
                        /* 16 filters by up to 16 taps, turned in registers */
                        direct_transpose16(
                            (const float *)(const void *)(w + (g * Kg + k) * taps + t0), taps,
                            (float *)(void *)(block + t0 * KB + (k - k0)), KB, t1 - t0,
                            (const float *)(const void *)(w + G * Kg * taps));
                        k += 16;
                        continue;
                    }
#endif
                    T *dst = block + (k - k0);
                    const T *src = w + (g * Kg + k) * taps;
                    for (Py_ssize_t t = t0; t < t1; ++t) dst[t * KB] = k < Kg ? src[t] : 0;
                    ++k;
                }
            }
        }
}

/* region[c, i, j] = x_pad[n, c0 + c, p*stride_h + i*step, j] for the Cg channels of a group
 * and the rows i of `outputs` output rows from p (direct_span(g, outputs) per channel; step:
 * dil_h for one output row, 1 for several), zero where they are padding (or past the padded
 * width); only the rows the first `used` (1 <= used <= outputs) output rows read are written.
 * Only the padding is zeroed: a row's copy and its zeros each write their cells once. A
 * forward of one image cuts its P rows into chunks of one or two rows per thread: copying all
 * `outputs` rows for each made the copies several times the rows read. */
KERNEL_PART void FN(direct_region)(const T *x, T *region, const ConvGeom *g, Py_ssize_t n,
                                   Py_ssize_t c0, Py_ssize_t Cg, Py_ssize_t p, Py_ssize_t outputs,
                                   Py_ssize_t used)
{
    const Py_ssize_t rows = direct_span(g, outputs), cols = direct_cols(g);
    const Py_ssize_t copied = direct_span_used(g, outputs, used);
    const Py_ssize_t step = outputs == 1 ? g->dil_h : 1;
    const Py_ssize_t j0 = g->pad_left < cols ? g->pad_left : cols;
    const Py_ssize_t j1 = g->pad_left + g->W < cols ? g->pad_left + g->W : cols;
    for (Py_ssize_t c = 0; c < Cg; ++c) {
        const T *plane = x + ((n * g->C) + c0 + c) * g->H * g->W;
        for (Py_ssize_t i = 0; i < copied; ++i) {
            T *dst = region + (c * rows + i) * cols;
            const Py_ssize_t h = p * g->stride_h + i * step - g->pad_top;
            if (h < 0 || h >= g->H || j1 <= j0) {
                memset(dst, 0, (size_t)cols * sizeof(T));
                continue;
            }
            memset(dst, 0, (size_t)j0 * sizeof(T));
            memcpy(dst + j0, plane + h * g->W, (size_t)(j1 - j0) * sizeof(T));
            memset(dst + j1, 0, (size_t)(cols - j1) * sizeof(T));
        }
    }
}

#define CQ DQ
#define CK DK
#define CNAME(name) name
#define CKERNEL KERNEL
#include "direct_columns.h"
#if defined(WIDE_KERNELS)
#define CQ WQ
#define CK WK
#define CNAME(name) name##_wide
#define CKERNEL WIDE_KERNEL
#include "direct_columns.h"
#define CQ W16
#define CK DK
#define CNAME(name) name##_wide16
#define CKERNEL WIDE_KERNEL
#include "direct_columns.h"
#endif

/* The "filters" blockings (unit column stride): VK filters by VQ columns, and where the CPU
 * has AVX-512, FK = 8 filters by FQ consecutive columns (two 64-byte vectors: 16
 * accumulators, the sums stored as whole vectors). */
#define FB_Q VQ
#define FB_K VK
#define FB_UNROLL 4
#define FB_PREFETCH 1
#define FB_NAME(name) name
#include "direct_filters.h"
#if defined(WIDE_KERNELS)
#define FB_Q FQ
#define FB_K FK
#define FB_UNROLL 8
#define FB_PREFETCH 0
#define FB_NAME(name) name##_wide
#include "direct_filters.h"
#endif

/* Output row `row` = (n, g, p), the first of `used` rows of a run: the region that holds the
 * rows of x they read (scratch; copied anew where the last one, made for the *held rows from
 * (*ng0, *p0), does not hold them), where in it the row starts, and its group's filters, bias
 * (or NULL) and the start of its row of y. */
KERNEL_PART const T *FN(direct_row_start)(const T *x, const T *wt, const T *b, T *y, T *scratch,
                                          const ConvGeom *g, Py_ssize_t G, Py_ssize_t Kpad,
                                          Py_ssize_t row, Py_ssize_t used, Py_ssize_t *ng0,
                                          Py_ssize_t *p0, Py_ssize_t *held, const T **wg,
                                          const T **bg, T **yrow)
{
    const Py_ssize_t Cg = g->C / G, Kg = g->K / G, taps = Cg * g->R * g->S;
    const Py_ssize_t p = row % g->P, ng = row / g->P, n = ng / G, gi = ng % G;
    const Py_ssize_t outputs = direct_region_outputs(g, Cg, (int)sizeof(T));
    if (ng != *ng0 || p < *p0 || p >= *p0 + *held) {
        FN(direct_region)(x, scratch, g, n, gi * Cg, Cg, p, outputs, used);
        *ng0 = ng, *p0 = p, *held = used;
    }
    *wg = wt + gi * taps * Kpad;
    *bg = b ? b + gi * Kg : NULL;
    *yrow = y + ((n * g->K + gi * Kg) * g->P + p) * g->Q;
    return scratch + (p - *p0) * g->stride_h * direct_cols(g);
}

/* Filters per pass over a run of output rows that share a region: as many whole blocks of
 * `block` as keep their weights (taps of each) within 32 KB, at least one block, at most
 * all Kg. A layer whose weights are larger (pw1x1: 1 MB; res3x3s2: 1.2 MB) then reads each
 * chunk of them from L1 for every row of the run, instead of every filter's weights from
 * L2 or L3 for every row. */
static inline Py_ssize_t FN(direct_filter_chunk)(Py_ssize_t taps, Py_ssize_t Kg, Py_ssize_t block)
{
    Py_ssize_t chunk = 32768 / (taps * (Py_ssize_t)sizeof(T)) / block * block;
    if (chunk < block) chunk = block;
    return chunk < Kg ? chunk : Kg;
}

/* The output rows from `row` (< hi) that the region built for `row` also holds. */
static inline Py_ssize_t FN(direct_run_end)(const ConvGeom *g, Py_ssize_t Cg, Py_ssize_t row,
                                            Py_ssize_t hi)
{
    const Py_ssize_t p = row % g->P, outputs = direct_region_outputs(g, Cg, (int)sizeof(T));
    const Py_ssize_t left = g->P - p < outputs ? g->P - p : outputs;
    return row + left < hi ? row + left : hi;
}

/* (F1) as (DS2) for output rows [lo, hi) of (n, g, p): wt from direct_filters (Kpad filters
 * per group, in blocks of direct_filter_block(blocking)), offs[t] = (c*rows +
 * direct_region_row(r))*cols + s*dil_w (DS1) with rows = direct_span(g, outputs) for
 * outputs = direct_region_outputs(g, Cg, sizeof(T)), b may be NULL; scratch: Cg*rows*cols
 * elements. The rows that share a region run filter chunk by filter chunk
 * (direct_filter_chunk): every output is still its taps' sum in order, the same bits.
 * `blocking` is DIRECT_COLUMNS or DIRECT_FILTERS; the AVX-512 ones run direct_forward_wide. */
KERNEL void FN(direct_forward)(const T *x, const T *wt, const T *b, T *y, T *scratch,
                               const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t G,
                               Py_ssize_t Kpad, int blocking, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t Kg = g->K / G, taps = g->C / G * g->R * g->S;
    const Py_ssize_t block = direct_filter_block(blocking, (int)sizeof(T));
    const Py_ssize_t chunk = FN(direct_filter_chunk)(taps, Kg, block);
    const T *wg, *bg;
    T *yrow;
    Py_ssize_t ng0 = -1, p0 = 0, held = 0;
    for (Py_ssize_t run = lo, end; run < hi; run = end) {
        end = FN(direct_run_end)(g, g->C / G, run, hi);
        for (Py_ssize_t k_lo = 0; k_lo < Kg; k_lo += chunk) {
            const Py_ssize_t k_hi = k_lo + chunk < Kg ? k_lo + chunk : Kg;
            for (Py_ssize_t row = run; row < end; ++row) {
                const T *xq = FN(direct_row_start)(x, wt, b, y, scratch, g, G, Kpad, row,
                                                   end - row, &ng0, &p0, &held, &wg, &bg,
                                                   &yrow);
                if (blocking == DIRECT_FILTERS)
                    FN(direct_row_unit)(xq, wg, bg, yrow, offs, g, Kg, taps, k_lo, k_hi);
                else FN(direct_row_columns)(xq, wg, bg, yrow, offs, g, Kg, taps, k_lo, k_hi);
            }
        }
    }
}

#if defined(WIDE_KERNELS)
/* direct_forward in an AVX-512 blocking: DIRECT_WIDE (WQ columns by WK filters),
 * DIRECT_WIDE16 (W16 columns by DK filters) or DIRECT_WIDE_FILTERS (FK filters by FQ
 * columns). */
WIDE_KERNEL void FN(direct_forward_wide)(const T *x, const T *wt, const T *b, T *y, T *scratch,
                                         const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t G,
                                         Py_ssize_t Kpad, int blocking, Py_ssize_t lo,
                                         Py_ssize_t hi)
{
    const Py_ssize_t Kg = g->K / G, taps = g->C / G * g->R * g->S;
    const Py_ssize_t block = direct_filter_block(blocking, (int)sizeof(T));
    const Py_ssize_t chunk = FN(direct_filter_chunk)(taps, Kg, block);
    const T *wg, *bg;
    T *yrow;
    Py_ssize_t ng0 = -1, p0 = 0, held = 0;
    for (Py_ssize_t run = lo, end; run < hi; run = end) {
        end = FN(direct_run_end)(g, g->C / G, run, hi);
        for (Py_ssize_t k_lo = 0; k_lo < Kg; k_lo += chunk) {
            const Py_ssize_t k_hi = k_lo + chunk < Kg ? k_lo + chunk : Kg;
            for (Py_ssize_t row = run; row < end; ++row) {
                const T *xq = FN(direct_row_start)(x, wt, b, y, scratch, g, G, Kpad, row,
                                                   end - row, &ng0, &p0, &held, &wg, &bg,
                                                   &yrow);
                if (blocking == DIRECT_WIDE16)
                    FN(direct_row_columns_wide16)(xq, wg, bg, yrow, offs, g, Kg, taps, k_lo, k_hi);
                else if (blocking == DIRECT_WIDE_FILTERS)
                    FN(direct_row_unit_wide)(xq, wg, bg, yrow, offs, g, Kg, taps, k_lo, k_hi);
                else FN(direct_row_columns_wide)(xq, wg, bg, yrow, offs, g, Kg, taps, k_lo, k_hi);
            }
        }
    }
}
#endif

/* dw[g*Kg + k, t] = sum over the slices, in order, of partials[slice, g, t, k]; row: Kpad
 * elements of scratch. The slices are added a whole row of filters at a time (one vector
 * add per filter block, each partial read once, in the order it lies in memory), every
 * element in the order of the slices: the same additions as one element at a time. */
KERNEL void FN(direct_weight_sum)(const T *partials, T *dw, T *row, Py_ssize_t G, Py_ssize_t Kg,
                                  Py_ssize_t taps, Py_ssize_t Kpad, Py_ssize_t Tpad,
                                  Py_ssize_t slices)
{
    for (Py_ssize_t gi = 0; gi < G; ++gi)
        for (Py_ssize_t t = 0; t < taps; ++t) {
            for (Py_ssize_t k = 0; k < Kg; ++k) row[k] = 0;
            for (Py_ssize_t slice = 0; slice < slices; ++slice) {
                const T *part = partials + ((slice * G + gi) * Tpad + t) * Kpad;
#pragma omp simd
                for (Py_ssize_t k = 0; k < Kg; ++k) row[k] += part[k];
            }
            for (Py_ssize_t k = 0; k < Kg; ++k) dw[(gi * Kg + k) * taps + t] = row[k];
        }
}

/* DK, VQ, WK and FQ depend on T: defined again for the next element type. */
#undef DK
#undef VQ
#undef WK
#undef FQ
