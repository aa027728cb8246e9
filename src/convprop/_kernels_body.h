/* The loops of _kernels.c for one element type T; _kernels.c includes this file twice,
 * once with T = float, SFX = f32 and once with T = double, SFX = f64.
 *
 * Every kernel works on C-contiguous arrays and on a half-open range [lo, hi) of
 * independent planes (images x channels, or filters), so that several threads can share
 * one call without ever writing the same element. Equation labels are those of
 * docs/derivations.md; the NumPy code beside each caller states the same equations.
 */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

/* (I1) cols[n, c, r, s, p, q] = x_pad[n, c, p*sh + r*dh, q*sw + s*dw], planes (n, c). */
static void FN(im2col)(const T *x, T *cols, const ConvGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const T *xc = x + plane * HW;
        T *out = cols + plane * g->R * g->S * PQ;
        for (Py_ssize_t r = 0; r < g->R; ++r) {
            for (Py_ssize_t s = 0; s < g->S; ++s) {
                Py_ssize_t q0, q1;
                const Py_ssize_t left = s * g->dw - g->pl;
                valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                /* rows are short (Q elements): plain loops, not a library call per piece */
                for (Py_ssize_t p = 0; p < g->P; ++p, out += g->Q) {
                    const Py_ssize_t h = p * g->sh + r * g->dh - g->pt;
                    if (h < 0 || h >= g->H || q0 >= q1) {
                        for (Py_ssize_t q = 0; q < g->Q; ++q) out[q] = 0; /* padding reads 0 */
                        continue;
                    }
                    const T *row = xc + h * g->W + left;
                    for (Py_ssize_t q = 0; q < q0; ++q) out[q] = 0;
                    if (g->sw == 1) {
                        for (Py_ssize_t q = q0; q < q1; ++q) out[q] = row[q]; /* (I1) */
                    } else {
                        for (Py_ssize_t q = q0; q < q1; ++q) out[q] = row[q * g->sw];
                    }
                    for (Py_ssize_t q = q1; q < g->Q; ++q) out[q] = 0;
                }
            }
        }
    }
}

/* (I5) dx[n, c, h, w] = sum of dcols over every (r, s, p, q) that reads (h, w); planes
 * (n, c). The scatter-add is the adjoint of (I1): padding cells receive nothing. */
static void FN(col2im)(const T *dcols, T *dx, const ConvGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *dxc = dx + plane * HW;
        const T *in = dcols + plane * g->R * g->S * PQ;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t r = 0; r < g->R; ++r) {
            for (Py_ssize_t s = 0; s < g->S; ++s) {
                Py_ssize_t q0, q1;
                const Py_ssize_t left = s * g->dw - g->pl;
                valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                for (Py_ssize_t p = 0; p < g->P; ++p, in += g->Q) {
                    const Py_ssize_t h = p * g->sh + r * g->dh - g->pt;
                    if (h < 0 || h >= g->H) continue;
                    T *row = dxc + h * g->W + left;
                    if (g->sw == 1) {
                        for (Py_ssize_t q = q0; q < q1; ++q) row[q] += in[q];
                    } else {
                        for (Py_ssize_t q = q0; q < q1; ++q) row[q * g->sw] += in[q];
                    }
                }
            }
        }
    }
}

/* Depthwise convolution (C/G = 1, K = G*M): filter k reads channel c = k / M only.
 *
 * With stride 1 every tap is one long multiply-add over a whole plane: the plane is laid
 * out "wide", its rows Wr = Q + (S-1)*dw apart, so that output (p, q) and the input cell
 * its tap (r, s) reads are exactly off = r*dh*Wr + s*dw elements apart. xr holds the
 * region of x_pad the outputs read (Hr = P + (R-1)*dh rows), zero where it is padding;
 * the Q..Wr-1 columns of a wide output row are scratch and dropped. Other strides take
 * the row-by-row loops. */

