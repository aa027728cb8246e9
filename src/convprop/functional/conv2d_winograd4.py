"""Convolution by Winograd's minimal filtering F(4x4, 3x3): the algorithm "winograd4".

The steps (WG1)-(WG8) of ``conv2d_winograd`` with the tiling of (WG9): each 4x4 output tile
comes from a 6x6 input tile (tiles overlap by 2) with 36 multiplications instead of
16 · 9 = 144, against F(2x2, 3x3)'s 16 per 4 outputs. The backward is the exact adjoint of
the computed forward, as there.

  U = G g G^T (6x6)   V = B^T d B (6x6)   M[k] = sum_c U[k,c] (.) V[c]   y = A^T M A (4x4)

Its matrices hold 1/6, 1/15 and 1/30 (inexact in binary) and factors up to 8, so in float32
its rounding error is larger than the direct sums': measured relative to the largest output,
1.2e-6 to 4.0e-6 against 1.7e-7 to 1.9e-6 for the sums and 1.4e-7 to 6.5e-7 for
F(2x2, 3x3) (3 to 512 channels); in float64 it stays near 1e-14. ``auto`` chooses it only
after ``conv2d_select.allow_lossy()`` (see ``conv2d_select.LOSSY``); ``algorithm="winograd4"``
asks for it by name.
"""

from __future__ import annotations

from typing import Any

from convprop._shapes import ConvGeometry
from convprop.backend import Array
from convprop.functional import conv2d_winograd
from convprop.functional.conv2d_winograd import F4

NAME = "winograd4"


def decline(geom: ConvGeometry) -> str | None:
    """F(4x4, 3x3) needs a 3x3 kernel and stride 1 (any dilation: WG8)."""
    return conv2d_winograd.decline_tiled(geom, F4)


def forward(x: Array, w: Array, geom: ConvGeometry) -> tuple[Array, Any]:
    """(WG1)-(WG4), (WG9): y (N, K, P, Q) without bias, and the input tiles for (WG7)."""
    return conv2d_winograd.forward_tiled(x, w, geom, F4)


def backward(
    dy: Array, x: Array, w: Array, geom: ConvGeometry, saved: Any, need_dx: bool
) -> tuple[Array | None, Array]:
    """(WG5)-(WG7), (WG9) with one transform of dy."""
    return conv2d_winograd.backward_tiled(dy, x, w, geom, saved, need_dx, F4)


def backward_data(dy: Array, w: Array, geom: ConvGeometry) -> Array:
    """(WG5), (WG6), (WG9): dx (N, C, H, W)."""
    return conv2d_winograd.backward_data_tiled(dy, w, geom, F4)


def backward_weight(dy: Array, x: Array, geom: ConvGeometry, saved: Any = None) -> Array:
    """(WG5), (WG7), (WG9): dw (K, C/G, 3, 3)."""
    return conv2d_winograd.backward_weight_tiled(dy, x, geom, saved, F4)
