"""The compiled forward sum of the direct algorithm (_kernels_direct.h).

The kernel computes (F1) in the order of (DS1), (DS2), all taps (c, r, s) of a block of
outputs summed in registers. It is witnessed against the
naive float64 reference on every case of the reference grid (every stride, padding,
dilation and groups remainder), on register-block remainders (filters and output columns
that do not fill a block, both blockings), against the NumPy taps of the same algorithm
on non-finite inputs, and for the same bits on any number of threads.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convprop import _native
from convprop._native import _compiled, direct
from convprop._shapes import conv_geometry
from convprop.functional import conv2d_cost_model as cost
from convprop.functional import conv2d_direct, conv2d_forward
from convprop.functional import conv2d_select as select
from convprop.functional._conv_common import rotated_filters, transposed_geometry
from convprop.functional.conv2d_phases import phases
from reference import CASES, ConvCase, assert_close, conv2d_dw_ref, conv2d_ref, expected

pytestmark = pytest.mark.skipif(not _native.AVAILABLE, reason="the compiled kernels are not built")


def _geom(case: ConvCase) -> object:
    return conv_geometry("test", case.x_shape, case.w_shape, None, **case.hyper)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_compiled_sum_matches_the_F1_reference_on_the_grid(case: ConvCase, dtype: str) -> None:
    data = expected(case, dtype)
    y = direct.direct_forward(data["x"], data["w"], _geom(case), data["b"])
    assert y.dtype == dtype and y.shape == case.y_shape
    assert_close(y, data["y"], dtype, "y (F1), compiled sum")


def _force(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Make the direct algorithm take the compiled sum wherever it has one, or never."""

    def runs_compiled(geom: object, pass_name: str, *args: object) -> bool:
        has_form = (
            pass_name != "data" or transposed_geometry(geom) is not None or bool(phases(geom))
        )  # (I6) with stride 1, (PH1) with a larger one
        return compiled and has_form

    monkeypatch.setattr(select, "direct_runs_compiled", runs_compiled)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_direct_algorithm_by_either_path_matches_F1_B3(
    case: ConvCase, dtype: str, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The algorithm's forward (bias included) and its two gradients, the compiled sums or the
    NumPy taps forced; with stride 1 the input gradient is the sum over dy in the
    transposed geometry with rot180(w) (as I6). Witnessed by the F1, B3 and B2 references
    and by the adjoint identities <F1(u), v> = <u, dx(v)> and <F1_w(x), v> = <w, dw(x, v)>."""
    _force(monkeypatch, compiled)
    data = expected(case, dtype)
    y, _ = conv2d_forward(data["x"], data["w"], data["b"], algorithm="direct", **case.hyper)
    assert_close(y, data["y"], dtype, f"y (F1), compiled={compiled}")
    geom = _geom(case)
    dx = conv2d_direct.backward_data(data["dy"], data["w"], geom)
    assert dx.dtype == dtype and dx.shape == case.x_shape
    assert_close(dx, data["dx"], dtype, f"dx (B3), compiled={compiled}")
    y0, _ = conv2d_direct.forward(data["x"], data["w"], geom)  # linear in x: no bias
    lhs = float(np.sum(y0.astype(np.float64) * data["dy"]))
    rhs = float(np.sum(data["x"].astype(np.float64) * dx))
    assert lhs == pytest.approx(rhs, rel=1e-4 if dtype == "float32" else 1e-10, abs=1e-6)
    dw = conv2d_direct.backward_weight(data["dy"], data["x"], geom)
    assert dw.dtype == dtype and dw.shape == case.w_shape
    assert_close(dw, data["dw"], dtype, f"dw (B2), compiled={compiled}")
    rhs_w = float(np.sum(data["w"].astype(np.float64) * dw))  # F1 is linear in w too
    assert lhs == pytest.approx(rhs_w, rel=1e-4 if dtype == "float32" else 1e-10, abs=1e-6)


BLOCKS = [
    # (K, groups, W, stride_w, C/G): filters per group against 4, 16 and 32 (8 and 16 for
    # float64), output columns against 16 (8), 6, 8 and 16, with unit and larger column strides;
    # with few taps (C/G = 2) and with many (C/G = 12), where stride 1 takes any blocking
    (1, 1, 5, 1, 2), (3, 1, 16, 1, 2), (5, 1, 17, 1, 2), (17, 1, 33, 1, 2), (6, 2, 20, 1, 2),
    (1, 1, 5, 2, 2), (17, 1, 13, 2, 2), (33, 1, 40, 3, 2), (12, 3, 19, 3, 2), (16, 1, 6, 1, 2),
    (16, 1, 30, 1, 12), (17, 1, 11, 1, 12), (40, 2, 26, 1, 12), (7, 1, 30, 1, 12),
    (32, 1, 16, 1, 12), (33, 1, 19, 1, 12), (64, 2, 21, 2, 12), (47, 1, 9, 1, 3),
    (16, 1, 20, 1, 8), (13, 2, 17, 2, 8), (8, 1, 20, 1, 8), (8, 1, 40, 1, 2), (9, 2, 70, 1, 3),
]  # fmt: skip


def _block_geometry(K: int, groups: int, W: int, stride_w: int, Cg: int) -> Any:
    return conv_geometry("test", (2, Cg * groups, 4, W), (K * groups, Cg, 2, 3), (K * groups,),
                         stride=(1, stride_w), padding=(1, 2), dilation=(1, 2),
                         groups=groups)  # fmt: skip


def _blockings(stride_w: int, weight: bool = False) -> list[str]:
    """The blockings a pass can run here: "columns" always, "filters" for the forward with
    unit column stride, "wide" and "wide16" where the CPU has AVX-512, and there
    "wide_filters" for the forward with unit column stride."""
    names = ["columns"]
    if not weight and stride_w == 1:
        names.append("filters")
    if _native.wide_blockings_run():
        names += ["wide", "wide16"]
        if not weight and stride_w == 1:
            names.append("wide_filters")
    return names


def test_the_grid_reaches_every_blocking_that_runs_here() -> None:
    """The cases above make direct.h choose each blocking that runs on this CPU, for both
    passes and precisions ("filters" only with unit column stride), and "columns" with
    either stride."""
    for itemsize in (4, 8):
        seen, seen_weight, strided = set(), set(), set()
        for K, groups, W, stride_w, Cg in BLOCKS:
            geom = _block_geometry(K, groups, W, stride_w, Cg)
            blocking = direct.direct_blocking(geom, itemsize)
            assert blocking in _blockings(stride_w), (blocking, stride_w)
            seen.add(blocking)
            if stride_w > 1:
                strided.add(blocking)
            seen_weight.add(direct.direct_blocking(geom, itemsize, weight=True))
        assert seen == set(_blockings(1)), itemsize
        assert "columns" in strided, itemsize
        assert seen_weight == set(_blockings(2, weight=True)), itemsize


def test_the_cost_model_knows_which_blocking_the_kernels_choose() -> None:
    """conv2d_cost_model.direct_blocking and direct_region_rows restate direct.h's choices for
    its estimates: the same answers on the grid above and on wider layers, both passes and
    precisions."""
    wider = [
        (16, 32, 16, 3, 1), (32, 16, 32, 3, 1), (64, 8, 64, 3, 1), (256, 14, 1024, 1, 1),
        (128, 28, 256, 3, 2), (3, 32, 64, 7, 2), (64, 32, 64, 9, 1), (32, 14, 64, 5, 1),
        (1, 28, 32, 5, 1),
    ]  # fmt: skip
    layers = [_block_geometry(*case) for case in BLOCKS]
    for C, H, K, R, stride in wider:
        layers.append(conv_geometry("test", (8, C, H, H), (K, C, R, R), None, stride=stride,
                                    padding=1, dilation=1, groups=1))  # fmt: skip
    for geom in layers:
        for itemsize in (4, 8):
            for weight in (False, True):
                kernels_choice = direct.direct_blocking(geom, itemsize, weight=weight)
                assert cost.direct_blocking(geom, itemsize, weight) == kernels_choice, (
                    geom, itemsize, weight)  # fmt: skip
            g = _native.conv_geometry_tuple(geom)
            region_rows = _compiled.kernels.direct_region_rows(g, geom.groups, itemsize)
            assert cost.direct_region_rows(geom, itemsize) == region_rows, (geom, itemsize)


def test_blocking_query_refuses_bad_arguments() -> None:
    geom = conv_geometry("test", (1, 4, 5, 5), (6, 2, 3, 3), None, stride=1, padding=0,
                         dilation=1, groups=2)  # fmt: skip
    with pytest.raises(ValueError, match=r"direct_blocking: expected groups dividing C=4 and K=6"):
        _compiled.kernels.direct_blocking(_native.conv_geometry_tuple(geom), 3, 4)
    with pytest.raises(ValueError, match="got groups=2, itemsize=2"):
        _compiled.kernels.direct_blocking(_native.conv_geometry_tuple(geom), 2, 2)
    with pytest.raises(ValueError, match=r"direct_region_rows: expected groups dividing C=4"):
        _compiled.kernels.direct_region_rows(_native.conv_geometry_tuple(geom), 3, 4)
    with pytest.raises(ValueError, match=r"direct_region_rows: .*got groups=2, itemsize=3"):
        _compiled.kernels.direct_region_rows(_native.conv_geometry_tuple(geom), 2, 3)


def test_a_blocking_that_cannot_run_is_refused_by_name() -> None:
    geom = _block_geometry(5, 1, 9, 2, 2)
    g, rows = _native.conv_geometry_tuple(geom), geom.N * geom.P
    x = np.zeros(geom.x_shape, np.float32)
    w = np.zeros(geom.w_shape, np.float32)
    y = np.zeros(geom.y_shape, np.float32)
    with pytest.raises(ValueError, match=r"direct_forward: blocking 'filters' cannot run here"):
        _compiled.kernels.direct_forward(x, w, None, y, g, 1, 0, rows, 1, blocking="filters")
    with pytest.raises(ValueError, match=r"direct_weight: blocking 'rows' cannot run here"):
        _compiled.kernels.direct_weight(y, x, w, g, 1, 1, 0, 1, 1, blocking="rows")
    # "wide_filters" is a forward blocking with unit column stride only
    with pytest.raises(ValueError, match=r"direct_weight: blocking 'wide_filters' cannot run"):
        _compiled.kernels.direct_weight(y, x, w, g, 1, 1, 0, 1, 1, blocking="wide_filters")
    with pytest.raises(ValueError, match=r"direct_forward: blocking 'wide_filters' cannot run"):
        _compiled.kernels.direct_forward(x, w, None, y, g, 1, 0, rows, 1, blocking="wide_filters")
    if not _native.wide_blockings_run():
        with pytest.raises(ValueError, match=r"blocking 'wide' cannot run here"):
            _compiled.kernels.direct_forward(x, w, None, y, g, 1, 0, rows, 1, blocking="wide")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("K", "groups", "W", "stride_w", "Cg"), BLOCKS)
def test_register_block_remainders(
    K: int, groups: int, W: int, stride_w: int, Cg: int, dtype: str
) -> None:
    """Every blocking that runs here, forced on each case, against the (F1) and (B2)
    references; and all of them the same bits (each sum is the same chain of multiply-adds,
    direct_columns.h), the choice of direct.h included."""
    rng = np.random.default_rng(K * 100 + W)
    C = Cg * groups
    x = rng.standard_normal((2, C, 4, W)).astype(dtype)
    w = rng.standard_normal((K * groups, C // groups, 2, 3)).astype(dtype)
    b = rng.standard_normal(K * groups).astype(dtype)
    hyper = {"stride": (1, stride_w), "padding": (1, 2), "dilation": (1, 2), "groups": groups}
    geom = _block_geometry(K, groups, W, stride_w, Cg)
    g, rows = _native.conv_geometry_tuple(geom), geom.N * groups * geom.P
    reference = conv2d_ref(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                           **hyper)  # fmt: skip
    dy = rng.standard_normal(reference.shape).astype(dtype)
    dw_reference = conv2d_dw_ref(x.astype(np.float64), dy.astype(np.float64), w.shape, **hyper)
    chosen = direct.direct_forward(x, w, geom, b)
    assert_close(chosen, reference, dtype, "y (F1), block remainders")
    assert_close(direct.direct_forward(x, w, geom), reference - b.reshape(1, -1, 1, 1), dtype)
    for blocking in _blockings(stride_w):
        y = np.full(geom.y_shape, np.nan, dtype)
        _compiled.kernels.direct_forward(x, w, b, y, g, groups, 0, rows, 2, blocking=blocking)
        np.testing.assert_array_equal(y, chosen, err_msg=blocking)
    slices = direct.direct_weight_slices(geom, x.itemsize)
    dw_chosen = direct.direct_weight(dy, x, geom)
    assert_close(dw_chosen, dw_reference, dtype, "dw (DS3), blocks")
    for blocking in _blockings(stride_w, weight=True):
        dw = np.full(w.shape, np.nan, dtype)
        _compiled.kernels.direct_weight(dy, x, dw, g, groups, slices, 0, slices, 2,
                                        blocking=blocking)  # fmt: skip
        np.testing.assert_array_equal(dw, dw_chosen, err_msg=blocking)


@pytest.mark.parametrize("stride", [1, 2])
def test_non_finite_inputs_reach_exactly_the_outputs_that_read_them(stride: int) -> None:
    """An inf or NaN in x spreads to the outputs whose windows read it, as in the NumPy
    taps; the columns a last block computes past Q (and dropped) must not leak it."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 6, 21))
    x[0, 0, 2, 20] = np.inf
    x[0, 1, 5, 0] = np.nan
    w = rng.standard_normal((5, 2, 3, 3))
    geom = conv_geometry("test", x.shape, w.shape, None, stride=stride, padding=1,
                         dilation=1, groups=1)  # fmt: skip
    y = direct.direct_forward(x, w, geom)
    with _native.disabled():
        y_numpy, _ = conv2d_direct.forward(x, w, geom)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_numpy))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(y_numpy))
    finite = np.isfinite(y_numpy)
    np.testing.assert_allclose(y[finite], y_numpy[finite], rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dw = direct.direct_weight(dy, x, geom)
    with _native.disabled():
        dw_numpy = conv2d_direct.backward_weight(dy, x, geom)
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(dw_numpy))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(dw_numpy))
    finite = np.isfinite(dw_numpy)
    np.testing.assert_allclose(dw[finite], dw_numpy[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_same_bits_on_any_number_of_threads(threads: int) -> None:
    case = next(c for c in CASES if c.groups > 1 and c.groups < c.C)
    data = expected(case, "float32")
    x = np.tile(data["x"], (9, 1, 1, 1))
    geom = conv_geometry("test", x.shape, case.w_shape, None, **case.hyper)
    g = _native.conv_geometry_tuple(geom)
    rows = geom.N * geom.groups * geom.P
    one = np.full(geom.y_shape, np.nan, np.float32)
    _compiled.kernels.direct_forward(x, data["w"], data["b"], one, g, geom.groups, 0, rows, 1)
    many = np.full(geom.y_shape, np.nan, np.float32)
    _compiled.kernels.direct_forward(x, data["w"], data["b"], many, g, geom.groups, 0, rows,
                                   threads)  # fmt: skip
    np.testing.assert_array_equal(many, one)  # each output row is summed by one thread
    dy = np.random.default_rng(2).standard_normal(geom.y_shape).astype(np.float32)
    slices = direct.direct_weight_slices(geom, 4)
    assert slices == 16  # 9 * 2 images * P rows: more rows than slices
    dw_one = np.empty(case.w_shape, np.float32)
    _compiled.kernels.direct_weight(dy, x, dw_one, g, geom.groups, slices, 0, slices, 1)
    dw_many = np.empty(case.w_shape, np.float32)
    _compiled.kernels.direct_weight(dy, x, dw_many, g, geom.groups, slices, 0, slices, threads)
    np.testing.assert_array_equal(dw_many, dw_one)  # slices summed in a fixed order


REGION_LAYERS = [
    # (x shape, w shape, stride, padding, dilation, groups, output rows per region in float32)
    ((2, 4, 13, 9), (5, 4, 3, 3), 1, 1, 1, 1, 8),  # stride 1: 10 rows serve 8 outputs
    ((2, 6, 17, 10), (4, 3, 3, 2), 2, (2, 1), (2, 1), 2, 8),  # strided, dilated rows
    ((1, 3, 20, 7), (4, 3, 1, 1), 1, 0, 1, 1, 8),  # 1x1, stride 1: the rows adjoin
    ((2, 3, 17, 7), (4, 3, 1, 3), 3, (0, 1), 1, 1, 1),  # rows skipped: a region per row
    ((1, 256, 11, 28), (3, 256, 3, 3), 1, 1, 1, 1, 2),  # 256 KB: regions of 2 rows
    ((1, 512, 7, 60), (2, 512, 3, 3), 1, 1, 1, 1, 1),  # too large even for 2
]


@pytest.mark.parametrize("layer", REGION_LAYERS, ids=lambda layer: str(layer[-1]))
def test_regions_of_several_rows_serve_any_range_of_output_rows(layer: tuple[Any, ...]) -> None:
    """(DS1) with regions of several output rows: a range of rows that starts or ends inside a
    region's rows (down to one row a call, whose region holds only the rows it reads) computes
    the same bits as the whole call, which matches (F1) and (B2)."""
    x_shape, w_shape, stride, padding, dilation, groups, outputs = layer
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    hyper = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    geom = conv_geometry("test", x.shape, w.shape, None, **hyper)
    g = _native.conv_geometry_tuple(geom)
    for itemsize in (4, 8):  # the cost model restates the kernels' choice
        chosen = _compiled.kernels.direct_region_rows(g, groups, itemsize)
        assert cost.direct_region_rows(geom, itemsize) == chosen
    assert _compiled.kernels.direct_region_rows(g, groups, 4) == outputs
    rows = geom.N * groups * geom.P
    whole = np.full(geom.y_shape, np.nan, np.float32)
    _compiled.kernels.direct_forward(x, w, None, whole, g, groups, 0, rows, 1)
    pieces = np.full(geom.y_shape, np.nan, np.float32)
    # ranges that start inside a region's rows, and one that lies within one region
    cuts = sorted({min(cut, rows) for cut in (0, 3, 5, rows // 2 + 1, rows)})
    for lo, hi in itertools.pairwise(cuts):
        _compiled.kernels.direct_forward(x, w, None, pieces, g, groups, lo, hi, 1)
    np.testing.assert_array_equal(pieces, whole)
    rows_alone = np.full(geom.y_shape, np.nan, np.float32)  # a region copies only the rows read
    for row in range(rows):
        _compiled.kernels.direct_forward(x, w, None, rows_alone, g, groups, row, row + 1, 1)
    np.testing.assert_array_equal(rows_alone, whole)
    reference = conv2d_ref(x.astype(np.float64), w.astype(np.float64), None, **hyper)
    assert_close(whole, reference, "float32", "y (F1) from regions of several rows")
    dy = rng.standard_normal(geom.y_shape).astype(np.float32)
    dw = np.empty(w_shape, np.float32)
    slices = min(rows, 7)  # slices that start inside a region's rows
    _compiled.kernels.direct_weight(dy, x, dw, g, groups, slices, 0, slices, 2)
    dw_reference = conv2d_dw_ref(x.astype(np.float64), dy.astype(np.float64), w_shape, **hyper)
    assert_close(dw, dw_reference, "float32", "dw (DS3) from regions of several rows")
    _compiled.kernels.direct_weight(dy, x, dw, g, groups, rows, 0, rows, 2)  # a row per slice
    assert_close(dw, dw_reference, "float32", "dw (DS3), one output row per slice")


def test_weight_slices_shrink_where_their_partials_are_large() -> None:
    """16 slices of output rows where the partial sums are small, fewer (down to 4) where all
    of them would pass DIRECT_SLICES_BYTES, at most one per output row."""

    def slices(N: int, C: int, H: int, K: int, stride: int) -> int:
        geom = conv_geometry("test", (N, C, H, H), (K, C, 3, 3), None, stride=stride,
                             padding=1, dilation=1, groups=1)  # fmt: skip
        return direct.direct_weight_slices(geom, 4)

    assert slices(128, 64, 8, 64, 1) == 16  # ResNet-20's stage 3: 227 KB per partial
    assert slices(8, 128, 28, 256, 2) == 6  # res3x3s2: 1.3 MB per partial
    assert slices(8, 256, 28, 512, 2) == 4  # 5 MB per partial: 4 at least
    assert slices(8, 512, 14, 512, 1) == 3  # 10 MB each: 3 within DIRECT_PARTIALS_BYTES
    assert slices(8, 1024, 14, 1024, 1) == 1  # 38 MB each: past DIRECT_PARTIALS_BYTES
    assert slices(1, 4, 2, 4, 1) == 2  # two output rows


def test_a_range_of_weight_slices_sums_its_own_rows_only() -> None:
    """direct_weight over slices [lo, hi) is (DS3) over their output rows; the other slices
    count as zero, so the three ranges of a split add up to the whole."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 9, 11))
    w_shape = (6, 2, 3, 3)
    geom = conv_geometry("test", x.shape, w_shape, None, stride=1, padding=1, dilation=2,
                         groups=2)  # fmt: skip
    g = _native.conv_geometry_tuple(geom)
    dy = rng.standard_normal(geom.y_shape)
    slices, rows = 5, geom.N * geom.groups * geom.P
    parts = []
    for lo, hi in [(0, 2), (2, 3), (3, 5)]:
        dw = np.full(w_shape, np.nan)
        _compiled.kernels.direct_weight(dy, x, dw, g, geom.groups, slices, lo, hi, 2)
        bounds = [rows * i // slices for i in (lo, hi)]  # the rows (n, g, p) of the range
        mask = np.zeros((geom.N, geom.groups, geom.P, 1))
        mask.reshape(-1)[bounds[0] : bounds[1]] = 1
        dy_part = dy * np.repeat(mask, geom.K // geom.groups, axis=1)
        reference = conv2d_dw_ref(x, dy_part, w_shape, stride=1, padding=1, dilation=2, groups=2)
        assert_close(dw, reference, "float64", f"dw (DS3) of slices [{lo}, {hi})")
        parts.append(dw)
    whole = conv2d_dw_ref(x, dy, w_shape, stride=1, padding=1, dilation=2, groups=2)
    assert_close(sum(parts), whole, "float64", "dw (DS3) of the three ranges together")


def test_kernel_refuses_bad_groups_sizes_and_ranges() -> None:
    kernels = _compiled.kernels
    case = CASES[0]
    geom = _geom(case)
    g = _native.conv_geometry_tuple(geom)
    x, w, y = np.zeros(case.x_shape), np.zeros(case.w_shape), np.zeros(case.y_shape)
    rows = case.N * case.y_shape[2]
    with pytest.raises(ValueError, match="direct_forward: groups=2 does not divide C=3"):
        kernels.direct_forward(x, w, None, y, g, 2, 0, rows)
    message = r"direct_forward: w holds 5 elements; expected K\*\(C/G\)\*R\*S = 108"
    with pytest.raises(ValueError, match=message):
        kernels.direct_forward(x, np.zeros(5), None, y, g, 1, 0, rows)
    with pytest.raises(ValueError, match="direct_forward: b holds 2 elements"):
        kernels.direct_forward(x, w, np.zeros(2), y, g, 1, 0, rows)
    with pytest.raises(ValueError, match=r"direct_forward: range \[0, 99\) outside"):
        kernels.direct_forward(x, w, None, y, g, 1, 0, 99)
    with pytest.raises(TypeError, match="direct_forward: y has the wrong element type"):
        kernels.direct_forward(x, w, None, y.astype(np.float32), g, 1, 0, rows)
    with pytest.raises(ValueError, match=r"direct_weight: slices must be in \[1, 14\]"):
        kernels.direct_weight(y, x, np.zeros(case.w_shape), g, 1, 15, 0, 15)
    with pytest.raises(ValueError, match="direct_weight: groups=2 does not divide C=3"):
        kernels.direct_weight(y, x, np.zeros(case.w_shape), g, 2, 1, 0, 1)
    with pytest.raises(ValueError, match="direct_weight: dw holds 3 elements"):
        kernels.direct_weight(y, x, np.zeros(3), g, 1, 1, 0, 1)


def test_cost_model_takes_the_compiled_sum_for_few_taps_and_gemm_for_many() -> None:
    first = conv_geometry("conv2d", (64, 1, 28, 28), (32, 1, 5, 5), None, stride=1,
                          padding=2, dilation=1, groups=1)  # fmt: skip
    stem = conv_geometry("conv2d", (8, 3, 224, 224), (64, 3, 11, 11), None, stride=4,
                         padding=2, dilation=1, groups=1)  # fmt: skip
    pointwise = conv_geometry("conv2d", (8, 256, 14, 14), (1024, 256, 1, 1), None, stride=1,
                              padding=0, dilation=1, groups=1)  # fmt: skip
    dilated = conv_geometry("conv2d", (8, 64, 28, 28), (64, 64, 3, 3), None, stride=1,
                            padding=2, dilation=2, groups=1)  # fmt: skip
    assert select.direct_runs_compiled(dilated, "data", 4, True)  # (B3) as the sum over dy
    assert not select.direct_runs_compiled(stem, "data", 4, True)  # stride 4: no such form
    assert select.direct_runs_compiled(stem, "weight", 4, True)  # (B2) as (DS3)
    assert not select.direct_runs_compiled(pointwise, "weight", 4, True)  # one GEMM
    thin = conv_geometry("conv2d", (8, 8, 16, 16), (1000, 8, 1, 1), None, stride=1, padding=0,
                         dilation=1, groups=1)  # fmt: skip
    for pass_name in ("forward", "data", "weight"):  # pointwise: im2col copies nothing
        assert not select.direct_runs_compiled(thin, pass_name, 4, True)
    for geom in (first, stem):
        assert select.direct_runs_compiled(geom, "forward", 4, True)
        assert select.choose(geom, "forward", "float32", ["direct", "im2col"], compiled=True) == (
            "direct"
        )
        assert not select.direct_runs_compiled(geom, "forward", 4, False)  # no kernels: NumPy taps
    # one GEMM at the BLAS rate, unless the sums run in the AVX-512 blocking (2.5 against
    # 3.5 ms with OpenBLAS's AVX2 kernels)
    wide = _native.wide_blockings_run()
    assert select.direct_runs_compiled(pointwise, "forward", 4, True) == wide
    chosen = select.choose(pointwise, "forward", "float32", ["direct", "im2col"], compiled=True)
    assert chosen == ("direct" if wide else "im2col")


@st.composite
def _wide_cases(draw: Any) -> tuple[Any, ...]:
    """Layers wider than the grid's: up to 40 filters and 40 columns, so that several
    register blocks and every remainder of them occur, with groups, strides and dilations."""
    groups = draw(st.sampled_from([1, 2, 3]))
    C, K = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 14))
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = draw(st.integers(max(1, dilation[0] * (R - 1) + 1 - 2 * padding[0]), 12))
    W = draw(st.integers(max(1, dilation[1] * (S - 1) + 1 - 2 * padding[1]), 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), C, H, W))
    w = rng.standard_normal((K, C // groups, R, S))
    geom = conv_geometry("test", x.shape, w.shape, None, stride=stride, padding=padding,
                         dilation=dilation, groups=groups)  # fmt: skip
    return x, w, rng.standard_normal(geom.y_shape), geom


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(case=_wide_cases())
def test_compiled_sums_equal_the_numpy_taps_on_drawn_layers(case: tuple[Any, ...]) -> None:
    """(DS2), (DS3) and (B3) as the sum over dy (stride 1) or one sum per phase (PH1, a
    larger stride and dilation 1), against the direct algorithm's NumPy taps (F1, B2, B3)
    in float64."""
    x, w, dy, geom = case
    with _native.disabled():
        y_numpy, _ = conv2d_direct.forward(x, w, geom)
        dw_numpy = conv2d_direct.backward_weight(dy, x, geom)
    y, dw = direct.direct_forward(x, w, geom), direct.direct_weight(dy, x, geom)
    np.testing.assert_allclose(y, y_numpy, rtol=1e-12, atol=1e-12 * np.abs(y_numpy).max())
    np.testing.assert_allclose(dw, dw_numpy, rtol=1e-12, atol=1e-12 * np.abs(dw_numpy).max())
    transposed = transposed_geometry(geom)
    if transposed is not None:  # stride 1: (B3) as the sum over dy, as the algorithm runs it
        dx = direct.direct_forward(dy, rotated_filters(w, geom), transposed)
        with _native.disabled():
            dx_numpy = conv2d_direct.backward_data(dy, w, geom)
        np.testing.assert_allclose(dx, dx_numpy, rtol=1e-12, atol=1e-12 * np.abs(dx_numpy).max())
    elif phases(geom) is not None:  # (PH1), as the algorithm runs it where it pays
        dx = conv2d_direct._data_gradient_by_phases(dy, w, geom)
        with _native.disabled():
            dx_numpy = conv2d_direct.backward_data(dy, w, geom)
        scale = max(float(np.abs(dx_numpy).max()), 1.0)
        np.testing.assert_allclose(dx, dx_numpy, rtol=1e-12, atol=1e-12 * scale)
