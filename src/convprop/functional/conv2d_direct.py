"""Convolution by the derivation's sums, vectorised over everything but the kernel taps.

This is the readable reference algorithm: each line is one equation of
docs/derivations.md. For every tap (r, s) one strided window of x_pad (N, C, P, Q) is
multiplied by the (K, C) slice w[:, :, r, s] and summed over the channels of its group.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  y (N,K,P,Q)  G groups
Forward
  y[n,k,p,q] = sum_{c,r,s} w[k,c,r,s] * x_pad[n, g(k)C/G + c, p*stride_h + r*dil_h,
                                               q*stride_w + s*dil_w]           (F1)
Backward
  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[n, ..., p*stride_h + r*dil_h, ...]  (B2)
  dx = crop( full convolution of dy_up with rot180(w) )                          (B3)
       dy_up: dy with stride-1 zeros between its rows/columns (zero-dilated)
(the bias gradient (B1) is shared by all algorithms and lives in conv2d.py)

Non-finite values: the forward (F1) and weight gradient (B2) are the sums, NaN and ±∞
included (IEEE). The input gradient (B3) is a full correlation over a zero-padded dy, so
an infinite weight meets padded zeros (0·∞ = NaN) at the border, where PyTorch's sum over
the outputs only gives ±∞; see conv2d_ieee.
"""

from __future__ import annotations

from typing import Any

from convprop import _native
from convprop._native import direct
from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional import conv2d_phases, conv2d_select
from convprop.functional._conv_common import (
    crop_padding,
    group_view_w,
    group_view_x,
    pad_input,
    rotated_filters,
    tap_window,
    taps,
    transposed_geometry,
)

NAME = "direct"


def decline(geom: ConvGeometry) -> str | None:
    """The direct sums handle every valid convolution."""
    return None