/* xr[i, j] = x_pad[pt + ... ]: the read region of one input plane, zeros outside x. */
static void FN(load_region)(const T *xc, T *xr, const ConvGeom *g)
{
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g);
    for (Py_ssize_t i = 0; i < Hr; ++i) {
        T *dst = xr + i * Wr;
        const Py_ssize_t h = i - g->pt;
        memset(dst, 0, (size_t)Wr * sizeof(T));
        if (h < 0 || h >= g->H) continue;
        const Py_ssize_t j0 = g->pl, j1 = g->pl + g->W < Wr ? g->pl + g->W : Wr;
        if (j1 > j0) memcpy(dst + j0, xc + h * g->W, (size_t)(j1 - j0) * sizeof(T));
    }
}

/* out[i] = sum_t w[t] * src[sign * offs[t] + i] for i in [0, L): the taps of one plane,
 * summed four at a time, so that out is read and written once per four taps. With
 * accumulate != 0 the sums add to out instead of replacing it. */
static void FN(tap_sums_into)(T *out, Py_ssize_t L, const T *src, const Py_ssize_t *offs,
                              Py_ssize_t sign, const T *w, Py_ssize_t RS, int accumulate)
{
    Py_ssize_t t = 0;
    for (; t + 4 <= RS; t += 4) {
        const T *a = src + sign * offs[t], *b = src + sign * offs[t + 1];
        const T *c = src + sign * offs[t + 2], *d = src + sign * offs[t + 3];
        const T wa = w[t], wb = w[t + 1], wc = w[t + 2], wd = w[t + 3];
        if (t == 0 && !accumulate) {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i) out[i] = wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
        } else {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i) out[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
        }
    }
    for (; t < RS; ++t) {
        const T *a = src + sign * offs[t];
        const T wa = w[t];
        if (t == 0 && !accumulate) {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i) out[i] = wa * a[i];
        } else {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i) out[i] += wa * a[i];
        }
    }
}

/* (F1) y[n, k, p, q] = sum_{r,s} w[k, r, s] * x_pad[n, k/M, p*sh + r*dh, q*sw + s*dw];
 * planes (n, k). scratch: Hr*Wr + P*Wr elements (stride 1 only). */
static void FN(dw_forward)(const T *x, const T *w, T *y, T *scratch, const Py_ssize_t *offs,
                           const ConvGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    const T *loaded = NULL; /* the input plane now in the region buffer */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->K, k = plane % g->K;
        const T *xc = x + (n * g->C + k / M) * HW;
        const T *wk = w + k * g->R * g->S;
        T *yk = y + plane * PQ;
        if (g->sh == 1 && g->sw == 1) {
            T *xr = scratch, *yw = scratch + Hr * Wr;
            if (xc != loaded) FN(load_region)(xc, xr, g); /* once per channel */
            loaded = xc;
            /* (DW1), four taps per pass over yw: yw[i] = sum_t w[t] * xr[offs[t] + i] */
            FN(tap_sums_into)(yw, L, xr, offs, 1, wk, RS, 0);
            for (Py_ssize_t p = 0; p < g->P; ++p)
                memcpy(yk + p * g->Q, yw + p * Wr, (size_t)g->Q * sizeof(T));
            continue;
        }
        memset(yk, 0, (size_t)PQ * sizeof(T));
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            T *out = yk + p * g->Q;
            for (Py_ssize_t r = 0; r < g->R; ++r) {
                const Py_ssize_t h = p * g->sh + r * g->dh - g->pt;
                if (h < 0 || h >= g->H) continue; /* a zero padding row adds nothing */
                for (Py_ssize_t s = 0; s < g->S; ++s) {
                    Py_ssize_t q0, q1;
                    const Py_ssize_t left = s * g->dw - g->pl;
                    valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                    const T tap = wk[r * g->S + s];
                    const T *row = xc + h * g->W + left;
                    for (Py_ssize_t q = q0; q < q1; ++q) out[q] += tap * row[q * g->sw]; /* (F1) */
                }
            }
        }
    }
}

