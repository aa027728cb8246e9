"""Winograd's kernel transform (WG1) and its adjoint (WG7), each against the per-filter
matrix products of docs/derivations.md, and against each other by the dot-product test;
F(4x4, 3x3)'s matrices (WG9), its blocks of tile rows and its float32 error."""

from __future__ import annotations

import contextlib
from fractions import Fraction

import numpy as np
import pytest

from convprop import _native
from convprop._shapes import conv_geometry
from convprop.functional import conv2d_backward, conv2d_forward, conv2d_winograd

G = np.asarray(conv2d_winograd._G, dtype=np.float64)  # (4, 3)


@pytest.mark.parametrize("groups", [1, 2])
def test_kernel_transform_is_G_g_Gt_for_every_filter(groups: int) -> None:
    rng = np.random.default_rng(0)
    K, C = 6, 4
    w = rng.standard_normal((K, C // groups, 3, 3))
    geom = conv_geometry("conv2d", (1, C, 5, 5), w.shape, None,
                         stride=1, padding=1, dilation=1, groups=groups)  # fmt: skip
    U = conv2d_winograd._kernel_transform(w, geom)
    assert U.shape == (4, 4, groups, K // groups, C // groups)
    for g in range(groups):
        for k in range(K // groups):
            for c in range(C // groups):
                want = G @ w[g * (K // groups) + k, c] @ G.T  # (WG1), one filter
                np.testing.assert_allclose(U[:, :, g, k, c], want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("groups", [1, 3])
def test_kernel_adjoint_is_Gt_dU_G_and_the_adjoint_of_WG1(groups: int) -> None:
    rng = np.random.default_rng(1)
    K, C = 6, 3
    geom = conv_geometry("conv2d", (1, C, 5, 5), (K, C // groups, 3, 3), None,
                         stride=1, padding=1, dilation=1, groups=groups)  # fmt: skip
    dU = rng.standard_normal((4, 4, groups, K // groups, C // groups))
    dw = conv2d_winograd._kernel_adjoint(dU, geom)
    assert dw.shape == (K, C // groups, 3, 3)
    for g in range(groups):
        for k in range(K // groups):
            for c in range(C // groups):
                want = G.T @ dU[:, :, g, k, c] @ G  # (WG7), one filter
                np.testing.assert_allclose(dw[g * (K // groups) + k, c], want, rtol=1e-13,
                                           atol=1e-13)  # fmt: skip
    w = rng.standard_normal((K, C // groups, 3, 3))
    U = conv2d_winograd._kernel_transform(w, geom)
    np.testing.assert_allclose(np.vdot(U, dU), np.vdot(w, dw), rtol=1e-12)


# ------------------------------------------------------------------ F(4x4, 3x3) (WG9)


def test_F4_matrices_compute_the_3_tap_correlation_exactly() -> None:
    """(WG9) in exact rational arithmetic: A^T [(G g) ⊙ (B^T d)] is the correlation of the six
    values d with the three taps g, for the unit vectors of both (so for all, by bilinearity)."""
    t = conv2d_winograd.F4

    def exact(v: float) -> Fraction:
        return Fraction(v).limit_denominator(120)  # 1/6, 1/15, 1/30: the floats' fractions

    B_T = [[exact(v) for v in row] for row in t.B_T]
    A_T = [[exact(v) for v in row] for row in t.A_T]
    G = [[exact(v) for v in row] for row in t.G]
    for i in range(6):
        for j in range(3):
            d = [Fraction(int(k == i)) for k in range(6)]
            g = [Fraction(int(k == j)) for k in range(3)]
            Gg = [sum(G[a][r] * g[r] for r in range(3)) for a in range(6)]
            Bd = [sum(B_T[a][k] * d[k] for k in range(6)) for a in range(6)]
            y = [sum(A_T[o][a] * Gg[a] * Bd[a] for a in range(6)) for o in range(4)]
            want = [sum(d[o + r] * g[r] for r in range(3)) for o in range(4)]
            assert y == want


@pytest.mark.parametrize("groups", [1, 2])
def test_F4_kernel_transform_and_its_adjoint(groups: int) -> None:
    """(WG1), (WG7) with F(4x4)'s G: G g Gᵀ per filter, and the dot-product test."""
    t = conv2d_winograd.F4
    G4 = np.asarray(t.G, dtype=np.float64)  # (6, 3)
    rng = np.random.default_rng(2)
    K, C = 4, 4
    w = rng.standard_normal((K, C // groups, 3, 3))
    geom = conv_geometry("conv2d", (1, C, 6, 6), w.shape, None,
                         stride=1, padding=1, dilation=1, groups=groups)  # fmt: skip
    U = conv2d_winograd._kernel_transform(w, geom, t)
    assert U.shape == (6, 6, groups, K // groups, C // groups)
    for g in range(groups):
        for k in range(K // groups):
            for c in range(C // groups):
                want = G4 @ w[g * (K // groups) + k, c] @ G4.T  # (WG1)
                np.testing.assert_allclose(U[:, :, g, k, c], want, rtol=1e-13, atol=1e-13)
    dU = rng.standard_normal(U.shape)
    dw = conv2d_winograd._kernel_adjoint(dU, geom, t)
    np.testing.assert_allclose(np.vdot(U, dU), np.vdot(w, dw), rtol=1e-12)  # (WG7)


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize(("H", "W"), [(402, 10), (11, 403), (203, 205)])
def test_many_tile_rows_match_the_direct_sums(
    algorithm: str, compiled: bool, H: int, W: int
) -> None:
    """The compiled transforms work in blocks of whole tile rows (128 tiles for F(2x2, 3x3),
    256 for F(4x4, 3x3), at least one row): planes of two to two hundred tiles per row, with
    several blocks, partial last blocks and partial last tiles."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, H, W))
    w = rng.standard_normal((3, 2, 3, 3))
    dy = rng.standard_normal((1, 3, H - 2, W - 2))
    with contextlib.nullcontext() if compiled else _native.disabled():
        y, cache = conv2d_forward(x, w, None, algorithm=algorithm)
        dx, dw, _ = conv2d_backward(dy, cache)
    y0, cache0 = conv2d_forward(x, w, None, algorithm="direct")
    dx0, dw0, _ = conv2d_backward(dy, cache0)
    for got, want in ((y, y0), (dx, dx0), (dw, dw0)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_F4_float32_error_is_bounded_and_larger_than_F2s() -> None:
    """The price of the larger tiles, measured: in float32 F(4x4, 3x3)'s error relative to
    the largest output stays below 1e-5 on a 64-channel layer (2.4e-6 measured), while
    F(2x2, 3x3)'s and the direct sums' stay below 2e-6 (the float64 result is the
    reference)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 64, 20, 20))
    w = rng.standard_normal((16, 64, 3, 3)) * np.sqrt(2 / (64 * 9))
    want = conv2d_forward(x, w, None, padding=1, algorithm="direct")[0]
    scale = np.abs(want).max()
    errors = {}
    for name in ("direct", "winograd", "winograd4"):
        got = conv2d_forward(x.astype(np.float32), w.astype(np.float32), None, padding=1,
                             algorithm=name)[0]  # fmt: skip
        errors[name] = float(np.abs(got - want).max() / scale)
    assert errors["winograd4"] < 1e-5
    assert errors["winograd"] < 2e-6 and errors["direct"] < 2e-6
    assert errors["winograd4"] > errors["winograd"]
