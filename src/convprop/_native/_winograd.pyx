# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Winograd's tile transforms, compiled: F(2x2, 3x3) (src/winograd.h) and F(4x4, 3x3) with
(WG9)'s matrices (src/winograd4.h): (WG2) the input tiles, (WG4) the output tiles, (WG5)
dy's tiles, (WG6) the input gradient's tiles added into dx.

A transformed array X has the layout X[xi][c][n*T + t]: (m+2)^2 tile positions xi, the
channels, then the T = Th*Tw tiles of each image (Th = ceil(P/m), Tw = ceil(Q/m) for m x m
output tiles). The arrays are C-contiguous float32 or float64 arrays of any shape, read
flat; `geom` is the 15 integers of the convolution (_runtime.CONV_FIELDS), which must be a
3x3 kernel with stride 1 and dilation 1. Each call runs the planes of [lo, hi) ((n, c) for
the input and dx, (n, k) for the output and dy), numbered channel-major (index c*N + n:
src/winograd.h says why), without the GIL on up to `threads` threads.
"""

from convprop._native._runtime cimport (
    Block,
    ConvGeom,
    Flat,
    check_range,
    check_threads,
    conv_geometry,
    run_parallel,
    scratch,
    take,
    team_size,
)

from convprop._native._runtime import CONV_FIELDS


cdef extern from *:
    """
    #define KERNELS "winograd.h"
    #define MORE_KERNELS "winograd4.h"
    #include "typed.h"
    """
    Py_ssize_t wino_scratch(Py_ssize_t Tw) noexcept nogil
    Py_ssize_t wino4_scratch(Py_ssize_t Tw) noexcept nogil
    void wino_input_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                        Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_input_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                        Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_output_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                         Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_output_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                         Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_dy_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                     Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_dy_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                     Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_dx_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                     Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino_dx_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                     Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_input_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                         Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_input_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                         Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_output_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_output_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                          Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_dy_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                      Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_dy_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                      Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_dx_f32(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                      Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
    void wino4_dx_f64(const double *, double *, double *, const ConvGeom *, Py_ssize_t,
                      Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil


# one signature for all sixteen: (source, destination, scratch, geometry, Th, Tw, lo, hi)
ctypedef void (*transform_f32)(const float *, float *, float *, const ConvGeom *, Py_ssize_t,
                               Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil
ctypedef void (*transform_f64)(const double *, double *, double *, const ConvGeom *,
                               Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) noexcept nogil


cdef enum Role:
    INPUT   # (WG2): x (N, C, H, W) -> V ((m+2)^2, C, N*T), planes (n, c)
    OUTPUT  # (WG4): M ((m+2)^2, K, N*T) -> y (N, K, P, Q), planes (n, k)
    DY      # (WG5): dy (N, K, P, Q) -> Z ((m+2)^2, K, N*T), planes (n, k)
    DX      # (WG6): Mbar ((m+2)^2, C, N*T) -> dx (N, C, H, W), planes (n, c)


cdef struct Transform:
    int kind               # 4 (float) or 8 (double)
    transform_f32 run_f32  # the transform for this call's role and tiling
    transform_f64 run_f64
    const char *source
    char *target
    char *scratch          # `scratch_bytes` per worker
    size_t scratch_bytes
    ConvGeom g
    Py_ssize_t Th, Tw      # tiles per image: Th rows of Tw


cdef Py_ssize_t transform_range(void *ctx, int worker, Py_ssize_t lo,
                                Py_ssize_t hi) noexcept nogil:
    cdef Transform *c = <Transform *>ctx
    cdef char *s = c.scratch + <size_t>worker * c.scratch_bytes
    if c.kind == 4:
        c.run_f32(<const float *>c.source, <float *>c.target, <float *>s, &c.g, c.Th, c.Tw,
                  lo, hi)
    else:
        c.run_f64(<const double *>c.source, <double *>c.target, <double *>s, &c.g, c.Th, c.Tw,
                  lo, hi)
    return 0


cdef object transform(Role role, int m, str op, a, out, tuple geom, Py_ssize_t Th,
                      Py_ssize_t Tw, Py_ssize_t lo, Py_ssize_t hi, int threads):
    """One transform of F(m x m, 3x3): one input, one output, sizes by role."""
    cdef Transform c
    conv_geometry(geom, &c.g, op)
    check_threads(threads, op)
    cdef ConvGeom *g = &c.g
    if (Th != (g.P + m - 1) // m or Tw != (g.Q + m - 1) // m or g.R != 3 or g.S != 3
            or g.stride_h != 1 or g.stride_w != 1 or g.dil_h != 1 or g.dil_w != 1):
        raise ValueError(
            f"{op}: needs a 3x3 kernel, stride 1, dilation 1 and ceil(P/{m}) x ceil(Q/{m}) "
            f"tiles; expected R=S=3, stride (1, 1), dilation (1, 1) and "
            f"{(g.P + m - 1) // m} x {(g.Q + m - 1) // m} tiles, got R={g.R}, S={g.S}, "
            f"stride ({g.stride_h}, {g.stride_w}), dilation ({g.dil_h}, {g.dil_w}) and "
            f"{Th} x {Tw} tiles"
        )
    cdef Py_ssize_t NT = g.N * Th * Tw, positions = (m + 2) * (m + 2)
    cdef Py_ssize_t nx = g.N * g.C * g.H * g.W, ny = g.N * g.K * g.P * g.Q
    cdef Py_ssize_t nVx = positions * g.C * NT, nVy = positions * g.K * NT
    tiled_x = "16*C*N*Th*Tw" if m == 2 else "36*C*N*Th*Tw"
    tiled_y = "16*K*N*Th*Tw" if m == 2 else "36*K*N*Th*Tw"
    fields, values = CONV_FIELDS + ("Th", "Tw"), geom + (Th, Tw)
    cdef Flat fa, fo
    if role == INPUT:
        check_range(lo, hi, g.N * g.C, op, "N*C planes")
        fa = take(a, op, "x", 0, nx, False, "N*C*H*W", fields, values)
        fo = take(out, op, "V", fa.kind, nVx, True, tiled_x, fields, values)
    elif role == OUTPUT:
        check_range(lo, hi, g.N * g.K, op, "N*K planes")
        fa = take(a, op, "M", 0, nVy, False, tiled_y, fields, values)
        fo = take(out, op, "y", fa.kind, ny, True, "N*K*P*Q", fields, values)
    elif role == DY:
        check_range(lo, hi, g.N * g.K, op, "N*K planes")
        fa = take(a, op, "dy", 0, ny, False, "N*K*P*Q", fields, values)
        fo = take(out, op, "Z", fa.kind, nVy, True, tiled_y, fields, values)
    else:
        check_range(lo, hi, g.N * g.C, op, "N*C planes")
        fa = take(a, op, "Mbar", 0, nVx, False, tiled_x, fields, values)
        fo = take(out, op, "dx", fa.kind, nx, True, "N*C*H*W", fields, values)
    c.kind, c.source, c.target, c.Th, c.Tw = fa.kind, fa.data, fo.data, Th, Tw
    cdef transform_f32[4] two_f32 = [wino_input_f32, wino_output_f32, wino_dy_f32, wino_dx_f32]
    cdef transform_f64[4] two_f64 = [wino_input_f64, wino_output_f64, wino_dy_f64, wino_dx_f64]
    cdef transform_f32[4] four_f32 = [
        wino4_input_f32, wino4_output_f32, wino4_dy_f32, wino4_dx_f32
    ]
    cdef transform_f64[4] four_f64 = [
        wino4_input_f64, wino4_output_f64, wino4_dy_f64, wino4_dx_f64
    ]
    cdef int i = <int>role
    c.run_f32 = two_f32[i] if m == 2 else four_f32[i]
    c.run_f64 = two_f64[i] if m == 2 else four_f64[i]
    # blocks of transformed tiles and row buffers (winograd.h, winograd4.h)
    cdef int workers = team_size(lo, hi, threads)
    cdef Block work = scratch(wino_scratch(Tw) if m == 2 else wino4_scratch(Tw), c.kind, workers)
    c.scratch, c.scratch_bytes = work.data, work.stride
    with nogil:
        run_parallel(transform_range, &c, lo, hi, workers, 1)
    return None


def winograd_input(x, V, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                   Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG2) V = B^T d B for every 4x4 input tile d of the planes (n, c) in [lo, hi), F(2x2, 3x3).

    x: N*C*H*W elements; V (written): 16*C*N*Th*Tw, of x's dtype.
    """
    return transform(INPUT, 2, "winograd_input", x, V, geom, Th, Tw, lo, hi, threads)