/* (B3), the adjoint of (F1): dx is the full convolution of the stride-dilated dy with
 * rot180(w). With stride 1 it is computed as written (each input cell gathers its taps);
 * otherwise in scatter form: every dy[n, k, p, q] sends w[k, r, s] * dy to the input cell
 * its tap (r, s) read. Cells never read (remainder, padding) stay zero. Planes (n, c).
 * scratch: 3*Hr*Wr + P*Wr elements (stride 1 only). */
static void FN(dw_backward_data)(const T *dy, const T *w, T *dx, T *scratch,
                                 const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                 Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g);
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        T *dxc = dx + plane * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        if (g->sh == 1 && g->sw == 1) {
            /* dyp: dy in the wide layout between two zero margins of the largest tap
             * offset, so that dx_region[j] = sum_t w[t] * dy_wide[j - off_t] reads zeros
             * wherever output j - off_t does not exist: the full convolution of dy with
             * rot180(w), each input cell summing its taps in a register. */
            const Py_ssize_t margin = offs[RS - 1];
            T *dxr = scratch, *dyp = scratch + Hr * Wr, *dyw = dyp + margin;
            memset(dyp, 0, (size_t)(2 * margin + g->P * Wr) * sizeof(T));
            for (Py_ssize_t k = c * M; k < (c + 1) * M; ++k) {
                const T *dyk = dy + (n * g->K + k) * PQ;
                const T *wk = w + k * RS;
                for (Py_ssize_t p = 0; p < g->P; ++p)
                    memcpy(dyw + p * Wr, dyk + p * g->Q, (size_t)g->Q * sizeof(T));
                /* (DW2) dxr[j] = sum_t w[t] * dyw[j - offs[t]], the filters of channel c
                 * (a channel multiplier M > 1) adding up */
                FN(tap_sums_into)(dxr, Hr * Wr, dyw, offs, -1, wk, RS, k != c * M);
            }
            /* the region's cells that are x itself; padding cells are dropped */
            for (Py_ssize_t h = 0; h < g->H && h + g->pt < Hr; ++h) {
                const Py_ssize_t j1 = g->pl + g->W < Wr ? g->pl + g->W : Wr;
                if (j1 > g->pl)
                    memcpy(dxc + h * g->W, dxr + (h + g->pt) * Wr + g->pl,
                           (size_t)(j1 - g->pl) * sizeof(T));
            }
            continue;
        }
        for (Py_ssize_t k = c * M; k < (c + 1) * M; ++k) {
            const T *dyk = dy + (n * g->K + k) * PQ;
            const T *wk = w + k * g->R * g->S;
            for (Py_ssize_t p = 0; p < g->P; ++p) {
                const T *in = dyk + p * g->Q;
                for (Py_ssize_t r = 0; r < g->R; ++r) {
                    const Py_ssize_t h = p * g->sh + r * g->dh - g->pt;
                    if (h < 0 || h >= g->H) continue;
                    for (Py_ssize_t s = 0; s < g->S; ++s) {
                        Py_ssize_t q0, q1;
                        const Py_ssize_t left = s * g->dw - g->pl;
                        valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                        const T tap = wk[r * g->S + s];
                        T *row = dxc + h * g->W + left;
                        for (Py_ssize_t q = q0; q < q1; ++q) row[q * g->sw] += tap * in[q]; /* (B3) */
                    }
                }
            }
        }
    }
}

/* (B2) dw[k, r, s] = sum_{n,p,q} dy[n, k, p, q] * x_pad[n, k/M, p*sh + r*dh, q*sw + s*dw];
 * filters k in [lo, hi). scratch: Hr*Wr + P*Wr + R*S elements. */
