/* convprop._native: the Winograd F(2x2, 3x3) tile transforms (WG2, WG4-WG6).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

/* Winograd F(2x2, 3x3) transforms, tile by tile (docs/derivations.md, section 7). Tiles of
 * plane (n, c) are numbered t = ti*Tw + tj; a transformed array X has the layout
 * X[xi][c][n*T + t] with xi = 4*i + j, so that (WG3) is 16 GEMMs over whole batches.
 * Input cells outside x (padding, the zero extension to whole tiles) read 0; outputs past
 * P x Q are dropped; gradients land only on cells of x. */

/* Each kernel handles a block of whole rows of tiles (about WINO_BLOCK tiles) at a time,
 * applying the 1-D transforms in two steps over arrays of the block's tiles (vectorised, no
 * per-tile arrays): the 16 rows of the transformed layout are then each read or written in
 * one sweep per block rather than in short runs per row of tiles. Rows of x or dy are first
 * copied into zero-extended row buffers, so that no tile needs a bounds check, and split into
 * their two phases (column 2*tj + k of a row is phase k's cell tj), so that no loop reads with
 * a stride. scratch: wino_scratch(Tw) elements.
 *
 * The planes of a call are numbered channel-major: index c*N + n is plane (n, c) of x (or
 * (n, k) of y and dy), so that the planes one thread takes in turn write (or read) the
 * transformed rows X[xi][c][n*T + t] one after another, a sweep along each row, instead of
 * jumping N*T elements apart at every plane. On small planes (ResNet-20's 16x16 and 8x8 at batch
 * 128) the transforms' passes took 5-16 % less time (convprop bench --algorithm winograd and
 * winograd4, forward+backward 0.87-0.90 of the plane-major order); res3x3 level. */

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

#if !defined(WINO_BLOCK)
#define WINO_BLOCK 128 /* tiles per block: 16 * 2 rows of it stay in the core's cache */
/* The tile rows of one block of about `block` tiles (at least one row), for both tilings
 * (winograd4.h too), and the scratch of one thread of F(2x2, 3x3). */
static inline Py_ssize_t wino_block_rows(Py_ssize_t Tw, Py_ssize_t block)
{
    return block / Tw > 1 ? block / Tw : 1;
}
static inline Py_ssize_t wino_scratch(Py_ssize_t Tw)
{
    return 32 * wino_block_rows(Tw, WINO_BLOCK) * Tw + 2 * (2 * Tw + 4) + 2 * (Tw + 1) + 16;
}
#endif

/* buf[2*i + k] -> ph[k * (n + 1) + i] for i < n + 1, k < 2: a row buffer split into its two
 * phases, so that a tile's columns 2*tj + k are ph[k][tj] (k < 2) and ph[k - 2][tj + 1]. */
static inline void FN(wino_phases)(const T *buf, T *ph, Py_ssize_t n)
{
    T *p0 = ph, *p1 = ph + (n + 1);
#pragma omp simd
    for (Py_ssize_t i = 0; i < n + 1; ++i) {
        p0[i] = buf[2 * i];
        p1[i] = buf[2 * i + 1];
    }
}

/* (WG2) V = B^T d B for every 4x4 input tile d of planes (n, c): per block of tile rows,
 * c = d B along each tile row's 4 input rows (from their phases), then V = B^T c. */
KERNEL void FN(wino_input)(const T *x, T *V, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                           Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 2 * Tw + 4, L = Tw + 1, rows = wino_block_rows(Tw, WINO_BLOCK);
    const Py_ssize_t B = rows * Tw;
    T *cb = scratch, *buf = cb + 16 * B, *ph = buf + len; /* cb[(4a + j) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane / g->N, n = plane % g->N; /* channel-major */
        const T *xc = x + (n * g->C + c) * HW;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int a = 0; a < 4; ++a) {
                    FN(load_row)(xc, g->H, g->W, 2 * ti + a - g->pad_top, g->pad_left, buf, len);
                    FN(wino_phases)(buf, ph, Tw);
                    const T *p0 = ph, *p1 = ph + L;
                    T *ca = cb + 4 * a * B + (ti - t0) * Tw;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) { /* row a of d B */
                        ca[tj] = p0[tj] - p0[tj + 1];
                        ca[B + tj] = p1[tj] + p0[tj + 1];
                        ca[2 * B + tj] = p0[tj + 1] - p1[tj];
                        ca[3 * B + tj] = p1[tj] - p1[tj + 1];
                    }
                }
            T *o = V + c * NT + n * Th * Tw + t0 * Tw;
            for (int j = 0; j < 4; ++j) {
                const T *c0 = cb + j * B, *c1 = c0 + 4 * B, *c2 = c1 + 4 * B, *c3 = c2 + 4 * B;
                T *oj = o + j * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* (WG2) V = B^T (d B) */
                    oj[t] = c0[t] - c2[t];
                    oj[4 * stride + t] = c1[t] + c2[t];
                    oj[8 * stride + t] = c2[t] - c1[t];
                    oj[12 * stride + t] = c1[t] - c3[t];
                }
            }
        }
    }
}

