/* convprop._native: the Winograd F(4x4, 3x3) tile transforms (WG2, WG4-WG6 with WG9's
 * matrices).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes, so that threads can share
 * one call without writing the same element. Labels are those of docs/derivations.md.
 *
 * The layout is that of winograd.h with 36 tile positions instead of 16: tiles of
 * plane (n, c) are numbered t = ti*Tw + tj, a transformed array X is X[xi][c][n*T + t] with
 * xi = 6*i + j, 6x6 input tiles start every 4 cells (they overlap by two) and each gives a
 * 4x4 output tile. Each kernel handles a block of whole rows of tiles (about WINO4_BLOCK
 * tiles) at a time, applying the 1-D transforms in two steps over arrays of the block's tiles
 * (vectorised, no per-tile arrays): the 36 rows of the transformed layout are then each read
 * or written in one sweep per block, not 36 short runs per row of tiles. Rows of x or dy are
 * zero-extended into buffers of 4*Tw + 4 cells and split into their four phases (column
 * 4*tj + k of a row is phase k's cell tj), so that no loop reads with a stride.
 * scratch: wino4_scratch(Tw) elements. Planes are numbered channel-major, as in winograd.h.
 *
 * (WG9), interpolation points 0, 1, -1, 1/2, -2 and infinity (rows of B^T and G scaled so
 * that B^T is integer):
 *   B^T = [2 -3 -4  3  2  0]   G = [ 1/2    0     0  ]   A^T = [1  1  1  1    1  0]
 *         [0 -2  1  5  2  0]       [ 1/6   1/6   1/6 ]         [0  1 -1  1/2 -2  0]
 *         [0  2 -5  1  2  0]       [-1/6   1/6  -1/6 ]         [0  1  1  1/4  4  0]
 *         [0 -2 -1  2  1  0]       [-16/15 -8/15 -4/15]        [0  1 -1  1/8 -8  1]
 *         [0  1 -2 -1  2  0]       [ 1/30 -1/15  2/15]
 *         [0  2 -3 -4  3  2]       [ 0     0     1/2 ]
 */

#if !defined(WINO4_MACROS_ONCE)
#define WINO4_MACROS_ONCE
/* (WG9) the 1-D transforms of 6 (or 4) values v0 .. v5, each result passed to OUT(i, value);
 * the factors 1/2, 1/4 and 1/8 are exact. */
#define WINO4_BT(OUT, v0, v1, v2, v3, v4, v5) /* u = B^T v */                                  \
    do {                                                                                         \
        OUT(0, 2 * ((v0) + (v4)) + 3 * ((v3) - (v1)) - 4 * (v2));                               \
        OUT(1, (v2) - 2 * (v1) + 5 * (v3) + 2 * (v4));                                           \
        OUT(2, 2 * ((v1) + (v4)) - 5 * (v2) + (v3));                                             \
        OUT(3, (v4) - (v2) + 2 * ((v3) - (v1)));                                                 \
        OUT(4, (v1) - (v3) + 2 * ((v4) - (v2)));                                                 \
        OUT(5, 2 * ((v1) + (v5)) + 3 * ((v4) - (v2)) - 4 * (v3));                               \
    } while (0)
#define WINO4_AT(OUT, v0, v1, v2, v3, v4, v5) /* o = A^T v: 6 values -> 4 */                  \
    do {                                                                                         \
        OUT(0, (v0) + ((v1) + (v2)) + ((v3) + (v4)));                                            \
        OUT(1, ((v1) - (v2)) + ((T)0.5 * (v3) - 2 * (v4)));                                      \
        OUT(2, ((v1) + (v2)) + ((T)0.25 * (v3) + 4 * (v4)));                                     \
        OUT(3, ((v1) - (v2)) + ((T)0.125 * (v3) - 8 * (v4)) + (v5));                             \
    } while (0)