static void FN(dw_backward_weight)(const T *dy, const T *x, T *dw, T *scratch,
                                   const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                   Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    T *xr = scratch, *dyw = scratch + Hr * Wr, *sums = scratch + Hr * Wr + g->P * Wr;
    for (Py_ssize_t k = lo; k < hi; ++k) {
        for (Py_ssize_t t = 0; t < RS; ++t) sums[t] = 0;
        for (Py_ssize_t n = 0; n < g->N; ++n) {
            const T *xc = x + (n * g->C + k / M) * HW;
            const T *dyk = dy + (n * g->K + k) * PQ;
            if (g->sh == 1 && g->sw == 1) {
                FN(load_region)(xc, xr, g);
                for (Py_ssize_t p = 0; p < g->P; ++p) {
                    memcpy(dyw + p * Wr, dyk + p * g->Q, (size_t)g->Q * sizeof(T));
                    if (p + 1 < g->P)
                        memset(dyw + p * Wr + g->Q, 0, (size_t)(Wr - g->Q) * sizeof(T));
                }
                Py_ssize_t t = 0;
                for (; t + 4 <= RS; t += 4) { /* four taps per pass over dyw */
                    const T *a = xr + offs[t], *b = xr + offs[t + 1];
                    const T *c = xr + offs[t + 2], *d = xr + offs[t + 3];
                    T ta = 0, tb = 0, tc = 0, td = 0;
#pragma omp simd reduction(+ : ta, tb, tc, td)
                    for (Py_ssize_t i = 0; i < L; ++i) {
                        ta += dyw[i] * a[i]; /* (DW3) */
                        tb += dyw[i] * b[i];
                        tc += dyw[i] * c[i];
                        td += dyw[i] * d[i];
                    }
                    sums[t] += ta, sums[t + 1] += tb, sums[t + 2] += tc, sums[t + 3] += td;
                }
                for (; t < RS; ++t) {
                    const T *src = xr + offs[t];
                    T total = 0;
#pragma omp simd reduction(+ : total)
                    for (Py_ssize_t i = 0; i < L; ++i) total += dyw[i] * src[i]; /* (DW3) */
                    sums[t] += total;
                }
                continue;
            }
            for (Py_ssize_t r = 0; r < g->R; ++r) {
                for (Py_ssize_t s = 0; s < g->S; ++s) {
                    Py_ssize_t q0, q1;
                    const Py_ssize_t left = s * g->dw - g->pl;
                    valid_range(left, g->sw, g->W, g->Q, &q0, &q1);
                    T total = 0;
                    for (Py_ssize_t p = 0; p < g->P; ++p) {
                        const Py_ssize_t h = p * g->sh + r * g->dh - g->pt;
                        if (h < 0 || h >= g->H) continue;
                        const T *row = xc + h * g->W + left;
                        const T *in = dyk + p * g->Q;
                        for (Py_ssize_t q = q0; q < q1; ++q) total += in[q] * row[q * g->sw]; /* (B2) */
                    }
                    sums[r * g->S + s] += total;
                }
            }
        }
        for (Py_ssize_t t = 0; t < RS; ++t) dw[k * RS + t] = sums[t];
    }
}

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

/* Winograd F(2x2, 3x3) transforms, tile by tile (docs/derivations.md, section 7). Tiles of
 * plane (n, c) are numbered t = ti*Tw + tj; a transformed array X has the layout
 * X[xi][c][n*T + t] with xi = 4*i + j, so that (WG3) is 16 GEMMs over whole batches.
 * Input cells outside x (padding, the zero extension to whole tiles) read 0; outputs past
 * P x Q are dropped; gradients land only on cells of x. */

/* Each kernel handles one row of tiles at a time, vectorised over the Tw tiles of the row:
 * rows of x (or dy) are first copied into zero-extended row buffers, so that no tile needs
 * a bounds check, and the 16 transformed values of consecutive tiles are consecutive in
 * memory. scratch: 4 * (2*Tw + 2) elements for the row buffers, plus for wino_dx the
 * (2*Th + 2) x (2*Tw + 2) extended plane it accumulates into. */

