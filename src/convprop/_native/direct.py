"""The direct sums (F1) and (B2), compiled: every tap of an output in registers.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  b (K,)  y (N,K,P,Q)  (conv2d_direct's derivation block)
  y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s] * x_pad[n, g(k)C/G + c, ...]         (F1) as (DS2)
  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[n, g(k)C/G + c, ...]              (B2) as (DS3)
(DS2), (DS3): docs/derivations.md. The sums run in another order than NumPy's products:
the same values to rounding, and the same bits on any number of threads.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import conv_geometry_tuple, parallel, twin
from convprop._native._compiled import kernels


def direct_blocking(geom: Any, itemsize: int, *, weight: bool = False) -> str:
    """The register blocking of :func:`direct_forward` (or with ``weight``,
    :func:`direct_weight`) for a layer: ``"filters"`` (4 filters by 16 columns, stride-1
    columns only), ``"columns"`` (6 columns, or taps, by 16 filters) or, where the CPU has
    AVX-512 (:func:`convprop._native.wide_blockings_run`), ``"wide"`` (8 columns, or taps,
    by 32 filters), ``"wide16"`` (16 by 16) or, for the forward with stride-1 columns,
    ``"wide_filters"`` (8 filters by 32 columns); for float64 half as many filters or columns
    of 16 (16 columns of "wide_filters"). Every blocking gives the same bits."""
    g = conv_geometry_tuple(geom)
    return str(kernels.direct_blocking(g, geom.groups, itemsize, weight=weight))


@twin(arrays="x, w", optional="b")
def direct_forward(x: Any, w: Any, geom: Any, b: Any = None) -> Any:
    """(F1) as its sum: x (N, C, H, W), w (K, C/G, R, S), b (K,) or None -> y (N, K, P, Q),
    vectorised over filters or output columns in registers, one output row per task."""
    x, w = numpy.ascontiguousarray(x), numpy.ascontiguousarray(w)
    bias = None if b is None else numpy.ascontiguousarray(b, dtype=x.dtype)
    y = numpy.empty((geom.N, geom.K, geom.P, geom.Q), dtype=x.dtype)
    rows = geom.N * geom.groups * geom.P
    work = geom.N * geom.K * (geom.C // geom.groups) * geom.R * geom.S * geom.P * geom.Q
    g = conv_geometry_tuple(geom)
    parallel(kernels.direct_forward, rows, work, x, w, bias, y, g, geom.groups)
    return y


DIRECT_PARTIALS_BYTES = 2**25
"""At most this much memory for the slices' partial sums of :func:`direct_weight` (32 MB)."""

DIRECT_SLICES_BYTES = 2**23
"""Partial sums past this (all slices together, 8 MB) cost more to zero and add up than
more slices gain in balance between threads, down to 4 slices: res3x3s2's weight gradient
(1.3 MB per slice) took 0.8 of the time of 16 slices with 6 (4.27 against 5.05 ms; 4: 3.10
against 4.58 and 4.06 against 5.05, alternating medians), layers with partials of 100-230 KB
the same with 8 or 16 (and 16 they keep: the slices group the sums, so their count is part
of the result's rounding)."""


def direct_weight_slices(geom: Any, itemsize: int) -> int:
    """Slices of output rows whose partial sums :func:`direct_weight` keeps apart: 16 (a few
    per thread, so that a slow core takes fewer), fewer (not below 4) where the partials
    together would pass :data:`DIRECT_SLICES_BYTES`, and never past
    :data:`DIRECT_PARTIALS_BYTES`; a function of the geometry only, so the result is. A
    partial's taps and filters are padded to whole blocks, at most 15 taps and 128 bytes of
    filters past them in any blocking (direct.h)."""
    rows: int = geom.N * geom.groups * geom.P
    taps: int = (geom.C // geom.groups) * geom.R * geom.S
    per_slice = geom.groups * (taps + 15) * (geom.K // geom.groups + 128 // itemsize) * itemsize
    balanced = max(4, int(DIRECT_SLICES_BYTES // per_slice))
    return max(1, min(rows, 16, balanced, int(DIRECT_PARTIALS_BYTES // per_slice)))


@twin(arrays="dy, x")
def direct_weight(dy: Any, x: Any, geom: Any) -> Any:
    """(B2) as (DS3): dy (N, K, P, Q), x (N, C, H, W) -> dw (K, C/G, R, S), summed over the
    output rows in slices whose partials are added in a fixed order (the same bits on any
    number of threads)."""
    dy, x = numpy.ascontiguousarray(dy), numpy.ascontiguousarray(x)
    dw = numpy.empty((geom.K, geom.C // geom.groups, geom.R, geom.S), dtype=dy.dtype)
    slices = direct_weight_slices(geom, dy.dtype.itemsize)
    work = geom.N * geom.K * (geom.C // geom.groups) * geom.R * geom.S * geom.P * geom.Q
    g = conv_geometry_tuple(geom)
    parallel(kernels.direct_weight, slices, work, dy, x, dw, g, geom.groups, slices)
    return dw
