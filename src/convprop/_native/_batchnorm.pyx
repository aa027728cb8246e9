# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Batch normalisation (BN1-BN4, BN7-BN10, BN12, BN13), compiled (src/batchnorm.h).

x, y, dy and dx are (N, C, L) arrays, C-contiguous, of any shape with that many elements,
read flat; the per-channel arrays hold C elements: mean, invstd, gamma, beta, scale,
mean_dy, mean_dy_xhat of x's dtype (float32 or float64), the sums (var, sum_dy,
sum_dy_xhat, and the statistics' mean) float64. The sums run over a range of channels, the
element-wise passes over a range of the N*C planes, without the GIL on up to `threads`
threads.
"""

from convprop._native._runtime cimport Flat, check_range, check_threads, fits, run_parallel, take


cdef extern from *:
    """
    #define KERNELS "batchnorm.h"
    #include "typed.h"
    """
    void batchnorm_stats_f32(const float *x, double *mean, double *var, Py_ssize_t N,
                             Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                             Py_ssize_t hi) noexcept nogil
    void batchnorm_stats_f64(const double *x, double *mean, double *var, Py_ssize_t N,
                             Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                             Py_ssize_t hi) noexcept nogil
    void batchnorm_apply_f32(const float *x, const float *mean, const float *invstd,
                             const float *gamma, const float *beta, float *y, int relu,
                             Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                             Py_ssize_t hi) noexcept nogil
    void batchnorm_apply_f64(const double *x, const double *mean, const double *invstd,
                             const double *gamma, const double *beta, double *y, int relu,
                             Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                             Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_sums_f32(const float *dy, const float *x, const float *mean,
                                 const float *invstd, const float *gamma, const float *beta,
                                 double *sum_dy, double *sum_dy_xhat, Py_ssize_t N,
                                 Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                                 Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_sums_f64(const double *dy, const double *x, const double *mean,
                                 const double *invstd, const double *gamma,
                                 const double *beta, double *sum_dy, double *sum_dy_xhat,
                                 Py_ssize_t N, Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                                 Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_input_f32(const float *dy, const float *x, const float *mean,
                                  const float *invstd, const float *scale, const float *mean_dy,
                                  const float *mean_dy_xhat, const float *gamma,
                                  const float *beta, float *dx, Py_ssize_t C, Py_ssize_t L,
                                  Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_input_f64(const double *dy, const double *x, const double *mean,
                                  const double *invstd, const double *scale,
                                  const double *mean_dy, const double *mean_dy_xhat,
                                  const double *gamma, const double *beta, double *dx,
                                  Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                                  Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_frozen_f32(const float *dy, const float *x, const float *mean,
                                   const float *gamma, const float *invstd, const float *beta,
                                   float *dx, Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                                   Py_ssize_t hi) noexcept nogil
    void batchnorm_grad_frozen_f64(const double *dy, const double *x, const double *mean,
                                   const double *gamma, const double *invstd,
                                   const double *beta, double *dx, Py_ssize_t C, Py_ssize_t L,
                                   Py_ssize_t lo, Py_ssize_t hi) noexcept nogil


cdef struct Norm:
    int kind                                  # 4 (float) or 8 (double)
    const char *x
    const char *dy
    char *out                                 # y or dx
    const char *c1                            # per channel, of x's dtype: mean
    const char *c2                            # invstd
    const char *c3                            # gamma, or scale
    const char *c4                            # beta, or mean_dy
    const char *c5                            # mean_dy_xhat
    const char *gate_gamma                    # with a ReLU after (BR3): gamma, else NULL
    const char *gate_beta                     # beta, else NULL
    int relu                                  # apply: write z = max(y, 0) (BR2)
    double *s1                                # per channel, float64: mean, or sum_dy
    double *s2                                # var, or sum_dy_xhat
    Py_ssize_t N, C, L


cdef Py_ssize_t stats_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Norm *c = <Norm *>ctx
    if c.kind == 4:
        batchnorm_stats_f32(<const float *>c.x, c.s1, c.s2, c.N, c.C, c.L, lo, hi)
    else:
        batchnorm_stats_f64(<const double *>c.x, c.s1, c.s2, c.N, c.C, c.L, lo, hi)
    return 0


cdef Py_ssize_t apply_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Norm *c = <Norm *>ctx
    if c.kind == 4:
        batchnorm_apply_f32(<const float *>c.x, <const float *>c.c1, <const float *>c.c2,
                            <const float *>c.c3, <const float *>c.c4, <float *>c.out, c.relu,
                            c.C, c.L, lo, hi)
    else:
        batchnorm_apply_f64(<const double *>c.x, <const double *>c.c1, <const double *>c.c2,
                            <const double *>c.c3, <const double *>c.c4, <double *>c.out,
                            c.relu, c.C, c.L, lo, hi)
    return 0


cdef Py_ssize_t sums_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Norm *c = <Norm *>ctx
    if c.kind == 4:
        batchnorm_grad_sums_f32(<const float *>c.dy, <const float *>c.x, <const float *>c.c1,
                                <const float *>c.c2, <const float *>c.gate_gamma,
                                <const float *>c.gate_beta, c.s1, c.s2, c.N, c.C, c.L, lo, hi)
    else:
        batchnorm_grad_sums_f64(<const double *>c.dy, <const double *>c.x,
                                <const double *>c.c1, <const double *>c.c2,
                                <const double *>c.gate_gamma, <const double *>c.gate_beta, c.s1,
                                c.s2, c.N, c.C, c.L, lo, hi)
    return 0


cdef Py_ssize_t input_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Norm *c = <Norm *>ctx
    if c.kind == 4:
        batchnorm_grad_input_f32(<const float *>c.dy, <const float *>c.x, <const float *>c.c1,
                                 <const float *>c.c2, <const float *>c.c3, <const float *>c.c4,
                                 <const float *>c.c5, <const float *>c.gate_gamma,
                                 <const float *>c.gate_beta, <float *>c.out, c.C, c.L, lo, hi)
    else:
        batchnorm_grad_input_f64(<const double *>c.dy, <const double *>c.x,
                                 <const double *>c.c1, <const double *>c.c2,
                                 <const double *>c.c3, <const double *>c.c4,
                                 <const double *>c.c5, <const double *>c.gate_gamma,
                                 <const double *>c.gate_beta, <double *>c.out, c.C, c.L, lo, hi)
    return 0


cdef Py_ssize_t frozen_range(void *ctx, int worker, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef Norm *c = <Norm *>ctx
    if c.kind == 4:
        batchnorm_grad_frozen_f32(<const float *>c.dy, <const float *>c.x, <const float *>c.c1,
                                  <const float *>c.c3, <const float *>c.c2,
                                  <const float *>c.gate_beta, <float *>c.out, c.C, c.L, lo, hi)
    else:
        batchnorm_grad_frozen_f64(<const double *>c.dy, <const double *>c.x,
                                  <const double *>c.c1, <const double *>c.c3,
                                  <const double *>c.c2, <const double *>c.gate_beta,
                                  <double *>c.out, c.C, c.L, lo, hi)
    return 0


cdef Py_ssize_t planes(Flat a, Py_ssize_t C, Py_ssize_t L, str op) except -1:
    """N, the batch of an (N, C, L) array a; a ValueError where a has another size."""
    cdef Py_ssize_t[2] dims = [C, L]
    if C < 1 or L < 1 or not fits(dims, 2) or a.count % (C * L) != 0:
        raise ValueError(
            f"{op}: an array of {a.count} elements is not (N, {C}, {L}); expected positive C "
            f"and L and a multiple of C*L elements, got C={C}, L={L}"
        )
    return a.count // (C * L)


cdef Flat take_x(object x, str op, str name, Py_ssize_t N, Py_ssize_t C, Py_ssize_t L,
                 bint writable):
    """The first (N, C, L) array of a call, float32 or float64, after checking the sizes."""
    cdef Py_ssize_t[3] dims = [N, C, L]
    if N < 1 or C < 1 or L < 1 or not fits(dims, 3):
        raise ValueError(
            f"{op}: invalid sizes; expected positive N, C and L whose product fits, got "
            f"N={N}, C={C}, L={L}"
        )
    return take(x, op, name, 0, N * C * L, writable, "N*C*L", ("N", "C", "L"), (N, C, L))


cdef Flat take_like(object a, str op, str name, int kind, Py_ssize_t N, Py_ssize_t C,
                    Py_ssize_t L, bint writable):
    return take(a, op, name, kind, N * C * L, writable, "N*C*L", ("N", "C", "L"), (N, C, L))


cdef Flat take_channel(object a, str op, str name, int kind, Py_ssize_t C, bint writable):
    return take(a, op, name, kind, C, writable, "C", ("C",), (C,))


cdef bint relu_gate(object first, object second, str op) except -1:
    """Whether a ReLU's gate was asked for: both of its per-channel arrays, or neither."""
    if (first is None) != (second is None):
        raise ValueError(f"{op}: the ReLU's gate needs both of its per-channel arrays; "
                         f"expected both or neither, got only one")
    return first is not None


