/* convprop._native: batch normalisation over the channels of x (N, C, L), L = H*W:
 * (BN1)-(BN4), (BN7)-(BN10), (BN12) and (BN13) of src/convprop/functional/normalization.py,
 * and with a ReLU after it, (BR1)-(BR4) of src/convprop/functional/batch_norm_relu.py.
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. The sums run over a half-open range
 * [lo, hi) of channels: each thread owns whole channels, so no two threads add into the
 * same sum, and each channel's N planes are added in the order of n (in double), so the
 * result does not depend on the number of threads. The passes that write an array of x's
 * shape run over a range [lo, hi) of planes (n, c). Labels are those of docs/derivations.md.
 */

/* (BN1), (BN2) for the channels c in [lo, hi): mean[c] = (1/m) sum x and var[c] = (1/m)
 * sum (x - mean[c])^2 over n and l, m = N*L, in double. The two passes of the definition,
 * not the sum of squares minus the squared mean, whose cancellation loses the variance of
 * inputs with a large mean; the second pass reads a channel that the first just brought
 * into the cache. */
KERNEL void FN(batchnorm_stats)(const T *x, double *mean, double *var, Py_ssize_t N,
                                Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi)
{
    const double m = (double)N * (double)L;
    for (Py_ssize_t c = lo; c < hi; ++c) {
        double total = 0;
        for (Py_ssize_t n = 0; n < N; ++n) {
            const T *xc = x + (n * C + c) * L;
            double part = 0;
#pragma omp simd reduction(+ : part)
            for (Py_ssize_t l = 0; l < L; ++l) part += (double)xc[l]; /* (BN1) */
            total += part;
        }
        const double mu = total / m;
        double squares = 0;
        for (Py_ssize_t n = 0; n < N; ++n) {
            const T *xc = x + (n * C + c) * L;
            double part = 0;
#pragma omp simd reduction(+ : part)
            for (Py_ssize_t l = 0; l < L; ++l) {
                const double centred = (double)xc[l] - mu;
                part += centred * centred; /* (BN2) */
            }
            squares += part;
        }
        mean[c] = mu;
        var[c] = squares / m;
    }
}

/* y = γ·x̂ + β of one element, rounded in T in NumPy's order (x̂ first, then γ·x̂ + β): the
 * forward's value, which the fused ReLU's backward recomputes to find where y > 0. */
static inline T FN(batchnorm_y)(T x, T mu, T s, T g, T b)
{
    const T xhat = (x - mu) * s; /* (BN3) or (BN7) */
    return g * xhat + b;         /* (BN4) */
}

/* (BR3) f'(y) of the ReLU after the normalisation: 0 where y <= 0, else 1 (NaN: 1), (A3). */
static inline T FN(batchnorm_relu_derivative)(T x, T mu, T s, T g, T b)
{
    return FN(batchnorm_y)(x, mu, s, g, b) <= 0 ? (T)0 : (T)1;
}

/* (BN3), (BN4) for the planes (n, c) in [lo, hi): y = ((x - mean[c]) * invstd[c]) * gamma[c]
 * + beta[c], rounded in T in NumPy's order (x̂ first, then γ·x̂ + β), so that with the same
 * per-channel values the result is the reference's bit for bit. In inference mode mean and
 * invstd are the running statistics' (BN7). With `relu`, z = max(y, 0) (BR2, as A2: a NaN
 * stays NaN, -0 becomes +0) is written instead of y: the ReLU after the normalisation, in
 * the same pass. */
KERNEL void FN(batchnorm_apply)(const T *x, const T *mean, const T *invstd, const T *gamma,
                                const T *beta, T *y, int relu, Py_ssize_t C, Py_ssize_t L,
                                Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane % C;
        const T mu = mean[c], s = invstd[c], g = gamma[c], b = beta[c];
        const T *xp = x + plane * L;
        T *yp = y + plane * L;
        if (relu) {
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) {
                const T v = FN(batchnorm_y)(xp[l], mu, s, g, b); /* (BR1) */
                yp[l] = ((v > 0) | (v != v)) ? v : (T)0;         /* (BR2) */
            }
        } else {
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) yp[l] = FN(batchnorm_y)(xp[l], mu, s, g, b);
        }
    }
}

/* (BN8), (BN9) for the channels c in [lo, hi): sum_dy[c] = sum dy and sum_dy_xhat[c] =
 * sum dy * xhat over n and l, in double, with xhat = (x - mean[c]) * invstd[c] recomputed
 * in T as the forward made it (BN3 or BN7). Where gamma and beta are given, `dy` is dz, the
 * gradient of a ReLU after the normalisation, and dy = dz * f'(y) (BR3) is formed on the
 * way, y recomputed from x as the forward made it. */
