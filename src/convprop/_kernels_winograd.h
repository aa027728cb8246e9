/* convprop._kernels: the Winograd F(2x2, 3x3) tile transforms (WG2, WG4-WG6).
 *
 * Included twice by _kernels.c, once with T = float, SFX = f32 and once with T = double,
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

/* Each kernel handles one row of tiles at a time, vectorised over the Tw tiles of the row:
 * rows of x (or dy) are first copied into zero-extended row buffers, so that no tile needs
 * a bounds check, and the 16 transformed values of consecutive tiles are consecutive in
 * memory. scratch: 4 * (2*Tw + 2) elements for the row buffers, plus for wino_dx the
 * 16 * Tw transformed values of a row of tiles. */

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

/* (WG6) dd = B Mbar B^T per tile, added into the overlapping 4x4 input tiles; planes (n, c):
 * Mbar[xi][c][n*T + t] -> dx (N, C, H, W). A row of tiles is summed into one row buffer per
 * input row (column 2*tj + b takes dd[b] of tile tj and dd[b + 2] of tile tj - 1), and
 * the cells of the row that are x are added to dx: the rows of consecutive tile rows
 * overlap by two. */
static void FN(wino_dx)(const T *Mbar, T *dx, T *scratch, const ConvGeom *g, Py_ssize_t Th,
                        Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi)
{
    const Py_ssize_t HW = g->H * g->W, NT = g->N * Th * Tw, stride = g->C * NT;
    const Py_ssize_t len = 2 * Tw + 2;
    const Py_ssize_t n_x = g->W < len - g->pl ? g->W : len - g->pl; /* x columns in a row */
    T *dd = scratch, *row = scratch + 16 * Tw; /* dd[(4a + b) * Tw + tj], row[len] */
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t n = plane / g->C, c = plane % g->C;
        T *dxc = dx + plane * HW;
        memset(dxc, 0, (size_t)HW * sizeof(T));
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
            for (int a = 0; a < 4; ++a) {
                const Py_ssize_t h = 2 * ti + a - g->pt;
                if (h < 0 || h >= g->H || n_x <= 0) continue; /* padding rows are dropped */
                const T *d0 = dd + 4 * a * Tw, *d1 = d0 + Tw, *d2 = d1 + Tw, *d3 = d2 + Tw;
                row[0] = d0[0];
                row[1] = d1[0];
                for (Py_ssize_t tj = 1; tj < Tw; ++tj) { /* tiles overlap by two columns */
                    row[2 * tj] = d0[tj] + d2[tj - 1]; /* (WG6) */
                    row[2 * tj + 1] = d1[tj] + d3[tj - 1];
                }
                row[2 * Tw] = d2[Tw - 1];
                row[2 * Tw + 1] = d3[Tw - 1];
                T *dst = dxc + h * g->W;
                const T *src = row + g->pl; /* ext column pl + w is x column w */
#pragma omp simd
                for (Py_ssize_t w = 0; w < n_x; ++w) dst[w] += src[w]; /* (WG6) */
            }
        }
    }
}