def batchnorm_stats(x, mean, var, Py_ssize_t N, Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                    Py_ssize_t hi, int threads=1):
    """(BN1), (BN2) for the channels c in [lo, hi): mean[c] and var[c] (the biased variance)
    over n and l, in double, two passes; channels outside [lo, hi) are not written.

    x: N*C*L elements; mean, var (written): C float64 elements.
    """
    cdef str op = "batchnorm_stats"
    cdef Norm c
    check_threads(threads, op)
    cdef Flat fx = take_x(x, op, "x", N, C, L, False)
    check_range(lo, hi, C, op, "C channels")
    cdef Flat fmean = take_channel(mean, op, "mean", 8, C, True)
    cdef Flat fvar = take_channel(var, op, "var", 8, C, True)
    c.kind, c.x, c.s1, c.s2, c.N, c.C, c.L = fx.kind, fx.data, <double *>fmean.data, \
        <double *>fvar.data, N, C, L
    with nogil:
        run_parallel(stats_range, &c, lo, hi, threads, 1)


def batchnorm_apply(x, mean, invstd, gamma, beta, y, Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                    Py_ssize_t hi, int threads=1, bint relu=False):
    """(BN3), (BN4) for the planes (n, c) in [lo, hi): y = ((x - mean[c]) * invstd[c]) *
    gamma[c] + beta[c] in x's dtype, NumPy's order of rounding; with `relu`, max(y, 0)
    (BR2) in its place.

    x: N*C*L elements; mean, invstd, gamma, beta: C elements of x's dtype; y (written): the
    size of x.
    """
    cdef str op = "batchnorm_apply"
    cdef Norm c
    check_threads(threads, op)
    cdef Flat fx = take(x, op, "x", 0, -1, False, None, None, None)
    cdef Py_ssize_t N = planes(fx, C, L, op)
    check_range(lo, hi, N * C, op, "N*C planes")
    cdef Flat f1 = take_channel(mean, op, "mean", fx.kind, C, False)
    cdef Flat f2 = take_channel(invstd, op, "invstd", fx.kind, C, False)
    cdef Flat f3 = take_channel(gamma, op, "gamma", fx.kind, C, False)
    cdef Flat f4 = take_channel(beta, op, "beta", fx.kind, C, False)
    cdef Flat fy = take_like(y, op, "y", fx.kind, N, C, L, True)
    c.kind, c.x, c.out, c.C, c.L, c.relu = fx.kind, fx.data, fy.data, C, L, relu
    c.c1, c.c2, c.c3, c.c4 = f1.data, f2.data, f3.data, f4.data
    with nogil:
        run_parallel(apply_range, &c, lo, hi, threads, 1)


