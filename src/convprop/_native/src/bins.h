/* convprop._native: the FFT algorithm's products per frequency bin (T2, T3, T4).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. The kernel works over a half-open
 * range [lo, hi) of independent bins, so that threads can share one call without writing
 * the same element. Labels are those of docs/derivations.md.
 *
 * Each bin's product is small (lenet2: 64 x 32 by 32 x 64, complex, for each of 180 bins).
 * NumPy hands them to the BLAS one at a time, and the BLAS shares each one between its
 * threads: the split costs about as much as the product. Here every bin is one thread's,
 * computed in registers: BIN_MR rows of the result by CB complex columns, the columns as
 * the vector. A complex multiply-add y += a*b on (re, im) pairs is two real ones: with p the
 * sum of a_re*(b_re, b_im) and q the sum of a_im*(b_re, b_im), y = (p_re - q_im, p_im + q_re),
 * the pairs of q swapped once per block rather than those of b once per term.
 */

#if !defined(BIN_MR)
#define BIN_MR 3 /* result rows per block: 2 * 3 accumulators of two vectors each */
/* Complex columns per block for elements of `size` bytes: two vectors of (re, im) pairs. */
#define BIN_CB(size) (32 / (size))
#endif

/* y[b] = A[b] @ B[b] (complex; (re, im) pairs) for the bins b in [lo, hi): A[b] is M x L,
 * stored from a + 2*b*M*L, or with `at` its transpose stored L x M; B[b] is L x Nc, stored
 * from bm + 2*b*L*Nc, or with `bt` its transpose stored Nc x L; y[b] is M x Nc, contiguous.
 * A block is BIN_MR rows by CB = BIN_CB(sizeof(T)) complex columns (two vectors of pairs).
 * scratch: (L * Ncp + M * L) complex elements, Ncp = Nc rounded up to CB columns: B's rows
 * where they are not already Ncp apart (transposed, or Nc not a multiple of CB), then A's
 * rows where A is stored transposed. */
KERNEL void FN(bin_products)(const T *a, const T *bm, T *y, T *scratch, Py_ssize_t M,
                             Py_ssize_t L, Py_ssize_t Nc, int at, int bt, Py_ssize_t lo,
                             Py_ssize_t hi)
{
    enum { CB = BIN_CB((int)sizeof(T)), V = 2 * CB }; /* complex columns, reals per block */
    const Py_ssize_t Ncp = (Nc + CB - 1) / CB * CB;
    for (Py_ssize_t b = lo; b < hi; ++b) {
        const T *A = a + 2 * b * M * L, *B = bm + 2 * b * L * Nc;
        T *Y = y + 2 * b * M * Nc;
        if (at) { /* A's rows copied out of its transpose, to be read in order */
            T *rowsA = scratch + 2 * L * Ncp;
            for (Py_ssize_t m = 0; m < M; ++m)
                for (Py_ssize_t l = 0; l < L; ++l) {
                    rowsA[2 * (m * L + l)] = A[2 * (l * M + m)];
                    rowsA[2 * (m * L + l) + 1] = A[2 * (l * M + m) + 1];
                }
            A = rowsA;
        }
        const T *rowsB = B; /* B's rows, Ncp complex apart: B itself where it has them */
        if (bt || Ncp != Nc) {
            for (Py_ssize_t l = 0; l < L; ++l) /* copied, padded with zeros to Ncp columns */
                for (Py_ssize_t n = 0; n < Ncp; ++n) {
                    T *dst = scratch + 2 * (l * Ncp + n);
                    if (n >= Nc) {
                        dst[0] = dst[1] = 0;
                        continue;
                    }
                    const T *src = bt ? B + 2 * (n * L + l) : B + 2 * (l * Nc + n);
                    dst[0] = src[0];
                    dst[1] = src[1];
                }
            rowsB = scratch;
        }
        for (Py_ssize_t m0 = 0; m0 < M; m0 += BIN_MR) {
            const Py_ssize_t mr = M - m0 < BIN_MR ? M - m0 : BIN_MR;
            const T *rows[BIN_MR]; /* a short last block repeats its last row (sums dropped) */
            for (int i = 0; i < BIN_MR; ++i) rows[i] = A + 2 * (m0 + (i < mr ? i : mr - 1)) * L;
            for (Py_ssize_t n0 = 0; n0 < Ncp; n0 += CB) {
                T p[BIN_MR][V], q[BIN_MR][V];
                for (int i = 0; i < BIN_MR; ++i)
                    for (int j = 0; j < V; ++j) p[i][j] = q[i][j] = 0;
                for (Py_ssize_t l = 0; l < L; ++l) {
                    const T *bv = rowsB + 2 * (l * Ncp + n0);
#pragma GCC unroll 3 /* BIN_MR */
                    for (int i = 0; i < BIN_MR; ++i) {
                        const T ar = rows[i][2 * l], ai = rows[i][2 * l + 1];
#pragma omp simd
                        for (int j = 0; j < V; ++j) { /* (T2)-(T4): one complex term */
                            p[i][j] = FMA(ar, bv[j], p[i][j]);
                            q[i][j] = FMA(ai, bv[j], q[i][j]);
                        }
                    }
                }
                const Py_ssize_t nc = Nc - n0 < CB ? Nc - n0 : CB;
                for (Py_ssize_t i = 0; i < mr; ++i) {
                    T *out = Y + 2 * ((m0 + i) * Nc + n0);
                    for (Py_ssize_t n = 0; n < nc; ++n) {
                        out[2 * n] = p[i][2 * n] - q[i][2 * n + 1];
                        out[2 * n + 1] = p[i][2 * n + 1] + q[i][2 * n];
                    }
                }
            }
        }
    }
}
