"""The workspace budget (conv2d_workspace): im2col, Winograd and the FFT past the budget run
a layer in blocks (chunks of images, else groups, filters and channels) that give the same
y (F1), dx (B3) and dw (B2) as the whole layer; a pass allocates in proportion to the budget
and its own arrays, not to the whole layer's transforms; ``auto`` chooses only algorithms
within the memory limit, and charges the blocks their cost."""

from __future__ import annotations

import contextlib
import importlib
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from convprop import _native
from convprop._shapes import ConvGeometry, conv_geometry
from convprop.functional import (
    conv2d_backward,
    conv2d_cost_model,
    conv2d_forward,
    conv2d_prepared,
    conv2d_workspace,
)
from convprop.functional.conv2d import ALGORITHMS
from reference import conv2d_dw_ref, conv2d_dx_ref, conv2d_ref

CHUNKED = ("im2col", "fft", "winograd", "winograd4")

# name: (x shape, w shape, hyperparameters)
CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = {
    "3x3": ((5, 6, 9, 9), (4, 6, 3, 3), {"padding": 1}),
    "groups": ((6, 8, 10, 10), (6, 4, 3, 3), {"padding": 1, "groups": 2}),
    "dilated": ((6, 4, 11, 11), (6, 4, 3, 3), {"padding": 2, "dilation": 2}),
    "strided5x5": ((6, 4, 9, 9), (5, 4, 5, 5), {"padding": 2, "stride": 2}),
}


def _geom(case: str) -> ConvGeometry:
    x_shape, w_shape, hyper = CASES[case]
    return conv_geometry(
        "conv2d", x_shape, w_shape, None, stride=hyper.get("stride", 1),
        padding=hyper["padding"], dilation=hyper.get("dilation", 1),
        groups=hyper.get("groups", 1),
    )  # fmt: skip


def _inputs(case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x_shape, w_shape, _ = CASES[case]
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    dy = rng.standard_normal(_geom(case).y_shape)
    return x, w, dy


def _workspace(name: str, geom: ConvGeometry, pass_name: str) -> float:
    return conv2d_cost_model.workspace_bytes(name, geom, pass_name, 8, _native.runs_compiled())


def _budget_for(name: str, geom: ConvGeometry, cut: str) -> int:
    """A budget under which every pass of ``name`` cuts the layer: into chunks of whole
    images ("images": one image fits every pass, the batch none), or one image into blocks of
    filters and channels ("channels")."""
    passes = ("forward", "data", "weight", "backward")
    one_image = [_workspace(name, replace(geom, N=1), p) for p in passes]
    if cut == "images":
        budget = max(one_image)
        assert budget < min(_workspace(name, geom, p) for p in passes)
        return int(budget)
    return int(min(one_image) * 0.6)


@pytest.fixture(autouse=True)
def _fresh_choices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """auto's remembered choices are made afresh under each test's budget."""
    conv2d_module = importlib.import_module("convprop.functional.conv2d")
    monkeypatch.setattr(conv2d_module, "_AUTO_CHOICES", {})
    conv2d_prepared.CALLS.forget()
    yield
    conv2d_cost_model._cheapest.cache_clear()


def _applies(name: str, case: str) -> bool:
    return ALGORITHMS[name].decline(_geom(case)) is None


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("cut", ["images", "channels"])
@pytest.mark.parametrize(
    ("name", "case"),
    [(name, case) for name in CHUNKED for case in CASES if _applies(name, case)],
)
def test_blocks_give_the_whole_layers_F1_B2_B3(
    monkeypatch: pytest.MonkeyPatch, name: str, case: str, cut: str, compiled: bool
) -> None:
    """float64: y, dx and dw of every pass (both gradients at once, and each alone, as auto
    calls them when it gives them to two algorithms) by blocks equal the whole layer's to
    rounding, and the forward keeps nothing for the backward past the budget."""
    if compiled and not _native.enabled():
        pytest.skip("the compiled kernels are not built")
    algorithm = ALGORITHMS[name]
    geom = _geom(case)
    x, w, dy = _inputs(case)
    with _native.disabled() if not compiled else contextlib.nullcontext():
        y0, cache0 = conv2d_forward(x, w, algorithm=name, **CASES[case][2])
        dx0, dw0, _ = conv2d_backward(dy, cache0)
        assert cache0.saved is not None  # within the budget the forward keeps its work
        budget = _budget_for(name, geom, cut)
        monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", budget)
        for pass_name in ("forward", "data", "weight", "backward"):
            plan = conv2d_cost_model.blocks(name, geom, pass_name, 8, compiled)
            assert plan is not None, pass_name  # the test cuts what it means to cut
            whole_images = all(b.geom.C == geom.C and b.geom.K == geom.K for b in plan)
            assert whole_images == (cut == "images"), pass_name
        y, cache = conv2d_forward(x, w, algorithm=name, **CASES[case][2])
        assert cache.saved is None
        dx, dw, _ = conv2d_backward(dy, cache)
        dx_alone = algorithm.backward_data(dy, w, geom)
        dw_alone = algorithm.backward_weight(dy, x, geom, None)
        dw_only = conv2d_backward(dy, cache, need_dx=False)[1]
        dx_kept, dw_kept, _ = conv2d_backward(dy, cache0)  # the forward's work, now unused
    for got, want, what in [
        (y, y0, "y (F1)"), (dx, dx0, "dx (B3)"), (dw, dw0, "dw (B2)"),
        (dx_alone, dx0, "dx alone"), (dw_alone, dw0, "dw alone"), (dw_only, dw0, "dw only"),
        (dx_kept, dx0, "dx, forward kept"), (dw_kept, dw0, "dw, forward kept"),
    ]:  # fmt: skip
        assert got.shape == want.shape and got.dtype == want.dtype, what
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale, err_msg=what)


