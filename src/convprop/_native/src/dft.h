/* convprop._native: the FFT algorithm's short transforms (T7, T8) as products with DFT
 * matrices, computed plane block by plane block.
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes, so that threads can share
 * one call without writing the same element. Labels are those of docs/derivations.md.
 *
 * The NumPy code computes (T7) as two matrix products over all M planes at once, with the
 * planes turned to the last axis first and the real and imaginary parts merged after: five
 * passes over arrays of several MB. Here DFT_LANES planes at a time are turned into a block
 * in the core's cache (lane l holds plane m0 + l), both products run on the block with the
 * lanes as the vector, and the spectrum is written once, as (re, im) pairs. (T8) runs the
 * same steps backwards. The sums run in the order of the NumPy code's products (over j,
 * then over i; over u, then over v) but not its BLAS's blocking: the last bits may differ.
 */

#if !defined(DFT_LANES)
#define DFT_LANES 16
#endif

/* (T7): spec[(u*Wb + v)*M + m] = sum_i (Ch[u, i] + i*Sh[u, i]) *
 *                                sum_j (Cw[v, j] + i*Sw[v, j]) * a[m, i, j]
 * as (re, im) pairs, for the planes m in [lo, hi) of a (M, h, w); with conj, the complex
 * conjugate. coef holds Cw, Sw (Wb x w each), then Ch, Sh (Lh x h each).
 * scratch: (h*w + 2*h*Wb) * DFT_LANES elements. */
KERNEL void FN(dft_small_forward)(const T *a, const T *coef, T *spec, T *scratch, Py_ssize_t M,
                                  Py_ssize_t h, Py_ssize_t w, Py_ssize_t Lh, Py_ssize_t Wb,
                                  int conj, Py_ssize_t lo, Py_ssize_t hi)
{
    enum { L = DFT_LANES };
    const T *Cw = coef, *Sw = Cw + Wb * w, *Ch = Sw + Wb * w, *Sh = Ch + Lh * h;
    const Py_ssize_t hw = h * w;
    T *X = scratch;         /* X[(i*w + j)*L + l] = a[m0 + l, i, j] */
    T *A = X + hw * L;      /* A[((i*Wb + v)*2 + part)*L + l]: the column transforms */
    const T sign = conj ? -1 : 1;
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += L) {
        const Py_ssize_t nl = hi - m0 < L ? hi - m0 : L;
        for (Py_ssize_t l = 0; l < L; ++l) {
            if (l < nl) {
                const T *plane = a + (m0 + l) * hw;
                for (Py_ssize_t ij = 0; ij < hw; ++ij) X[ij * L + l] = plane[ij];
            } else {
                for (Py_ssize_t ij = 0; ij < hw; ++ij) X[ij * L + l] = 0;
            }
        }
        for (Py_ssize_t i = 0; i < h; ++i)
            for (Py_ssize_t v = 0; v < Wb; ++v) {
                T re[L], im[L];
                for (int l = 0; l < L; ++l) re[l] = im[l] = 0;
                for (Py_ssize_t j = 0; j < w; ++j) {
                    const T c = Cw[v * w + j], s = Sw[v * w + j], *x = X + (i * w + j) * L;
#pragma omp simd
                    for (int l = 0; l < L; ++l) {
                        re[l] = FMA(c, x[l], re[l]); /* (T7) along the columns */
                        im[l] = FMA(s, x[l], im[l]);
                    }
                }
                T *out = A + (i * Wb + v) * 2 * L;
                for (int l = 0; l < L; ++l) {
                    out[l] = re[l];
                    out[L + l] = im[l];
                }
            }
        for (Py_ssize_t u = 0; u < Lh; ++u)
            for (Py_ssize_t v = 0; v < Wb; ++v) {
                T re[L], im[L];
                for (int l = 0; l < L; ++l) re[l] = im[l] = 0;
                for (Py_ssize_t i = 0; i < h; ++i) {
                    const T c = Ch[u * h + i], s = Sh[u * h + i];
                    const T *ar = A + (i * Wb + v) * 2 * L, *ai = ar + L;
#pragma omp simd
                    for (int l = 0; l < L; ++l) { /* (T7) along the rows */
                        re[l] = FMA(c, ar[l], FMA(-s, ai[l], re[l]));
                        im[l] = FMA(s, ar[l], FMA(c, ai[l], im[l]));
                    }
                }
                T *out = spec + 2 * ((u * Wb + v) * M + m0);
                for (Py_ssize_t l = 0; l < nl; ++l) {
                    out[2 * l] = re[l];
                    out[2 * l + 1] = sign * im[l];
                }
            }
    }
}

