"""The im2col copy (I1) and its adjoint, the col2im scatter-add (I5), compiled.

Notation  x (N,C,H,W)  cols (N,C,R,S,P,Q)  (conv2d_im2col's derivation block)
  cols[n, c, r, s, p, q] = x_pad[n, c, p*stride_h + r*dil_h, q*stride_w + s*dil_w]    (I1)
  dx = col2im(dcols): every dcols value added to the cell of x_pad it was copied from  (I5)
Each (n, c) plane is one task: one pass over x (I1), one pass over dcols (I5).
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import conv_geometry_tuple, parallel, threads_for, twin
from convprop._native._compiled import kernels


@twin(arrays="x")
def im2col(x: Any, geom: Any, wide: bool = False) -> Any:
    """(I1) x (N, C, H, W) -> cols (N, C, R, S, P, Q), zeros where a tap reads padding; with
    ``wide``, the same values as (C, R, S, N, P, Q), the batch as columns (I7). A copy: the
    NumPy code's values exactly."""
    x = numpy.ascontiguousarray(x)
    N, C, R, S, P, Q = geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q
    shape = (C, R, S, N, P, Q) if wide else (N, C, R, S, P, Q)
    cols = numpy.empty(shape, dtype=x.dtype)
    g = conv_geometry_tuple(geom)
    kernels.im2col(x, cols, g, 0, N * C, threads_for(N * C, cols.size), wide)
    return cols


def _writable_like(out: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    """Whether the kernel can write into ``out`` directly."""
    return (
        type(out) is numpy.ndarray and out.shape == shape and out.dtype == dtype
        and out.flags.c_contiguous and out.flags.writeable and out.flags.aligned
    )  # fmt: skip


@twin(arrays="dcols", optional="out")
def col2im(dcols: Any, geom: Any, out: Any = None) -> Any:
    """(I5) dcols (N, C·R·S·P·Q in any grouping) -> dx (N, C, H, W), the adjoint of (I1),
    written into ``out`` where it is a C-contiguous array of that shape and dtype (copied
    into it otherwise). Each cell's sum runs over the taps in the NumPy code's order."""
    dcols = numpy.ascontiguousarray(dcols)
    shape = (geom.N, geom.C, geom.H, geom.W)
    if out is not None and not _writable_like(out, shape, dcols.dtype):
        out[...] = col2im(dcols, geom)
        return out
    dx = out if out is not None else numpy.empty(shape, dtype=dcols.dtype)
    g = conv_geometry_tuple(geom)
    parallel(kernels.col2im, geom.N * geom.C, dcols.size, dcols, dx, g)
    return dx