/* Copy row h of a plane (H x W, zero outside) into buf[0 .. len) starting at column -left. */
static inline void FN(load_row)(const T *plane, Py_ssize_t H, Py_ssize_t W, Py_ssize_t h,
                                Py_ssize_t left, T *buf, Py_ssize_t len)
{
    memset(buf, 0, (size_t)len * sizeof(T));
    if (h < 0 || h >= H) return;
    const Py_ssize_t j0 = left > 0 ? left : 0; /* first buffer column that is inside x */
    const Py_ssize_t j1 = W + left < len ? W + left : len;
    if (j1 > j0) memcpy(buf + j0, plane + h * W + (j0 - left), (size_t)(j1 - j0) * sizeof(T));
}

/* (WG2) V = B^T d B for every 4x4 input tile d of planes (n, c). */
static void FN(wino_input)(const T *x, T *V, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                           Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 2 * Tw + 2;
    T *r0 = scratch, *r1 = scratch + len, *r2 = scratch + 2 * len, *r3 = scratch + 3 * len;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        const T *xc = x + plane * HW;
        for (Py_ssize_t ti = 0; ti < Th; ++ti) {
            T *rows[4] = {r0, r1, r2, r3};
            for (int a = 0; a < 4; ++a)
                FN(load_row)(xc, g->H, g->W, 2 * ti + a - g->pt, g->pl, rows[a], len);
            T *o = V + c * NT + n * Th * Tw + ti * Tw;
#pragma omp simd
            for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                const Py_ssize_t b = 2 * tj;
                T t[4][4];
                for (int k = 0; k < 4; ++k) { /* t = B^T d, column k of the tile */
                    t[0][k] = r0[b + k] - r2[b + k];
                    t[1][k] = r1[b + k] + r2[b + k];
                    t[2][k] = r2[b + k] - r1[b + k];
                    t[3][k] = r1[b + k] - r3[b + k];
                }
                for (int a = 0; a < 4; ++a) { /* V = t B */
                    o[(4 * a + 0) * stride + tj] = t[a][0] - t[a][2];
                    o[(4 * a + 1) * stride + tj] = t[a][1] + t[a][2];
                    o[(4 * a + 2) * stride + tj] = t[a][2] - t[a][1];
                    o[(4 * a + 3) * stride + tj] = t[a][1] - t[a][3]; /* (WG2) */
                }
            }
        }
    }
}

/* (WG4) y_tile = A^T M A for planes (n, k): M[xi][k][n*T + t] -> y (N, K, P, Q). */
static void FN(wino_output)(const T *M, T *y, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                            Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    T *y0 = scratch, *y1 = scratch + 2 * Tw + 2;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->K, k = plane % g->K;
        T *yk = y + plane * PQ;
        for (Py_ssize_t ti = 0; ti < Th; ++ti) {
            const T *m = M + k * NT + n * Th * Tw + ti * Tw;
#pragma omp simd
            for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                T t[2][4];
                for (int b = 0; b < 4; ++b) { /* t = A^T M */
                    const T m0 = m[b * stride + tj], m1 = m[(4 + b) * stride + tj];
                    const T m2 = m[(8 + b) * stride + tj], m3 = m[(12 + b) * stride + tj];
                    t[0][b] = m0 + m1 + m2;
                    t[1][b] = m1 - m2 - m3;
                }
                y0[2 * tj] = t[0][0] + t[0][1] + t[0][2]; /* (WG4) y = t A */
                y0[2 * tj + 1] = t[0][1] - t[0][2] - t[0][3];
                y1[2 * tj] = t[1][0] + t[1][1] + t[1][2];
                y1[2 * tj + 1] = t[1][1] - t[1][2] - t[1][3];
            }
            /* outputs past P x Q (the last tile's overhang) are dropped */
            memcpy(yk + 2 * ti * g->Q, y0, (size_t)g->Q * sizeof(T));
            if (2 * ti + 1 < g->P) memcpy(yk + (2 * ti + 1) * g->Q, y1, (size_t)g->Q * sizeof(T));
        }
    }
}