#define WINO4_A(OUT, e0, e1, e2, e3) /* z = A e: 4 values -> 6 (the adjoint of A^T) */        \
    do {                                                                                         \
        OUT(0, (e0));                                                                            \
        OUT(1, ((e0) + (e2)) + ((e1) + (e3)));                                                   \
        OUT(2, ((e0) + (e2)) - ((e1) + (e3)));                                                   \
        OUT(3, ((e0) + (T)0.25 * (e2)) + ((T)0.5 * (e1) + (T)0.125 * (e3)));                     \
        OUT(4, ((e0) + 4 * (e2)) - (2 * (e1) + 8 * (e3)));                                       \
        OUT(5, (e3));                                                                            \
    } while (0)
#define WINO4_B(OUT, v0, v1, v2, v3, v4, v5) /* u = B v (the adjoint of B^T) */               \
    do {                                                                                         \
        OUT(0, 2 * (v0));                                                                        \
        OUT(1, 2 * ((v2) + (v5) - (v1) - (v3)) - 3 * (v0) + (v4));                               \
        OUT(2, (v1) - (v3) - 4 * (v0) - 5 * (v2) - 2 * (v4) - 3 * (v5));                         \
        OUT(3, 3 * (v0) + 5 * (v1) + (v2) + 2 * (v3) - (v4) - 4 * (v5));                         \
        OUT(4, 2 * ((v0) + (v1) + (v2) + (v4)) + (v3) + 3 * (v5));                               \
        OUT(5, 2 * (v5));                                                                        \
    } while (0)
#endif

#if !defined(WINO4_BLOCK)
#define WINO4_BLOCK 256 /* tiles per block: 36 * 2 rows of it stay in the core's cache */
/* Scratch elements of one thread: two blocks of 36 rows, two row buffers and their phases. */
static inline Py_ssize_t wino4_scratch(Py_ssize_t Tw)
{
    return 72 * wino_block_rows(Tw, WINO4_BLOCK) * Tw + 2 * (4 * Tw + 4) + 4 * (Tw + 1) + 16;
}
#endif

/* buf[4*i + k] -> ph[k * (n + 1) + i] for i < n + 1, k < 4: a row buffer split into its four
 * phases, so that a tile's columns 4*tj + k are ph[k][tj] (k < 4) and ph[k - 4][tj + 1]. */
static inline void FN(wino4_phases)(const T *buf, T *ph, Py_ssize_t n)
{
    T *p0 = ph, *p1 = ph + (n + 1), *p2 = p1 + (n + 1), *p3 = p2 + (n + 1);
#pragma omp simd
    for (Py_ssize_t i = 0; i < n + 1; ++i) {
        p0[i] = buf[4 * i];
        p1[i] = buf[4 * i + 1];
        p2[i] = buf[4 * i + 2];
        p3[i] = buf[4 * i + 3];
    }
}

/* (WG2) V = B^T d B for every 6x6 input tile d of planes (n, c): per block of tile rows,
 * c = d B along each tile row's 6 input rows (from their phases), then V = B^T c. */
KERNEL void FN(wino4_input)(const T *x, T *V, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                            Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 4 * Tw + 4, L = Tw + 1, rows = wino_block_rows(Tw, WINO4_BLOCK);
    const Py_ssize_t B = rows * Tw; /* row length of the block arrays */
    T *cb = scratch, *buf = cb + 36 * B, *ph = buf + len; /* cb[(6a + j) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane / g->N, n = plane % g->N; /* channel-major */
        const T *xc = x + (n * g->C + c) * HW;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int a = 0; a < 6; ++a) {
                    FN(load_row)(xc, g->H, g->W, 4 * ti + a - g->pad_top, g->pad_left, buf, len);
                    FN(wino4_phases)(buf, ph, Tw);
                    const T *p0 = ph, *p1 = p0 + L, *p2 = p1 + L, *p3 = p2 + L;
                    T *ca = cb + 6 * a * B + (ti - t0) * Tw;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
#define OUT(j, value) ca[(j) * B + tj] = (value) /* row a of d B */
                        WINO4_BT(OUT, p0[tj], p1[tj], p2[tj], p3[tj], p0[tj + 1], p1[tj + 1]);
#undef OUT
                    }
                }
            T *o = V + c * NT + n * Th * Tw + t0 * Tw;
            for (int j = 0; j < 6; ++j) {
                const T *cj = cb + j * B;
                T *oj = o + j * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(i, value) oj[6 * (i) * stride + t] = (value) /* (WG2) V = B^T (d B) */
                    WINO4_BT(OUT, cj[t], cj[6 * B + t], cj[12 * B + t], cj[18 * B + t],
                             cj[24 * B + t], cj[30 * B + t]);
#undef OUT
                }
            }
        }
    }
}

