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
handles every case. The channel sums are batched matmuls in a frequency-major layout.
"""

from __future__ import annotations

from convprop._shapes import ConvGeometry
from convprop.backend import Array, fft_module, get_xp
from convprop.functional._conv_common import crop_padding, group_view_w, group_view_x, pad_input

NAME = "fft"


def decline(geom: ConvGeometry) -> str | None:
    """FFT handles every valid convolution (stride and dilation exactly, if wastefully)."""
    return None


def _lengths(geom: ConvGeometry) -> tuple[int, int]:
    """(T1): transform sizes Lh >= Hp, Lw >= Wp with small prime factors."""
    import scipy.fft

    Hp, Wp = geom.padded_hw
    return (scipy.fft.next_fast_len(Hp, real=True), scipy.fft.next_fast_len(Wp, real=True))


def _spectrum(a: Array, lengths: tuple[int, int]) -> Array:
    """rfft2 over the last two axes, zero-padded to ``lengths``; frequency-major result.

    (..., h, w) -> (F, ...) with F = Lh * (Lw//2 + 1), so that channel sums become
    batched matmuls over the leading frequency axis.
    """
    xp = get_xp(a)
    spec = fft_module(xp).rfft2(a, s=lengths, axes=(-2, -1))
    lead = spec.shape[:-2]
    spec = spec.reshape(*lead, -1)
    return xp.moveaxis(spec, -1, 0)


def _inverse(spec: Array, lengths: tuple[int, int]) -> Array:
    """Inverse of :func:`_spectrum`: (F, ...) -> (..., Lh, Lw), real."""
    xp = get_xp(spec)
    spec = xp.moveaxis(spec, 0, -1)
    spec = spec.reshape(*spec.shape[:-1], lengths[0], lengths[1] // 2 + 1)
    return fft_module(xp).irfft2(spec, s=lengths, axes=(-2, -1))


def _dilated_kernel(w: Array, geom: ConvGeometry) -> Array:
    """w (K, C/G, R, S) -> w_dil (K, C/G, Rd, Sd) with dil-1 zeros between taps."""
    if geom.dil_h == geom.dil_w == 1:
        return w
    xp = get_xp(w)
    ext_h, ext_w = geom.dilated_kernel_hw
    w_dil = xp.zeros((*w.shape[:2], ext_h, ext_w), dtype=w.dtype)
    w_dil[:, :, :: geom.dil_h, :: geom.dil_w] = w
    return w_dil


def _upsampled_dy(dy: Array, geom: ConvGeometry) -> Array:
    """dy (N, K, P, Q) -> dy_up (N, K, stride_h*(P-1)+1, stride_w*(Q-1)+1), zeros between."""
    if geom.stride_h == geom.stride_w == 1:
        return dy
    xp = get_xp(dy)
    up_h, up_w = geom.stride_h * (geom.P - 1) + 1, geom.stride_w * (geom.Q - 1) + 1
    dy_up = xp.zeros((geom.N, geom.K, up_h, up_w), dtype=dy.dtype)
    dy_up[:, :, :: geom.stride_h, :: geom.stride_w] = dy
    return dy_up


def forward(x: Array, w: Array, geom: ConvGeometry) -> Array:
    """(T1), (T2): y (N, K, P, Q) without bias."""
    xp = get_xp(x, w)
    lengths = _lengths(geom)
    x_hat = _spectrum(group_view_x(pad_input(xp, x, geom), geom), lengths)  # (F, N, G, C/G)
    w_hat = _spectrum(group_view_w(_dilated_kernel(w, geom), geom), lengths)  # (F, G, K/G, C/G)
    # sum over c of x^[n,g,c] * conj(w^[g,k,c]) as (F, G, N, C/G) @ (F, G, C/G, K/G)
    y_hat = x_hat.transpose(0, 2, 1, 3) @ xp.conj(w_hat).transpose(0, 1, 3, 2)  # (T2)
    y_dense = _inverse(y_hat.transpose(0, 2, 1, 3), lengths)  # (N, G, K/G, Lh, Lw)
    rows = slice(0, geom.stride_h * (geom.P - 1) + 1, geom.stride_h)
    cols = slice(0, geom.stride_w * (geom.Q - 1) + 1, geom.stride_w)
    y = y_dense[:, :, :, rows, cols]  # (T2) keep every stride-th dense output
    return y.reshape(geom.y_shape).astype(x.dtype, copy=False)


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(T3): dx (N, C, H, W) by the full convolution of dy_up with w_dil."""
    lengths = _lengths(geom)
    dy_hat = _spectrum(group_view_x(_upsampled_dy(dy, geom), geom), lengths)  # (F, N, G, K/G)
    w_hat = _spectrum(group_view_w(_dilated_kernel(w, geom), geom), lengths)  # (F, G, K/G, C/G)
    dx_hat = dy_hat.transpose(0, 2, 1, 3) @ w_hat  # (T3) (F, G, N, K/G) @ (F, G, K/G, C/G)
    dx_full = _inverse(dx_hat.transpose(0, 2, 1, 3), lengths)  # (N, G, C/G, Lh, Lw)
    # Rows/columns of x_pad past the last window (the remainder case) are never read: their
    # gradient is exactly zero, not the transform's rounding noise, so copy only the reach.
    xp = get_xp(dx_full)
    ext_h, ext_w = geom.dilated_kernel_hw
    reach_h = geom.stride_h * (geom.P - 1) + ext_h
    reach_w = geom.stride_w * (geom.Q - 1) + ext_w
    dx_pad = xp.zeros((geom.N, geom.C, *geom.padded_hw), dtype=dy.dtype)
    dx_full = dx_full.reshape(geom.N, geom.C, *lengths)
    dx_pad[:, :, :reach_h, :reach_w] = dx_full[:, :, :reach_h, :reach_w]  # (T3)
    return crop_padding(dx_pad, geom)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry) -> Array:
    """(T4): dw (K, C/G, R, S) by the correlation of x_pad with dy_up."""
    xp = get_xp(dy, x)
    lengths = _lengths(geom)
    x_hat = _spectrum(group_view_x(pad_input(xp, x, geom), geom), lengths)  # (F, N, G, C/G)
    dy_hat = _spectrum(group_view_x(_upsampled_dy(dy, geom), geom), lengths)  # (F, N, G, K/G)
    # sum over n of conj(dy^[n,g,k]) * x^[n,g,c] as (F, G, K/G, N) @ (F, G, N, C/G)
    dw_hat = xp.conj(dy_hat).transpose(0, 2, 3, 1) @ x_hat.transpose(0, 2, 1, 3)  # (T4)
    dw_dil = _inverse(dw_hat, lengths)  # (G, K/G, C/G, Lh, Lw)
    ext_h, ext_w = geom.dilated_kernel_hw
    dw = dw_dil[..., : ext_h : geom.dil_h, : ext_w : geom.dil_w]  # (T4) the R x S taps
    return dw.reshape(geom.w_shape).astype(dy.dtype, copy=False)
