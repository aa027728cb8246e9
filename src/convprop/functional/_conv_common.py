"""Helpers shared by the conv2d algorithms: padding, tap windows, group views, the rotated
kernel and geometry of the input gradient (B3), and the gradients of an empty batch.

A *tap* is one kernel offset ``(r, s)``. For tap (r, s) the window of x_pad read by all
outputs is the strided slice (equation F1 of docs/derivations.md)::

    x_pad[:, :, r*dil_h : r*dil_h + stride_h*(P-1) + 1 : stride_h,
                s*dil_w : s*dil_w + stride_w*(Q-1) + 1 : stride_w]        -> (N, C, P, Q)
"""

from __future__ import annotations

import functools
from dataclasses import replace
from types import ModuleType

from convprop._shapes import ConvGeometry
from convprop.backend import Array


def empty_batch_gradients(
    xp: ModuleType, x: Array, w: Array, bias_size: int | None, need_dx: bool
) -> tuple[Array | None, Array, Array | None]:
    """(dx, dw, db) of a convolution over an empty batch (N = 0), for conv2d and its adjoint.

    The sums over n of (B1) and (B2) have no terms, so dw and db are zeros; dx (B3) is as
    empty as x. No algorithm runs: their kernels assume N >= 1.

    Parameters
    ----------
    x : Array (0, C, H, W)
    w : Array (K, C/G, R, S), or (C_in, C_out/G, R, S) for the transposed convolution
    bias_size : int or None
        K (C_out for the transposed convolution); None when there is no bias.
    need_dx : bool

    Returns
    -------
    dx : Array (0, C, H, W) or None
    dw : Array of w's shape, zeros
    db : Array (bias_size,) of zeros, or None
    """
    dx = xp.zeros(x.shape, dtype=x.dtype) if need_dx else None  # (B3): no images
    dw = xp.zeros(w.shape, dtype=x.dtype)  # (B2): an empty sum over n
    db = None if bias_size is None else xp.zeros(bias_size, dtype=x.dtype)  # (B1)
    return dx, dw, db


def pad_input(xp: ModuleType, x: Array, geom: ConvGeometry) -> Array:
    """Return x_pad (N, C, H+pad_top+pad_bottom, W+pad_left+pad_right), zero-padded."""
    if geom.pad_top == geom.pad_bottom == geom.pad_left == geom.pad_right == 0:
        return x
    widths = ((0, 0), (0, 0), (geom.pad_top, geom.pad_bottom), (geom.pad_left, geom.pad_right))
    return xp.pad(x, widths)


def crop_padding(dx_pad: Array, geom: ConvGeometry) -> Array:
    """Drop the padded border of a gradient with respect to x_pad -> (N, C, H, W)."""
    return dx_pad[
        :, :, geom.pad_top : geom.pad_top + geom.H, geom.pad_left : geom.pad_left + geom.W
    ]


def tap_window(geom: ConvGeometry, r: int, s: int) -> tuple[slice, slice]:
    """The (rows, cols) slices of x_pad that tap (r, s) reads for all P x Q outputs."""
    top = r * geom.dil_h
    left = s * geom.dil_w
    rows = slice(top, top + geom.stride_h * (geom.P - 1) + 1, geom.stride_h)
    cols = slice(left, left + geom.stride_w * (geom.Q - 1) + 1, geom.stride_w)
    return rows, cols


def taps(geom: ConvGeometry) -> list[tuple[int, int]]:
    """All kernel offsets (r, s) in row-major order."""
    return [(r, s) for r in range(geom.R) for s in range(geom.S)]


def group_view_x(x: Array, geom: ConvGeometry) -> Array:
    """(N, C, ...) -> (N, G, C/G, ...): channel c of group g is c_global = g*C/G + c."""
    return x.reshape(x.shape[0], geom.groups, x.shape[1] // geom.groups, *x.shape[2:])


def group_view_w(w: Array, geom: ConvGeometry) -> Array:
    """(K, C/G, R, S) -> (G, K/G, C/G, R, S): filter k of group g is k_global = g*K/G + k."""
    return w.reshape(geom.groups, geom.K // geom.groups, *w.shape[1:])


@functools.lru_cache(maxsize=256)  # a pure function of a frozen geometry, asked every step
def transposed_geometry(geom: ConvGeometry) -> ConvGeometry | None:
    """(B3) as a stride-1 convolution of dy (I6 of conv2d_im2col): its geometry, or None.

    With stride 1, dx[n, c, h, w'] = sum_{k, r, s} dy_pad[n, k, h + r*dil_h, w' + s*dil_w]
    * w_rot[c, k, r, s], where dy_pad is dy padded by dil*(R-1) - pad on each side: B3's full
    correlation, cropped to x. None for stride > 1 (dy would need zero-dilating) or where a
    padding exceeds the dilated kernel's reach (dy would need cropping).
    """
    if geom.stride_h != 1 or geom.stride_w != 1:
        return None
    reach_h, reach_w = geom.dil_h * (geom.R - 1), geom.dil_w * (geom.S - 1)
    pads = (reach_h - geom.pad_top, reach_h - geom.pad_bottom,
            reach_w - geom.pad_left, reach_w - geom.pad_right)  # fmt: skip
    if min(pads) < 0:
        return None
    return replace(
        geom, C=geom.K, H=geom.P, W=geom.Q, K=geom.C, P=geom.H, Q=geom.W,
        pad_top=pads[0], pad_bottom=pads[1], pad_left=pads[2], pad_right=pads[3],
    )  # fmt: skip


def rotated_filters(w: Array, geom: ConvGeometry) -> Array:
    """(B3) w (K, C/G, R, S) -> w_rot (C, K/G, R, S), w_rot[g*C/G + c, k, r, s] =
    w[g*K/G + k, c, R-1-r, S-1-s]: the kernel turned 180°, channel roles swapped per group."""
    G, K_g, C_g = geom.groups, geom.K // geom.groups, geom.C // geom.groups
    w_rot = w.reshape(G, K_g, C_g, geom.R, geom.S)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
    return w_rot.reshape(geom.C, K_g, geom.R, geom.S)
