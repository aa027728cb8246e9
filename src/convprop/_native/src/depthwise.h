/* convprop._native: depthwise convolution (F1, B2, B3 with C/G = 1; DW1-DW3).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

/* Depthwise convolution (C/G = 1, K = G*M): filter k reads channel c = k / M only.
 *
 * With stride 1 every tap is one long multiply-add over a whole plane: the plane is laid
 * out "wide", its rows Wr = Q + (S-1)*dil_w apart, so that output (p, q) and the input cell
 * its tap (r, s) reads are exactly off = r*dil_h*Wr + s*dil_w elements apart. xr holds the
 * region of x_pad the outputs read (Hr = P + (R-1)*dil_h rows), zero where it is padding;
 * the Q..Wr-1 columns of a wide output row are scratch and dropped. Other strides take
 * the row-by-row loops. */

/* xr[i, j] = x_pad[pad_top + ..., pad_left + ...]: the read region of one input plane, zeros
 * outside x. */
KERNEL_PART void FN(load_region)(const T *xc, T *xr, const ConvGeom *g)
{
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g);
    for (Py_ssize_t i = 0; i < Hr; ++i) {
        T *dst = xr + i * Wr;
        const Py_ssize_t h = i - g->pad_top;
        memset(dst, 0, (size_t)Wr * sizeof(T));
        if (h < 0 || h >= g->H) continue;
        const Py_ssize_t j0 = g->pad_left, j1 = g->pad_left + g->W < Wr ? g->pad_left + g->W : Wr;
        if (j1 > j0) memcpy(dst + j0, xc + h * g->W, (size_t)(j1 - j0) * sizeof(T));
    }
}

/* out[i] = sum_t w[t] * src[sign * offs[t] + i] for i in [0, L): the taps of one plane,
 * summed four at a time, so that out is read and written once per four taps. With
 * accumulate != 0 the sums add to out instead of replacing it. A function of its own (one
 * call per plane), not inlined into the kernels that call it: inlined, the forward of dw3x3
 * (8x256x28x28, 3x3) took 0.66 ms instead of 0.55 on one thread, its input gradient 0.74
 * instead of 0.66 (medians, alternating in one process). */