/* (WG4) y_tile = A^T M A for planes (n, k): M[xi][k][n*T + t] -> y (N, K, P, Q); per block,
 * s = A^T M, then Y = s A as 16 arrays Y[i][j] of the block's tiles, written to y's rows. */
KERNEL void FN(wino4_output)(const T *M, T *y, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                             Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    const Py_ssize_t rows = wino_block_rows(Tw, WINO4_BLOCK), B = rows * Tw;
    T *sb = scratch, *Y = sb + 24 * B, *row = sb + 72 * B; /* sb[(6i + b) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t k = plane / g->N, n = plane % g->N; /* channel-major */
        T *yk = y + (n * g->K + k) * PQ;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            const T *m = M + k * NT + n * Th * Tw + t0 * Tw;
            for (int b = 0; b < 6; ++b) {
                const T *mb = m + b * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(i, value) sb[(6 * (i) + b) * B + t] = (value) /* s = A^T M */
                    WINO4_AT(OUT, mb[t], mb[6 * stride + t], mb[12 * stride + t],
                             mb[18 * stride + t], mb[24 * stride + t], mb[30 * stride + t]);
#undef OUT
                }
            }
            for (int i = 0; i < 4; ++i) {
                const T *si = sb + 6 * i * B;
                T *Yi = Y + 4 * i * B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(j, value) Yi[(j) * B + t] = (value) /* (WG4) y = s A */
                    WINO4_AT(OUT, si[t], si[B + t], si[2 * B + t], si[3 * B + t], si[4 * B + t],
                             si[5 * B + t]);
#undef OUT
                }
            }
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int i = 0; i < 4 && 4 * ti + i < g->P; ++i) {
                    const T *Y0 = Y + 4 * i * B + (ti - t0) * Tw, *Y1 = Y0 + B;
                    const T *Y2 = Y1 + B, *Y3 = Y2 + B;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                        row[4 * tj] = Y0[tj];
                        row[4 * tj + 1] = Y1[tj];
                        row[4 * tj + 2] = Y2[tj];
                        row[4 * tj + 3] = Y3[tj];
                    }
                    /* outputs past P x Q (the last tile's overhang) are dropped */
                    memcpy(yk + (4 * ti + i) * g->Q, row, (size_t)g->Q * sizeof(T));
                }
        }
    }
}

/* (WG5) Z = A e A^T for every 4x4 tile e of dy (zero past P x Q), planes (n, k): per block,
 * z = e A^T along each tile row's 4 dy rows (from their phases), then Z = A z. */
KERNEL void FN(wino4_dy)(const T *dy, T *Z, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                         Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    const Py_ssize_t len = 4 * Tw + 4, L = Tw + 1, rows = wino_block_rows(Tw, WINO4_BLOCK);
    const Py_ssize_t B = rows * Tw;
    T *zb = scratch, *buf = zb + 24 * B, *ph = buf + len; /* zb[(6i + j) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t k = plane / g->N, n = plane % g->N; /* channel-major */
        const T *dyk = dy + (n * g->K + k) * PQ;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int i = 0; i < 4; ++i) {
                    FN(load_row)(dyk, g->P, g->Q, 4 * ti + i, 0, buf, len);
                    FN(wino4_phases)(buf, ph, Tw);
                    const T *p0 = ph, *p1 = p0 + L, *p2 = p1 + L, *p3 = p2 + L;
                    T *zi = zb + 6 * i * B + (ti - t0) * Tw;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
#define OUT(j, value) zi[(j) * B + tj] = (value) /* row i of e A^T */
                        WINO4_A(OUT, p0[tj], p1[tj], p2[tj], p3[tj]);
#undef OUT
                    }
                }
            T *o = Z + k * NT + n * Th * Tw + t0 * Tw;
            for (int j = 0; j < 6; ++j) {
                const T *zj = zb + j * B;
                T *oj = o + j * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(a, value) oj[6 * (a) * stride + t] = (value) /* (WG5) Z = A (e A^T) */
                    WINO4_A(OUT, zj[t], zj[6 * B + t], zj[12 * B + t], zj[18 * B + t]);
#undef OUT
                }
            }
        }
    }
}

