/* convprop._native: the FFT algorithm's layout changes.
 *
 * Included twice through typed.h, once with T = float, SFX = f32 and once with T = double,
 * SFX = f64; FN(name) names the function for that type. Every kernel works on C-contiguous
 * arrays over a half-open range [lo, hi) of independent planes (or filters), so that
 * threads can share one call without writing the same element. Labels are those of
 * docs/derivations.md.
 */

/* Layout changes of the FFT algorithm between planes (M, rows, cols) and a spatial-leading
 * array (Lh, Lw, M) whose M values of one position are contiguous. Both work on channels
 * [lo, hi) in blocks of PERM_BLOCK, so that each position moves one contiguous run. */

/* dst[m, i, j] = src[row0 + i*step_h, col0 + j*step_w, m] for i < rows, j < cols. */
KERNEL void FN(spatial_to_planes)(const T *src, T *dst, Py_ssize_t Lw, Py_ssize_t M,
                                  Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                                  Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                                  Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += PERM_BLOCK) {
        const Py_ssize_t m1 = m0 + PERM_BLOCK < hi ? m0 + PERM_BLOCK : hi;
        for (Py_ssize_t i = 0; i < rows; ++i) {
            for (Py_ssize_t j = 0; j < cols; ++j) {
                const T *in = src + ((row0 + i * step_h) * Lw + col0 + j * step_w) * M;
                for (Py_ssize_t m = m0; m < m1; ++m) dst[(m * rows + i) * cols + j] = in[m];
            }
        }
    }
}

/* dst[row0 + i*step_h, col0 + j*step_w, m] = src[m, i, j]; the other cells of dst are untouched. */
KERNEL void FN(planes_to_spatial)(const T *src, T *dst, Py_ssize_t Lw, Py_ssize_t M,
                                  Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                                  Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                                  Py_ssize_t lo, Py_ssize_t hi)
{
    for (Py_ssize_t m0 = lo; m0 < hi; m0 += PERM_BLOCK) {
        const Py_ssize_t m1 = m0 + PERM_BLOCK < hi ? m0 + PERM_BLOCK : hi;
        for (Py_ssize_t i = 0; i < rows; ++i) {
            for (Py_ssize_t j = 0; j < cols; ++j) {
                T *out = dst + ((row0 + i * step_h) * Lw + col0 + j * step_w) * M;
                for (Py_ssize_t m = m0; m < m1; ++m) out[m] = src[(m * rows + i) * cols + j];
            }
        }
    }
}
