"""The ``auto`` choice: the cost model, the opt-in measured-timing cache, and the module that
combines them (conv2d_select, which re-exports both modules' names)."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from convprop import _native
from convprop._shapes import conv_geometry
from convprop.functional import ALGORITHMS, conv2d_backward, conv2d_forward, conv2d_prepared
from convprop.functional import conv2d_cost_model as cost
from convprop.functional import conv2d_select as select
from convprop.functional import conv2d_timing_cache as timing


@pytest.fixture(autouse=True)
def _no_cache_left_on() -> Iterator[None]:
    yield
    select.disable_timing_cache()


@pytest.fixture(autouse=True)
def _narrow_blockings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choices below are those of a CPU without AVX-512 (the direct sums' "wide"
    blocking makes them 1.3-1.9 times faster and changes several: see the tests of the
    wide estimates at the end), so that they hold on any machine."""
    monkeypatch.setattr(_native, "wide_blockings_run", lambda: False)


def _geom(N: int, C: int, H: int, K: int, R: int, **kw: int) -> object:
    return conv_geometry(
        "conv2d",
        (N, C, H, H),
        (K, C // kw.get("groups", 1), R, R),
        None,
        stride=kw.get("stride", 1),
        padding=kw.get("padding", 0),
        dilation=kw.get("dilation", 1),
        groups=kw.get("groups", 1),
    )


def test_cost_model_prefers_fft_for_a_large_kernel_and_gemm_for_pointwise() -> None:
    big = _geom(8, 64, 32, 64, 9, padding=4)
    pointwise = _geom(8, 256, 14, 1024, 1)
    names = ["direct", "im2col", "fft"]
    assert select.choose(big, "forward", "float32", names) == "fft"  # type: ignore[arg-type]
    assert select.choose(pointwise, "forward", "float32", names) == "im2col"  # type: ignore[arg-type]


def test_every_estimate_is_positive_and_finite_for_every_pass() -> None:
    for geom in (_geom(2, 4, 9, 6, 3), _geom(1, 6, 12, 6, 3, groups=6, stride=2, dilation=2)):
        for name in select.ESTIMATORS:
            for pass_name in ("forward", "data", "weight"):
                seconds = select.estimate(name, geom, pass_name, "float64")  # type: ignore[arg-type]
                assert np.isfinite(seconds) and seconds > 0


def test_auto_never_declines_where_winograd_does() -> None:
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 7))
    w = np.random.default_rng(1).standard_normal((3, 2, 5, 5))
    _, cache = conv2d_forward(x, w, stride=2)
    assert "winograd" not in cache.algorithms
    assert set(cache.algorithms) <= set(ALGORITHMS)


def test_timing_cache_measures_once_persists_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "timings.json"
    cache = select.enable_timing_cache(path)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 10, 10))
    w = rng.standard_normal((4, 3, 3, 3))
    y, conv_cache = conv2d_forward(x, w, padding=1)
    assert len(cache.entries) == 3  # one entry per pass
    assert set(cache.entries.values()) <= set(ALGORITHMS)
    backend = "numpy+kernels" if _native.AVAILABLE else "numpy"  # kept apart: other timings
    assert conv_cache.algorithms == tuple(
        cache.entries[select.TimingCache.key(conv_cache.geom, "float64", backend, p)]
        for p in ("forward", "data", "weight")
    )
    on_disk = json.loads(path.read_text())
    assert on_disk == cache.entries
    # a second call with the same shape measures nothing new and agrees with the reference
    calls: list[str] = []
    real_measure = timing._measure
    timing._measure = lambda run: calls.append("x") or real_measure(run)  # type: ignore[assignment]
    try:
        y_again, cache_again = conv2d_forward(x, w, padding=1)
    finally:
        timing._measure = real_measure  # type: ignore[assignment]
    assert calls == []
    np.testing.assert_allclose(y_again, y, rtol=1e-10, atol=1e-12)
    dx, dw, _ = conv2d_backward(rng.standard_normal(y.shape), cache_again)
    assert dx is not None and dx.shape == x.shape and dw.shape == w.shape
    assert select.TimingCache(path).entries == cache.entries


def test_timing_cache_is_bounded_and_drops_the_oldest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timing, "MAX_ENTRIES", 4)
    cache = select.enable_timing_cache(tmp_path / "timings.json")
    rng = np.random.default_rng(3)
    for size in (6, 7, 8):
        conv2d_forward(rng.standard_normal((1, 2, size, size)), rng.standard_normal((2, 2, 3, 3)))
    assert len(cache.entries) == 4
    assert sum("(1, 2, 8, 8)" in key for key in cache.entries) == 3  # the newest shape stays
    assert not any("(1, 2, 6, 6)" in key for key in cache.entries)  # the first shape went first