@pytest.mark.parametrize("name", CHUNKED)
def test_blocks_match_the_reference_loops(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A second witness: groups cut into blocks of filters and channels against the float64
    loops of (F1), (B3), (B2) (tests/reference.py), not against the algorithm itself."""
    case = "groups"
    geom = _geom(case)
    x, w, dy = _inputs(case)
    hyper = CASES[case][2]
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", _budget_for(name, geom, "channels"))
    y, cache = conv2d_forward(x, w, algorithm=name, **hyper)
    dx, dw, _ = conv2d_backward(dy, cache)
    np.testing.assert_allclose(y, conv2d_ref(x, w, None, **hyper), rtol=0, atol=1e-11)
    np.testing.assert_allclose(dx, conv2d_dx_ref(dy, w, x.shape, **hyper), rtol=0, atol=1e-11)
    np.testing.assert_allclose(dw, conv2d_dw_ref(x, dy, w.shape, **hyper), rtol=0, atol=1e-11)


@pytest.mark.parametrize("name", CHUNKED)
def test_a_layer_within_the_budget_runs_whole_bit_for_bit(name: str) -> None:
    """Within the budget, the forward is the whole-layer code (the same bits as a budget far
    larger) and keeps its work for the backward."""
    x, w, _ = _inputs("3x3")
    geom = _geom("3x3")
    for pass_name in ("forward", "data", "weight", "backward"):
        assert conv2d_cost_model.blocks(name, geom, pass_name, 8, True) is None
    y, cache = conv2d_forward(x.astype(np.float32), w.astype(np.float32), algorithm=name,
                              padding=1)  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv2d_workspace, "WORKSPACE_BYTES", 2**40)
        patch.setattr(conv2d_workspace, "WORKSPACE_MIN_BYTES", 2**40)
        y_large, _ = conv2d_forward(x.astype(np.float32), w.astype(np.float32), algorithm=name,
                                    padding=1)  # fmt: skip
    assert cache.saved is not None
    assert np.array_equal(y, y_large)


def test_the_budget_follows_the_layer_between_its_floor_and_its_cap() -> None:
    g = _geom("3x3")
    assert conv2d_workspace.budget(g, 8) == conv2d_workspace.WORKSPACE_MIN_BYTES
    assert conv2d_workspace.budget() == conv2d_workspace.WORKSPACE_BYTES
    huge = replace(g, N=2**22)  # x and y: 2**22 * (486 + 324) * 8 bytes, far past the cap
    assert conv2d_workspace.budget(huge, 8) == conv2d_workspace.WORKSPACE_BYTES
    middle = replace(g, N=2**17)  # x and y: 810 MiB; half of it, between floor and cap
    layer = 2**17 * (6 * 81 + 4 * 81) * 4
    assert conv2d_workspace.budget(middle, 4) == int(conv2d_workspace.WORKSPACE_SHARE * layer)


# ------------------------------------------------------------------ allocations (tracemalloc)


def _traced_peak(run: Any) -> int:
    """The most bytes NumPy (and Python) held at once while ``run`` ran, above the start."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", CHUNKED)
