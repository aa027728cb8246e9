/* convprop._native: im2col (I1) and its adjoint col2im (I5).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

#if !defined(IM2COL_LAYOUT_ONCE)
#define IM2COL_LAYOUT_ONCE
/* Where plane (n, c)'s tap (r, s) starts in the columns: cols[n, c, r, s, p, q] (N, C*R*S, P*Q),
 * or with `wide` cols[c, r, s, n, p, q] (C*R*S, N*P*Q), the batch as columns (I7). */
static inline Py_ssize_t cols_offset(const ConvGeom *g, int wide, Py_ssize_t plane,
                                     Py_ssize_t r, Py_ssize_t s)
{
    const Py_ssize_t PQ = g->P * g->Q, tap = r * g->S + s;
    if (!wide) return (plane * g->R * g->S + tap) * PQ;
    const Py_ssize_t n = plane / g->C, c = plane % g->C;
    return ((c * g->R * g->S + tap) * g->N + n) * PQ;
}

/* The plane n*C + c that task i works on: i itself, or with `wide` the planes in the order
 * (c, n), so that consecutive tasks read and write adjacent runs of the columns. */
static inline Py_ssize_t wide_plane(const ConvGeom *g, int wide, Py_ssize_t i)
{
    return wide ? (i % g->N) * g->C + i / g->N : i;
}
#endif

/* (I1) cols[n, c, r, s, p, q] = x_pad[n, c, p*stride_h + r*dil_h, q*stride_w + s*dil_w], planes
 * (n, c); the same values in (I7)'s order where `wide`. */
KERNEL void FN(im2col)(const T *x, T *cols, const ConvGeom *g, int wide, Py_ssize_t lo,
                       Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W;
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const Py_ssize_t plane = wide_plane(g, wide, i);
        const T *xc = x + plane * HW;
        for (Py_ssize_t r = 0; r < g->R; ++r) {
            for (Py_ssize_t s = 0; s < g->S; ++s) {
                T *out = cols + cols_offset(g, wide, plane, r, s);
                Py_ssize_t q0, q1;
                const Py_ssize_t left = s * g->dil_w - g->pad_left;
                valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                /* rows are short (Q elements): plain loops, not a library call per piece */
                for (Py_ssize_t p = 0; p < g->P; ++p, out += g->Q) {
                    const Py_ssize_t h = p * g->stride_h + r * g->dil_h - g->pad_top;
                    if (h < 0 || h >= g->H || q0 >= q1) {
                        for (Py_ssize_t q = 0; q < g->Q; ++q) out[q] = 0; /* padding reads 0 */
                        continue;
                    }
                    const T *row = xc + h * g->W + left;
                    for (Py_ssize_t q = 0; q < q0; ++q) out[q] = 0;
                    if (g->stride_w == 1) {
                        for (Py_ssize_t q = q0; q < q1; ++q) out[q] = row[q]; /* (I1) */
                    } else if (g->stride_w == 2) {
                        /* a constant stride: vectorised (0.8x on res3x3s2) */
                        for (Py_ssize_t q = q0; q < q1; ++q) out[q] = row[2 * q];
                    } else {
                        for (Py_ssize_t q = q0; q < q1; ++q) out[q] = row[q * g->stride_w];
                    }
                    for (Py_ssize_t q = q1; q < g->Q; ++q) out[q] = 0;
                }
            }
        }
    }
}

/* (I5) dx[n, c, h, w] = sum of dcols over every (r, s, p, q) that reads (h, w); planes
 * (n, c). The scatter-add is the adjoint of (I1): padding cells receive nothing. */
KERNEL void FN(col2im)(const T *dcols, T *dx, const ConvGeom *g, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *dxc = dx + plane * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t r = 0; r < g->R; ++r) {
            for (Py_ssize_t s = 0; s < g->S; ++s) {
                const T *in = dcols + cols_offset(g, 0, plane, r, s);
                Py_ssize_t q0, q1;
                const Py_ssize_t left = s * g->dil_w - g->pad_left;
                valid_range(left, g->stride_w, g->W, g->Q, &q0, &q1);
                for (Py_ssize_t p = 0; p < g->P; ++p, in += g->Q) {
                    const Py_ssize_t h = p * g->stride_h + r * g->dil_h - g->pad_top;
                    if (h < 0 || h >= g->H) continue;
                    T *row = dxc + h * g->W + left;
                    if (g->stride_w == 1) {
                        for (Py_ssize_t q = q0; q < q1; ++q) row[q] += in[q];
                    } else {
                        for (Py_ssize_t q = q0; q < q1; ++q) row[q * g->stride_w] += in[q];
                    }
                }
            }
        }
    }
}