def winograd_output(M, y, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                    Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG4) y_tile = A^T M A for the planes (n, k) in [lo, hi), F(2x2, 3x3); outputs past
    P x Q are dropped.

    M: 16*K*N*Th*Tw elements; y (written): N*K*P*Q, of M's dtype.
    """
    return transform(OUTPUT, 2, "winograd_output", M, y, geom, Th, Tw, lo, hi, threads)


def winograd_dy(dy, Z, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG5) Z = A e A^T for every 2x2 tile e of dy (zero past P x Q), planes (n, k) in
    [lo, hi), F(2x2, 3x3).

    dy: N*K*P*Q elements; Z (written): 16*K*N*Th*Tw, of dy's dtype.
    """
    return transform(DY, 2, "winograd_dy", dy, Z, geom, Th, Tw, lo, hi, threads)


def winograd_dx(Mbar, dx, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG6) dd = B Mbar B^T per tile, added into the overlapping input tiles of the planes
    (n, c) in [lo, hi), F(2x2, 3x3); only cells of x receive gradient.

    Mbar: 16*C*N*Th*Tw elements; dx (written): N*C*H*W, of Mbar's dtype.
    """
    return transform(DX, 2, "winograd_dx", Mbar, dx, geom, Th, Tw, lo, hi, threads)


def winograd4_input(x, V, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                    Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG2) with (WG9)'s B: 6x6 input tiles every 4 cells, planes (n, c) in [lo, hi).

    x: N*C*H*W elements; V (written): 36*C*N*Th*Tw, of x's dtype.
    """
    return transform(INPUT, 4, "winograd4_input", x, V, geom, Th, Tw, lo, hi, threads)


