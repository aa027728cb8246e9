"""Winograd's kernel transform (WG1) and its adjoint (WG7), each against the per-filter
matrix products of docs/derivations.md, and against each other by the dot-product test."""

from __future__ import annotations

import numpy as np
import pytest

from convprop._shapes import conv_geometry
from convprop.functional import conv2d_winograd

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