def _correlate(x_pad: Array, w: Array, geom: ConvGeometry) -> Array:
    """(F1) without bias on an already padded input -> y (N, K, P, Q)."""
    xp = get_xp(x_pad, w)
    x_g = group_view_x(x_pad, geom)  # (N, G, C/G, Hp, Wp)
    w_g = group_view_w(w, geom)  # (G, K/G, C/G, R, S)
    N, G, PQ = geom.N, geom.groups, geom.P * geom.Q
    y = xp.zeros((N, G, geom.K // G, PQ), dtype=x_pad.dtype)
    single_channel = geom.C == G  # depthwise-like: each filter reads one channel
    for r, s in taps(geom):
        rows, cols = tap_window(geom, r, s)
        x_tap = x_g[:, :, :, rows, cols].reshape(N, G, -1, PQ)  # (N, G, C/G, P*Q)
        if single_channel:  # the sum over c has one term: a broadcast multiply-add
            y += w_g[:, :, :, r, s] * x_tap  # (F1) (G, K/G, 1) * (N, G, 1, P*Q)
        else:
            y += w_g[:, :, :, r, s] @ x_tap  # (F1) sum over c: (G, K/G, C/G) @ (N, G, C/G, P*Q)
    return y.reshape(geom.y_shape)


FUSES_BIAS = True
"""``forward`` takes the bias and adds it with the sums (F1)."""


def forward(x: Array, w: Array, geom: ConvGeometry, b: Array | None = None) -> tuple[Array, Any]:
    """(F1): y (N, K, P, Q) from x (N, C, H, W), w (K, C/G, R, S) and b (K,) or None.

    Where the compiled kernels serve the arrays and the cost model finds it cheaper (few
    taps C/G·R·S per filter, e.g. a first layer), the sum of (F1) runs compiled, all taps of
    an output at once in registers, (DS2); otherwise one NumPy product per tap.
    """
    return _forward(x, w, geom, b), None


def _forward_pays(x: Array, w: Array, geom: ConvGeometry, b: Array | None = None) -> bool:
    return conv2d_select.direct_runs_compiled(geom, "forward", x.dtype.itemsize, True)


@_native.accelerated(direct.direct_forward, when=_forward_pays)
def _forward(x: Array, w: Array, geom: ConvGeometry, b: Array | None = None) -> Array:
    """(F1) with its bias by one NumPy product per tap."""
    xp = get_xp(x, w)
    y = _correlate(pad_input(xp, x, geom), w, geom)
    if b is not None:
        y += b.reshape(1, geom.K, 1, 1)  # (F1) the bias term
    return y


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(B3) and (B2): dx (or None) and dw."""
    dx = backward_data(dy, w, geom) if need_dx else None
    return dx, backward_weight(dy, x, geom, saved)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(B2): dw (K, C/G, R, S), the correlation of x_pad with dy: compiled, summed over the
    output rows in registers (DS3) where the cost model finds it cheaper, else one NumPy
    product per tap."""
    return _weight_gradient(dy, x, geom)


def _weight_pays(dy: Array, x: Array, geom: ConvGeometry) -> bool:
    return conv2d_select.direct_runs_compiled(geom, "weight", dy.dtype.itemsize, True)


@_native.accelerated(direct.direct_weight, when=_weight_pays)
def _weight_gradient(dy: Array, x: Array, geom: ConvGeometry) -> Array:
    """(B2) by one NumPy product per tap."""
    xp = get_xp(dy, x)
    x_g = group_view_x(pad_input(xp, x, geom), geom)  # (N, G, C/G, Hp, Wp)
    N, G, PQ = geom.N, geom.groups, geom.P * geom.Q
    dy_g = group_view_x(dy, geom).reshape(N, G, -1, PQ)  # (N, G, K/G, P*Q)
    dw = xp.empty(
        (geom.groups, geom.K // geom.groups, geom.C // geom.groups, geom.R, geom.S), dtype=dy.dtype
    )
    for r, s in taps(geom):
        rows, cols = tap_window(geom, r, s)
        x_tap = x_g[:, :, :, rows, cols].reshape(N, G, -1, PQ)  # (N, G, C/G, P*Q)
        # (B2) sum over p, q as a matmul, then over n: (N, G, K/G, PQ) @ (N, G, PQ, C/G)
        dw[:, :, :, r, s] = (dy_g @ x_tap.transpose(0, 1, 3, 2)).sum(axis=0)
    return dw.reshape(geom.w_shape)


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(B3): dx (N, C, H, W) as the full convolution of dy with the 180°-rotated kernel.

    Three steps, each visible:

    1. zero-dilate dy by the stride: dy_up[n, k, p*stride_h, q*stride_w] = dy[n, k, p, q];
    2. pad dy_up by the dilated kernel extent minus one on every side and correlate it
       with rot180(w), whose in/out channel roles are swapped ("full" convolution);
    3. the result is the gradient of x_pad: rows never read by any window (the remainder
       case) receive zero, then the padding border is cropped.

    With stride 1, where the cost model finds it cheaper, the compiled sum (F1) over dy in
    the transposed geometry computes the same correlation, as (I6); with a larger stride
    (dilation 1), one such sum per phase of x_pad (PH1, conv2d_phases).
    """
    return _data_gradient(dy, w, geom)


def _data_pays(dy: Array, w: Array, geom: ConvGeometry) -> bool:
    """The compiled sum has a form here ((I6) with stride 1, (PH1) with a larger stride and
    dilation 1) and is the cheaper."""
    return conv2d_select.direct_runs_compiled(geom, "data", dy.dtype.itemsize, True)


@_native.twin(arrays="dy, w")
def _data_gradient_compiled(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(B3) as (I6): the compiled sum (F1) over dy in the transposed geometry (stride 1); with
    a larger stride, as (PH1): one such sum per phase of x_pad, each with its sub-kernel."""
    transposed = transposed_geometry(geom)
    if transposed is None:
        return _data_gradient_by_phases(dy, w, geom)
    w_rot = rotated_filters(w, geom)  # (B3) (C, K/G, R, S)
    return direct.direct_forward(dy, w_rot, transposed)  # (B3) = (F1) on dy, as (I6)


def _data_gradient_by_phases(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(PH1): dx (N, C, H, W) phase by phase, each phase's cells of x the stride-1 sum over
    the rows and columns of dy it reads, with its sub-kernel turned 180°; cells of no phase
    stay zero (PH2)."""
    plan = conv2d_phases.phases(geom)
    assert plan is not None  # direct_runs_compiled checked it (_data_pays)
    xp = get_xp(dy, w)
    whole = conv2d_phases.covers_x(geom, plan)
    dx = (xp.empty if whole else xp.zeros)(geom.x_shape, dtype=dy.dtype)
    for phase in plan:
        sub_kernel = w[:, :, phase.a :: geom.stride_h, phase.b :: geom.stride_w]
        w_rot = rotated_filters(sub_kernel, phase.sub_geometry)  # (PH1) (C, K/G, M_a, M_b)
        part = dy[:, :, phase.rows.dy_rows, phase.cols.dy_rows]  # the rows (PH1) reads
        cells = (slice(None), slice(None), phase.rows.x_rows, phase.cols.x_rows)
        dx[cells] = direct.direct_forward(part, w_rot, phase.geom)  # (PH1)
    return dx


@_native.accelerated(_data_gradient_compiled, when=_data_pays)
def _data_gradient(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(B3) in NumPy, in the three steps of :func:`backward_data`."""
    xp = get_xp(dy, w)
    G = geom.groups
    ext_h, ext_w = geom.dilated_kernel_hw
    up_h, up_w = geom.stride_h * (geom.P - 1) + 1, geom.stride_w * (geom.Q - 1) + 1
    dy_full = xp.zeros(
        (geom.N, geom.K, up_h + 2 * (ext_h - 1), up_w + 2 * (ext_w - 1)), dtype=dy.dtype
    )
    rows = slice(ext_h - 1, ext_h - 1 + up_h, geom.stride_h)
    cols = slice(ext_w - 1, ext_w - 1 + up_w, geom.stride_w)
    dy_full[:, :, rows, cols] = dy  # (B3) zero-dilate by the stride, pad by the kernel extent
    # rot180 flips both kernel axes; swapping axes 1 and 2 of the group view makes the
    # K/G output channels of w the input channels of the full convolution.
    w_rot = rotated_filters(w, geom)  # (C, K/G, R, S)
    full = ConvGeometry(
        N=geom.N,
        C=geom.K,
        H=dy_full.shape[2],
        W=dy_full.shape[3],
        K=geom.C,
        R=geom.R,
        S=geom.S,
        P=up_h + ext_h - 1,
        Q=up_w + ext_w - 1,
        groups=G,
        stride_h=1,
        stride_w=1,
        dil_h=geom.dil_h,
        dil_w=geom.dil_w,
        pad_top=0,
        pad_bottom=0,
        pad_left=0,
        pad_right=0,
    )
    dx_read = _correlate(dy_full, w_rot, full)  # (B3) -> (N, C, up_h + ext_h - 1, ...)
    Hp, Wp = geom.padded_hw
    dx_pad = xp.zeros((geom.N, geom.C, Hp, Wp), dtype=dy.dtype)
    dx_pad[:, :, : dx_read.shape[2], : dx_read.shape[3]] = dx_read  # remainder rows stay 0
    return crop_padding(dx_pad, geom).copy()
