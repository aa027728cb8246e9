"""Convolution by the convolution theorem: products of spectra instead of sliding sums.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  y (N,K,P,Q);  Hp, Wp: padded input size;
          Rd = dil_h*(R-1)+1, Sd = dil_w*(S-1)+1: the dilated kernel (zeros between taps);
          F: the 2-D real-FFT bins of size Lh x (Lw//2 + 1); ^ marks a spectrum.
  Lh >= Hp, Lw >= Wp  (next fast lengths)                                           (T1)
  Every correlation below reads indices < Hp (< Wp), so the circular transforms of
  length Lh (Lw) never wrap around: zero-padding to Hp suffices.
Forward
  y_dense = irfft2( sum_c x_pad^[n,c] * conj(w_dil^[k,c]) )   (a correlation)
  y = y_dense[:, :, ::stride_h, ::stride_w] cut to (P, Q)                           (T2)
Backward
  dy_up: dy zero-upsampled by the stride (the dense positions of T2)
  dx_pad = irfft2( sum_k dy_up^[n,k] * w_dil^[k,c] )  (a full convolution), crop   (T3)
  dw_dil = irfft2( sum_n x_pad^[n,c] * conj(dy_up^[n,k]) ), taps at the dilation   (T4)

Strided convolution is computed dense and then subsampled (forward) or by zero-upsampling
dy (backward); dilation by a zero-dilated kernel. Both are exact, merely wasteful, so FFT
handles every case.

Layout: every array is transformed with its two spatial axes *first*, (Lh, Lw, G, A, B),
so the spectrum (Lh, Lw//2+1, G, A, B) is already frequency-major: viewed as (F, G, A, B),
the sums over channels are batched matmuls over the F bins with no transposition. The
zero-padding to (Lh, Lw), the stride's zero-upsampling of dy and the dilation's zeros in
the kernel all happen in the one copy that lays an array out this way. The forward's
input spectrum is kept for the weight gradient, and dy is transformed once for both
gradients. The products read conjugates, which cost no pass of their own: the forward
keeps conj(w^) (w is real: the product with the conjugate DFT matrix), the backward takes
conj(dy^) for (T4) as written and for (T3) as conj(dx^) = conj(dy^)·conj(w^), and the short
transforms (T7), (T8) below conjugate by a sign in their products. On the CPU, compiled
kernels (convprop._native's layout, fft and products) make the layout copies, compute (T7),
(T8) on blocks of planes that stay in the core's cache, and compute the per-bin products of
(T2)-(T4), each bin by one thread: each such step below is NumPy code (the reference, the
path of CuPy arrays) with its compiled twin.

The kernel has only R·S nonzero taps, so its spectrum is a small matrix product rather
than a transform of a mostly-zero (Lh, Lw) array, and the weight gradient needs only
those R·S values of its inverse:
  w_dil^[(u,v)] = sum_{r,s} w[r,s] · exp(-2πi (u·r·dil_h/Lh + v·s·dil_w/Lw))            (T5)
  dw[r,s] = (1/(Lh·Lw)) sum_{u,v} c_v Re( dw_dil^[(u,v)] · exp(+2πi (u·r·dil_h/Lh + v·s·dil_w/Lw)) )
            c_v = 1 for v = 0 and v = Lw/2, 2 otherwise (the half spectrum's mirror)    (T6)
Short transforms (lengths up to SMALL_DFT, SMALL_DFT_COMPILED with the compiled kernels)
of x and dy are likewise matrix products, one along the columns, then one along the rows,
with the placement folded into the matrices:
  a^[u, v] = sum_i e^{-2πi u (r0 + i·sh)/Lh} sum_j e^{-2πi v (c0 + j·sw)/Lw} a[i, j]    (T7)
and so are the inverses of y and dx, evaluated only where they are read (T6's weights c_v):
  a[r0 + i·sh, c0 + j·sw] = 1/(Lh·Lw) sum_{u,v} c_v Re( a^[u,v] e^{+2πi(u·row/Lh + v·col/Lw)} ) (T8)

Memory: the spectra take Lh·(Lw//2+1) complex values per plane, of x (N·C planes), of the
kernel (K·C/G) and of y (N·K), and the forward keeps x^ and conj(w^) for the backward.
Past ``conv2d_workspace.WORKSPACE_BYTES`` (the estimate of
``conv2d_cost_model.workspace_bytes``) a pass runs in chunks of images, or, where one
image's spectra and the kernel's pass it, in blocks of filters and channels; the forward
then keeps nothing and the backward transforms x again, block by block
(conv2d_workspace). A layer within the budget runs whole, as below.

Non-finite values: a NaN or ±∞ in x, w or dy enters the spectrum of its whole plane, so
every output of that plane (and, through the channel sums, of every filter) becomes NaN,
where the sums (F1)-(B3) and PyTorch keep it local. ``auto`` checks for them and takes an
algorithm that keeps IEEE semantics instead (see conv2d_ieee); named, "fft" does not.
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any

from convprop import _native
from convprop._native import fft, layout, products
from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp, irfft2, rfft2
from convprop.functional import conv2d_cost_model, conv2d_workspace

NAME = "fft"

Lengths = tuple[int, int]


def decline(geom: ConvGeometry) -> str | None:
    """FFT handles every valid convolution (stride and dilation exactly, if wastefully)."""
    return None


def _lengths(geom: ConvGeometry) -> Lengths:
    """(T1): transform sizes Lh >= Hp, Lw >= Wp with small prime factors (the cost model's
    ``fft_lengths`` follows the same rule)."""
    import scipy.fft

    Hp, Wp = geom.padded_hw
    return (scipy.fft.next_fast_len(Hp, real=True), scipy.fft.next_fast_len(Wp, real=True))


def _spectrum(spatial: Array) -> Array:
    """(Lh, Lw, G, A, B) real -> (F, G, A, B) complex, F = Lh * (Lw//2 + 1)."""
    xp = get_xp(spatial)
    spec = rfft2(xp, spatial, axes=(0, 1))  # (Lh, Lw//2+1, G, A, B)
    return spec.reshape(-1, *spec.shape[2:])


def _inverse(spec: Array, lengths: Lengths) -> Array:
    """(F, G, A, B) complex -> (Lh, Lw, G, A, B) real."""
    xp = get_xp(spec)
    spec = spec.reshape(lengths[0], lengths[1] // 2 + 1, *spec.shape[1:])
    return irfft2(xp, spec, lengths, axes=(0, 1))


def _range(start: int, step: int, count: int) -> slice:
    """The cells start, start + step, ..., ``count`` of them."""
    return slice(start, start + step * (count - 1) + 1, step)


def _one_group_to(a: Array, spatial: Array, geom: ConvGeometry, *placement: Any) -> bool:
    """The compiled layout copies serve one group (their channel order is (n, c))."""
    return bool(geom.groups == 1)


@_native.twin(arrays="a", requires=_one_group_to)
def _planes_to_spatial(
    a: Array, spatial: Array, geom: ConvGeometry, start: Lengths, step: Lengths
) -> None:
    """:func:`_to_spatial` by the compiled strided copy, plane by plane."""
    N, channels, h, w = a.shape
    layout.planes_to_spatial(a.reshape(N * channels, h, w), spatial, start, step)  # (T1), (T3)


@_native.accelerated(_planes_to_spatial)
def _to_spatial(
    a: Array, spatial: Array, geom: ConvGeometry, start: Lengths, step: Lengths
) -> None:
    """(T1), (T3): a (N, ch, h, w) into the zero (Lh, Lw, G, N, ch/G) ``spatial``, cell (i, j)
    at row start_h + i·step_h and column start_w + j·step_w: zero-padding (step 1) or
    zero-upsampling by the stride, by placement."""
    N, channels, h, w = a.shape
    G = geom.groups
    view = a.reshape(N, G, channels // G, h, w).transpose(3, 4, 1, 0, 2)  # (h, w, G, N, ch/G)
    spatial[_range(start[0], step[0], h), _range(start[1], step[1], w)] = view  # (T1), (T3)


def _one_group_from(spatial: Array, geom: ConvGeometry, *placement: Any) -> bool:
    """The compiled layout copies serve one group (their channel order is (n, c))."""
    return bool(geom.groups == 1)


@_native.twin(arrays="spatial", requires=_one_group_from)
def _spatial_to_planes(
    spatial: Array, geom: ConvGeometry, shape: tuple[int, int, int, int], start: Lengths,
    step: Lengths, dtype: Any,
) -> Array:  # fmt: skip
    """:func:`_from_spatial` by the compiled strided copy (``spatial`` has the dtype)."""
    h, w = shape[2], shape[3]
    return layout.spatial_to_planes(spatial, h, w, start, step).reshape(shape)  # (T2), (T3)


@_native.accelerated(_spatial_to_planes)
def _from_spatial(
    spatial: Array, geom: ConvGeometry, shape: tuple[int, int, int, int], start: Lengths,
    step: Lengths, dtype: Any,
) -> Array:  # fmt: skip
    """(T2), (T3): the cells start_h + i·step_h, start_w + j·step_w of ``spatial`` (Lh, Lw,
    G, N, ch/G) as a fresh (N, ch, h, w) = ``shape`` array of ``dtype``: the output read at
    every stride-th position, or dx cropped from x_pad."""
    xp = get_xp(spatial)
    h, w = shape[2], shape[3]
    cells = spatial[_range(start[0], step[0], h), _range(start[1], step[1], w)]
    planes = cells.transpose(3, 2, 4, 0, 1)  # (T2), (T3) -> (N, G, ch/G, h, w)
    return xp.ascontiguousarray(planes, dtype=dtype).reshape(shape)


SMALL_DFT = 32
"""Transforms of at most this length are computed as products with DFT matrices (T7, T8)."""

SMALL_DFT_COMPILED = 48
"""The same limit where the compiled kernels compute (T7), (T8) (NumPy arrays): measured
against the library FFT on fwd+bwd steps, big9x9 (lengths 40) 0.86, 40² planes with a 9×9
kernel (48) 0.94, 56² planes (64) 1.03-1.05."""


@_native.twin(spectra="a, b")
def _bin_products_compiled(a: Array, b: Array) -> Array:
    """:func:`_bin_products` by the compiled kernel, each bin and group by one thread."""
    F, G, M, L = a.shape
    Nc = b.shape[3]
    y = products.bin_products(a.reshape(F * G, M, L), b.reshape(F * G, L, Nc))
    return y.reshape(F, G, M, Nc)


@_native.accelerated(_bin_products_compiled)
def _bin_products(a: Array, b: Array) -> Array:
    """(T2)-(T4)'s sums, a @ b for a (F, G, M, L) and b (F, G, L, Nc) complex, per bin and
    group. The products are small (lenet2: 64 × 32 by 32 × 64 for each of 180 bins): the
    BLAS shares each one between its threads, at a cost near the product's own, where the
    compiled kernel gives each bin to one thread (NumPy arrays). Whole passes, alternating
    in one process: lenet2 forward 0.76-0.93, fwd+bwd 0.88-0.91; big9x9 (batch 8: products
    8 rows high) forward 0.88-0.93, fwd+bwd 0.82-0.83."""
    return a @ b


def _device(xp: ModuleType) -> int:
    """The current GPU for CuPy (cached matrices live on one device), 0 on the CPU."""
    cuda = getattr(xp, "cuda", None)
    return int(cuda.Device().id) if cuda is not None else 0


def _axis_dft(
    xp: ModuleType, length: int, n: int, start: int, step: int, half: bool, dtype: str
) -> tuple[Array, Array]:
    """See :func:`_axis_dft_on`; cached per array module and device."""
    return _axis_dft_on(xp, _device(xp), length, n, start, step, half, dtype)


@functools.lru_cache(maxsize=64)
def _axis_dft_on(
    xp: ModuleType,
    device: int,
    length: int,
    n: int,
    start: int,
    step: int,
    half: bool,
    dtype: str,
) -> tuple[Array, Array]:
    """Real and imaginary parts of exp(-2πi·f·(start + i·step)/length) for the output bins f
    (all ``length`` of them, or the ``length//2 + 1`` of a real transform when ``half``) and
    the ``n`` input positions i: two (bins, n) arrays of ``dtype``."""
    bins = xp.arange(length // 2 + 1 if half else length)[:, None]
    position = start + step * xp.arange(n)[None, :]
    phase = (bins * position % length) / length  # exact integer phase, reduced mod length
    return (
        xp.cos(2 * math.pi * phase).astype(dtype),
        (-xp.sin(2 * math.pi * phase)).astype(dtype),
    )


def _mirror_weights(xp: ModuleType, Lw: int, dtype: str) -> Array:
    """(Lw//2 + 1,): c_v of (T6), 2 for a half-spectrum bin that also stands for its mirror
    Lw - v, 1 for v = 0 and (Lw even) the Nyquist bin v = Lw/2."""
    c = xp.full(Lw // 2 + 1, 2.0, dtype=dtype)
    c[0] = 1.0
    if Lw % 2 == 0:
        c[-1] = 1.0
    return c


@functools.lru_cache(maxsize=64)
def _forward_coefficients(
    xp: ModuleType, lengths: Lengths, shape: Lengths, start: Lengths, step: Lengths, dtype: str
) -> Any:
    """(T7)'s DFT matrices for the compiled transform, flattened: Cw, Sw (Wb × w), Ch, Sh
    (Lh × h), of ``dtype`` (the compiled kernels serve NumPy arrays only: one device)."""
    Lh, Lw = lengths
    Cw, Sw = _axis_dft(xp, Lw, shape[1], start[1], step[1], True, dtype)
    Ch, Sh = _axis_dft(xp, Lh, shape[0], start[0], step[0], False, dtype)
    return xp.concatenate([Cw.ravel(), Sw.ravel(), Ch.ravel(), Sh.ravel()])


@functools.lru_cache(maxsize=64)
def _inverse_coefficients(
    xp: ModuleType, lengths: Lengths, shape: Lengths, start: Lengths, step: Lengths, dtype: str
) -> Any:
    """(T8)'s matrices for the compiled transform, flattened: Ch, Sh (Lh × h), then
    E (w × 2·Wb) = [c_v·Cw | c_v·Sw]ᵀ / (Lh·Lw) with T6's weights c_v."""
    Lh, Lw = lengths
    Ch, Sh = _axis_dft(xp, Lh, shape[0], start[0], step[0], False, dtype)
    Cw, Sw = _axis_dft(xp, Lw, shape[1], start[1], step[1], True, dtype)
    c = _mirror_weights(xp, Lw, dtype)[:, None]
    E = xp.concatenate([c * Cw, c * Sw]).T / (Lh * Lw)  # (w, 2·Wb)
    return xp.concatenate([Ch.ravel(), Sh.ravel(), E.astype(dtype).ravel()])


def _small(geom: ConvGeometry, lengths: Lengths, a: Array) -> bool:
    """Whether (T7), (T8) compute the transforms of arrays like ``a``: one group, lengths up to
    SMALL_DFT, or SMALL_DFT_COMPILED where the compiled kernels serve ``a``."""
    limit = SMALL_DFT_COMPILED if _native.runs_compiled(a) else SMALL_DFT
    return geom.groups == 1 and max(lengths) <= limit


@_native.twin(arrays="planes")
def _small_spectrum_compiled(
    planes: Array, lengths: Lengths, start: Lengths, step: Lengths, conj: bool = False
) -> Array:
    """:func:`_small_spectrum` by the compiled kernel: both products on blocks of planes that
    stay in the core's cache, one pass."""
    h, w = planes.shape[1], planes.shape[2]
    coef = _forward_coefficients(get_xp(planes), lengths, (h, w), start, step, str(planes.dtype))
    return fft.dft_small_forward(planes, coef, lengths[0], lengths[1] // 2 + 1, conj)  # (T7)


@_native.accelerated(_small_spectrum_compiled)
def _small_spectrum(
    planes: Array, lengths: Lengths, start: Lengths, step: Lengths, conj: bool = False
) -> Array:
    """(T7): the half spectrum (F, M) of M planes (M, h, w) placed at rows start_h + i·step_h
    and columns start_w + j·step_w of zero (Lh, Lw) arrays, as two real matrix products; with
    ``conj``, its complex conjugate (the imaginary part's sign turned in the same pass)."""
    xp = get_xp(planes)
    M, h, w = planes.shape
    Lh, Lw = lengths
    Wb = Lw // 2 + 1
    dtype = str(planes.dtype)
    Cw, Sw = _axis_dft(xp, Lw, w, start[1], step[1], True, dtype)  # (Wb, w)
    Ch, Sh = _axis_dft(xp, Lh, h, start[0], step[0], False, dtype)  # (Lh, h)
    S = xp.ascontiguousarray(planes.transpose(1, 2, 0))  # (h, w, M)
    A = xp.concatenate([Cw, Sw]) @ S  # (T7) along the columns: (h, 2·Wb, M) = [Re | Im]
    # along the rows, (Ch + i·Sh)(A_re + i·A_im) as one product whose first Lh rows give the
    # real part Ch·A_re - Sh·A_im and the last Lh the imaginary part Sh·A_re + Ch·A_im
    real_rows = xp.stack([Ch, -Sh], axis=2).reshape(Lh, 2 * h)  # columns (i, Re | Im)
    imag_rows = xp.stack([Sh, Ch], axis=2).reshape(Lh, 2 * h)
    if conj:
        imag_rows = -imag_rows
    parts = xp.concatenate([real_rows, imag_rows]) @ A.reshape(2 * h, Wb * M)  # (T7)
    parts = parts.reshape(2, Lh * Wb, M)
    spec = xp.empty((Lh * Wb, M), dtype=xp.result_type(planes.dtype, xp.complex64))
    spec.real[...] = parts[0]
    spec.imag[...] = parts[1]
    return spec


@_native.twin(spectra="spec")
def _small_inverse_compiled(
    spec: Array, lengths: Lengths, shape: Lengths, start: Lengths, step: Lengths,
    conj: bool = False,
) -> Array:  # fmt: skip
    """:func:`_small_inverse` by the compiled kernel: both products on blocks of planes that
    stay in the core's cache, one pass."""
    dtype = str(spec.real.dtype)
    coef = _inverse_coefficients(get_xp(spec), lengths, shape, start, step, dtype)
    return fft.dft_small_inverse(spec, coef, lengths[0], shape[0], shape[1], conj)  # (T8)


@_native.accelerated(_small_inverse_compiled)
def _small_inverse(
    spec: Array, lengths: Lengths, shape: Lengths, start: Lengths, step: Lengths,
    conj: bool = False,
) -> Array:  # fmt: skip
    """(T8): planes (M, h, w) of the real inverse of the half spectra spec (F, M), read at
    rows start_h + i·step_h and columns start_w + j·step_w, as real matrix products; with
    ``conj``, of the spectra's complex conjugates (spec holds conj(a^))."""
    xp = get_xp(spec)
    Lh, Lw = lengths
    h, w = shape
    Wb, M = Lw // 2 + 1, spec.shape[1]
    dtype = str(spec.real.dtype)
    Ch, Sh = _axis_dft(xp, Lh, h, start[0], step[0], False, dtype)  # (Lh, h): cos, -sin
    Cw, Sw = _axis_dft(xp, Lw, w, start[1], step[1], True, dtype)  # (Wb, w)
    Y = spec.reshape(Lh, Wb * M)
    Y_2 = xp.stack([Y.real, -Y.imag if conj else Y.imag])  # (2, Lh, Wb·M): [Y_re; Y_im]
    # along the rows, e^{+2πi u·row/Lh} = Ch - i·Sh:  Z = (Ch - i·Sh)ᵀ (Y_re + i·Y_im), as
    # one product whose rows alternate Z_re = Chᵀ Y_re + Shᵀ Y_im and Z_im = Chᵀ Y_im - Shᵀ Y_re
    rows = xp.stack([xp.concatenate([Ch.T, Sh.T], axis=1), xp.concatenate([-Sh.T, Ch.T], axis=1)])
    Z = rows.transpose(1, 0, 2).reshape(2 * h, 2 * Lh) @ Y_2.reshape(2 * Lh, Wb * M)  # (T8)
    # along the columns, the real part of Z·c_v·e^{+2πi v·col/Lw}/(Lh·Lw) (T6's weights):
    # Re(Z·E) = Z_re·cos - Z_im·sin, one product per row i over [Z_re[i]; Z_im[i]]
    c = _mirror_weights(xp, Lw, dtype)[:, None]  # (Wb, 1)
    E = xp.concatenate([c * Cw, c * Sw]).T / (Lh * Lw)  # (w, 2·Wb); Sw = -sin
    out = E @ Z.reshape(h, 2 * Wb, M)  # (T8) (h, w, M)
    return xp.ascontiguousarray(out.transpose(2, 0, 1))


def _x_spectrum(x: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """x_pad^ (F, G, N, C/G): x placed at the padding offset in a zero (Lh, Lw, G, N, C/G)."""
    xp = get_xp(x)
    G = geom.groups
    if _small(geom, lengths, x):
        planes = x.reshape(geom.N * geom.C, geom.H, geom.W)
        spec = _small_spectrum(planes, lengths, (geom.pad_top, geom.pad_left), (1, 1))  # (T7)
        return spec.reshape(-1, 1, geom.N, geom.C)
    spatial = xp.zeros((*lengths, G, geom.N, geom.C // G), dtype=x.dtype)
    _to_spatial(x, spatial, geom, (geom.pad_top, geom.pad_left), (1, 1))  # (T1) zero-padding
    return _spectrum(spatial)


def _dy_spectrum_conj(dy: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """conj(dy_up^) (F, G, N, K/G), dy at every stride-th position of a zero (Lh, Lw, G, N,
    K/G): both gradients read the conjugate, conj(dy^)·x^ for (T4) and conj(dy^)·conj(w^) =
    conj(dx^) for (T3), which (T7) and (T8) give for free (a sign in their products)."""
    xp = get_xp(dy)
    if _small(geom, lengths, dy):
        planes = dy.reshape(geom.N * geom.K, geom.P, geom.Q)
        steps = (geom.stride_h, geom.stride_w)
        spec = _small_spectrum(planes, lengths, (0, 0), steps, conj=True)  # (T7) upsampled
        return spec.reshape(-1, 1, geom.N, geom.K)
    spec = _dy_spectrum(dy, geom, lengths)
    return xp.conjugate(spec, out=spec)  # in place: a fresh array of the transform


def _dy_spectrum(dy: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """dy_up^ (F, G, N, K/G) by the library transform (T1), for lengths past the small limits."""
    xp = get_xp(dy)
    G = geom.groups
    spatial = xp.zeros((*lengths, G, geom.N, geom.K // G), dtype=dy.dtype)
    steps = (geom.stride_h, geom.stride_w)
    _to_spatial(dy, spatial, geom, (0, 0), steps)  # (T3) zero-upsampling by the stride
    return _spectrum(spatial)


def _tap_dft(
    xp: ModuleType,
    lengths: Lengths,
    taps: tuple[int, int, int, int],
    sign: int,
    weighted: bool = True,
) -> Any:
    """(F, R·S) complex128: exp(sign·2πi (u·r·dil_h/Lh + v·s·dil_w/Lw)) for the F bins (u, v)
    of the half spectrum and the R·S taps (r, s) of the dilated kernel, the outer product of
    the two axes' DFT matrices; for the inverse (sign +1, ``weighted``) each bin carries
    c_v / (Lh·Lw) (T6)."""
    R, S, dil_h, dil_w = taps
    Lh, Lw = lengths
    Ch, Sh = _axis_dft(xp, Lh, R, 0, dil_h, False, "float64")  # (Lh, R): cos, -sin
    Cw, Sw = _axis_dft(xp, Lw, S, 0, dil_w, True, "float64")  # (Wb, S)
    F_h, F_w = Ch + 1j * Sh, Cw + 1j * Sw  # exp(-2πi ...) along each axis
    if sign > 0:
        F_h, F_w = F_h.conj(), F_w.conj()
    if sign > 0 and weighted:
        F_w = F_w * (_mirror_weights(xp, Lw, "float64") / (Lh * Lw))[:, None]  # (T6)
    return (F_h[:, None, :, None] * F_w[None, :, None, :]).reshape(-1, R * S)


def _w_spectrum_conj(w: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """(T5): conj(w_dil^) (F, G, K/G, C/G) as one product over the R·S taps (w is real, so
    the conjugate is the product with the conjugate DFT matrix: no pass of its own)."""
    xp = get_xp(w)
    complex_dtype = xp.result_type(w.dtype, xp.complex64)
    D = _tap_dft(xp, lengths, (geom.R, geom.S, geom.dil_h, geom.dil_w), +1, weighted=False)
    taps = w.reshape(-1, geom.R * geom.S).T.astype(complex_dtype)  # (R·S, K·C/G)
    w_conj = D.astype(complex_dtype) @ taps  # (T5) (F, R·S) @ (R·S, K·C/G)
    return w_conj.reshape(-1, geom.groups, geom.K // geom.groups, geom.C // geom.groups)


def _blocks(geom: ConvGeometry, pass_name: str, a: Array) -> Any:
    """The blocks of a pass past the workspace budget (conv2d_workspace), or None: whole."""
    compiled = _native.runs_compiled(a)
    return conv2d_cost_model.blocks(NAME, geom, pass_name, a.dtype.itemsize, compiled)


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(T1), (T2): y (N, K, P, Q) without bias; both spectra are kept for (T3), (T4) where
    the backward runs whole (within the workspace budget); past the budget, block by block."""
    get_xp(x, w)  # one array module for both (a mix is refused)
    plan = _blocks(geom, "forward", x)
    if plan is not None:
        y = conv2d_workspace.forward_by_blocks(_forward_part, x, w, geom, plan, _kernel_t)
        return y, None
    y, saved = _forward_whole(x, w, geom)
    if _blocks(geom, "backward", x) is not None:
        saved = None  # the backward goes block by block and transforms x again
    return y, saved


def _forward_whole(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(T1), (T2) over the whole layer at once, and the spectra x^ and conj(w^)."""
    lengths = _lengths(geom)
    x_hat = _x_spectrum(x, geom, lengths)  # (F, G, N, C/G)
    w_conj = _w_spectrum_conj(w, geom, lengths)  # conj(w^) (F, G, K/G, C/G)
    y = _y_from(x_hat, w_conj.transpose(0, 1, 3, 2), x, geom, lengths)
    return y, (x_hat, w_conj)


def _y_from(x_hat: Array, w_conj_t: Array, x: Array, geom: ConvGeometry, lengths: Lengths
            ) -> Array:  # fmt: skip
    """(T2) from x^ (F, G, N, C/G) and conj(w^) as (F, G, C/G, K/G): y (N, K, P, Q) of x's
    dtype."""
    # sum over c of x^[n,g,c] * conj(w^[g,k,c]): (F, G, N, C/G) @ (F, G, C/G, K/G)
    y_hat = _bin_products(x_hat, w_conj_t)  # (T2)
    if _small(geom, lengths, x):
        steps = (geom.stride_h, geom.stride_w)
        shape = (geom.P, geom.Q)
        y = _small_inverse(y_hat.reshape(y_hat.shape[0], -1), lengths, shape, (0, 0), steps)
        return y.reshape(geom.y_shape)  # (T2), (T8)
    y_dense = _inverse(y_hat, lengths)  # (Lh, Lw, G, N, K/G)
    steps = (geom.stride_h, geom.stride_w)
    return _from_spatial(y_dense, geom, geom.y_shape, (0, 0), steps, x.dtype)  # (T2) stride-th


def _dx_from(dy_conj: Array, w_conj: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """(T3) from the conjugate spectra: dx (N, C, H, W)."""
    xp = get_xp(dy_conj)
    # conj(dx^) = conj(dy^) @ conj(w^): (F, G, N, K/G) @ (F, G, K/G, C/G)
    dx_conj = _bin_products(dy_conj, w_conj)  # (T3)
    start = (geom.pad_top, geom.pad_left)
    if _small(geom, lengths, dy_conj.real):
        spec = dx_conj.reshape(dx_conj.shape[0], -1)
        dx = _small_inverse(spec, lengths, (geom.H, geom.W), start, (1, 1), conj=True)  # (T8)
        dx = dx.reshape(geom.x_shape)
    else:
        dx_hat = xp.conjugate(dx_conj, out=dx_conj)  # in place: the product's own array
        dx_full = _inverse(dx_hat, lengths)  # (Lh, Lw, G, N, C/G)
        dtype = dy_conj.real.dtype
        dx = _from_spatial(dx_full, geom, geom.x_shape, start, (1, 1), dtype)  # (T3) crop
    # Rows/columns of x_pad past the last window (the remainder case) are never read: their
    # gradient is exactly zero, not the transforms' rounding noise.
    ext_h, ext_w = geom.dilated_kernel_hw
    reach_h = geom.stride_h * (geom.P - 1) + ext_h - geom.pad_top
    reach_w = geom.stride_w * (geom.Q - 1) + ext_w - geom.pad_left
    dx[:, :, max(reach_h, 0) :] = 0
    dx[:, :, :, max(reach_w, 0) :] = 0
    return dx


def _dw_from(dy_conj: Array, x_hat: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """(T4) from the spectra, dy's conjugated: dw (K, C/G, R, S)."""
    return _dw_taps(_dw_spectrum(dy_conj, x_hat), geom, lengths)


def _dw_spectrum(dy_conj: Array, x_hat: Array) -> Array:
    """(T4)'s sum over the images in each bin: dw^ (F, G, K/G, C/G)."""
    # sum over n of conj(dy^[n,g,k]) * x^[n,g,c]: (F, G, K/G, N) @ (F, G, N, C/G)
    return _bin_products(dy_conj.transpose(0, 1, 3, 2), x_hat)  # (T4) -> (F, G, K/G, C/G)


def _dw_taps(dw_hat: Array, geom: ConvGeometry, lengths: Lengths) -> Array:
    """(T6): dw (K, C/G, R, S) from dw^ (F, G, K/G, C/G), of dw^'s real dtype."""
    xp = get_xp(dw_hat)
    # (T6): only the R·S taps of the inverse, as one product over the F bins
    E = _tap_dft(xp, lengths, (geom.R, geom.S, geom.dil_h, geom.dil_w), 1)  # (F, R·S)
    E_t = E.T.astype(dw_hat.dtype)  # (R·S, F)
    dw = (E_t @ dw_hat.reshape(E.shape[0], -1)).real  # (T6) (R·S, G·K/G·C/G)
    dw = dw.T.reshape(geom.groups, geom.K // geom.groups, geom.C // geom.groups, geom.R, geom.S)
    return xp.ascontiguousarray(dw, dtype=dw_hat.real.dtype).reshape(geom.w_shape)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(T3), (T4) sharing one transform of dy; ``saved`` holds the forward's spectra (unused
    past the workspace budget, where the blocks transform x again)."""
    plan = _blocks(geom, "backward" if need_dx else "weight", dy)
    if plan is not None:
        prepare = _kernel if need_dx else _no_kernel
        return conv2d_workspace.backward_by_blocks(
            _backward_part, dy, x, w, geom, plan, need_dx, prepare, _dw_finish
        )
    return _backward_whole(dy, x, w, geom, saved, need_dx)


def _backward_whole(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(T3), (T4) over the whole layer at once."""
    lengths = _lengths(geom)
    dy_conj = _dy_spectrum_conj(dy, geom, lengths)
    x_hat, w_conj = saved if saved is not None else (_x_spectrum(x, geom, lengths), None)
    dw = _dw_from(dy_conj, x_hat, geom, lengths)
    if not need_dx:
        return None, dw
    if w_conj is None:
        w_conj = _w_spectrum_conj(w, geom, lengths)
    return _dx_from(dy_conj, w_conj, geom, lengths), dw


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(T3): dx (N, C, H, W) by the full convolution of dy_up with w_dil."""
    plan = _blocks(geom, "data", dy)
    if plan is not None:
        return conv2d_workspace.backward_data_by_blocks(_data_part, dy, w, geom, plan, _kernel)
    return _backward_data_whole(dy, w, geom)


def _backward_data_whole(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(T3) over the whole layer at once."""
    lengths = _lengths(geom)
    dy_conj = _dy_spectrum_conj(dy, geom, lengths)
    return _dx_from(dy_conj, _w_spectrum_conj(w, geom, lengths), geom, lengths)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(T4): dw (K, C/G, R, S) by the correlation of x_pad with dy_up."""
    plan = _blocks(geom, "weight", dy)
    if plan is not None:
        return conv2d_workspace.backward_weight_by_blocks(_weight_part, dy, x, geom, plan,
                                                          _dw_finish)  # fmt: skip
    return _backward_weight_whole(dy, x, geom, saved)


def _backward_weight_whole(dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array:
    """(T4) over the whole layer at once."""
    lengths = _lengths(geom)
    x_hat = saved[0] if saved is not None else _x_spectrum(x, geom, lengths)
    return _dw_from(_dy_spectrum_conj(dy, geom, lengths), x_hat, geom, lengths)


# --------------------------------------------- blocks past the workspace budget (conv2d_workspace)
# The kernel's spectrum of a block of filters and channels is made once for all its image
# chunks, and the weight gradient's spectra are summed over the chunks before (T6), once.


def _kernel(w: Array, geom: ConvGeometry) -> Array:
    """(T5) of a block's filters: conj(w^) (F, G, K/G, C/G)."""
    return _w_spectrum_conj(w, geom, _lengths(geom))


def _kernel_t(w: Array, geom: ConvGeometry) -> Array:
    """(T5) of a block's filters in the forward products' order: (F, G, C/G, K/G)."""
    return get_xp(w).ascontiguousarray(_kernel(w, geom).transpose(0, 1, 3, 2))


def _no_kernel(w: Array, geom: ConvGeometry) -> None:
    """The weight gradient alone reads no kernel spectrum."""
    return None


def _forward_part(x: Array, w_conj_t: Array, geom: ConvGeometry) -> tuple[Array, None]:
    """(T1), (T2) of a block, given its kernel's spectrum (:func:`_kernel_t`)."""
    lengths = _lengths(geom)
    return _y_from(_x_spectrum(x, geom, lengths), w_conj_t, x, geom, lengths), None


def _data_part(dy: Array, w_conj: Array, geom: ConvGeometry) -> Array:
    """(T3) of a block, given its kernel's spectrum: dx (N_b, C_b, H, W)."""
    lengths = _lengths(geom)
    return _dx_from(_dy_spectrum_conj(dy, geom, lengths), w_conj, geom, lengths)


def _weight_part(dy: Array, x: Array, geom: ConvGeometry, saved: Any) -> Array:
    """(T4) of a block before (T6): dw^ (F, 1, K_b, C_b), summed over the image chunks."""
    lengths = _lengths(geom)
    return _dw_spectrum(_dy_spectrum_conj(dy, geom, lengths), _x_spectrum(x, geom, lengths))


def _backward_part(
    dy: Array, x: Array, w_conj: Array | None, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(T3) and (T4) before (T6) of a block, sharing one transform of its dy."""
    lengths = _lengths(geom)
    dy_conj = _dy_spectrum_conj(dy, geom, lengths)
    dw_hat = _dw_spectrum(dy_conj, _x_spectrum(x, geom, lengths))
    if not need_dx or w_conj is None:
        return None, dw_hat
    return _dx_from(dy_conj, w_conj, geom, lengths), dw_hat


def _dw_finish(dw_hat: Array, geom: ConvGeometry) -> Array:
    """(T6) of a block's dw^ summed over its image chunks: dw (K_b, C_b, R, S)."""
    return _dw_taps(dw_hat, geom, _lengths(geom))