/* (WG4) y_tile = A^T M A for planes (n, k): M[xi][k][n*T + t] -> y (N, K, P, Q); per block,
 * s = A^T M, then Y = s A as 4 arrays Y[i][j] of the block's tiles, written to y's rows. */
KERNEL void FN(wino_output)(const T *M, T *y, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                            Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    const Py_ssize_t rows = wino_block_rows(Tw, WINO_BLOCK), B = rows * Tw;
    T *sb = scratch, *Y = sb + 8 * B, *row = sb + 32 * B; /* sb[(4i + b) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t k = plane / g->N, n = plane % g->N; /* channel-major */
        T *yk = y + (n * g->K + k) * PQ;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            const T *m = M + k * NT + n * Th * Tw + t0 * Tw;
            for (int b = 0; b < 4; ++b) {
                const T *m0 = m + b * stride, *m1 = m0 + 4 * stride, *m2 = m1 + 4 * stride;
                const T *m3 = m2 + 4 * stride;
                T *s0 = sb + b * B, *s1 = s0 + 4 * B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* s = A^T M */
                    s0[t] = m0[t] + m1[t] + m2[t];
                    s1[t] = m1[t] - m2[t] - m3[t];
                }
            }
            for (int i = 0; i < 2; ++i) {
                const T *s0 = sb + 4 * i * B, *s1 = s0 + B, *s2 = s1 + B, *s3 = s2 + B;
                T *Y0 = Y + 2 * i * B, *Y1 = Y0 + B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* (WG4) y = s A */
                    Y0[t] = s0[t] + s1[t] + s2[t];
                    Y1[t] = s1[t] - s2[t] - s3[t];
                }
            }
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int i = 0; i < 2 && 2 * ti + i < g->P; ++i) {
                    const T *Y0 = Y + 2 * i * B + (ti - t0) * Tw, *Y1 = Y0 + B;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                        row[2 * tj] = Y0[tj];
                        row[2 * tj + 1] = Y1[tj];
                    }
                    /* outputs past P x Q (the last tile's overhang) are dropped */
                    memcpy(yk + (2 * ti + i) * g->Q, row, (size_t)g->Q * sizeof(T));
                }
        }
    }
}

/* (WG5) Z = A e A^T for every 2x2 tile e of dy (zero past P x Q), planes (n, k): per block,
 * z = e A^T along each tile row's 2 dy rows (from their phases), then Z = A z. */
KERNEL void FN(wino_dy)(const T *dy, T *Z, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                        Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t PQ = g->P * g->Q, NT = g->N * Th * Tw, stride = g->K * NT;
    const Py_ssize_t len = 2 * Tw + 4, L = Tw + 1, rows = wino_block_rows(Tw, WINO_BLOCK);
    const Py_ssize_t B = rows * Tw;
    T *zb = scratch, *buf = zb + 8 * B, *ph = buf + len; /* zb[(4i + j) * B + t] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t k = plane / g->N, n = plane % g->N; /* channel-major */
        const T *dyk = dy + (n * g->K + k) * PQ;
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int i = 0; i < 2; ++i) {
                    FN(load_row)(dyk, g->P, g->Q, 2 * ti + i, 0, buf, len);
                    FN(wino_phases)(buf, ph, Tw);
                    const T *p0 = ph, *p1 = ph + L;
                    T *zi = zb + 4 * i * B + (ti - t0) * Tw;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) { /* row i of e A^T */
                        zi[tj] = p0[tj];
                        zi[B + tj] = p0[tj] + p1[tj];
                        zi[2 * B + tj] = p0[tj] - p1[tj];
                        zi[3 * B + tj] = -p1[tj];
                    }
                }
            T *o = Z + k * NT + n * Th * Tw + t0 * Tw;
            for (int j = 0; j < 4; ++j) {
                const T *z0 = zb + j * B, *z1 = z0 + 4 * B;
                T *oj = o + j * stride;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* (WG5) Z = A (e A^T) */
                    oj[t] = z0[t];
                    oj[4 * stride + t] = z0[t] + z1[t];
                    oj[8 * stride + t] = z0[t] - z1[t];
                    oj[12 * stride + t] = -z1[t];
                }
            }
        }
    }
}