def test_unreadable_cache_file_is_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "timings.json"
    path.write_text("{not json")
    assert select.TimingCache(path).entries == {}
    assert select.cache_state() == {"enabled": False}
    select.enable_timing_cache(path)
    assert select.cache_state() == {"enabled": True, "path": str(path), "entries": 0}


def test_cost_model_alone_without_the_cache_measures_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(run: object) -> float:
        raise AssertionError("measured although the timing cache is off")

    monkeypatch.setattr(timing, "_measure", fail)
    x = np.ones((1, 1, 5, 5))
    conv2d_forward(x, np.ones((1, 1, 3, 3)))


def test_cost_model_knows_whether_the_compiled_kernels_run() -> None:
    """CuPy arrays (or an install without the kernels) are costed as the NumPy code."""
    from convprop._shapes import conv_geometry

    g = conv_geometry("conv2d", (8, 256, 28, 28), (256, 1, 3, 3), None,
                      stride=1, padding=1, dilation=1, groups=256)  # fmt: skip
    numpy_only = select.estimate("depthwise", g, "forward", "float32", compiled=False)
    assert numpy_only == select.estimate("direct", g, "forward", "float32", compiled=False)
    assert select.estimate("depthwise", g, "forward", "float32", compiled=True) < numpy_only
    im2col = [select.estimate("im2col", g, "data", "float32", compiled=c) for c in (True, False)]
    assert im2col[0] < im2col[1]  # the compiled copy is faster


def test_remembered_choice_is_the_cost_models_and_follows_its_rates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The choice per layer shape is remembered (a training step asks for the same layers
    every time), but it stays the minimum of the current estimates: changing a rate of the
    model changes the choice."""
    g = _geom(8, 64, 32, 64, 9, padding=4)
    names = ["direct", "im2col", "fft"]

    def fresh(pass_name: str) -> str:
        return min(names, key=lambda n: select.estimate(n, g, pass_name, "float32", True))

    for pass_name in ("forward", "data", "weight"):
        assert select.choose(g, pass_name, "float32", names, compiled=True) == fresh(pass_name)
    assert select.choose(g, "forward", "float32", names, compiled=True) == "fft"
    monkeypatch.setattr(cost, "FFT_FLOPS_PER_S", 1e3)  # an FFT a million times slower
    assert fresh("forward") != "fft"
    assert select.choose(g, "forward", "float32", names, compiled=True) == fresh("forward")
    assert select.choose(g, "forward", "float32", ["direct", "fft"], compiled=True) == "direct"


def test_auto_choice_of_a_call_follows_the_rates_and_the_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """conv2d_forward remembers auto's three choices per layer, keyed by the model's rates and
    by whether the compiled kernels run: a changed rate, or the kernels turned off, is seen on
    the next call, and the choices stay those of resolve_algorithms' own model."""
    x = np.ones((2, 4, 24, 24), dtype=np.float32)
    w = np.ones((4, 4, 9, 9), dtype=np.float32)
    _, first = conv2d_forward(x, w, padding=4)
    _, again = conv2d_forward(x, w, padding=4)
    assert again.algorithms == first.algorithms and "fft" not in first.algorithms
    monkeypatch.setattr(cost, "FFT_FLOPS_PER_S", 1e18)  # an FFT for free
    monkeypatch.setattr(cost, "FFT_COMPILED_SHARE", 0.0)
    monkeypatch.setattr(cost, "CALL_SECONDS", 0.0)
    _, fast_fft = conv2d_forward(x, w, padding=4)
    assert fast_fft.algorithms[0] == "fft"
    monkeypatch.undo()
    with _native.disabled():
        _, numpy_only = conv2d_forward(x, w, padding=4)
    g = numpy_only.geom
    names = [n for n, a in ALGORITHMS.items() if a.decline(g) is None]
    assert numpy_only.algorithms[0] == select.choose(g, "forward", "float32", names,
                                                     compiled=False)  # fmt: skip
    assert conv2d_forward(x, w, padding=4)[1].algorithms == first.algorithms


