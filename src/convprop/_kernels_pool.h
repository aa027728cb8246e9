/* convprop._kernels: max pooling (MP1-MP3).
 *
 * Included twice by _kernels.c, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

/* (MP1), (MP2) for one tap t over output columns [q0, q1): keep the larger value, a NaN
 * always winning, and the tap it came from. Selects, not branches: random data would
 * mispredict them. */
static inline void FN(max_update)(T *best, int32_t *tap, const T *src, Py_ssize_t stride,
                                  int32_t t, Py_ssize_t q0, Py_ssize_t q1)
{
#pragma omp simd
    for (Py_ssize_t q = q0; q < q1; ++q) {
        const T v = src[q * stride];
        const int wins = (v > best[q]) | (v != v); /* (MP1) strictly greater, or NaN */
        best[q] = wins ? v : best[q];
        tap[q] = wins ? t : tap[q]; /* (MP2) */
    }
}

/* (MP1), (MP2) over planes (n, c): y = the window maximum over its real cells (padding and
 * the ceil_mode overhang hold -inf and never win), argmax = the tap t = r*S + s of the
 * FIRST maximum in row-major order; a NaN always wins, so the last NaN of a window is
 * kept; a window whose real cells are all -inf points at its first real cell. */
static void FN(maxpool_forward)(const T *x, T *y, int32_t *argmax, const PoolGeom *g,
                                Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const T *xc = x + plane * HW;
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            T *best = y + plane * PQ + p * g->Q;
            int32_t *tap = argmax + plane * PQ + p * g->Q;
            const Py_ssize_t top = p * g->sh - g->ph;
            const Py_ssize_t r0 = top < 0 ? -top : 0;
            const Py_ssize_t r1 = top + g->R > g->H ? g->H - top : g->R;
            for (Py_ssize_t q = 0; q < g->Q; ++q) {
                const Py_ssize_t s0 = g->pw - q * g->sw;
                best[q] = (T)-INFINITY;
                tap[q] = (int32_t)(r0 * g->S + (s0 > 0 ? s0 : 0)); /* (MP2) all -inf */
            }
            /* the whole output row at once, tap by tap in row-major order */
            for (Py_ssize_t r = r0; r < r1; ++r) {
                const T *row = xc + (top + r) * g->W;
                for (Py_ssize_t s = 0; s < g->S; ++s) {
                    Py_ssize_t q0, q1;
                    const Py_ssize_t left = s - g->pw;
                    valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                    const int32_t t = (int32_t)(r * g->S + s);
                    const T *src = row + left;
                    if (g->sw == 2) /* the usual 2x2 / stride 2 pool: a constant stride */
                        FN(max_update)(best, tap, src, 2, t, q0, q1);
                    else
                        FN(max_update)(best, tap, src, g->sw, t, q0, q1);
                }
            }
        }
    }
}

/* (MP3) over planes (n, c): dx[n, c, h, w] = sum of dy over the windows whose arg-max tap
 * lands on (h, w); overlapping windows (stride < kernel) add up. */
static Py_ssize_t FN(maxpool_backward)(const T *dy, const int32_t *argmax, T *dx,
                                       const PoolGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    Py_ssize_t invalid = 0; /* arg-max entries that point outside x: refused, counted */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *dxc = dx + plane * HW;
        const T *dyc = dy + plane * PQ;
        const int32_t *ac = argmax + plane * PQ;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            for (Py_ssize_t q = 0; q < g->Q; ++q) {
                const int32_t t = ac[p * g->Q + q];
                const Py_ssize_t h = p * g->sh - g->ph + t / g->S;
                const Py_ssize_t w = q * g->sw - g->pw + t % g->S;
                if (t < 0 || t >= g->R * g->S || h < 0 || h >= g->H || w < 0 || w >= g->W) {
                    ++invalid;
                    continue;
                }
                dxc[h * g->W + w] += dyc[p * g->Q + q]; /* (MP3) */
            }
        }
    }
    return invalid;
}