def winograd4_output(M, y, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                     Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG4) with (WG9)'s A: 4x4 output tiles, planes (n, k) in [lo, hi).

    M: 36*K*N*Th*Tw elements; y (written): N*K*P*Q, of M's dtype.
    """
    return transform(OUTPUT, 4, "winograd4_output", M, y, geom, Th, Tw, lo, hi, threads)


def winograd4_dy(dy, Z, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                 Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG5) with (WG9)'s A: dy's 4x4 tiles, planes (n, k) in [lo, hi).

    dy: N*K*P*Q elements; Z (written): 36*K*N*Th*Tw, of dy's dtype.
    """
    return transform(DY, 4, "winograd4_dy", dy, Z, geom, Th, Tw, lo, hi, threads)


def winograd4_dx(Mbar, dx, tuple geom not None, Py_ssize_t Th, Py_ssize_t Tw,
                 Py_ssize_t lo, Py_ssize_t hi, int threads=1):
    """(WG6) with (WG9)'s B: the 6x6 tiles' gradients added into dx, planes (n, c) in
    [lo, hi).

    Mbar: 36*C*N*Th*Tw elements; dx (written): N*C*H*W, of Mbar's dtype.
    """
    return transform(DX, 4, "winograd4_dx", Mbar, dx, geom, Th, Tw, lo, hi, threads)
