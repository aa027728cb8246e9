/* convprop._kernels: the bias of a convolution (F1's bias term, B1).
 *
 * Included twice by _kernels.c, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

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