/* (T8): planes[m, i, j] = sum_v E[j, v] * Z_re[i, v] + E[j, Wb + v] * Z_im[i, v] with
 *   Z_re[i, v] = sum_u Ch[u, i] * Y_re[u, v] + Sh[u, i] * Y_im[u, v],
 *   Z_im[i, v] = sum_u Ch[u, i] * Y_im[u, v] - Sh[u, i] * Y_re[u, v],
 * Y[u, v] = spec[(u*Wb + v)*M + m] read as (re, im) pairs (with conj, their conjugate), for
 * the planes m in [lo, hi) of planes (M, h, w). coef holds Ch, Sh (Lh x h each), then
 * E (w x 2*Wb). scratch: (2*Lh*Wb + 2*h*Wb + h*w) * DFT_LANES elements. */
KERNEL void FN(dft_small_inverse)(const T *spec, const T *coef, T *planes, T *scratch,
                                  Py_ssize_t M, Py_ssize_t h, Py_ssize_t w, Py_ssize_t Lh,
                                  Py_ssize_t Wb, int conj, Py_ssize_t lo, Py_ssize_t hi)
{
    enum { L = DFT_LANES };
    const T *Ch = coef, *Sh = Ch + Lh * h, *E = Sh + Lh * h;
    const Py_ssize_t hw = h * w;
    T *Y = scratch;               /* Y[((u*Wb + v)*2 + part)*L + l] */
    T *Z = Y + Lh * Wb * 2 * L;   /* Z[((i*Wb + v)*2 + part)*L + l] */
    T *O = Z + h * Wb * 2 * L;    /* O[(i*w + j)*L + l] */
    const T sign = conj ? -1 : 1;
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += L) {
        const Py_ssize_t nl = hi - m0 < L ? hi - m0 : L;
        for (Py_ssize_t f = 0; f < Lh * Wb; ++f) {
            const T *in = spec + 2 * (f * M + m0);
            T *yr = Y + f * 2 * L, *yi = yr + L;
            for (Py_ssize_t l = 0; l < nl; ++l) {
                yr[l] = in[2 * l];
                yi[l] = sign * in[2 * l + 1];
            }
            for (Py_ssize_t l = nl; l < L; ++l) yr[l] = yi[l] = 0;
        }
        for (Py_ssize_t i = 0; i < h; ++i)
            for (Py_ssize_t v = 0; v < Wb; ++v) {
                T re[L], im[L];
                for (int l = 0; l < L; ++l) re[l] = im[l] = 0;
                for (Py_ssize_t u = 0; u < Lh; ++u) {
                    const T c = Ch[u * h + i], s = Sh[u * h + i];
                    const T *yr = Y + (u * Wb + v) * 2 * L, *yi = yr + L;
#pragma omp simd
                    for (int l = 0; l < L; ++l) { /* (T8) along the rows */
                        re[l] = FMA(c, yr[l], FMA(s, yi[l], re[l]));
                        im[l] = FMA(c, yi[l], FMA(-s, yr[l], im[l]));
                    }
                }
                T *out = Z + (i * Wb + v) * 2 * L;
                for (int l = 0; l < L; ++l) {
                    out[l] = re[l];
                    out[L + l] = im[l];
                }
            }
        for (Py_ssize_t i = 0; i < h; ++i)
            for (Py_ssize_t j = 0; j < w; ++j) {
                T acc[L];
                for (int l = 0; l < L; ++l) acc[l] = 0;
                for (Py_ssize_t v = 0; v < Wb; ++v) {
                    const T er = E[j * 2 * Wb + v], ei = E[j * 2 * Wb + Wb + v];
                    const T *zr = Z + (i * Wb + v) * 2 * L, *zi = zr + L;
#pragma omp simd
                    for (int l = 0; l < L; ++l) /* (T8) along the columns */
                        acc[l] = FMA(er, zr[l], FMA(ei, zi[l], acc[l]));
                }
                T *o = O + (i * w + j) * L;
                for (int l = 0; l < L; ++l) o[l] = acc[l];
            }
        for (Py_ssize_t l = 0; l < nl; ++l) {
            T *plane = planes + (m0 + l) * hw;
            for (Py_ssize_t ij = 0; ij < hw; ++ij) plane[ij] = O[ij * L + l];
        }
    }
}