def batchnorm_grad_sums(dy, x, mean, invstd, sum_dy, sum_dy_xhat, Py_ssize_t N, Py_ssize_t C,
                        Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi, int threads=1,
                        relu_gamma=None, relu_beta=None):
    """(BN8), (BN9) for the channels c in [lo, hi): sum_dy[c] = sum dy and sum_dy_xhat[c] =
    sum dy * xhat over n and l, in double, xhat = (x - mean[c]) * invstd[c] in x's dtype.
    With `relu_gamma` and `relu_beta` (the forward's gamma and beta), `dy` is the gradient
    dz of a ReLU after the normalisation, taken as dz * f'(y) (BR3).

    dy, x: N*C*L elements of one dtype; mean, invstd (and relu_gamma, relu_beta): C elements
    of it; sum_dy, sum_dy_xhat (written): C float64 elements.
    """
    cdef str op = "batchnorm_grad_sums"
    cdef Norm c
    check_threads(threads, op)
    cdef Flat fdy = take_x(dy, op, "dy", N, C, L, False)
    check_range(lo, hi, C, op, "C channels")
    cdef Flat fx = take_like(x, op, "x", fdy.kind, N, C, L, False)
    cdef Flat f1 = take_channel(mean, op, "mean", fdy.kind, C, False)
    cdef Flat f2 = take_channel(invstd, op, "invstd", fdy.kind, C, False)
    cdef Flat fs1 = take_channel(sum_dy, op, "sum_dy", 8, C, True)
    cdef Flat fs2 = take_channel(sum_dy_xhat, op, "sum_dy_xhat", 8, C, True)
    c.kind, c.dy, c.x, c.c1, c.c2 = fdy.kind, fdy.data, fx.data, f1.data, f2.data
    c.s1, c.s2, c.N, c.C, c.L = <double *>fs1.data, <double *>fs2.data, N, C, L
    cdef Flat fg, fb
    c.gate_gamma, c.gate_beta = NULL, NULL
    if relu_gate(relu_gamma, relu_beta, op):
        fg = take_channel(relu_gamma, op, "relu_gamma", fdy.kind, C, False)
        fb = take_channel(relu_beta, op, "relu_beta", fdy.kind, C, False)
        c.gate_gamma, c.gate_beta = fg.data, fb.data
    with nogil:
        run_parallel(sums_range, &c, lo, hi, threads, 1)


