"""Depthwise convolution (C/G = 1), compiled: one multiply-accumulate per kernel tap.

Notation  x (N,C,H,W)  w (K,1,R,S)  y (N,K,P,Q)  K = C·M  (conv2d_depthwise's derivation block)
  y[n,k,p,q]  = b[k] + sum_{r,s} w[k,0,r,s] * x_pad[n, k/M, ...]                       (F1)
  dw[k,0,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[n, k/M, ...]                           (B2)
  dx          = dy[n,k,p,q]·w[k,0,r,s] scattered to the cell tap (r,s) read             (B3)
The sums run in another order than the direct algorithm's NumPy code: the same values to
rounding; each plane is computed by one thread, so the bits do not depend on the count.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import conv_geometry_tuple, parallel, threads_for, twin
from convprop._native._compiled import kernels


def _depthwise(
    kernel: Any, a: Any, b: Any, bias: Any, out_shape: tuple[int, ...], planes: int, geom: Any
) -> Any:
    """Run one depthwise kernel on inputs ``a``, ``b`` into a new ``out_shape`` array."""
    a, b = numpy.ascontiguousarray(a), numpy.ascontiguousarray(b)
    out = numpy.empty(out_shape, dtype=a.dtype)
    work = geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S
    parallel(kernel, planes, work, a, b, bias, out, conv_geometry_tuple(geom))
    return out


@twin(arrays="x, w", optional="b")
def depthwise_forward(x: Any, w: Any, geom: Any, b: Any = None) -> Any:
    """(F1) with C/G = 1: x (N, C, H, W), w (K, 1, R, S), b (K,) or None -> y (N, K, P, Q);
    the bias is added as the outputs are written."""
    bias = None if b is None else numpy.ascontiguousarray(b, dtype=x.dtype)
    y_shape = (geom.N, geom.K, geom.P, geom.Q)
    return _depthwise(kernels.depthwise_forward, x, w, bias, y_shape, geom.N * geom.K, geom)


@twin(arrays="dy, w")
def depthwise_backward_data(dy: Any, w: Any, geom: Any) -> Any:
    """(B3) with C/G = 1: dy (N, K, P, Q), w (K, 1, R, S) -> dx (N, C, H, W)."""
    x_shape = (geom.N, geom.C, geom.H, geom.W)
    kernel = kernels.depthwise_backward_data
    return _depthwise(kernel, dy, w, None, x_shape, geom.N * geom.C, geom)


@twin(arrays="dy, x")
def depthwise_backward_weight(dy: Any, x: Any, geom: Any) -> Any:
    """(B2) with C/G = 1: dy (N, K, P, Q), x (N, C, H, W) -> dw (K, 1, R, S)."""
    dy, x = numpy.ascontiguousarray(dy), numpy.ascontiguousarray(x)
    dw = numpy.empty((geom.K, 1, geom.R, geom.S), dtype=dy.dtype)
    # the kernel shares out the N·K planes (in memory order), not the K filters
    threads = threads_for(geom.N * geom.K, geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S)
    g = conv_geometry_tuple(geom)
    kernels.depthwise_backward_weight(dy, x, None, dw, g, 0, geom.K, threads)
    return dw


def _unit_stride(dy: Any, x: Any, w: Any, geom: Any) -> bool:
    """The one-pass backward walks dy and dx together: stride 1 only."""
    return bool(geom.stride_h == geom.stride_w == 1)


@twin(arrays="dy, x, w", requires=_unit_stride)
def depthwise_backward(dy: Any, x: Any, w: Any, geom: Any) -> tuple[Any, Any]:
    """(B3) and (B2) with C/G = 1 and stride 1, in one pass over dy: dy (N, K, P, Q),
    x (N, C, H, W), w (K, 1, R, S) -> dx (N, C, H, W), dw (K, 1, R, S); the same bits as
    :func:`depthwise_backward_data` and :func:`depthwise_backward_weight`."""
    dy, x, w = numpy.ascontiguousarray(dy), numpy.ascontiguousarray(x), numpy.ascontiguousarray(w)
    dx = numpy.empty((geom.N, geom.C, geom.H, geom.W), dtype=dy.dtype)
    dw = numpy.empty((geom.K, 1, geom.R, geom.S), dtype=dy.dtype)
    planes = geom.N * geom.C
    threads = threads_for(planes, 2 * geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S)
    kernels.depthwise_backward(dy, x, w, dx, dw, conv_geometry_tuple(geom), threads)
    return dx, dw
