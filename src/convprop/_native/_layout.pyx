# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The FFT algorithm's layout changes, compiled (src/layout.h): between planes
(M, rows, cols) and a spatial-leading array (Lh, Lw, M) whose M values of one position are
contiguous, the planes' cells every (step_h, step_w) from (row0, col0).

The arrays are C-contiguous float32 or float64 arrays of any shape, read flat; `layout` is
the 9 integers (Lh, Lw, M, rows, cols, row0, col0, step_h, step_w). Each call moves the
channels [lo, hi) without the GIL on up to `threads` threads, in blocks of PERM_BLOCK.
"""

from convprop._native._runtime cimport Flat, check_range, check_threads, fits, run_parallel, take


cdef extern from *:
    """
    #define KERNELS "layout.h"
    #include "typed.h"
    """
    enum:
        PERM_BLOCK
    void spatial_to_planes_f32(const float *src, float *dst, Py_ssize_t Lw, Py_ssize_t M,
                               Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                               Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void spatial_to_planes_f64(const double *src, double *dst, Py_ssize_t Lw, Py_ssize_t M,
                               Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                               Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void planes_to_spatial_f32(const float *src, float *dst, Py_ssize_t Lw, Py_ssize_t M,
                               Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                               Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void planes_to_spatial_f64(const double *src, double *dst, Py_ssize_t Lw, Py_ssize_t M,
                               Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t row0,
                               Py_ssize_t col0, Py_ssize_t step_h, Py_ssize_t step_w,
                               Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


LAYOUT_FIELDS = ("Lh", "Lw", "M", "rows", "cols", "row0", "col0", "step_h", "step_w")
"""The 9 integers of ``layout``, in order."""


cdef struct Layout:
    bint to_planes      # spatial_to_planes, else planes_to_spatial
    int kind            # 4 (float) or 8 (double)
    const char *src
    char *dst
    Py_ssize_t Lw, M, rows, cols, row0, col0, step_h, step_w


cdef Py_ssize_t layout_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Layout *c = <Layout *>ctx
    if c.kind == 4 and c.to_planes:
        spatial_to_planes_f32(<const float *>c.src, <float *>c.dst, c.Lw, c.M, c.rows, c.cols,
                              c.row0, c.col0, c.step_h, c.step_w, lo, hi)
    elif c.kind == 4:
        planes_to_spatial_f32(<const float *>c.src, <float *>c.dst, c.Lw, c.M, c.rows, c.cols,
                              c.row0, c.col0, c.step_h, c.step_w, lo, hi)
    elif c.to_planes:
        spatial_to_planes_f64(<const double *>c.src, <double *>c.dst, c.Lw, c.M, c.rows,
                              c.cols, c.row0, c.col0, c.step_h, c.step_w, lo, hi)
    else:
        planes_to_spatial_f64(<const double *>c.src, <double *>c.dst, c.Lw, c.M, c.rows,
                              c.cols, c.row0, c.col0, c.step_h, c.step_w, lo, hi)
    return 0


cdef object permute(bint to_planes, str op, src, dst, tuple layout, Py_ssize_t lo,
                    Py_ssize_t hi, int threads):
    cdef Layout c
    c.to_planes = to_planes
    if len(layout) != 9:
        raise TypeError(
            f"{op}: layout holds {len(layout)} values; expected 9 ({', '.join(LAYOUT_FIELDS)})"
        )
    cdef Py_ssize_t Lh = layout[0]
    c.Lw, c.M, c.rows, c.cols = layout[1], layout[2], layout[3], layout[4]
    c.row0, c.col0, c.step_h, c.step_w = layout[5], layout[6], layout[7], layout[8]
    cdef Py_ssize_t[3] spatial_dims = [Lh, c.Lw, c.M]
    cdef Py_ssize_t[3] plane_dims = [c.M, c.rows, c.cols]
    # the last row row0 + (rows-1)*step_h must be < Lh; tested by division, which cannot
    # overflow
    if (Lh < 1 or c.Lw < 1 or c.M < 1 or c.rows < 1 or c.cols < 1 or c.row0 < 0 or c.col0 < 0
            or c.step_h < 1 or c.step_w < 1 or not fits(spatial_dims, 3)
            or not fits(plane_dims, 3) or c.row0 >= Lh or c.col0 >= c.Lw
            or (c.rows > 1 and c.step_h > (Lh - 1 - c.row0) // (c.rows - 1))
            or (c.cols > 1 and c.step_w > (c.Lw - 1 - c.col0) // (c.cols - 1))):
        raise ValueError(
            f"{op}: the planes do not fit the spatial array; expected positive sizes and "
            f"steps with row0 + (rows-1)*step_h < Lh and col0 + (cols-1)*step_w < Lw, got "
            f"{', '.join(f'{f}={v}' for f, v in zip(LAYOUT_FIELDS, layout))}"
        )
    check_range(lo, hi, c.M, op, "M channels")
    check_threads(threads, op)
    cdef Py_ssize_t spatial = Lh * c.Lw * c.M, planes = c.M * c.rows * c.cols
    cdef Flat fs, fd
    if to_planes:
        fs = take(src, op, "src", 0, spatial, False, "Lh*Lw*M", LAYOUT_FIELDS, layout)
        fd = take(dst, op, "dst", fs.kind, planes, True, "M*rows*cols", LAYOUT_FIELDS, layout)
    else:
        fs = take(src, op, "src", 0, planes, False, "M*rows*cols", LAYOUT_FIELDS, layout)
        fd = take(dst, op, "dst", fs.kind, spatial, True, "Lh*Lw*M", LAYOUT_FIELDS, layout)
    c.kind, c.src, c.dst = fs.kind, fs.data, fd.data
    with nogil:
        run_parallel(layout_range, &c, lo, hi, threads, PERM_BLOCK)
    return None


def spatial_to_planes(src, dst, tuple layout not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """dst[m, i, j] = src[row0 + i*step_h, col0 + j*step_w, m] for the channels m in [lo, hi).

    src: Lh*Lw*M elements; dst (written): M*rows*cols, of src's dtype.
    """
    return permute(True, "spatial_to_planes", src, dst, layout, lo, hi, threads)


def planes_to_spatial(src, dst, tuple layout not None, Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """dst[row0 + i*step_h, col0 + j*step_w, m] = src[m, i, j] for the channels m in
    [lo, hi); the other cells of dst are untouched.

    src: M*rows*cols elements; dst (updated): Lh*Lw*M, of src's dtype.
    """
    return permute(False, "planes_to_spatial", src, dst, layout, lo, hi, threads)
