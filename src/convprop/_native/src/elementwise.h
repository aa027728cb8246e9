/* convprop._native: element-wise activations (A1-A3) and the sum of two arrays (AR1, AR2).
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. These kernels work on flat
 * C-contiguous arrays over a half-open range [lo, hi) of elements, so that threads can
 * share one call without writing the same element. Labels are those of
 * src/convprop/functional/activation.py.
 */

/* (A2) y = max(x, 0), as NumPy's maximum: a NaN stays NaN and -0 becomes +0. */
KERNEL void FN(relu_forward)(const T *x, T *y, Py_ssize_t lo, Py_ssize_t hi)
{
#pragma omp simd
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const T v = x[i];
        y[i] = ((v > 0) | (v != v)) ? v : (T)0; /* (A2) */
    }
}

/* (A1), (A3) dx = dy * f'(x) with f'(x) = 0 where x <= 0, else 1 (1 at x = NaN, as PyTorch),
 * read from y = max(x, 0): y <= 0 exactly where x <= 0, and y is NaN where x is. The product
 * is taken (not a select), so that dx is bit for bit NumPy's dy * ~(y <= 0), -0 and NaN
 * included. */
KERNEL void FN(relu_backward)(const T *dy, const T *y, T *dx, Py_ssize_t lo, Py_ssize_t hi)
{
#pragma omp simd
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const T derivative = y[i] <= 0 ? (T)0 : (T)1; /* (A3) */
        dx[i] = dy[i] * derivative;                  /* (A1) */
    }
}

/* (AR1) y = a + b, element by element (arrays of one shape: no broadcasting). */
KERNEL void FN(add_forward)(const T *a, const T *b, T *y, Py_ssize_t lo, Py_ssize_t hi)
{
#pragma omp simd
    for (Py_ssize_t i = lo; i < hi; ++i) y[i] = a[i] + b[i]; /* (AR1) */
}

/* (AR2) da = dy and db = dy (a and b of y's shape: nothing to sum), both written in one pass
 * over dy. */
KERNEL void FN(add_backward)(const T *dy, T *da, T *db, Py_ssize_t lo, Py_ssize_t hi)
{
#pragma omp simd
    for (Py_ssize_t i = lo; i < hi; ++i) {
        const T g = dy[i];
        da[i] = g; /* (AR2) */
        db[i] = g; /* (AR2) */
    }
}