def batchnorm_grad_input(dy, x, mean, invstd, scale, mean_dy, mean_dy_xhat, dx, Py_ssize_t C,
                         Py_ssize_t L, Py_ssize_t lo, Py_ssize_t hi, int threads=1,
                         relu_gamma=None, relu_beta=None):
    """(BN13) for the planes (n, c) in [lo, hi): dx = scale[c] * (dy - mean_dy[c] -
    xhat * mean_dy_xhat[c]), xhat = (x - mean[c]) * invstd[c], in dy's dtype. With
    `relu_gamma` and `relu_beta`, `dy` is dz of a ReLU after, taken as dz * f'(y) (BR3).

    dy, x: N*C*L elements of one dtype; mean, invstd, scale, mean_dy, mean_dy_xhat (and
    relu_gamma, relu_beta): C elements of it; dx (written): the size of dy.
    """
    cdef str op = "batchnorm_grad_input"
    cdef Norm c
    check_threads(threads, op)
    cdef Flat fdy = take(dy, op, "dy", 0, -1, False, None, None, None)
    cdef Py_ssize_t N = planes(fdy, C, L, op)
    check_range(lo, hi, N * C, op, "N*C planes")
    cdef Flat fx = take_like(x, op, "x", fdy.kind, N, C, L, False)
    cdef Flat f1 = take_channel(mean, op, "mean", fdy.kind, C, False)
    cdef Flat f2 = take_channel(invstd, op, "invstd", fdy.kind, C, False)
    cdef Flat f3 = take_channel(scale, op, "scale", fdy.kind, C, False)
    cdef Flat f4 = take_channel(mean_dy, op, "mean_dy", fdy.kind, C, False)
    cdef Flat f5 = take_channel(mean_dy_xhat, op, "mean_dy_xhat", fdy.kind, C, False)
    cdef Flat fdx = take_like(dx, op, "dx", fdy.kind, N, C, L, True)
    c.kind, c.dy, c.x, c.out, c.C, c.L = fdy.kind, fdy.data, fx.data, fdx.data, C, L
    c.c1, c.c2, c.c3, c.c4, c.c5 = f1.data, f2.data, f3.data, f4.data, f5.data
    cdef Flat fg, fb
    c.gate_gamma, c.gate_beta = NULL, NULL
    if relu_gate(relu_gamma, relu_beta, op):
        fg = take_channel(relu_gamma, op, "relu_gamma", fdy.kind, C, False)
        fb = take_channel(relu_beta, op, "relu_beta", fdy.kind, C, False)
        c.gate_gamma, c.gate_beta = fg.data, fb.data
    with nogil:
        run_parallel(input_range, &c, lo, hi, threads, 1)


