/* convprop._native: the "columns" register blocking of the direct sums, (DS2) and (DS3).
 *
 * Included by direct.h, once per blocking, for each element type: the includer defines
 *   CQ          output columns (DS2) or taps (DS3) per block,
 *   CK          filters per block (a multiple of the vector width),
 *   CNAME(name) the names of this blocking's loops,
 *   CKERNEL     the attribute of its weight kernel (KERNEL, or WIDE_KERNEL),
 * and this file undefines them. A block holds CQ x CK sums in registers and adds one tap to
 * each in turn, so every sum is the same chain of multiply-adds, in the same order, whatever
 * the blocking: the blockings give the same bits.
 */

/* One output row (n, g, p) in blocks of CQ columns by CK filters, any stride, for the
 * filters [k_lo, k_hi) (k_lo a multiple of CK). xq: the region; wg: the group's filters
 * (Kpad / CK, taps, CK); yrow: y[n, g*Kg, p, 0]. */
KERNEL_PART void FN(CNAME(direct_row_columns))(const T *xq, const T *wg, const T *bg, T *yrow,
                                        const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t Kg,
                                        Py_ssize_t taps, Py_ssize_t k_lo, Py_ssize_t k_hi)
{
    const Py_ssize_t PQ = g->P * g->Q;
    for (Py_ssize_t q0 = 0; q0 < g->Q; q0 += CQ) {
        const Py_ssize_t nq = g->Q - q0 < CQ ? g->Q - q0 : CQ;
        for (Py_ssize_t k0 = k_lo; k0 < k_hi; k0 += CK) {
            T acc[CQ][CK];
            for (int qq = 0; qq < CQ; ++qq)
                for (int kk = 0; kk < CK; ++kk) acc[qq][kk] = bg && k0 + kk < Kg ? bg[k0 + kk] : 0;
            for (Py_ssize_t t = 0; t < taps; ++t) {
                const T *xs = xq + q0 * g->stride_w + offs[t];
                const T *wv = wg + k0 * taps + t * CK;
#pragma GCC unroll 16
                for (int qq = 0; qq < CQ; ++qq) {
                    const T xv = xs[qq * g->stride_w];
#pragma omp simd
                    for (int kk = 0; kk < CK; ++kk) acc[qq][kk] = FMA(xv, wv[kk], acc[qq][kk]);
                }
            }
            const Py_ssize_t nk = Kg - k0 < CK ? Kg - k0 : CK;
            for (Py_ssize_t kk = 0; kk < nk; ++kk) {
                T *yk = yrow + (k0 + kk) * PQ + q0;
                direct_prefetch_next_row(yk, g->Q * (Py_ssize_t)sizeof(T), CQ * sizeof(T));
                for (Py_ssize_t qq = 0; qq < nq; ++qq) yk[qq] = acc[qq][kk];
            }
        }
    }
}

/* (B2) as the sum over output rows, the blocking of (DS2) read the other way:
 *
 *   dw[g*Kg + k, c, r, s] += sum_q xr[off_t + q*stride_w] * dy[n, g*Kg + k, p, q]           (DS3)
 *
 * for each output row (n, g, p), t = (c*R + r)*S + s. The sums of one slice of rows go to
 * its own partial (G, Tpad, Kpad), which it zeroes first, in row order; the caller adds the
 * slices' partials in slice order, so the result does not depend on which thread took a slice.
 * A block is CQ taps by CK filters of accumulators; per output column, the CK filters' vector
 * loads of dyT (dy's row turned to (Q, Kpad)) and CQ broadcast inputs. Taps past T read offset 0
 * into rows of the partial that are dropped. The rows' inputs come from a region of
 * direct_region_outputs rows, as in the forward (offs likewise), or where that is one row, from
 * a region per row of the pass. scratch: direct_weight_regions * Cg*rows*cols (the regions) +
 * DR*Q*Kpad (the turned rows of dy) elements, rows = direct_span(g, outputs). */