KERNEL void FN(batchnorm_grad_sums)(const T *dy, const T *x, const T *mean, const T *invstd,
                                    const T *gamma, const T *beta, double *sum_dy,
                                    double *sum_dy_xhat, Py_ssize_t N, Py_ssize_t C,
                                    Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t c = lo; c < hi; ++c) {
        const T mu = mean[c], s = invstd[c];
        const T g = beta ? gamma[c] : 0, b = beta ? beta[c] : 0;
        double total = 0, total_xhat = 0;
        for (Py_ssize_t n = 0; n < N; ++n) {
            const T *dyc = dy + (n * C + c) * L, *xc = x + (n * C + c) * L;
            double part = 0, part_xhat = 0;
            if (beta) {
#pragma omp simd reduction(+ : part, part_xhat)
                for (Py_ssize_t l = 0; l < L; ++l) {
                    const T xhat = (xc[l] - mu) * s; /* (BN3) */
                    const T f = FN(batchnorm_relu_derivative)(xc[l], mu, s, g, b);
                    const T d = dyc[l] * f;                /* (BR3) */
                    part += (double)d;                     /* (BN8) */
                    part_xhat += (double)d * (double)xhat; /* (BN9) */
                }
            } else {
#pragma omp simd reduction(+ : part, part_xhat)
                for (Py_ssize_t l = 0; l < L; ++l) {
                    const T xhat = (xc[l] - mu) * s;            /* (BN3) */
                    part += (double)dyc[l];                     /* (BN8) */
                    part_xhat += (double)dyc[l] * (double)xhat; /* (BN9) */
                }
            }
            total += part;
            total_xhat += part_xhat;
        }
        sum_dy[c] = total;
        sum_dy_xhat[c] = total_xhat;
    }
}

/* (BN13), the training-mode dx, for the planes (n, c) in [lo, hi):
 * dx = scale[c] * (dy - mean_dy[c] - xhat * mean_dy_xhat[c]), with scale = gamma * invstd
 * (BN10's gamma folded into the per-channel constant), mean_dy = sum dy / m and
 * mean_dy_xhat = sum dy*xhat / m, xhat recomputed (BN3). Where gamma and beta are given, `dy`
 * is dz and dy = dz * f'(y) (BR3), as in batchnorm_grad_sums. */
KERNEL void FN(batchnorm_grad_input)(const T *dy, const T *x, const T *mean, const T *invstd,
                                     const T *scale, const T *mean_dy, const T *mean_dy_xhat,
                                     const T *gamma, const T *beta, T *dx, Py_ssize_t C,
                                     Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane % C;
        const T mu = mean[c], s = invstd[c], a = scale[c], b = mean_dy[c], k = mean_dy_xhat[c];
        const T *dyp = dy + plane * L, *xp = x + plane * L;
        T *dxp = dx + plane * L;
        if (beta) {
            const T g = gamma[c], shift = beta[c];
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) {
                const T xhat = (xp[l] - mu) * s; /* (BN3) */
                const T f = FN(batchnorm_relu_derivative)(xp[l], mu, s, g, shift);
                const T d = dyp[l] * f;          /* (BR3) */
                dxp[l] = a * (d - b - xhat * k); /* (BN13) */
            }
        } else {
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) {
                const T xhat = (xp[l] - mu) * s;      /* (BN3) */
                dxp[l] = a * (dyp[l] - b - xhat * k); /* (BN13) */
            }
        }
    }
}

/* (BN10), (BN12), the inference-mode dx, for the planes (n, c) in [lo, hi):
 * dx = (dy * gamma[c]) * invstd[c], rounded in NumPy's order (dx̂ first): the reference's
 * bits. Where x, mean and beta are given, `dy` is dz and dy = dz * f'(y) (BR3), y
 * recomputed from x with the running statistics (BN7). */
KERNEL void FN(batchnorm_grad_frozen)(const T *dy, const T *x, const T *mean, const T *gamma,
                                      const T *invstd, const T *beta, T *dx, Py_ssize_t C,
                                      Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t plane = lo; plane < hi; ++plane) {
        const Py_ssize_t c = plane % C;
        const T g = gamma[c], s = invstd[c];
        const T *dyp = dy + plane * L;
        T *dxp = dx + plane * L;
        if (beta) {
            const T mu = mean[c], shift = beta[c];
            const T *xp = x + plane * L;
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) {
                const T f = FN(batchnorm_relu_derivative)(xp[l], mu, s, g, shift);
                dxp[l] = ((dyp[l] * f) * g) * s; /* (BR3), (BN10), (BN12) */
            }
        } else {
#pragma omp simd
            for (Py_ssize_t l = 0; l < L; ++l) dxp[l] = (dyp[l] * g) * s; /* (BN10), (BN12) */
        }
    }
}
