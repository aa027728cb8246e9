/* convprop._native: the "filters" register blocking of the direct sums' forward, (DS2).
 *
 * Included by direct.h, once per blocking, for each element type: the includer defines
 *   FB_Q        consecutive output columns per block (unit column stride),
 *   FB_K        filters per block,
 *   FB_UNROLL   the filters' loop unrolled this many times (a literal),
 *   FB_PREFETCH 1 to ask for the next output row's block before each store (0: not),
 *   FB_NAME(name) the name of this blocking's loop,
 * and this file undefines them. A block holds FB_K x FB_Q sums in registers: per tap, the
 * vector loads of FB_Q inputs and FB_K broadcast weights; every sum is the same chain of
 * multiply-adds, in the same order, as in the "columns" blockings (direct_columns.h): the
 * blockings give the same bits.
 */

#define FB_PRAGMA(text) _Pragma(#text)
#define FB_UNROLL_LOOP(count) FB_PRAGMA(GCC unroll count)

/* One output row (n, g, p) with unit column stride, in blocks of FB_K filters by FB_Q
 * columns, for the filters [k_lo, k_hi) (k_lo a multiple of FB_K). xq: the region; wg: the
 * group's filters (Kpad / FB_K, taps, FB_K); yrow: y[n, g*Kg, p, 0]. */
KERNEL_PART void FN(FB_NAME(direct_row_unit))(const T *xq, const T *wg, const T *bg, T *yrow,
                                              const Py_ssize_t *offs, const ConvGeom *g,
                                              Py_ssize_t Kg, Py_ssize_t taps, Py_ssize_t k_lo,
                                              Py_ssize_t k_hi)
{
    const Py_ssize_t PQ = g->P * g->Q;
    for (Py_ssize_t q0 = 0; q0 < g->Q; q0 += FB_Q) {
        const Py_ssize_t nq = g->Q - q0 < FB_Q ? g->Q - q0 : FB_Q;
        for (Py_ssize_t k0 = k_lo; k0 < k_hi; k0 += FB_K) {
            T acc[FB_K][FB_Q];
            for (int kk = 0; kk < FB_K; ++kk) {
                const T start = bg && k0 + kk < Kg ? bg[k0 + kk] : 0;
                for (int j = 0; j < FB_Q; ++j) acc[kk][j] = start;
            }
            for (Py_ssize_t t = 0; t < taps; ++t) {
                const T *xs = xq + q0 + offs[t];
                const T *wv = wg + k0 * taps + t * FB_K;
                FB_UNROLL_LOOP(FB_UNROLL)
                for (int kk = 0; kk < FB_K; ++kk) {
                    const T wk = wv[kk];
#pragma omp simd
                    for (int j = 0; j < FB_Q; ++j) /* (DS2) */
                        acc[kk][j] = FMA(wk, xs[j], acc[kk][j]);
                }
            }
            const Py_ssize_t nk = Kg - k0 < FB_K ? Kg - k0 : FB_K;
            for (Py_ssize_t kk = 0; kk < nk; ++kk) {
                T *yk = yrow + (k0 + kk) * PQ + q0;
                if (FB_PREFETCH)
                    direct_prefetch_next_row(yk, g->Q * (Py_ssize_t)sizeof(T), FB_Q * sizeof(T));
                if (nq == FB_Q) memcpy(yk, acc[kk], sizeof acc[kk]);
                else /* a loop, not a library call per short piece: 0.97-0.98 on lenet1 */
                    for (Py_ssize_t j = 0; j < nq; ++j) yk[j] = acc[kk][j];
            }
        }
    }
}

#undef FB_UNROLL_LOOP
#undef FB_PRAGMA
#undef FB_Q
#undef FB_K
#undef FB_UNROLL
#undef FB_PREFETCH
#undef FB_NAME
