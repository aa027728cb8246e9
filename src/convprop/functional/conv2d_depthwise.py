"""Depthwise convolution (C/G = 1): one multiply-accumulate per kernel tap, compiled.

Each filter k reads the single channel c = k / M of its group (M = K/G filters per
group, the channel multiplier), so the sum over channels in (F1) has one term and a
GEMM has nothing to batch: the work is R·S multiply-adds per output, bound by memory.
NumPy would make about four passes over memory per tap; the compiled kernels of
convprop._native.depthwise make one, on all cores, from the same equations:

Notation  x (N,C,H,W)  w (K,1,R,S)  y (N,K,P,Q)  K = C·M
  y[n,k,p,q]  = sum_{r,s} w[k,0,r,s]
                * x_pad[n, k/M, p*stride_h + r*dil_h, q*stride_w + s*dil_w]              (F1)
  dw[k,0,r,s] = sum_{n,p,q} dy[n,k,p,q]
                * x_pad[n, k/M, p*stride_h + r*dil_h, q*stride_w + s*dil_w]              (B2)
  dx          = the full convolution of the stride-dilated dy with rot180(w), computed in
                its scatter form: dy[n,k,p,q]·w[k,0,r,s] goes to the cell tap (r,s) read (B3)

With stride 1 a whole plane is one long vector loop per tap: the "wide" layout of
(DW1)-(DW3) in docs/derivations.md, section 19. Arrays the kernels do not serve (CuPy,
or an install without the compiled extension) take the direct algorithm's NumPy code,
which computes the same sums.

Non-finite values: as ``direct`` (IEEE in the forward and weight gradient; the input
gradient pads dy, so an infinite weight gives NaN at the border; see conv2d_ieee).
"""

from __future__ import annotations

from typing import Any

from convprop import _native
from convprop._native import depthwise
from convprop._shapes import ConvGeometry
from convprop.backend import Array
from convprop.functional import conv2d_direct

NAME = "depthwise"


def decline(geom: ConvGeometry) -> str | None:
    """Only convolutions whose every filter reads one input channel (C/G = 1)."""
    if geom.groups != geom.C:
        return (
            f"depthwise needs one input channel per group (groups == C), "
            f"got C={geom.C}, groups={geom.groups}"
        )
    return None


FUSES_BIAS = True
"""``forward`` takes the bias and adds it as it writes y (one pass over y saved)."""


def forward(x: Array, w: Array, geom: ConvGeometry, b: Array | None = None) -> tuple[Array, Any]:
    """(F1): y (N, K, P, Q), with the bias term when ``b`` (K,) is given."""
    return _forward(x, w, geom, b), None


@_native.accelerated(depthwise.depthwise_forward)
def _forward(x: Array, w: Array, geom: ConvGeometry, b: Array | None = None) -> Array:
    """(F1) by the direct algorithm's NumPy code, then the bias term."""
    y, _ = conv2d_direct.forward(x, w, geom)
    if b is not None:
        y += b.reshape(1, geom.K, 1, 1)  # (F1) the bias term
    return y


@_native.accelerated(depthwise.depthwise_backward_data)
def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(B3): dx (N, C, H, W); the direct algorithm's NumPy code where the kernels do not serve."""
    return conv2d_direct.backward_data(dy, w, geom)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(B2): dw (K, 1, R, S)."""
    return _weight_gradient(dy, x, geom)


@_native.accelerated(depthwise.depthwise_backward_weight)
def _weight_gradient(dy: Array, x: Array, geom: ConvGeometry) -> Array:
    """(B2) by the direct algorithm's NumPy code."""
    return conv2d_direct.backward_weight(dy, x, geom)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(B3) and (B2): dx (or None) and dw; with stride 1 on the CPU, both in one pass over dy
    (the same values as the two passes, which each read all of dy)."""
    if not need_dx:
        return None, backward_weight(dy, x, geom, saved)
    return _both_gradients(dy, x, w, geom)


@_native.accelerated(depthwise.depthwise_backward)
def _both_gradients(dy: Array, x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Array]:
    """(B3) and (B2) as two passes over dy."""
    return backward_data(dy, w, geom), backward_weight(dy, x, geom)