/* (WG6) dd = B Mbar B^T per tile, added into the overlapping 4x4 input tiles; planes (n, c):
 * Mbar[xi][c][n*T + t] -> dx (N, C, H, W). Per block, s = B Mbar, then dd = s B^T as 16
 * arrays of the block's tiles; each input row of a tile row is then assembled in a row
 * buffer (column 2*tj + b takes dd[b] of tile tj, and for b < 2 also dd[b + 2] of tile
 * tj - 1) and its cells that are x are added to dx: the rows of consecutive tile rows
 * overlap by two. */
KERNEL void FN(wino_dx)(const T *Mbar, T *dx, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                        Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 2 * Tw + 2, rows = wino_block_rows(Tw, WINO_BLOCK), B = rows * Tw;
    /* x columns in a row */
    const Py_ssize_t n_x = g->W < len - g->pad_left ? g->W : len - g->pad_left;
    T *sb = scratch, *dd = sb + 16 * B, *row = sb + 32 * B;
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane / g->N, n = plane % g->N; /* channel-major */
        T *dxc = dx + (n * g->C + c) * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
        for (Py_ssize_t t0 = 0; t0 < Th; t0 += rows) {
            const Py_ssize_t t1 = t0 + rows < Th ? t0 + rows : Th, nt = (t1 - t0) * Tw;
            const T *m = Mbar + c * NT + n * Th * Tw + t0 * Tw;
            for (int b = 0; b < 4; ++b) {
                const T *m0 = m + b * stride, *m1 = m0 + 4 * stride, *m2 = m1 + 4 * stride;
                const T *m3 = m2 + 4 * stride;
                T *s0 = sb + b * B, *s1 = s0 + 4 * B, *s2 = s1 + 4 * B, *s3 = s2 + 4 * B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* s = B Mbar */
                    s0[t] = m0[t];
                    s1[t] = m1[t] - m2[t] + m3[t];
                    s2[t] = m1[t] + m2[t] - m0[t];
                    s3[t] = -m3[t];
                }
            }
            for (int a = 0; a < 4; ++a) {
                const T *s0 = sb + 4 * a * B, *s1 = s0 + B, *s2 = s1 + B, *s3 = s2 + B;
                T *d0 = dd + 4 * a * B, *d1 = d0 + B, *d2 = d1 + B, *d3 = d2 + B;
#pragma omp simd
                for (Py_ssize_t t = 0; t < nt; ++t) { /* dd = s B^T */
                    d0[t] = s0[t];
                    d1[t] = s1[t] - s2[t] + s3[t];
                    d2[t] = s1[t] + s2[t] - s0[t];
                    d3[t] = -s3[t];
                }
            }
            for (Py_ssize_t ti = t0; ti < t1; ++ti)
                for (int a = 0; a < 4; ++a) {
                    const Py_ssize_t h = 2 * ti + a - g->pad_top;
                    if (h < 0 || h >= g->H || n_x <= 0) continue; /* padding rows dropped */
                    const T *d0 = dd + 4 * a * B + (ti - t0) * Tw, *d1 = d0 + B, *d2 = d1 + B;
                    const T *d3 = d2 + B;
#pragma omp simd
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) {
                        row[2 * tj] = d0[tj];
                        row[2 * tj + 1] = d1[tj];
                    }
                    row[2 * Tw] = 0;
                    row[2 * Tw + 1] = 0;
                    for (Py_ssize_t tj = 0; tj < Tw; ++tj) { /* tiles overlap by two columns */
                        row[2 * tj + 2] += d2[tj]; /* (WG6) */
                        row[2 * tj + 3] += d3[tj];
                    }
                    T *dst = dxc + h * g->W;
                    const T *src = row + g->pad_left; /* ext column pad_left + w is x column w */
#pragma omp simd
                    for (Py_ssize_t w = 0; w < n_x; ++w) dst[w] += src[w]; /* (WG6) */
                }
        }
    }
}
