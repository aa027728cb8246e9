"""Every conv2d algorithm against the naive float64 reference: (F1), (B1), (B2), (B3).

The grid (reference.CASES) covers stride 1-3, dilation 1-3, symmetric, asymmetric,
"same" and "valid" padding, groups (depthwise and channel multiplier 2), 1x1 kernels,
kernels as large as the padded input, batch 1, non-square shapes and remainder rows.
An algorithm that cannot do a case must decline it with its reason; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from convprop.backend import to_host
from convprop.functional import conv2d, conv2d_backward, conv2d_forward
from reference import (
    ALGORITHM_NAMES,
    CASES,
    ConvCase,
    as_pair,
    assert_close,
    expected,
    random_inputs,
)

DTYPES = ("float64", "float32")


@functools.cache
def _applicable() -> list[Any]:
    """(case, algorithm) pairs the algorithm is expected to compute."""
    params = []
    for case in CASES:
        for algorithm in ALGORITHM_NAMES:
            if not case.applies(algorithm):
                continue  # witnessed by the test_*_declines_outside_its_domain tests instead
            params.append(pytest.param(case, algorithm, id=f"{case.name}-{algorithm}"))
    return params


APPLICABLE = _applicable()


def _run(xp: ModuleType, case: ConvCase, dtype: str, algorithm: str) -> dict[str, Any]:
    data = expected(case, dtype)
    x, w, dy = (xp.asarray(data[name]) for name in ("x", "w", "dy"))
    b = None if data["b"] is None else xp.asarray(data["b"])
    y, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    dx, dw, db = conv2d_backward(dy, cache)
    return {"y": y, "dx": dx, "dw": dw, "db": db}


@pytest.mark.parametrize(("case", "algorithm"), APPLICABLE)
def test_forward_matches_F1_reference(xp: ModuleType, case: ConvCase, algorithm: str) -> None:
    for dtype in DTYPES:
        y = _run(xp, case, dtype, algorithm)["y"]
        assert y.shape == case.y_shape
        assert str(y.dtype) == dtype
        assert_close(to_host(y), expected(case, dtype)["y"], dtype, f"y (F1), {dtype}")


@pytest.mark.parametrize(("case", "algorithm"), APPLICABLE)
def test_gradients_match_B1_B2_B3_reference(xp: ModuleType, case: ConvCase, algorithm: str) -> None:
    """db (B1), dw (B2) and dx (B3), each against its own loop in tests/reference.py."""
    for dtype in DTYPES:
        got = _run(xp, case, dtype, algorithm)
        want = expected(case, dtype)
        if case.bias:
            assert_close(to_host(got["db"]), want["db"], dtype, f"db (B1), {dtype}")
        else:
            assert got["db"] is None
        for name, label in (("dw", "B2"), ("dx", "B3")):
            assert got[name].shape == want[name].shape
            assert str(got[name].dtype) == dtype
            assert_close(to_host(got[name]), want[name], dtype, f"{name} ({label}), {dtype}")


@pytest.mark.parametrize("case", [c for c in CASES if not c.winograd_applies], ids=lambda c: c.name)
def test_winograd_declines_outside_its_domain(case: ConvCase) -> None:
    x, w, b, _ = random_inputs(case, "float64", seed=7)
    if (case.R, case.S) != (3, 3):
        reason = rf"needs a 3x3 kernel, got R x S = {case.R} x {case.S}"
    else:
        reason = r"needs stride 1"
    message = rf"conv2d: algorithm 'winograd' cannot compute this case: F\(2x2, 3x3\) {reason}"
    with pytest.raises(NotImplementedError, match=message):
        conv2d_forward(x, w, b, algorithm="winograd", **case.hyper)
    # "auto" never declines: it falls back on an algorithm that accepts the case
    _, cache = conv2d_forward(x, w, b, algorithm="auto", **case.hyper)
    assert "winograd" not in cache.algorithms


NOT_DEPTHWISE = [c for c in CASES if not c.depthwise_applies]


@pytest.mark.parametrize("case", NOT_DEPTHWISE, ids=lambda c: c.name)
def test_depthwise_declines_outside_its_domain(case: ConvCase) -> None:
    x, w, b, _ = random_inputs(case, "float64", seed=7)
    message = (
        r"conv2d: algorithm 'depthwise' cannot compute this case: depthwise needs one input "
        rf"channel per group \(groups == C\), got C={case.C}, groups={case.groups}"
    )
    with pytest.raises(NotImplementedError, match=message):
        conv2d_forward(x, w, b, algorithm="depthwise", **case.hyper)


def test_only_winograd_and_depthwise_decline_any_case() -> None:
    """direct, im2col and fft handle every valid convolution (the grid's witness)."""
    for case in CASES:
        x, w, b, _ = random_inputs(case, "float64", seed=7)
        for name in ("direct", "im2col", "fft"):
            conv2d_forward(x, w, b, algorithm=name, **case.hyper)


@pytest.mark.parametrize("case", CASES[:6], ids=lambda c: c.name)
def test_forward_alone_equals_forward_pair(case: ConvCase) -> None:
    x, w, b, _ = random_inputs(case, "float64", seed=7)
    y, _ = conv2d_forward(x, w, b, algorithm="direct", **case.hyper)
    np.testing.assert_array_equal(conv2d(x, w, b, algorithm="direct", **case.hyper), y)


def test_grid_covers_the_required_configurations() -> None:
    """The parameter grid keeps every configuration the derivations single out."""

    def paddings(case: ConvCase) -> set[str]:
        padding = case.padding
        if isinstance(padding, str):
            return {padding}
        if isinstance(padding, tuple) and isinstance(padding[0], tuple):
            return {"asymmetric"}
        return {"symmetric"} if as_pair(padding) != (0, 0) else {"zero"}

    strides = {v for c in CASES for v in as_pair(c.stride)}
    dilations = {v for c in CASES for v in as_pair(c.dilation)}
    kinds = set().union(*(paddings(c) for c in CASES))
    assert {1, 2, 3} <= strides
    assert {1, 2, 3} <= dilations
    assert {"symmetric", "asymmetric", "same", "valid", "zero"} <= kinds
    assert any(c.groups == c.C == c.K > 1 for c in CASES), "depthwise"
    assert any(c.groups == c.C and c.K == 2 * c.C for c in CASES), "channel multiplier 2"
    assert any(1 < c.groups < c.C for c in CASES), "grouped, not depthwise"
    assert any((c.R, c.S) == (1, 1) for c in CASES), "1x1 kernel"
    assert any(c.y_shape[2:] == (1, 1) and c.padding == 0 for c in CASES), "kernel == input"
    assert any(c.y_shape[2:] == (1, 1) and c.padding != 0 for c in CASES), "kernel == x_pad"
    assert any(c.N == 1 for c in CASES), "batch 1"
    assert any(c.H != c.W and c.R != c.S for c in CASES), "non-square"
    assert any(as_pair(c.stride)[0] != as_pair(c.stride)[1] for c in CASES)
    assert any(as_pair(c.dilation)[0] != as_pair(c.dilation)[1] for c in CASES)
    assert any(c.remainders[0] > 0 for c in CASES), "remainder rows"
    assert any(c.remainders[1] > 0 for c in CASES), "remainder columns"
    assert any(min(c.remainders) > 0 for c in CASES), "remainder on both axes"
    assert len({p.values[0] for p in UNREAD}) >= 3, "remainder rows inside x, not the padding"
    assert sum(c.winograd_applies for c in CASES) >= 8, "winograd needs its own cases"
    depthwise = [c for c in CASES if c.depthwise_applies and c.C > 1]
    assert len(depthwise) >= 6, "depthwise needs its own cases"
    assert any(c.K > c.C for c in depthwise), "a channel multiplier"
    assert any(as_pair(c.stride) == (1, 1) and as_pair(c.dilation) != (1, 1) for c in depthwise)
    assert any(min(c.remainders) > 0 or max(c.remainders) > 0 for c in depthwise), "remainders"
    assert any(not c.bias for c in CASES) and any(c.bias for c in CASES)


def _unread_x(case: ConvCase) -> tuple[int, int]:
    """First row and column of x that no window reads (H, W when all are read)."""
    g = case.geom
    reach_h = g.stride[0] * (g.P - 1) + g.dilation[0] * (g.R - 1) + 1 - g.pads[0]
    reach_w = g.stride[1] * (g.Q - 1) + g.dilation[1] * (g.S - 1) + 1 - g.pads[2]
    return min(reach_h, g.H), min(reach_w, g.W)


UNREAD = [p for p in APPLICABLE if _unread_x(p.values[0]) != p.values[0].x_shape[2:]]


@pytest.mark.parametrize(("case", "algorithm"), UNREAD)
def test_remainder_rows_get_exactly_zero_input_grad(case: ConvCase, algorithm: str) -> None:
    """(S1) remainder: rows/columns of x past the last window are never read, so their
    gradient is exactly 0.0 for every algorithm, not rounding noise."""
    data = expected(case, "float64")
    _, cache = conv2d_forward(data["x"], data["w"], data["b"], algorithm=algorithm, **case.hyper)
    dx, _, _ = conv2d_backward(data["dy"], cache)
    row, col = _unread_x(case)
    assert not dx[:, :, row:].any()
    assert not dx[:, :, :, col:].any()


CHUNK_CASE = ConvCase("chunked_batch", 3, 2, 6, 5, 4, 3, 2, stride=(2, 1), padding=((1, 0), (0, 1)))


@pytest.mark.parametrize("images_per_chunk", [1, 2])
@pytest.mark.parametrize(
    "case", [CHUNK_CASE, *(c for c in CASES if c.N > 1)][:6], ids=lambda c: c.name
)
def test_im2col_batch_chunks_match_F1_B2_B3_reference(
    monkeypatch: pytest.MonkeyPatch, case: ConvCase, images_per_chunk: int
) -> None:
    """Past its workspace budget im2col works through the batch in chunks of images
    (3 images in chunks of 2 leave a last chunk of 1) and recomputes the columns."""
    from convprop.functional import conv2d_workspace

    g = case.geom
    per_image = g.C * g.R * g.S * g.P * g.Q * 8  # float64 columns of one image
    monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", images_per_chunk * per_image)
    data = expected(case, "float64")
    y, cache = conv2d_forward(data["x"], data["w"], data["b"], algorithm="im2col", **case.hyper)
    # the columns are kept for the weight gradient only when one chunk holds the batch
    chunked = images_per_chunk < case.N
    assert (cache.saved is None) == chunked
    dx, dw, _ = conv2d_backward(data["dy"], cache)
    assert_close(y, data["y"], "float64", "y (F1)")
    assert_close(dw, data["dw"], "float64", "dw (B2)")
    assert_close(dx, data["dx"], "float64", "dx (B3)")
    assert_close(conv2d_backward(data["dy"], cache, need_dx=False)[1], data["dw"], "float64")


@pytest.mark.parametrize("case", [c for c in CASES if c.winograd_applies][:3], ids=lambda c: c.name)
def test_passes_split_between_algorithms_match_reference(case: ConvCase) -> None:
    """ "auto" may give forward, input gradient and weight gradient to different
    algorithms; every combination agrees with (F1), (B3), (B2). The forward's saved work
    travels only to the weight pass of the same algorithm, as conv2d_forward arranges."""
    data = expected(case, "float64")
    names = ("direct", "im2col", "fft", "winograd")
    for forward_name, data_name, weight_name in itertools.product(names, repeat=3):
        _, cache = conv2d_forward(
            data["x"], data["w"], data["b"], algorithm=forward_name, **case.hyper
        )
        saved = cache.saved if weight_name == forward_name else None
        mixed = dataclasses.replace(
            cache, algorithms=(forward_name, data_name, weight_name), saved=saved
        )
        for need_dx in (True, False):
            dx, dw, _ = conv2d_backward(data["dy"], mixed, need_dx=need_dx)
            what = f"{forward_name}/{data_name}/{weight_name}"
            assert_close(dw, data["dw"], "float64", f"dw (B2) {what}")
            if need_dx:
                assert_close(dx, data["dx"], "float64", f"dx (B3) {what}")
            else:
                assert dx is None
