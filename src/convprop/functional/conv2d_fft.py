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
handles every case. The channel sums are batched matmuls in a frequency-major layout
(F, G, rows, cols), copied once to be contiguous so that every product is a BLAS call.
The input spectrum of the forward pass is kept for the weight gradient, and dy is
transformed once for both gradients.
"""

from __future__ import annotations

from typing import Any

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
    """rfft2 of a (A, G, B, h, w), zero-padded to ``lengths`` -> (F, G, A, B), contiguous.

    Frequency-major, so that sums over channels become batched matmuls over the leading
    frequency axis; F = Lh * (Lw//2 + 1).
    """
    xp = get_xp(a)
    spec = fft_module(xp).rfft2(a, s=lengths, axes=(-2, -1))  # (A, G, B, Lh, Lw//2+1)
    spec = spec.reshape(*spec.shape[:3], -1)  # (A, G, B, F)
    return xp.ascontiguousarray(spec.transpose(3, 1, 0, 2))  # (F, G, A, B)


def _inverse(spec: Array, lengths: tuple[int, int]) -> Array:
    """Inverse of :func:`_spectrum`: (F, G, A, B) -> (A, G, B, Lh, Lw), real."""
    xp = get_xp(spec)
    spec = spec.transpose(2, 1, 3, 0)  # (A, G, B, F)
    spec = spec.reshape(*spec.shape[:3], lengths[0], lengths[1] // 2 + 1)
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


def _x_spectrum(x: Array, geom: ConvGeometry, lengths: tuple[int, int]) -> Array:
    """x_pad^ (F, G, N, C/G)."""
    return _spectrum(group_view_x(pad_input(get_xp(x), x, geom), geom), lengths)


def _dy_spectrum(dy: Array, geom: ConvGeometry, lengths: tuple[int, int]) -> Array:
    """dy_up^ (F, G, N, K/G)."""
    return _spectrum(group_view_x(_upsampled_dy(dy, geom), geom), lengths)


def _w_spectrum(w: Array, geom: ConvGeometry, lengths: tuple[int, int]) -> Array:
    """w_dil^ (F, G, K/G, C/G), from the group view read as (A, G, B) = (K/G, G, C/G)."""
    w_g = group_view_w(_dilated_kernel(w, geom), geom).transpose(1, 0, 2, 3, 4)
    return _spectrum(w_g, lengths)  # (F, G, K/G, C/G)


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(T1), (T2): y (N, K, P, Q) without bias; the input spectrum is kept for (T4)."""
    xp = get_xp(x, w)
    lengths = _lengths(geom)
    x_hat = _x_spectrum(x, geom, lengths)  # (F, G, N, C/G)
    w_hat = _w_spectrum(w, geom, lengths)  # (F, G, K/G, C/G)
    # sum over c of x^[n,g,c] * conj(w^[g,k,c]): (F, G, N, C/G) @ (F, G, C/G, K/G)
    y_hat = x_hat @ xp.conj(w_hat).transpose(0, 1, 3, 2)  # (T2)
    y_dense = _inverse(y_hat, lengths)  # (N, G, K/G, Lh, Lw)
    rows = slice(0, geom.stride_h * (geom.P - 1) + 1, geom.stride_h)
    cols = slice(0, geom.stride_w * (geom.Q - 1) + 1, geom.stride_w)
    y = y_dense[:, :, :, rows, cols]  # (T2) keep every stride-th dense output
    return y.reshape(geom.y_shape).astype(x.dtype, copy=False), x_hat


def _dx_from(
    dy_hat: Array, w_hat: Array, geom: ConvGeometry, lengths: tuple[int, int], dtype: Any
) -> Array:
    """(T3) from the spectra: dx (N, C, H, W)."""
    xp = get_xp(dy_hat)
    dx_hat = dy_hat @ w_hat  # (T3) (F, G, N, K/G) @ (F, G, K/G, C/G)
    dx_full = _inverse(dx_hat, lengths)  # (N, G, C/G, Lh, Lw)
    # Rows/columns of x_pad past the last window (the remainder case) are never read: their
    # gradient is exactly zero, not the transform's rounding noise, so copy only the reach.
    ext_h, ext_w = geom.dilated_kernel_hw
    reach_h = geom.stride_h * (geom.P - 1) + ext_h
    reach_w = geom.stride_w * (geom.Q - 1) + ext_w
    dx_pad = xp.zeros((geom.N, geom.C, *geom.padded_hw), dtype=dtype)
    dx_full = dx_full.reshape(geom.N, geom.C, *lengths)
    dx_pad[:, :, :reach_h, :reach_w] = dx_full[:, :, :reach_h, :reach_w]  # (T3)
    return crop_padding(dx_pad, geom)


def _dw_from(
    dy_hat: Array, x_hat: Array, geom: ConvGeometry, lengths: tuple[int, int], dtype: Any
) -> Array:
    """(T4) from the spectra: dw (K, C/G, R, S)."""
    xp = get_xp(dy_hat)
    # sum over n of conj(dy^[n,g,k]) * x^[n,g,c]: (F, G, K/G, N) @ (F, G, N, C/G)
    dw_hat = xp.conj(dy_hat).transpose(0, 1, 3, 2) @ x_hat  # (T4) -> (F, G, K/G, C/G)
    dw_dil = _inverse(dw_hat, lengths)  # (K/G, G, C/G, Lh, Lw)
    ext_h, ext_w = geom.dilated_kernel_hw
    dw = dw_dil[..., : ext_h : geom.dil_h, : ext_w : geom.dil_w]  # (T4) the R x S taps
    dw = dw.transpose(1, 0, 2, 3, 4)  # (G, K/G, C/G, R, S)
    return dw.reshape(geom.w_shape).astype(dtype, copy=False)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(T3), (T4) sharing one transform of dy; ``saved`` is the forward's input spectrum."""
    lengths = _lengths(geom)
    dy_hat = _dy_spectrum(dy, geom, lengths)
    x_hat = saved if saved is not None else _x_spectrum(x, geom, lengths)
    dw = _dw_from(dy_hat, x_hat, geom, lengths, dy.dtype)
    if not need_dx:
        return None, dw
    return _dx_from(dy_hat, _w_spectrum(w, geom, lengths), geom, lengths, dy.dtype), dw


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(T3): dx (N, C, H, W) by the full convolution of dy_up with w_dil."""
    lengths = _lengths(geom)
    return _dx_from(
        _dy_spectrum(dy, geom, lengths), _w_spectrum(w, geom, lengths), geom, lengths, dy.dtype
    )


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(T4): dw (K, C/G, R, S) by the correlation of x_pad with dy_up."""
    lengths = _lengths(geom)
    x_hat = saved if saved is not None else _x_spectrum(x, geom, lengths)
    return _dw_from(_dy_spectrum(dy, geom, lengths), x_hat, geom, lengths, dy.dtype)