def batchnorm_grad_frozen(dy, gamma, invstd, dx, Py_ssize_t C, Py_ssize_t L, Py_ssize_t lo,
                          Py_ssize_t hi, int threads=1, relu_x=None, relu_mean=None,
                          relu_beta=None):
    """(BN10), (BN12) for the planes (n, c) in [lo, hi): dx = (dy * gamma[c]) * invstd[c] in
    dy's dtype, NumPy's order of rounding. With `relu_x`, `relu_mean` and `relu_beta` (the
    forward's x, running mean and beta), `dy` is dz of a ReLU after, taken as dz * f'(y)
    (BR3).

    dy (and relu_x): N*C*L elements; gamma, invstd (and relu_mean, relu_beta): C elements of
    dy's dtype; dx (written): the size of dy.
    """
    cdef str op = "batchnorm_grad_frozen"
    cdef Norm c
    check_threads(threads, op)
    cdef Flat fdy = take(dy, op, "dy", 0, -1, False, None, None, None)
    cdef Py_ssize_t N = planes(fdy, C, L, op)
    check_range(lo, hi, N * C, op, "N*C planes")
    cdef Flat f3 = take_channel(gamma, op, "gamma", fdy.kind, C, False)
    cdef Flat f2 = take_channel(invstd, op, "invstd", fdy.kind, C, False)
    cdef Flat fdx = take_like(dx, op, "dx", fdy.kind, N, C, L, True)
    c.kind, c.dy, c.out, c.C, c.L, c.c2, c.c3 = fdy.kind, fdy.data, fdx.data, C, L, f2.data, \
        f3.data
    cdef Flat fx, fm, fb
    c.x, c.c1, c.gate_beta = NULL, NULL, NULL
    if relu_x is not None or relu_mean is not None or relu_beta is not None:
        if relu_x is None or relu_mean is None or relu_beta is None:
            raise ValueError(f"{op}: relu_x, relu_mean and relu_beta come together; expected "
                             f"all three or none, got relu_x={relu_x is not None}, "
                             f"relu_mean={relu_mean is not None}, "
                             f"relu_beta={relu_beta is not None}")
        fx = take_like(relu_x, op, "relu_x", fdy.kind, N, C, L, False)
        fm = take_channel(relu_mean, op, "relu_mean", fdy.kind, C, False)
        fb = take_channel(relu_beta, op, "relu_beta", fdy.kind, C, False)
        c.x, c.c1, c.gate_beta = fx.data, fm.data, fb.data
    with nogil:
        run_parallel(frozen_range, &c, lo, hi, threads, 1)