def test_a_pass_allocates_in_proportion_to_the_budget_not_the_layer(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """float32 x (32, 16, 32, 32) 3x3 (x, y, dy, dx 2 MiB each), budget 1 MiB: the forward,
    and the forward with both gradients, each allocate at most 2 budgets plus twice the
    arrays it reads (x and dy; y, dx and the blocks' copies of their inputs are of that
    size); the whole layer allocates 9 to 21 times x, past that bound, so the bound bites."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 16, 32, 32), dtype=np.float32)
    w = rng.standard_normal((16, 16, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((32, 16, 32, 32), dtype=np.float32)

    def forward() -> None:
        conv2d_forward(x, w, padding=1, algorithm=name)

    def both() -> None:
        _, cache = conv2d_forward(x, w, padding=1, algorithm=name)
        conv2d_backward(dy, cache)

    whole = _traced_peak(both)
    budget = 2**20
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", budget)
    bound = 2 * budget + 2 * (x.nbytes + dy.nbytes)
    assert whole > bound, (whole, bound)  # the whole layer's transforms pass the bound
    assert _traced_peak(forward) <= bound
    assert _traced_peak(both) <= bound


# ----------------------------------------------------------------------- auto and memory


def _auto_geometries() -> list[ConvGeometry]:
    shapes = [
        ((8, 64, 56, 56), (64, 64, 3, 3), 1),  # Winograd's
        ((8, 64, 32, 32), (64, 64, 9, 9), 4),  # the FFT's
        ((64, 32, 14, 14), (64, 32, 5, 5), 2),
        ((16, 128, 28, 28), (128, 128, 3, 3), 1),
    ]
    return [
        conv_geometry("conv2d", xs, ws, None, stride=1, padding=p, dilation=1, groups=1)
        for xs, ws, p in shapes
    ]


@pytest.mark.parametrize("budget", [2**30, 2**24, 2**20, 2**16])
def test_auto_chooses_only_algorithms_within_the_memory_limit(
    monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    """For every pass, auto's choice has its peak (largest block) within the memory limit
    wherever some candidate does; under a tiny budget the chunked algorithms' smallest blocks
    still fit, so the choice differs from the unbounded one somewhere."""
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", budget)
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_MIN_BYTES", 0)
    for geom in _auto_geometries():
        names = [n for n, a in ALGORITHMS.items() if a.decline(geom) is None]
        limit = conv2d_cost_model.memory_limit(geom, 4)
        for pass_name in ("forward", "data", "weight"):
            chosen = conv2d_cost_model.cheapest(geom, pass_name, "float32", names, True)
            peaks = {n: conv2d_cost_model.peak_workspace(n, geom, pass_name, 4, True)
                     for n in names}  # fmt: skip
            if min(peaks.values()) <= limit:
                assert peaks[chosen] <= limit, (geom.describe(), pass_name, chosen, peaks)
            else:
                assert peaks[chosen] == min(peaks.values())


def test_auto_leaves_out_an_algorithm_whose_smallest_block_is_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One plane of 2048²: Winograd's tiles of a single plane (8 planes' worth) pass a limit
    of 1 MiB budgets where the direct sums' copies (the layer's own size) do not, so Winograd
    is left out even where its estimate is the cheapest (made 0 here); where nothing fits,
    the smallest peak is chosen."""
    geom = conv_geometry("conv2d", (1, 1, 2048, 2048), (1, 1, 3, 3), None,
                         stride=1, padding=1, dilation=1, groups=1)  # fmt: skip
    names = ["direct", "winograd"]
    monkeypatch.setitem(conv2d_cost_model.ESTIMATORS, "winograd", lambda *args: 0.0)
    assert conv2d_cost_model.cheapest(geom, "forward", "float32", names, True) == "winograd"
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", 2**20)
    limit = conv2d_cost_model.memory_limit(geom, 4)
    assert conv2d_cost_model.peak_workspace("winograd", geom, "forward", 4, True) > limit
    assert conv2d_cost_model.peak_workspace("direct", geom, "forward", 4, True) <= limit
    assert conv2d_cost_model.within_memory(geom, "forward", "float32", names, True) == ["direct"]
    assert conv2d_cost_model.cheapest(geom, "forward", "float32", names, True) == "direct"
    monkeypatch.setattr(conv2d_cost_model, "MEMORY_SLACK", 0.1)  # now nothing fits
    assert conv2d_cost_model.within_memory(geom, "forward", "float32", names, True) == ["direct"]


def test_auto_runs_within_a_small_budget_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """conv2d_forward(algorithm="auto") under a small budget: the passes it chose are within
    the limit, and the results equal the unbudgeted ones (float64)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 16, 24, 24))
    w = rng.standard_normal((16, 16, 3, 3))
    dy = rng.standard_normal((8, 16, 24, 24))
    y0, cache0 = conv2d_forward(x, w, padding=1)
    dx0, dw0, _ = conv2d_backward(dy, cache0)
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", 2**17)
    y, cache = conv2d_forward(x, w, padding=1)
    dx, dw, _ = conv2d_backward(dy, cache)
    geom = cache.geom
    limit = conv2d_cost_model.memory_limit(geom, 8)
    for algorithm, pass_name in zip(cache.algorithms, ("forward", "data", "weight"), strict=True):
        peak = conv2d_cost_model.peak_workspace(algorithm, geom, pass_name, 8, True)
        assert peak <= limit, (algorithm, pass_name, peak, limit)
    for got, want in [(y, y0), (dx, dx0), (dw, dw0)]:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())


def test_the_estimate_charges_the_blocks_their_overhead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of filters and channels transform their inputs again and add their results: the
    estimate of a pass that runs in blocks is above the whole layer's, and keeps the same
    order for the image chunks (each image's work is the same)."""
    geom = _auto_geometries()[1]
    whole = {p: conv2d_cost_model.estimate("fft", geom, p, "float32", True)
             for p in ("forward", "data", "weight")}  # fmt: skip
    per_image = _workspace("fft", replace(geom, N=1), "forward") / 2  # float32: half of 8 bytes
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", int(per_image * 0.5))
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_MIN_BYTES", 0)
    for pass_name, seconds in whole.items():
        plan = conv2d_cost_model.blocks("fft", geom, pass_name, 4, True)
        assert plan is not None and any(b.geom.C < geom.C or b.geom.K < geom.K for b in plan)
        assert conv2d_cost_model.estimate("fft", geom, pass_name, "float32", True) > seconds


@pytest.mark.parametrize("name", ["winograd", "fft"])
def test_the_forward_keeps_its_work_only_where_the_backward_runs_whole(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A budget between the forward's workspace and the backward's: the forward runs whole
    but keeps nothing (the backward, in blocks, would not read it)."""
    geom = _geom("3x3")
    x, w, dy = _inputs("3x3")
    forward = _workspace(name, geom, "forward")
    backward = _workspace(name, geom, "backward")
    assert forward < backward
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", int(forward))
    assert conv2d_cost_model.blocks(name, geom, "forward", 8, True) is None
    _, cache = conv2d_forward(x, w, padding=1, algorithm=name)
    assert cache.saved is None
    dx, dw, _ = conv2d_backward(dy, cache)
    np.testing.assert_allclose(dw, conv2d_dw_ref(x, dy, w.shape, padding=1), atol=1e-11)
    np.testing.assert_allclose(dx, conv2d_dx_ref(dy, w, x.shape, padding=1), atol=1e-11)
