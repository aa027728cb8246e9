/* convprop._native: the bias of a convolution (F1's bias term, B1).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

/* (F1), its bias term: y[n, k, :, :] += b[k] for planes (n, k) of y (N, K, PQ). */
KERNEL void FN(add_bias)(T *y, const T *b, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t lo,
                         Py_ssize_t hi)
{
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        T *yk = y + plane * PQ;
        const T bk = b[plane % K];
#pragma omp simd
        for (Py_ssize_t i = 0; i < PQ; ++i) yk[i] += bk; /* (F1) */
    }
}

/* (B1) db[k] = sum_{n,p,q} dy[n, k, p, q], one plane's share at a time, in double:
 * parts[i] = the sum of plane i of the filters [k0, k0 + kc), i = n*kc + (k - k0), for i in
 * [lo, hi). The planes are read in the order they lie in memory (a filter's planes are
 * K*P*Q apart); bias_grad_sum adds each filter's N shares in the order of n, so the result
 * does not depend on which thread took a plane. */
KERNEL void FN(bias_grad)(const T *dy, double *parts, Py_ssize_t K, Py_ssize_t PQ, Py_ssize_t k0,
                          Py_ssize_t kc, Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const T *dyk = dy + ((i / kc) * K + k0 + i % kc) * PQ;
        double part = 0;
#pragma omp simd reduction(+ : part)
        for (Py_ssize_t j = 0; j < PQ; ++j) part += (double)dyk[j]; /* (B1) */
        parts[i] = part;
    }
}

/* db[k0 + k] = the sum over n, in order, of parts[n*kc + k], for k in [0, kc). */
KERNEL void FN(bias_grad_sum)(const double *parts, T *db, Py_ssize_t N, Py_ssize_t k0,
                              Py_ssize_t kc)
{
    for (Py_ssize_t k = 0; k < kc; ++k) {
        double total = 0;
        for (Py_ssize_t n = 0; n < N; ++n) total += parts[n * kc + k];
        db[k0 + k] = (T)total;
    }
}