KERNEL void FN(tap_sums_into)(T *out, Py_ssize_t L, const T *src, const Py_ssize_t *offs,
                              Py_ssize_t sign, const T *w, Py_ssize_t RS, int accumulate)
{
    Py_ssize_t t = 0;
    if (RS == 9) { /* a 3 x 3 kernel: all nine taps in one pass (level or faster, measured) */
        const T *a = src + sign * offs[0], *b = src + sign * offs[1];
        const T *c = src + sign * offs[2], *d = src + sign * offs[3];
        const T *e = src + sign * offs[4], *f = src + sign * offs[5];
        const T *h = src + sign * offs[6], *k = src + sign * offs[7], *m = src + sign * offs[8];
        const T wa = w[0], wb = w[1], wc = w[2], wd = w[3], we = w[4], wf = w[5];
        const T wh = w[6], wk = w[7], wm = w[8];
        if (!accumulate) {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i)
                out[i] = wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i] + we * e[i] + wf * f[i] +
                         wh * h[i] + wk * k[i] + wm * m[i];
        } else {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i)
                out[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i] + we * e[i] + wf * f[i] +
                          wh * h[i] + wk * k[i] + wm * m[i];
        }
        return;
    }
    for (; t + 4 <= RS; t += 4) {
        const T *a = src + sign * offs[t], *b = src + sign * offs[t + 1];
        const T *c = src + sign * offs[t + 2], *d = src + sign * offs[t + 3];
        const T wa = w[t], wb = w[t + 1], wc = w[t + 2], wd = w[t + 3];
        if (t == 0 && !accumulate) {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i)
                out[i] = wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
        } else {
#pragma omp simd
            for (Py_ssize_t i = 0; i < L; ++i)
                out[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
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

/* (F1) y[n, k, p, q] = b[k]
 *   + sum_{r,s} w[k, r, s] * x_pad[n, k/M, p*stride_h + r*dil_h, q*stride_w + s*dil_w];
 * planes (n, k); b may be NULL (no bias). scratch: Hr*Wr + P*Wr elements (stride 1 only). */
KERNEL void FN(depthwise_forward)(const T *x, const T *w, const T *b, T *y, T *scratch,
                                  const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                  Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    const T *loaded = NULL; /* the input plane now in the region buffer */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->K, k = plane % g->K;
        const T *xc = x + (n * g->C + k / M) * HW;
        const T *wk = w + k * g->R * g->S;
        T *yk = y + plane * PQ;
        const T bias = b ? b[k] : 0; /* (F1) the bias term, added with the copy out */
        if (g->stride_h == 1 && g->stride_w == 1) {
            T *xr = scratch, *yw = scratch + Hr * Wr;
            if (xc != loaded) FN(load_region)(xc, xr, g); /* once per channel */
            loaded = xc;
            /* (DW1), four taps per pass over yw: yw[i] = sum_t w[t] * xr[offs[t] + i] */
            FN(tap_sums_into)(yw, L, xr, offs, 1, wk, RS, 0);
            for (Py_ssize_t p = 0; p < g->P; ++p) {
                T *out = yk + p * g->Q;
                const T *wide = yw + p * Wr;
#pragma omp simd
                for (Py_ssize_t q = 0; q < g->Q; ++q) out[q] = wide[q] + bias;
            }
            continue;
        }
        for (Py_ssize_t i = 0; i < PQ; ++i) yk[i] = bias;
        for (Py_ssize_t p = 0; p < g->P; ++p) {
            T *out = yk + p * g->Q;
            for (Py_ssize_t r = 0; r < g->R; ++r) {
                const Py_ssize_t h = p * g->stride_h + r * g->dil_h - g->pad_top;
                if (h < 0 || h >= g->H) continue; /* a zero padding row adds nothing */
                for (Py_ssize_t s = 0; s < g->S; ++s) {
                    Py_ssize_t q0, q1;
                    const Py_ssize_t left = s * g->dil_w - g->pad_left;
                    valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                    const T tap = wk[r * g->S + s];
                    const T *row = xc + h * g->W + left;
                    for (Py_ssize_t q = q0; q < q1; ++q)
                        out[q] += tap * row[q * g->stride_w]; /* (F1) */
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
KERNEL void FN(depthwise_backward_data)(const T *dy, const T *w, T *dx, T *scratch,
                                        const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t lo,
                                        Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g);
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        T *dxc = dx + plane * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        if (g->stride_h == 1 && g->stride_w == 1) {
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
            for (Py_ssize_t h = 0; h < g->H && h + g->pad_top < Hr; ++h) {
                const Py_ssize_t j1 = g->pad_left + g->W < Wr ? g->pad_left + g->W : Wr;
                if (j1 > g->pad_left)
                    memcpy(dxc + h * g->W, dxr + (h + g->pad_top) * Wr + g->pad_left,
                           (size_t)(j1 - g->pad_left) * sizeof(T));
            }
            continue;
        }
        for (Py_ssize_t k = c * M; k < (c + 1) * M; ++k) {
            const T *dyk = dy + (n * g->K + k) * PQ;
            const T *wk = w + k * g->R * g->S;
            for (Py_ssize_t p = 0; p < g->P; ++p) {
                const T *in = dyk + p * g->Q;
                for (Py_ssize_t r = 0; r < g->R; ++r) {
                    const Py_ssize_t h = p * g->stride_h + r * g->dil_h - g->pad_top;
                    if (h < 0 || h >= g->H) continue;
                    for (Py_ssize_t s = 0; s < g->S; ++s) {
                        Py_ssize_t q0, q1;
                        const Py_ssize_t left = s * g->dil_w - g->pad_left;
                        valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                        const T tap = wk[r * g->S + s];
                        T *row = dxc + h * g->W + left;
                        for (Py_ssize_t q = q0; q < q1; ++q)
                            row[q * g->stride_w] += tap * in[q]; /* (B3) */
                    }
                }
            }
        }
    }
}

/* (DW3) for one plane: sums[t] += sum_i dyw[i] * xr[offs[t] + i] over i in [0, L), in runs
 * of `run` every `step` (see depthwise_run). */
KERNEL_PART void FN(depthwise_tap_sums)(T *sums, const T *xr, const T *dyw, const Py_ssize_t *offs,
                                        Py_ssize_t RS, Py_ssize_t L, Py_ssize_t run,
                                        Py_ssize_t step)
{
    Py_ssize_t t = 0;
    /* nine taps per pass over dyw (a 3 x 3 kernel in one): nine independent sums, each tap's
     * in the same order whatever the grouping of the taps into passes */
    for (; t + 9 <= RS; t += 9) {
        const T *a = xr + offs[t], *b = xr + offs[t + 1], *c = xr + offs[t + 2];
        const T *d = xr + offs[t + 3], *e = xr + offs[t + 4], *f = xr + offs[t + 5];
        const T *h = xr + offs[t + 6], *k8 = xr + offs[t + 7], *m = xr + offs[t + 8];
        T ta = 0, tb = 0, tc = 0, td = 0, te = 0, tf = 0, th = 0, tk = 0, tm = 0;
        for (Py_ssize_t i0 = 0; i0 < L; i0 += step) {
#pragma omp simd reduction(+ : ta, tb, tc, td, te, tf, th, tk, tm)
            for (Py_ssize_t i = i0; i < i0 + run; ++i) {
                const T u = dyw[i];
                ta += u * a[i]; /* (DW3) */
                tb += u * b[i];
                tc += u * c[i];
                td += u * d[i];
                te += u * e[i];
                tf += u * f[i];
                th += u * h[i];
                tk += u * k8[i];
                tm += u * m[i];
            }
        }
        sums[t] += ta, sums[t + 1] += tb, sums[t + 2] += tc, sums[t + 3] += td;
        sums[t + 4] += te, sums[t + 5] += tf, sums[t + 6] += th, sums[t + 7] += tk;
        sums[t + 8] += tm;
    }
    for (; t + 4 <= RS; t += 4) { /* four taps per pass over dyw */
        const T *a = xr + offs[t], *b = xr + offs[t + 1];
        const T *c = xr + offs[t + 2], *d = xr + offs[t + 3];
        T ta = 0, tb = 0, tc = 0, td = 0;
        for (Py_ssize_t i0 = 0; i0 < L; i0 += step) {
#pragma omp simd reduction(+ : ta, tb, tc, td)
            for (Py_ssize_t i = i0; i < i0 + run; ++i) {
                ta += dyw[i] * a[i]; /* (DW3) */
                tb += dyw[i] * b[i];
                tc += dyw[i] * c[i];
                td += dyw[i] * d[i];
            }
        }
        sums[t] += ta, sums[t + 1] += tb, sums[t + 2] += tc, sums[t + 3] += td;
    }
    for (; t < RS; ++t) {
        const T *src = xr + offs[t];
        T total = 0;
        for (Py_ssize_t i0 = 0; i0 < L; i0 += step) {
#pragma omp simd reduction(+ : total)
            for (Py_ssize_t i = i0; i < i0 + run; ++i) total += dyw[i] * src[i];
        }
        sums[t] += total; /* (DW3) */
    }
}

/* The runs of (DW3) over a wide plane of length L. The scratch columns of dyw are 0, so one
 * long loop over the wide plane is exact when x is finite; if the region xr holds an inf or
 * NaN, a scratch column could turn it into 0 * inf = NaN although no tap reads it, so the sums
 * then run row by row over the Q real columns only: *run = Q every *step = Wr. */
KERNEL_PART void FN(depthwise_run)(const T *xr, const ConvGeom *g, Py_ssize_t *run,
                                   Py_ssize_t *step)
{
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    T probe = 0; /* x - x: 0 for finite x, NaN for inf and NaN */
#pragma omp simd reduction(+ : probe)
    for (Py_ssize_t i = 0; i < Hr * Wr; ++i) probe += xr[i] - xr[i];
    *run = probe == 0 ? L : g->Q;
    *step = probe == 0 ? L : Wr;
}

/* (B2) dw[k, r, s]
 *   = sum_{n,p,q} dy[n, k, p, q] * x_pad[n, k/M, p*stride_h + r*dil_h, q*stride_w + s*dil_w],
 * one plane's share at a time: plane_sums[i, t] = the sum over (p, q) of plane i of the
 * filters [k0, k0 + kc), i = n*kc + (k - k0), for i in [lo, hi). The planes are read in the order
 * they lie in memory (a filter's planes are C*H*W apart); the caller adds each filter's N
 * shares in the order of n, so the result does not depend on which thread took a plane.
 * scratch: Hr*Wr + P*Wr elements. */
KERNEL void FN(depthwise_backward_weight)(const T *dy, const T *x, T *plane_sums, T *scratch,
                                          const Py_ssize_t *offs, const ConvGeom *g, Py_ssize_t k0,
                                          Py_ssize_t kc, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    T *xr = scratch, *dyw = scratch + Hr * Wr;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / kc, k = k0 + plane % kc;
        T *sums = plane_sums + plane * RS;
        for (Py_ssize_t t = 0; t < RS; ++t) sums[t] = 0;
        const T *xc = x + (n * g->C + k / M) * HW;
        const T *dyk = dy + (n * g->K + k) * PQ;
        if (g->stride_h == 1 && g->stride_w == 1) {
            FN(load_region)(xc, xr, g);
            for (Py_ssize_t p = 0; p < g->P; ++p) {
                memcpy(dyw + p * Wr, dyk + p * g->Q, (size_t)g->Q * sizeof(T));
                if (p + 1 < g->P)
                    memset(dyw + p * Wr + g->Q, 0, (size_t)(Wr - g->Q) * sizeof(T));
            }
            Py_ssize_t run, step;
            FN(depthwise_run)(xr, g, &run, &step);
            FN(depthwise_tap_sums)(sums, xr, dyw, offs, RS, L, run, step); /* (DW3) */
            continue;
        }
        for (Py_ssize_t r = 0; r < g->R; ++r) {
            for (Py_ssize_t s = 0; s < g->S; ++s) {
                Py_ssize_t q0, q1;
                const Py_ssize_t left = s * g->dil_w - g->pad_left;
                valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                T total = 0;
                for (Py_ssize_t p = 0; p < g->P; ++p) {
                    const Py_ssize_t h = p * g->stride_h + r * g->dil_h - g->pad_top;
                    if (h < 0 || h >= g->H) continue;
                    const T *row = xc + h * g->W + left;
                    const T *in = dyk + p * g->Q;
                    for (Py_ssize_t q = q0; q < q1; ++q)
                        total += in[q] * row[q * g->stride_w]; /* (B2) */
                }
                sums[r * g->S + s] += total;
            }
        }
    }
}

/* (B3) and (B2) together, stride 1, planes (n, c) in [lo, hi): each of channel c's M dy planes
 * is put in the wide layout once and serves both (DW2), the input gradient's gather into the
 * region dxr, and (DW3), its plane's tap sums plane_sums[n*K + k, t] against the region xr of
 * x's plane (n, c). dx and the sums are those of depthwise_backward_data and
 * depthwise_backward_weight, to the bit; dy is read once instead of twice. scratch:
 * 4*Hr*Wr + P*Wr elements (dxr, xr, and dyp = dy's wide plane between two margins of
 * offs[RS - 1] < Hr*Wr each). */
KERNEL void FN(depthwise_backward_both)(const T *dy, const T *x, const T *w, T *dx, T *plane_sums,
                                        T *scratch, const Py_ssize_t *offs, const ConvGeom *g,
                                        Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, PQ = g->P * g->Q, M = g->K / g->C, RS = g->R * g->S;
    const Py_ssize_t Hr = wide_rows(g), Wr = wide_cols(g), L = (g->P - 1) * Wr + g->Q;
    const Py_ssize_t margin = offs[RS - 1];
    T *dxr = scratch, *xr = scratch + Hr * Wr, *dyp = xr + Hr * Wr, *dyw = dyp + margin;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        T *dxc = dx + plane * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        FN(load_region)(x + plane * HW, xr, g);
        Py_ssize_t run, step;
        FN(depthwise_run)(xr, g, &run, &step);
        memset(dyp, 0, (size_t)(2 * margin + g->P * Wr) * sizeof(T));
        for (Py_ssize_t k = c * M; k < (c + 1) * M; ++k) {
            const T *dyk = dy + (n * g->K + k) * PQ;
            for (Py_ssize_t p = 0; p < g->P; ++p)
                memcpy(dyw + p * Wr, dyk + p * g->Q, (size_t)g->Q * sizeof(T));
            T *sums = plane_sums + (n * g->K + k) * RS;
            for (Py_ssize_t t = 0; t < RS; ++t) sums[t] = 0;
            FN(depthwise_tap_sums)(sums, xr, dyw, offs, RS, L, run, step); /* (DW3) */
            /* (DW2) dxr[j] = sum_t w[t] * dyw[j - offs[t]], channel c's filters adding up */
            FN(tap_sums_into)(dxr, Hr * Wr, dyw, offs, -1, w + k * RS, RS, k != c * M);
        }
        for (Py_ssize_t h = 0; h < g->H && h + g->pad_top < Hr; ++h) {
            const Py_ssize_t j1 = g->pad_left + g->W < Wr ? g->pad_left + g->W : Wr;
            if (j1 > g->pad_left)
                memcpy(dxc + h * g->W, dxr + (h + g->pad_top) * Wr + g->pad_left,
                       (size_t)(j1 - g->pad_left) * sizeof(T));
        }
    }
}

/* dw[k, t] = the sum over n, in order, of plane_sums[n*kc + (k - k0), t], k in [k0, k0 + kc). */
KERNEL void FN(depthwise_weight_sum)(const T *plane_sums, T *dw, Py_ssize_t N, Py_ssize_t k0,
                                     Py_ssize_t kc, Py_ssize_t RS)
{
    for (Py_ssize_t k = 0; k < kc; ++k)
        for (Py_ssize_t t = 0; t < RS; ++t) {
            T total = 0;
            for (Py_ssize_t n = 0; n < N; ++n) total += plane_sums[(n * kc + k) * RS + t];
            dw[(k0 + k) * RS + t] = total;
        }
}
