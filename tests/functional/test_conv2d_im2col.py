"""im2col's two lowerings of the input gradient: (I4)-(I5), col2im of Wᵀ·dY, and (I6), the
forward lowering applied to dy with rot180(w) (stride 1 only).

Each is witnessed on the whole reference grid by the naive float64 loop of (B3) and by the
adjoint identity <conv(u), v> = <u, dx(v)>; the cost model's choice between them by the
shapes where each was measured faster.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

import numpy as np
import pytest

from convprop import _native
from convprop._shapes import ConvGeometry, conv_geometry
from convprop.backend import to_host
from convprop.functional import (
    conv2d_backward,
    conv2d_forward,
    conv2d_im2col,
    conv2d_select,
    conv2d_workspace,
)
from convprop.functional._conv_common import rotated_filters, transposed_geometry
from reference import (
    CASES,
    ConvCase,
    assert_close,
    conv2d_dw_ref,
    conv2d_dx_ref,
    conv2d_ref,
    random_inputs,
)


def _geom(case: ConvCase) -> ConvGeometry:
    return conv_geometry("conv2d", case.x_shape, case.w_shape, None, **case.hyper)


def _suite_geom(spec: list[int]) -> ConvGeometry:
    N, C, H, W, K, R, S, stride, pad, dil, groups = spec
    return conv_geometry("conv2d", (N, C, H, W), (K, C // groups, R, S), None,
                         stride=stride, padding=pad, dilation=dil, groups=groups)  # fmt: skip


@pytest.mark.parametrize("by_convolution", [False, True], ids=["I4-I5", "I6"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_input_gradient_lowerings_match_B3_reference_and_adjoint(
    monkeypatch: pytest.MonkeyPatch, xp: ModuleType, case: ConvCase, by_convolution: bool
) -> None:
    """Forced either way; where (I6) does not apply (stride > 1, padding past the kernel's
    reach) the col2im lowering runs whatever the choice says."""
    monkeypatch.setattr(
        conv2d_select, "im2col_data_by_convolution", lambda *args, **kw: by_convolution
    )
    geom = _geom(case)
    for dtype in ("float64", "float32"):
        x, w, _, dy = random_inputs(case, dtype, seed=11)
        want = conv2d_dx_ref(dy, w, case.x_shape, **case.hyper)
        alone = conv2d_im2col.backward_data(xp.asarray(dy), xp.asarray(w), geom)
        _, cache = conv2d_forward(xp.asarray(x), xp.asarray(w), None, algorithm="im2col",
                                  **case.hyper)  # fmt: skip
        joint, dw, _ = conv2d_backward(xp.asarray(dy), cache)  # dx and dw in one call
        assert_close(to_host(dw), conv2d_dw_ref(x, dy, case.w_shape, **case.hyper), dtype,
                     f"dw (B2) beside it, {dtype}")  # fmt: skip
        for got, how in ((alone, "backward_data"), (joint, "conv2d_backward")):
            assert got.shape == case.x_shape and str(got.dtype) == dtype
            assert_close(to_host(got), want, dtype, f"dx (B3) by {how}, {dtype}")
    # the adjoint identity in float64: <F1(u), v> = <u, B3(v)>
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(case.x_shape), rng.standard_normal(geom.y_shape)
    w64 = rng.standard_normal(case.w_shape)
    y = to_host(conv2d_forward(xp.asarray(u), xp.asarray(w64), None, algorithm="im2col",
                               **case.hyper)[0])  # fmt: skip
    dx = to_host(conv2d_im2col.backward_data(xp.asarray(v), xp.asarray(w64), geom))
    np.testing.assert_allclose(np.vdot(y, v), np.vdot(u, dx), rtol=1e-10)


def test_transposed_geometry_swaps_roles_and_pads_by_the_reach_left() -> None:
    # dil3x3 of the suite: stride 1, dilation 2, padding 2 of a reach of 4
    geom = _suite_geom([8, 64, 28, 28, 32, 3, 3, 1, 2, 2, 1])
    t = transposed_geometry(geom)
    assert t is not None
    assert (t.N, t.C, t.H, t.W, t.K, t.P, t.Q) == (8, 32, 28, 28, 64, 28, 28)
    assert (t.pad_top, t.pad_bottom, t.pad_left, t.pad_right) == (2, 2, 2, 2)
    assert (t.stride_h, t.dil_h, t.groups) == (1, 2, 1)
    # asymmetric "same" padding of an even kernel: the odd pixel moves to the other side
    same = conv_geometry("conv2d", (1, 2, 7, 6), (4, 2, 2, 4), None,
                         stride=1, padding="same", dilation=1, groups=1)  # fmt: skip
    t = transposed_geometry(same)
    assert t is not None
    assert (same.pad_top, same.pad_bottom, same.pad_left, same.pad_right) == (0, 1, 1, 2)
    assert (t.pad_top, t.pad_bottom, t.pad_left, t.pad_right) == (1, 0, 2, 1)
    assert (t.P, t.Q) == (7, 6)


def test_transposed_geometry_is_none_where_dy_would_need_dilating_or_cropping() -> None:
    assert transposed_geometry(_suite_geom([8, 128, 28, 28, 256, 3, 3, 2, 1, 1, 1])) is None
    # a 1x1 kernel with padding 1: the padding exceeds the kernel's reach of 0
    assert transposed_geometry(_suite_geom([1, 2, 5, 5, 3, 1, 1, 1, 1, 1, 1])) is None


def test_rotated_filters_turn_each_kernel_and_swap_channels_within_groups() -> None:
    w = np.arange(4 * 3 * 2 * 3, dtype=np.float64).reshape(4, 3, 2, 3)  # K=4, C/G=3, G=2
    geom = conv_geometry("conv2d", (1, 6, 5, 5), w.shape, None,
                         stride=1, padding=0, dilation=1, groups=2)  # fmt: skip
    w_rot = rotated_filters(w, geom)
    assert w_rot.shape == (6, 2, 2, 3)  # (C, K/G, R, S)
    for g in range(2):
        for c in range(3):
            for k in range(2):
                np.testing.assert_array_equal(w_rot[g * 3 + c, k], w[g * 2 + k, c, ::-1, ::-1])


@pytest.mark.parametrize(
    ("spec", "by_convolution"),
    [
        ([8, 64, 28, 28, 64, 3, 3, 1, 2, 2, 1], True),  # dil3x3: one copy pass fewer
        ([64, 32, 14, 14, 64, 5, 5, 1, 2, 1, 1], False),  # lenet2: a GEMM with 32 rows
        ([8, 128, 28, 28, 256, 3, 3, 2, 1, 1, 1], False),  # stride 2: (I6) does not apply
    ],
    ids=["dil3x3", "lenet2", "res3x3s2"],
)
def test_cost_model_picks_the_lowering_measured_faster(
    spec: list[int], by_convolution: bool
) -> None:
    geom = _suite_geom(spec)
    assert conv2d_select.im2col_data_by_convolution(geom, 4, compiled=True) is by_convolution
    seconds = conv2d_select.estimate("im2col", geom, "data", "float32", compiled=True)
    col2im = conv2d_select._im2col_seconds(geom, "data", 4, True)
    transposed = transposed_geometry(geom)
    if by_convolution:
        assert transposed is not None
        assert seconds == conv2d_select._im2col_seconds(transposed, "forward", 4, True) < col2im
    else:
        assert seconds == col2im


@pytest.mark.parametrize("by_convolution", [False, True])
def test_the_chosen_lowering_is_the_one_that_runs(
    monkeypatch: pytest.MonkeyPatch, by_convolution: bool
) -> None:
    monkeypatch.setattr(
        conv2d_select, "im2col_data_by_convolution", lambda *args, **kw: by_convolution
    )
    turned: list[int] = []
    real = conv2d_im2col.rotated_filters
    monkeypatch.setattr(
        conv2d_im2col, "rotated_filters", lambda w, g: turned.append(1) or real(w, g)
    )
    geom = _suite_geom([2, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1])
    conv2d_im2col.backward_data(np.ones((2, 4, 6, 6)), np.ones((4, 3, 3, 3)), geom)
    assert len(turned) == int(by_convolution)


# ----------------------------------------------------------- the batch as columns (I7)


@pytest.mark.parametrize("images_per_chunk", [None, 1, 2], ids=["whole", "chunks-1", "chunks-2"])
@pytest.mark.parametrize("wide", [False, True], ids=["I2", "I7"])
@pytest.mark.parametrize("case", [c for c in CASES if c.N > 1], ids=lambda c: c.name)
def test_batch_as_columns_I7_matches_F1_B2_B3_reference(
    monkeypatch: pytest.MonkeyPatch, case: ConvCase, wide: bool, images_per_chunk: int | None
) -> None:
    """Either order of the columns, forced, on every case with several images, with the
    columns kept by the forward or (past the budget, chunk by chunk) recomputed: y, dx, dw
    against the float64 loops of (F1), (B3), (B2), in both precisions, beside each lowering of
    dx (which (I6) computes by the forward lowering, in either order)."""
    monkeypatch.setattr(conv2d_select, "im2col_batch_as_columns", lambda *args, **kw: wide)
    g = _geom(case)
    if images_per_chunk is not None:
        per_image = g.C * g.R * g.S * g.P * g.Q * 8
        monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", images_per_chunk * per_image)
    for dtype in ("float64", "float32"):
        x, w, _, dy = random_inputs(case, dtype, seed=5)
        y, cache = conv2d_forward(x, w, None, algorithm="im2col", **case.hyper)
        if cache.saved is not None:  # kept columns are laid out as the products took them
            assert cache.saved.ndim == (3 if wide and not conv2d_select.is_pointwise(g) else 4)
        assert_close(y, conv2d_ref(x, w, None, **case.hyper), dtype, f"y (F1) {dtype}")
        for by_convolution in (False, True):
            monkeypatch.setattr(conv2d_select, "im2col_data_by_convolution",
                                lambda *args, b=by_convolution, **kw: b)  # fmt: skip
            dx, dw, _ = conv2d_backward(dy, cache)
            assert_close(dx, conv2d_dx_ref(dy, w, case.x_shape, **case.hyper), dtype, "dx (B3)")
            assert_close(dw, conv2d_dw_ref(x, dy, case.w_shape, **case.hyper), dtype, "dw (B2)")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_wide_columns_are_the_same_values_in_I7_order(case: ConvCase, compiled: bool) -> None:
    """(I7) holds exactly (I1)'s values, the images side by side (compiled and NumPy code)."""
    x, _, _, _ = random_inputs(case, "float64", seed=9)
    g = _geom(case)
    G, PQ = g.groups, g.P * g.Q
    with contextlib.ExitStack() as stack:
        if not compiled:
            stack.enter_context(_native.disabled())
        cols = conv2d_im2col.im2col(x, g)  # (N, G, CRS, PQ)
        wide = conv2d_im2col.im2col(x, g, wide=True)  # (G, CRS, N*PQ)
        assert wide.shape == (G, cols.shape[2], g.N * PQ)
        by_image = wide.reshape(G, -1, g.N, PQ).transpose(2, 0, 1, 3)
        np.testing.assert_array_equal(by_image, cols)