/* (WG6) dd = B Mbar B^T per tile, added into the overlapping 6x6 input tiles; planes (n, c):
 * Mbar[xi][c][n*T + t] -> dx (N, C, H, W). Per block, s = B Mbar, then dd = s B^T as 36
 * arrays of the block's tiles; each input row of a tile row is then assembled in a row
 * buffer (column 4*tj + b takes dd[b] of tile tj, and for b < 2 also dd[b + 4] of tile
 * tj - 1) and its cells that are x are added to dx: the rows of consecutive tile rows
 * overlap by two. */
KERNEL void FN(wino4_dx)(const T *Mbar, T *dx, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                         Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 4 * Tw + 4, rows = wino_block_rows(Tw, WINO4_BLOCK), B = rows * Tw;
    /* x columns */
    const Py_ssize_t n_x = g->W < len - 2 - g->pad_left ? g->W : len - 2 - g->pad_left;
    T *sb = scratch, *dd = sb + 36 * B, *row = sb + 72 * B;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane / g->N, n = plane % g->N; /* channel-major */
        T *dxc = dx + (n * g->C + c) * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            const T *m = Mbar + c * NT + n * Th * Tw + t0 * Tw;
            for (int b = 0; b < 6; ++b) {
                const T *mb = m + b * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(a, value) sb[(6 * (a) + b) * B + t] = (value) /* s = B Mbar */
                    WINO4_B(OUT, mb[t], mb[6 * stride + t], mb[12 * stride + t],
                            mb[18 * stride + t], mb[24 * stride + t], mb[30 * stride + t]);
#undef OUT
                }
            }
            for (int a = 0; a < 6; ++a) {
                const T *sa = sb + 6 * a * B;
                T *da = dd + 6 * a * B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) {
#define OUT(j, value) da[(j) * B + t] = (value) /* dd = s B^T */
                    WINO4_B(OUT, sa[t], sa[B + t], sa[2 * B + t], sa[3 * B + t], sa[4 * B + t],
                            sa[5 * B + t]);
#undef OUT
                }
            }
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int a = 0; a < 6; ++a) {
                    const Py_ssize_t h = 4 * ti + a - g->pad_top;
                    if (h < 0 || h >= g->H || n_x <= 0) continue; /* padding rows dropped */
                    const T *d0 = dd + 6 * a * B + (ti - t0) * Tw, *d1 = d0 + B, *d2 = d1 + B;
                    const T *d3 = d2 + B, *d4 = d3 + B, *d5 = d4 + B;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                        row[4 * tj] = d0[tj];
                        row[4 * tj + 1] = d1[tj];
                        row[4 * tj + 2] = d2[tj];
                        row[4 * tj + 3] = d3[tj];
                    }
                    row[4 * Tw] = 0;
                    row[4 * Tw + 1] = 0;
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) { /* tiles overlap by two columns */
                        row[4 * tj + 4] += d4[tj]; /* (WG6) */
                        row[4 * tj + 5] += d5[tj];
                    }
                    T *dst = dxc + h * g->W;
                    const T *src = row + g->pad_left; /* ext column pad_left + w is x column w */
#pragma omp simd
                    for (Py_ssize_t w = 0; w < n_x; ++w) dst[w] += src[w]; /* (WG6) */
                }
        }
    }
}