def test_auto_choice_follows_the_batch_as_columns_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The threshold of im2col's batch as columns changes im2col's estimates: a choice
    remembered under another threshold is not reused (the same as one made afresh)."""
    conv2d_module = importlib.import_module("convprop.functional.conv2d")  # not the function
    x = np.ones((4, 16, 7, 7), dtype=np.float32)
    w = np.ones((64, 16, 3, 3), dtype=np.float32)
    first = conv2d_forward(x, w, padding=1)[1].algorithms
    monkeypatch.setattr(cost, "BATCH_AS_COLUMNS_MAX_PQ", 0)
    second = conv2d_forward(x, w, padding=1)[1].algorithms
    monkeypatch.setattr(conv2d_module, "_AUTO_CHOICES", {})
    conv2d_prepared.CALLS.forget()
    cost._cheapest.cache_clear()
    assert conv2d_forward(x, w, padding=1)[1].algorithms == second
    assert second != first  # the case is one where the threshold decides


def test_weight_pass_keeps_the_forwards_algorithm_when_nearly_as_cheap(tmp_path: Path) -> None:
    """res3x3: the compiled direct sum's weight estimate is a near tie with Winograd's, whose
    forward saved its input tiles: the weight pass stays with Winograd. lenet1: im2col's
    estimate is far above the direct sum's, so the cheaper one is kept."""
    res3x3 = _geom(8, 64, 56, 64, 3, padding=1)
    # among the algorithms other than F(4x4, 3x3), which is cheaper on every pass of res3x3
    names = [n for n, a in ALGORITHMS.items() if a.decline(res3x3) is None and n != "winograd4"]
    cheapest = select.choose(res3x3, "weight", "float32", names, compiled=True)
    own = select.estimate("winograd", res3x3, "weight", "float32", True)
    assert select.REUSE_SHARE * own <= select.estimate(cheapest, res3x3, "weight", "float32", True)
    assert select.weight_after_forward(res3x3, "float32", "winograd", cheapest, names, True) == (
        "winograd"
    )
    lenet1 = _geom(64, 1, 28, 32, 5, padding=2)
    assert select.weight_after_forward(lenet1, "float32", "im2col", "direct", names, True) == (
        "direct"
    )
    select.enable_timing_cache(tmp_path / "t.json")  # measured choices stand as measured
    assert select.weight_after_forward(res3x3, "float32", "winograd", "direct", names, True) == (
        "direct"
    )


def test_auto_leaves_the_lossy_F4_tiling_out_unless_allowed() -> None:
    """res3x3: the cost model finds F(4x4, 3x3) cheapest on every pass, but ``auto`` keeps to
    the algorithms as exact as the direct sums until allow_lossy(); the switch is part of
    the remembered choices' key, so a choice made under the other setting is not reused."""
    x = np.zeros((8, 64, 56, 56), dtype=np.float32)
    w = np.zeros((64, 64, 3, 3), dtype=np.float32)
    assert "winograd4" in select.LOSSY
    default = conv2d_forward(x, w, padding=1)[1].algorithms
    assert "winograd4" not in default
    try:
        select.allow_lossy()
        assert conv2d_forward(x, w, padding=1)[1].algorithms == ("winograd4",) * 3
    finally:
        select.allow_lossy(False)
    assert conv2d_forward(x, w, padding=1)[1].algorithms == default
    named = conv2d_forward(x, w, padding=1, algorithm="winograd4")[1].algorithms
    assert named == ("winograd4",) * 3


def test_timing_cache_keeps_lossy_measurements_apart(tmp_path: Path) -> None:
    """A layer measured without the lossy algorithms is measured again once allow_lossy() lets
    them in (and the first table entry stands when the switch is off again)."""
    g = _geom(2, 4, 12, 4, 3, padding=1)
    names = [n for n, a in ALGORITHMS.items() if a.decline(g) is None]
    timed: list[str] = []

    def measure(name: str, pass_name: str) -> Callable[[], object]:
        timed.append(name)
        return lambda: None

    cache = select.enable_timing_cache(tmp_path / "t.json")
    try:
        exact = [n for n in names if select.may_choose(n)]
        select.choose(g, "forward", "float32", exact, measure=measure)
        assert "winograd4" not in timed and timed
        timed.clear()
        select.allow_lossy()
        lossy = [n for n in names if select.may_choose(n)]
        select.choose(g, "forward", "float32", lossy, measure=measure)
        assert "winograd4" in timed
        assert len(cache.entries) == 2
        select.allow_lossy(False)
        timed.clear()
        select.choose(g, "forward", "float32", exact, measure=measure)
        assert timed == []  # the measurement without them is still on record
    finally:
        select.allow_lossy(False)
        select.disable_timing_cache()


def test_select_reexports_the_two_modules_names_as_the_same_objects() -> None:
    """Every name conv2d_select offers is the cost model's or the timing cache's own object
    (no second copy to drift), apart from the two functions that combine them."""
    own = {"choose", "weight_after_forward"}
    for name in select.__all__:
        if name in own:
            assert inspect.getmodule(getattr(select, name)) is select
            continue
        sources = [m for m in (cost, timing) if hasattr(m, name)]
        assert len(sources) == 1, f"{name} is defined in {len(sources)} modules"
        assert getattr(select, name) is getattr(sources[0], name)