/* (WG5) Z = A e A^T for every 2x2 tile e of dy (zero past P x Q), planes (n, k). */
static void FN(wino_dy)(const T *dy, T *Z, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                        Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    const Py_ssize_t len = 2 * Tw + 2;
    T *e0 = scratch, *e1 = scratch + len;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->K, k = plane % g->K;
        const T *dyk = dy + plane * PQ;
        for (Py_ssize_t ti = 0; ti < Th; ++ti) {
            FN(load_row)(dyk, g->P, g->Q, 2 * ti, 0, e0, len);
            FN(load_row)(dyk, g->P, g->Q, 2 * ti + 1, 0, e1, len);
            T *o = Z + k * NT + n * Th * Tw + ti * Tw;
#pragma omp simd
            for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                T t[4][2];
                for (int j = 0; j < 2; ++j) { /* t = A e */
                    const T a = e0[2 * tj + j], b = e1[2 * tj + j];
                    t[0][j] = a;
                    t[1][j] = a + b;
                    t[2][j] = a - b;
                    t[3][j] = -b;
                }
                for (int a = 0; a < 4; ++a) { /* Z = t A^T */
                    o[(4 * a + 0) * stride + tj] = t[a][0];
                    o[(4 * a + 1) * stride + tj] = t[a][0] + t[a][1];
                    o[(4 * a + 2) * stride + tj] = t[a][0] - t[a][1];
                    o[(4 * a + 3) * stride + tj] = -t[a][1]; /* (WG5) */
                }
            }
        }
    }
}

/* (WG6) dd = B Mbar B^T per tile, scatter-added into the overlapping 4x4 input tiles of an
 * extended plane, whose cells that are x are then copied out; planes (n, c). */
static void FN(wino_dx)(const T *Mbar, T *dx, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                        Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 2 * Tw + 2, rows = 2 * Th + 2;
    T *dd = scratch, *ext = scratch + 16 * Tw; /* dd[(4a + b) * Tw + tj], ext rows x len */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        memset(ext, 0, (size_t)(rows * len) * sizeof(T));
        for (Py_ssize_t ti = 0; ti < Th; ++ti) {
            const T *m = Mbar + c * NT + n * Th * Tw + ti * Tw;
#pragma omp simd
            for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                T t[4][4];
                for (int b = 0; b < 4; ++b) { /* t = B Mbar */
                    const T m0 = m[b * stride + tj], m1 = m[(4 + b) * stride + tj];
                    const T m2 = m[(8 + b) * stride + tj], m3 = m[(12 + b) * stride + tj];
                    t[0][b] = m0;
                    t[1][b] = m1 - m2 + m3;
                    t[2][b] = m1 + m2 - m0;
                    t[3][b] = -m3;
                }
                for (int a = 0; a < 4; ++a) { /* dd = t B^T */
                    dd[(4 * a + 0) * Tw + tj] = t[a][0];
                    dd[(4 * a + 1) * Tw + tj] = t[a][1] - t[a][2] + t[a][3];
                    dd[(4 * a + 2) * Tw + tj] = t[a][1] + t[a][2] - t[a][0];
                    dd[(4 * a + 3) * Tw + tj] = -t[a][3];
                }
            }
            /* tiles overlap by two rows and columns: add column b of every tile in turn */
            for (int a = 0; a < 4; ++a) {
                T *row = ext + (2 * ti + a) * len;
                for (int b = 0; b < 4; ++b) {
                    const T *src = dd + (4 * a + b) * Tw;
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) row[2 * tj + b] += src[tj]; /* (WG6) */
                }
            }
        }
        /* ext holds the gradient of x_pad (extended); keep the cells that are x */
        T *dxc = dx + plane * HW;
        for (Py_ssize_t h = 0; h < g->H; ++h) {
            const Py_ssize_t i = h + g->pt;
            T *dst = dxc + h * g->W;
            memset(dst, 0, (size_t)g->W * sizeof(T));
            if (i >= rows) continue;
            const Py_ssize_t w1 = g->W + g->pl < len ? g->W : len - g->pl;
            if (w1 > 0) memcpy(dst, ext + i * len + g->pl, (size_t)w1 * sizeof(T));
        }
    }
}

