"""Convolution by im2col + GEMM (Caffe's lowering), with the matrix-product derivative.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  y (N,K,P,Q)  G groups;  CRS = C/G*R*S,  PQ = P*Q
Forward
  cols[n, g, (c,r,s), (p,q)] = x_pad[n, g*C/G + c, p*stride_h + r*dil_h,
                                     q*stride_w + s*dil_w]                        (I1)
  Y[n, g] = W[g] @ cols[n, g],  W = w viewed as (G, K/G, CRS)                     (I2)
Backward  (dY = dy viewed as (N, G, K/G, PQ))
  dW[g] = sum_n dY[n, g] @ cols[n, g]^T                                           (I3)
  dcols[n, g] = W[g]^T @ dY[n, g]                                                 (I4)
  dx = col2im(dcols): the adjoint of (I1), a scatter-add over the taps            (I5)

One batched GEMM covers every group and image (matmul broadcasts over n and g).
"""

from __future__ import annotations

from convprop._shapes import ConvGeometry
from convprop.backend import Array, get_xp
from convprop.functional._conv_common import (
    crop_padding,
    group_view_w,
    group_view_x,
    pad_input,
    tap_window,
    taps,
)

NAME = "im2col"


def decline(geom: ConvGeometry) -> str | None:
    """im2col handles every valid convolution."""
    return None


def im2col(x: Array, geom: ConvGeometry) -> Array:
    """(I1): x (N, C, H, W) -> cols (N, G, C/G*R*S, P*Q).

    One strided-slice copy per tap (r, s) covers all of N, C, P, Q. Memory: N·C·R·S·P·Q
    elements.
    """
    xp = get_xp(x)
    G = geom.groups
    x_pad = pad_input(xp, x, geom)
    cols = xp.empty((geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q), dtype=x.dtype)
    for r, s in taps(geom):
        rows, columns = tap_window(geom, r, s)
        cols[:, :, r, s] = x_pad[:, :, rows, columns]  # (I1)
    return cols.reshape(geom.N, G, (geom.C // G) * geom.R * geom.S, geom.P * geom.Q)  # (I1)


def col2im(dcols: Array, geom: ConvGeometry) -> Array:
    """(I5), the adjoint of :func:`im2col`: dcols (N, G, C/G*R*S, P*Q) -> dx (N, C, H, W).

    col2im must scatter-add: windows overlap whenever stride < dilated kernel size, so
    one x_pad element receives contributions from several (tap, output) pairs.
    """
    xp = get_xp(dcols)
    Hp, Wp = geom.padded_hw
    dcols = dcols.reshape(geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q)
    dx_pad = xp.zeros((geom.N, geom.C, Hp, Wp), dtype=dcols.dtype)
    for r, s in taps(geom):
        rows, columns = tap_window(geom, r, s)
        dx_pad[:, :, rows, columns] += dcols[:, :, r, s]  # (I5) scatter-add
    return crop_padding(dx_pad, geom)


def _weight_matrix(w: Array, geom: ConvGeometry) -> Array:
    """w (K, C/G, R, S) -> W (G, K/G, C/G*R*S)."""
    return group_view_w(w, geom).reshape(geom.groups, geom.K // geom.groups, -1)


def forward(x: Array, w: Array, geom: ConvGeometry) -> Array:
    """(I1), (I2): y (N, K, P, Q) without bias."""
    cols = im2col(x, geom)  # (N, G, CRS, PQ)
    y = _weight_matrix(w, geom) @ cols  # (I2) -> (N, G, K/G, PQ)
    return y.reshape(geom.y_shape)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry) -> Array:
    """(I3): dw (K, C/G, R, S) = sum over n of dY · colsᵀ."""
    cols = im2col(x, geom)  # (N, G, CRS, PQ), recomputed rather than cached
    dY = group_view_x(dy, geom).reshape(geom.N, geom.groups, geom.K // geom.groups, -1)
    dW = (dY @ cols.transpose(0, 1, 3, 2)).sum(axis=0)  # (I3) -> (G, K/G, CRS)
    return dW.reshape(geom.w_shape)


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(I4), (I5): dx (N, C, H, W) = col2im(Wᵀ · dY)."""
    dY = group_view_x(dy, geom).reshape(geom.N, geom.groups, geom.K // geom.groups, -1)
    dcols = _weight_matrix(w, geom).transpose(0, 2, 1) @ dY  # (I4) -> (N, G, CRS, PQ)
    return col2im(dcols, geom)