def test_the_batch_is_laid_as_columns_where_products_are_narrow() -> None:
    """res3x3s2 (P·Q = 196) and lenet2 (196) take (I7); res3x3 (3136), a pointwise layer (its
    columns are x), one image, and arrays the compiled kernels do not serve keep (I2)."""
    suite = {
        "res3x3s2": [8, 128, 28, 28, 256, 3, 3, 2, 1, 1, 1],
        "lenet2": [64, 32, 14, 14, 64, 5, 5, 1, 2, 1, 1],
        "res3x3": [8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1],
        "pw1x1": [8, 256, 14, 14, 1024, 1, 1, 1, 0, 1, 1],
        "one_image": [1, 128, 28, 28, 256, 3, 3, 2, 1, 1, 1],
    }
    chosen = {
        name: conv2d_select.im2col_batch_as_columns(_suite_geom(spec), compiled=True)
        for name, spec in suite.items()
    }
    assert chosen == {"res3x3s2": True, "lenet2": True, "res3x3": False, "pw1x1": False,
                      "one_image": False}  # fmt: skip
    assert not conv2d_select.im2col_batch_as_columns(_suite_geom(suite["res3x3s2"]), False)


@pytest.mark.parametrize("wide", [False, True], ids=["I2", "I7"])
def test_columns_kept_by_the_forward_are_not_reused_past_a_smaller_budget(
    monkeypatch: pytest.MonkeyPatch, wide: bool
) -> None:
    """The forward kept the whole batch's columns; the budget then shrank to one image: the
    backward recomputes them chunk by chunk rather than reuse the whole batch's for a chunk."""
    monkeypatch.setattr(conv2d_select, "im2col_batch_as_columns", lambda *args, **kw: wide)
    case = next(c for c in CASES if c.N > 1 and not conv2d_select.is_pointwise(_geom(c)))
    x, w, _, dy = random_inputs(case, "float64", seed=21)
    _, cache = conv2d_forward(x, w, None, algorithm="im2col", **case.hyper)
    assert cache.saved is not None
    g = _geom(case)
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", g.C * g.R * g.S * g.P * g.Q * 8)
    dx, dw, _ = conv2d_backward(dy, cache)
    assert_close(dx, conv2d_dx_ref(dy, w, case.x_shape, **case.hyper), "float64", "dx (B3)")
    assert_close(dw, conv2d_dw_ref(x, dy, case.w_shape, **case.hyper), "float64", "dw (B2)")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_col2im_I5_writes_into_the_array_it_is_given(compiled: bool) -> None:
    """col2im's ``out``: a C-contiguous array of the right shape and dtype is written in
    place (by the compiled kernel where it serves); any other (a strided view) receives
    the same values; every value equals the col2im that allocates its own array."""
    rng = np.random.default_rng(11)
    g = conv_geometry("conv2d", (3, 4, 9, 9), (5, 4, 3, 3), None, stride=2, padding=1,
                      dilation=1, groups=1)  # fmt: skip
    dcols = rng.standard_normal((3, 1, 4 * 9, g.P * g.Q))
    context = contextlib.nullcontext() if compiled else _native.disabled()
    with context:
        expected = conv2d_im2col.col2im(dcols, g)
        out = np.full(g.x_shape, np.nan)
        assert conv2d_im2col.col2im(dcols, g, out) is out
        np.testing.assert_array_equal(out, expected)
        wide = np.full((3, 4, 9, 18), np.nan)
        view = wide[:, :, :, ::2]  # not contiguous: filled through a copy
        assert conv2d_im2col.col2im(dcols, g, view) is view
        np.testing.assert_array_equal(view, expected)
        assert np.isnan(wide[:, :, :, 1::2]).all()