/* (F1), its bias term: y[n, k, :, :] += b[k] for planes (n, k) of y (N, K, PQ). */
static void FN(add_bias)(T *y, const T *b, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo,
                         Py_ssize_t hi)
{
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *yk = y + plane * PQ;
        const T bk = b[plane % K];
#pragma omp simd
        for (Py_ssize_t i = 0; i < PQ; ++i) yk[i] += bk; /* (F1) */
    }
}

/* (B1) db[k] = sum_{n,p,q} dy[n, k, p, q] for filters k in [lo, hi), summed in double. */
static void FN(bias_grad)(const T *dy, T *db, Py_ssize_t N, Py_ssize_t K, Py_ssize_t PQ,
                          Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t k = lo; k < hi; ++k) {
        double total = 0;
        for (Py_ssize_t n = 0; n < N; ++n) {
            const T *dyk = dy + (n * K + k) * PQ;
            double part = 0;
#pragma omp simd reduction(+ : part)
            for (Py_ssize_t i = 0; i < PQ; ++i) part += (double)dyk[i]; /* (B1) */
            total += part;
        }
        db[k] = (T)total;
    }
}

/* Layout changes of the FFT algorithm between planes (M, rows, cols) and a spatial-leading
 * array (Lh, Lw, M) whose M values of one position are contiguous. Both work on channels
 * [lo, hi) in blocks of PERM_BLOCK, so that each position moves one contiguous run. */

/* dst[m, i, j] = src[row0 + i*sh, col0 + j*sw, m] for i < rows, j < cols. */
static void FN(spatial_to_planes)(const T *src, T *dst, Py_ssize_t Lw, Py_ssize_t M,
                                  Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                                  Py_ssize_t col0, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t lo,
                                  Py_ssize_t hi)
{
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += PERM_BLOCK) {
        const Py_ssize_t m1 = m0 + PERM_BLOCK < hi ? m0 + PERM_BLOCK : hi;
        for (Py_ssize_t i = 0; i < rows; ++i) {
            for (Py_ssize_t j = 0; j < cols; ++j) {
                const T *in = src + ((row0 + i * sh) * Lw + col0 + j * sw) * M;
                for (Py_ssize_t m = m0; m < m1; ++m) dst[(m * rows + i) * cols + j] = in[m];
            }
        }
    }
}

/* dst[row0 + i*sh, col0 + j*sw, m] = src[m, i, j]; the other cells of dst are untouched. */
static void FN(planes_to_spatial)(const T *src, T *dst, Py_ssize_t Lw, Py_ssize_t M,
                                  Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                                  Py_ssize_t col0, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t lo,
                                  Py_ssize_t hi)
{
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += PERM_BLOCK) {
        const Py_ssize_t m1 = m0 + PERM_BLOCK < hi ? m0 + PERM_BLOCK : hi;
        for (Py_ssize_t i = 0; i < rows; ++i) {
            for (Py_ssize_t j = 0; j < cols; ++j) {
                T *out = dst + ((row0 + i * sh) * Lw + col0 + j * sw) * M;
                for (Py_ssize_t m = m0; m < m1; ++m) out[m] = src[(m * rows + i) * cols + j];
            }
        }
    }
}

#undef FN
#undef CAT
#undef CAT_
