/* convprop._native: max pooling (MP1-MP3).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
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

#define MAX2_BLOCK 16 /* windows per block of max_2x2 */

/* (MP1), (MP2) for 2x2 windows with stride 2 whose four cells are inside x, output columns
 * [0, n): the same comparisons as four max_update calls in tap order 0, 1, 2, 3 (best
 * starts at -inf, tap at 0), in blocks of MAX2_BLOCK windows. Each block's two rows of x are
 * copied into a buffer (past the row's end: -inf, in windows that are dropped) and compared
 * lane by lane with selects over the whole block: no remainder loop, whose branches random
 * data would mispredict; then the results are copied out. lenet's pooling, (64, 32, 28, 28)
 * on one thread: 0.54 of the time of a scalar loop over the windows. */
static inline void FN(max_2x2)(const T *top, Py_ssize_t W, T *best, int32_t *tap, Py_ssize_t n)
{
    const T *bottom = top + W;
    for (Py_ssize_t q0 = 0; q0 < n; q0 += MAX2_BLOCK) {
        const Py_ssize_t nq = n - q0 < MAX2_BLOCK ? n - q0 : MAX2_BLOCK;
        T a[2 * MAX2_BLOCK], b[2 * MAX2_BLOCK], mb[MAX2_BLOCK];
        int32_t tb[MAX2_BLOCK];
        for (Py_ssize_t i = 2 * nq; i < 2 * MAX2_BLOCK; ++i) a[i] = b[i] = (T)-INFINITY;
        memcpy(a, top + 2 * q0, (size_t)(2 * nq) * sizeof(T));
        memcpy(b, bottom + 2 * q0, (size_t)(2 * nq) * sizeof(T));
#pragma omp simd
        for (int j = 0; j < MAX2_BLOCK; ++j) {
            T m = a[2 * j]; /* tap 0 against -inf: it wins, or is -inf itself */
            int32_t t = 0;
            const T v1 = a[2 * j + 1], v2 = b[2 * j], v3 = b[2 * j + 1];
            const int w1 = (v1 > m) | (v1 != v1); /* (MP1) strictly greater, or NaN */
            m = w1 ? v1 : m;
            t = w1 ? 1 : t; /* (MP2) */
            const int w2 = (v2 > m) | (v2 != v2);
            m = w2 ? v2 : m;
            t = w2 ? 2 : t;
            const int w3 = (v3 > m) | (v3 != v3);
            m = w3 ? v3 : m;
            t = w3 ? 3 : t;
            mb[j] = m;
            tb[j] = t;
        }
        memcpy(best + q0, mb, (size_t)nq * sizeof(T));
        memcpy(tap + q0, tb, (size_t)nq * sizeof(int32_t));
    }
}

/* (MP1), (MP2) over planes (n, c): y = the window maximum over its real cells (padding and
 * the ceil_mode overhang hold -inf and never win), argmax = the tap t = r*S + s of the
 * FIRST maximum in row-major order; a NaN always wins, so the last NaN of a window is
 * kept; a window whose real cells are all -inf points at its first real cell. */
KERNEL void FN(maxpool_forward)(const T *x, T *y, int32_t *argmax, const PoolGeom *g,
                                Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const T *xc = x + plane * HW;
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            T *best = y + plane * PQ + p * g->Q;
            int32_t *tap = argmax + plane * PQ + p * g->Q;
            const Py_ssize_t top = p * g->stride_h - g->pad_h;
            const Py_ssize_t r0 = top < 0 ? -top : 0;
            const Py_ssize_t r1 = top + g->R > g->H ? g->H - top : g->R;
            /* the usual 2x2 / stride 2 window, wholly inside x: its four taps in one pass */
            Py_ssize_t done = 0; /* output columns [0, done) are finished */
            if (g->R == 2 && g->S == 2 && g->stride_w == 2 && g->pad_w == 0 && r0 == 0 && r1 == 2) {
                done = g->Q < g->W / 2 ? g->Q : g->W / 2;
                FN(max_2x2)(xc + top * g->W, g->W, best, tap, done);
                if (done == g->Q) continue;
            }
            for (Py_ssize_t q = done; q < g->Q; ++q) {
                const Py_ssize_t s0 = g->pad_w - q * g->stride_w;
                best[q] = (T)-INFINITY;
                tap[q] = (int32_t)(r0 * g->S + (s0 > 0 ? s0 : 0)); /* (MP2) all -inf */
            }
            /* the rest of the output row at once, tap by tap in row-major order */
            for (Py_ssize_t r = r0; r < r1; ++r) {
                const T *row = xc + (top + r) * g->W;
                for (Py_ssize_t s = 0; s < g->S; ++s) {
                    Py_ssize_t q0, q1;
                    const Py_ssize_t left = s - g->pad_w;
                    valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                    if (q0 < done) q0 = done < q1 ? done : q1;
                    const int32_t t = (int32_t)(r * g->S + s);
                    const T *src = row + left;
                    if (g->stride_w == 2) /* the usual 2x2 / stride 2 pool: a constant stride */
                        FN(max_update)(best, tap, src, 2, t, q0, q1);
                    else
                        FN(max_update)(best, tap, src, g->stride_w, t, q0, q1);
                }
            }
        }
    }
}

/* (MP3) over planes (n, c): dx[n, c, h, w] = sum of dy over the windows whose arg-max tap
 * lands on (h, w); overlapping windows (stride < kernel) add up. */
KERNEL Py_ssize_t FN(maxpool_backward)(const T *dy, const int32_t *argmax, T *dx,
                                       const PoolGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    Py_ssize_t invalid = 0; /* arg-max entries that point outside x: refused, counted */
    const int pairs = g->R == 2 && g->S == 2 && g->stride_h == 2 && g->stride_w == 2 &&
                      g->pad_h == 0 && g->pad_w == 0;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *dxc = dx + plane * HW;
        const T *dyc = dy + plane * PQ;
        const int32_t *ac = argmax + plane * PQ;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            Py_ssize_t q = 0;
            if (pairs && 2 * p + 1 < g->H) /* 2x2 / stride 2 windows inside x: no division */
                for (; q < g->Q && 2 * q + 1 < g->W; ++q) {
                    const int32_t t = ac[p * g->Q + q];
                    if (t < 0 || t > 3) {
                        ++invalid;
                        continue;
                    }
                    /* (MP3) */
                    dxc[(2 * p + (t >> 1)) * g->W + 2 * q + (t & 1)] += dyc[p * g->Q + q];
                }
            for (; q < g->Q; ++q) {
                const int32_t t = ac[p * g->Q + q];
                const Py_ssize_t h = p * g->stride_h - g->pad_h + t / g->S;
                const Py_ssize_t w = q * g->stride_w - g->pad_w + t % g->S;
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