def test_cost_model_is_pure_it_measures_and_stores_nothing() -> None:
    """The cost model imports neither a clock, nor files, nor the timing cache."""
    tree = ast.parse(inspect.getsource(cost))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = {"json", "os", "tempfile", "time", "pathlib", "convprop.functional.conv2d_select",
                 "convprop.functional.conv2d_timing_cache"}  # fmt: skip
    assert imported and not imported & forbidden
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for alias in node.names}  # fmt: skip
    assert not names & {"conv2d_select", "conv2d_timing_cache"}


def test_rates_set_on_the_cost_model_reach_the_choice_made_through_select(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rates are read where they are defined: a change there changes select's choice and
    its calibration key."""
    g = _geom(8, 64, 32, 64, 9, padding=4)
    names = ["direct", "im2col", "fft"]
    before = select.calibration()
    assert select.choose(g, "forward", "float32", names, compiled=True) == "fft"  # type: ignore[arg-type]
    monkeypatch.setattr(cost, "FFT_FLOPS_PER_S", 1e3)
    assert select.calibration() != before
    assert select.choose(g, "forward", "float32", names, compiled=True) != "fft"  # type: ignore[arg-type]


def _suite_geometry(name: str) -> object:
    """A layer of benchmarks/conv_suite.json."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "conv_suite.json"
    N, C, H, W, K, R, S, stride, pad, dil, groups = json.loads(path.read_text())[name]
    return conv_geometry("conv2d", (N, C, H, W), (K, C // groups, R, S), None, stride=stride,
                         padding=pad, dilation=dil, groups=groups)  # fmt: skip


def test_the_wide_blocking_changes_the_choices_it_measured_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the direct sums run in the AVX-512 blocking, auto takes them on the suite's
    layers where they were measured fastest (forward: res3x3 4.2 ms against Winograd's 8.0,
    r20s3 1.7 against the FFT's 2.7, pw1x1 2.5 against im2col's 3.5; pw1x1's input gradient,
    the same sum over dy, 3.7-4.0 against 3.8-4.4), keeps im2col for pw1x1's weight gradient
    (5.5 against 3.4) and the FFT for lenet2, whose backward reuses
    the forward's spectra (forward + backward 7.9 against the direct sums' 10.8); ResNet-20's
    16-filter layers take blocks of 8 filters by 32 columns forward (1.9-2.0 ms against 2.6-2.9
    in 16 columns by 16 filters) and 16 taps by 16 filters for the weight gradient, not
    half-empty blocks of 32 filters."""
    monkeypatch.setattr(_native, "wide_blockings_run", lambda: True)
    for shape, pass_name, algorithm in [
        ("res3x3", "forward", "direct"), ("res3x3", "weight", "direct"),
        ("pw1x1", "forward", "direct"), ("pw1x1", "data", "direct"),
        ("pw1x1", "weight", "im2col"), ("r20s3", "forward", "direct"),
        ("r20s3", "weight", "direct"), ("dil3x3", "weight", "direct"),
        ("lenet2", "forward", "fft"), ("lenet2", "data", "fft"), ("lenet2", "weight", "fft"),
    ]:  # fmt: skip
        geom = _suite_geometry(shape)
        names = [n for n, a in ALGORITHMS.items() if a.decline(geom) is None and n != "winograd4"]
        assert select.choose(geom, pass_name, "float32", names, compiled=True) == algorithm, (
            shape, pass_name)  # fmt: skip
    r20s1 = _geom(128, 16, 32, 16, 3, padding=1)
    assert cost.direct_blocking(r20s1, 4) == "wide_filters"
    assert cost.direct_blocking(r20s1, 4, weight=True) == "wide16"
    assert cost.direct_blocking(r20s1, 4, wide=False) == "filters"
    assert cost.direct_blocking(_suite_geometry("r20s2"), 4) == "wide"


def test_the_wide_estimates_are_faster_than_the_narrow_ones_only_where_wide_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """And a choice remembered without the wide blocking is not reused with it."""
    passes = ("forward", "data", "weight")
    geom = _suite_geometry("r20s3")
    narrow = {p: cost.estimate("direct", geom, p, "float32", True) for p in passes}
    narrow_rates = cost.calibration()
    monkeypatch.setattr(_native, "wide_blockings_run", lambda: True)
    wide = {p: cost.estimate("direct", geom, p, "float32", True) for p in passes}
    for p in passes:
        assert wide[p] < narrow[p], p
    assert cost.calibration() != narrow_rates