CKERNEL void FN(CNAME(direct_weight))(const T *x, const T *dy, T *partials, T *scratch,
                              const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t G,
                              Py_ssize_t Kpad, Py_ssize_t Tpad, Py_ssize_t slices,
                              Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t Cg = g->C / G, Kg = g->K / G, rows = g->N * G * g->P;
    const Py_ssize_t outputs = direct_region_outputs(g, Cg, (int)sizeof(T));
    const Py_ssize_t cols = direct_cols(g), dyT_size = g->Q * Kpad;
    const Py_ssize_t region_size = Cg * direct_span(g, outputs) * cols;
    const T *dy_end = dy + g->N * g->K * g->P * g->Q;
    (void)dy_end; /* read by the turned rows only (DIRECT_TRANSPOSE16) */
    T *region = scratch, *dyTs = scratch + direct_weight_regions(outputs) * region_size;
    Py_ssize_t ng0 = -1, p0 = 0, held = 0; /* the region holds `held` rows from (ng0, p0) */
    for (Py_ssize_t slice = lo; slice < hi; ++slice) {
        T *partial = partials + slice * G * Tpad * Kpad;
        /* zeroed here rather than by the caller: by the thread that sums into it, while its
         * lines are about to be used, and on all threads at once */
        memset(partial, 0, (size_t)(G * Tpad * Kpad) * sizeof(T));
        const Py_ssize_t first = rows * slice / slices, last = rows * (slice + 1) / slices;
        Py_ssize_t nr;
        for (Py_ssize_t row = first; row < last; row += nr) {
            const Py_ssize_t p = row % g->P, ng = row / g->P, n = ng / G, gi = ng % G;
            /* a few rows of one (n, g) at a time where rows are short (direct_row_group), all
             * in one region or each in its own */
            const Py_ssize_t group = direct_row_group(g);
            nr = last - row < group ? last - row : group;
            if (nr > g->P - p) nr = g->P - p;
            if (outputs == 1)
                for (Py_ssize_t j = 0; j < nr; ++j)
                    FN(direct_region)(x, region + j * region_size, g, n, gi * Cg, Cg, p + j, 1,
                                      1);
            else if (ng != ng0 || p >= p0 + held) {
                /* the rows of this region that the slice reads: up to its last row */
                held = last - row < g->P - p ? last - row : g->P - p;
                if (held > outputs) held = outputs;
                FN(direct_region)(x, region, g, n, gi * Cg, Cg, p, outputs, held);
                ng0 = ng, p0 = p;
            }
            if (outputs > 1 && nr > p0 + held - p) nr = p0 + held - p;
            /* row j of the pass: its region's row from x_pad's row (p + j)*stride_h */
            const Py_ssize_t row_step = outputs == 1 ? region_size : g->stride_h * cols;
            const T *xr = outputs == 1 ? region : region + (p - p0) * g->stride_h * cols;
            for (Py_ssize_t j = 0; j < nr; ++j) {
                T *dyT = dyTs + j * dyT_size;
                /* dyT[q, k] = dy[n, g*Kg + k, p, q], zero for k >= Kg: CK rows of dy at a
                 * time, so that the CK reads and the CK writes per column stay in few lines */
                const T *dyrow = dy + ((n * g->K + gi * Kg) * g->P + p + j) * g->Q;
                for (Py_ssize_t k0 = 0; k0 < Kpad; k0 += CK) {
                    const Py_ssize_t nk = Kg - k0 < CK ? Kg - k0 : CK; /* >= 1: Kpad < Kg + CK */
                    const T *src = dyrow + k0 * g->P * g->Q;
                    /* float: whole blocks of 16 filters turned 16 columns at a time */
#if defined(DIRECT_TRANSPOSE16)
                    const Py_ssize_t kv = sizeof(T) == 4 ? nk / 16 * 16 : 0;
                    for (Py_ssize_t kb = 0; kb < kv; kb += 16)
                        for (Py_ssize_t q0 = 0; q0 < g->Q; q0 += 16)
                            direct_transpose16((const float *)(const void *)src +
                                                   kb * g->P * g->Q + q0,
                                               g->P * g->Q,
                                               (float *)(void *)(dyT + q0 * Kpad + k0 + kb), Kpad,
                                               g->Q - q0 < 16 ? g->Q - q0 : 16,
                                               (const float *)(const void *)dy_end);
#else
                    const Py_ssize_t kv = 0;
#endif
                    for (Py_ssize_t q = 0; q < g->Q; ++q) {
                        T *dst = dyT + q * Kpad + k0;
                        for (Py_ssize_t kk = kv; kk < nk; ++kk) dst[kk] = src[kk * g->P * g->Q + q];
                        for (Py_ssize_t kk = nk; kk < CK; ++kk) dst[kk] = 0;
                    }
                }
            }
            T *pg = partial + gi * Tpad * Kpad;
            for (Py_ssize_t t0 = 0; t0 < Tpad; t0 += CQ) {
                for (Py_ssize_t k0 = 0; k0 < Kpad; k0 += CK) {
                    T acc[CQ][CK];
                    for (int i = 0; i < CQ; ++i)
                        for (int kk = 0; kk < CK; ++kk) acc[i][kk] = pg[(t0 + i) * Kpad + k0 + kk];
                    for (Py_ssize_t j = 0; j < nr; ++j) {
                        const T *xj = xr + j * row_step, *dyT = dyTs + j * dyT_size;
                        for (Py_ssize_t q = 0; q < g->Q; ++q) {
                            const T *dv = dyT + q * Kpad + k0;
                            const T *xs = xj + q * g->stride_w;
#pragma GCC unroll 16
                            for (int i = 0; i < CQ; ++i) {
                                const T xv = xs[offs[t0 + i]];
#pragma omp simd
                                for (int kk = 0; kk < CK; ++kk)
                                    acc[i][kk] = FMA(xv, dv[kk], acc[i][kk]); /* (DS3) */
                            }
                        }
                    }
                    for (int i = 0; i < CQ; ++i)
                        for (int kk = 0; kk < CK; ++kk) pg[(t0 + i) * Kpad + k0 + kk] = acc[i][kk];
                }
            }
        }
    }
}


#undef CQ
#undef CK
#undef CNAME
#undef CKERNEL
