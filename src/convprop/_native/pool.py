"""Max pooling (MP1)-(MP3), compiled: one pass over each plane.

Notation  x (N,C,H,W)  y, argmax (N,C,P,Q)  window R×S  (pool2d's derivation block)
  y[n,c,p,q] = max over taps of x_pad[n, c, p*stride_h + r, q*stride_w + s]            (MP1)
  argmax[n,c,p,q] = the first tap in row-major order attaining (MP1)                  (MP2)
  dx: each dy[n,c,p,q] added to the cell its arg-max tap read                          (MP3)
The same comparisons as the NumPy code (ties to the first tap, a NaN wins): the same
values and taps; dx's sums run in the same order per cell.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel, twin
from convprop._native._compiled import kernels


def pool_geometry_tuple(geom: Any) -> tuple[int, ...]:
    """The 12 integers the pooling kernels read from a :class:`convprop._shapes.Pool2dGeometry`."""
    return (
        geom.N, geom.C, geom.H, geom.W, geom.R, geom.S, geom.P, geom.Q,
        geom.stride_h, geom.stride_w, geom.pad_h, geom.pad_w,
    )  # fmt: skip


def _x_not_empty(x: Any, geom: Any) -> bool:
    return bool(x.size)


@twin(arrays="x", requires=_x_not_empty)
def maxpool_forward(x: Any, geom: Any) -> tuple[Any, Any]:
    """(MP1), (MP2): x (N, C, H, W) -> y (N, C, P, Q) and argmax (N, C, P, Q) int32 taps."""
    x = numpy.ascontiguousarray(x)
    y = numpy.empty((geom.N, geom.C, geom.P, geom.Q), dtype=x.dtype)
    argmax = numpy.empty(y.shape, dtype=numpy.int32)
    work = 4 * y.size * geom.R * geom.S  # a comparison and two selects per tap
    g = pool_geometry_tuple(geom)
    parallel(kernels.maxpool_forward, geom.N * geom.C, work, x, y, argmax, g)
    return y, argmax


def _dy_not_empty(dy: Any, argmax: Any, geom: Any) -> bool:
    return bool(dy.size)


@twin(arrays="dy", requires=_dy_not_empty)
def maxpool_backward(dy: Any, argmax: Any, geom: Any) -> Any:
    """(MP3): dy and argmax (N, C, P, Q) -> dx (N, C, H, W).

    Raises
    ------
    ValueError
        If an arg-max entry points outside its window's real cells (a cache not made by
        the forward pass).
    """
    dy = numpy.ascontiguousarray(dy)
    argmax = numpy.ascontiguousarray(argmax, dtype=numpy.int32)
    dx = numpy.empty((geom.N, geom.C, geom.H, geom.W), dtype=dy.dtype)
    work = 4 * (dx.size + dy.size)  # index arithmetic and a scattered add per entry
    g = pool_geometry_tuple(geom)
    invalid = parallel(kernels.maxpool_backward, geom.N * geom.C, work, dy, argmax, dx, g)
    if invalid:
        raise ValueError(
            f"max_pool2d_backward: {invalid} arg-max entries point outside their windows; "
            f"expected tap indices from max_pool2d_forward, got a cache of shape {argmax.shape}"
        )
    return dx
