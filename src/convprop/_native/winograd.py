"""Winograd's tile transforms F(2x2, 3x3) and F(4x4, 3x3), compiled.

Notation  a = m + 2 (tile side), T = ceil(P/m)·ceil(Q/m) tiles per image
          (conv2d_winograd's derivation block; m = 2 or 4 by (WG9))
  V = Bᵀ d B for every input tile d, laid out (a², C, N·T)                            (WG2)
  y = Aᵀ M A for every tile of M (a², K, N·T), the tiles cut to P × Q                  (WG4)
  Z = A dy_tile Aᵀ for every tile of dy zero-extended to whole tiles, (a², K, N·T)     (WG5)
  dx: B M̄ Bᵀ for every tile of M̄ (a², C, N·T), overlapping tiles added               (WG6)
The products between the transforms are NumPy's (conv2d_winograd); each kernel computes
one plane's tiles per task.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import conv_geometry_tuple, parallel
from convprop._native._compiled import kernels

_KERNELS = {
    2: ("winograd_input", "winograd_output", "winograd_dy", "winograd_dx"),
    4: ("winograd4_input", "winograd4_output", "winograd4_dy", "winograd4_dx"),
}


def _tiles(geom: Any, m: int) -> tuple[int, int]:
    return -(-geom.P // m), -(-geom.Q // m)


def _kernel(m: int, role: int) -> Any:
    """The compiled transform ``role`` (0 input, 1 output, 2 dy, 3 dx) for m x m output tiles."""
    if m not in _KERNELS:
        raise ValueError(f"winograd: output tiles of 2x2 or 4x4; expected m in (2, 4), got {m!r}")
    return getattr(kernels, _KERNELS[m][role])


def _tile_transform(
    kernel: Any, a: Any, out_shape: tuple[int, ...], planes: int, geom: Any, m: int
) -> Any:
    """Run one Winograd transform kernel over ``planes`` planes into a new array."""
    a = numpy.ascontiguousarray(a)
    out = numpy.empty(out_shape, dtype=a.dtype)
    Th, Tw = _tiles(geom, m)
    work = 4 * max(a.size, out.size)  # a few additions per value of a tile
    parallel(kernel, planes, work, a, out, conv_geometry_tuple(geom), Th, Tw)
    return out


def _tiled(channels: int, geom: Any, m: int) -> tuple[int, int, int]:
    """The transformed layout ((m+2)², channels, N·T)."""
    Th, Tw = _tiles(geom, m)
    return ((m + 2) ** 2, channels, geom.N * Th * Tw)


def winograd_input(x: Any, geom: Any, m: int = 2) -> Any:
    """(WG2): x (N, C, H, W) -> V ((m+2)², C, N·T), T = ceil(P/m)·ceil(Q/m) tiles per image;
    m = 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) (WG9)."""
    V_shape = _tiled(geom.C, geom, m)
    return _tile_transform(_kernel(m, 0), x, V_shape, geom.N * geom.C, geom, m)


def winograd_output(M: Any, geom: Any, m: int = 2) -> Any:
    """(WG4): M ((m+2)², K, N·T) -> y (N, K, P, Q)."""
    y_shape = (geom.N, geom.K, geom.P, geom.Q)
    return _tile_transform(_kernel(m, 1), M, y_shape, geom.N * geom.K, geom, m)


def winograd_dy(dy: Any, geom: Any, m: int = 2) -> Any:
    """(WG5): dy (N, K, P, Q) -> Z ((m+2)², K, N·T), dy zero-extended to whole tiles."""
    Z_shape = _tiled(geom.K, geom, m)
    return _tile_transform(_kernel(m, 2), dy, Z_shape, geom.N * geom.K, geom, m)


def winograd_dx(M_bar: Any, geom: Any, m: int = 2) -> Any:
    """(WG6): M̄ ((m+2)², C, N·T) -> dx (N, C, H, W), overlapping tiles added."""
    x_shape = (geom.N, geom.C, geom.H, geom.W)
    return _tile_transform(_kernel(m, 3), M_bar, x_shape, geom.N * geom.C, geom, m)
