"""Geometry far beyond the input costs what the input costs (CR1, CR2), and geometry that
overflows is refused with the library's own error before anything is allocated.

Peak memory is measured with tracemalloc (NumPy reports its buffers to it), never time.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
import torch

from convprop.errors import ParameterError, ShapeError
from convprop.functional import conv2d_crop
from convprop.functional.conv2d import conv2d_backward, conv2d_forward
from reference import conv2d_db_ref, conv2d_dw_ref, conv2d_dx_ref, conv2d_ref

# (x shape, w shape, stride, padding, dilation): a stride of 10^7 (the case), huge
# paddings with huge strides, a window reading one corner, every window in padding but one
GEOMETRIES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), 10**7, 0, 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 2**31, 1, 1),
    ((1, 2, 8, 8), (3, 2, 3, 3), 2**20, 2**20, 1),
    ((1, 2, 9, 7), (3, 2, 3, 2), (30000, 7), (29999, 1), 1),
    ((1, 2, 6, 6), (2, 2, 3, 3), 500, 400, 2),
    ((2, 2, 5, 5), (2, 1, 2, 2), 1000, 1000, 1),
]


def _run(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray | None, **kwargs: Any
         ) -> tuple[np.ndarray, ...]:  # fmt: skip
    groups = x.shape[1] // w.shape[1]
    y, cache = conv2d_forward(x, w, b, groups=groups, **kwargs)
    if dy is None:
        return (y,)
    dx, dw, db = conv2d_backward(dy, cache)
    assert dx is not None and db is not None
    return y, dx, dw, db


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"s{g[2]}p{g[3]}d{g[4]}")
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
def test_far_geometry_matches_pytorch_CR1_CR2(geometry: tuple, algorithm: str) -> None:
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    y = _run(x, w, b, None, algorithm=algorithm, **kwargs)[0]
    dy = rng.standard_normal(y.shape)
    ours = _run(x, w, b, dy, algorithm=algorithm, **kwargs)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    yt = torch.nn.functional.conv2d(
        xt, wt, bt, pair(stride), pair(padding), pair(dilation), x_shape[1] // w_shape[1]
    )
    yt.backward(torch.tensor(dy))
    theirs = (yt.detach().numpy(), xt.grad, wt.grad, bt.grad)
    for a, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, np.asarray(t), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"s{g[2]}p{g[3]}d{g[4]}")
def test_far_geometry_memory_is_bounded_by_input_and_output(geometry: tuple) -> None:
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    y = _run(x, w, b, None, **kwargs)[0]  # warm: choices and plans are made once
    dy = rng.standard_normal(y.shape)
    for algorithm in ("auto", "direct", "im2col"):
        _run(x, w, b, dy, algorithm=algorithm, **kwargs)
        tracemalloc.start()
        try:
            _run(x, w, b, dy, algorithm=algorithm, **kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        arrays = x.nbytes + w.nbytes + y.nbytes
        assert peak < 64 * arrays + 256 * 1024, (algorithm, peak, arrays)


def test_ordinary_layers_are_not_reduced() -> None:
    from convprop._shapes import conv_geometry

    for x_shape, w_shape, stride, padding in [
        ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1),
        ((8, 3, 224, 224), (64, 3, 7, 7), 2, 3),
        ((8, 64, 56, 56), (128, 64, 1, 1), 2, 0),
    ]:
        geom = conv_geometry("conv2d", x_shape, w_shape, None, stride=stride, padding=padding,
                             dilation=1, groups=1)  # fmt: skip
        assert conv2d_crop.crop(geom) is None


def test_every_window_in_padding_gives_the_bias() -> None:
    """Windows 3000 apart, padding 1500 around a 4x4 input: no window meets x."""
    x = np.ones((1, 1, 4, 4))
    w = np.ones((1, 1, 2, 2))
    b = np.array([0.5])
    y, cache = conv2d_forward(x, w, b, stride=3000, padding=1500)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 0.5))
    dx, dw, db = conv2d_backward(np.ones_like(y), cache)
    assert dx is not None and db is not None
    assert not dx.any() and not dw.any() and db[0] == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(padding=2**62), ParameterError, "padded input along the height"),
        (dict(dilation=2**60, padding=2**61), ParameterError, "padded input along the height"),
        (dict(stride=2**60), ParameterError, "stride along the height"),
        (dict(padding=2**40), ShapeError, "the output (N, K, P, Q)"),
        (dict(dilation=2**40), ShapeError, "smaller than the dilated kernel"),
    ],
)
def test_overflowing_geometry_is_refused(kwargs: dict, error: type, message: str) -> None:
    x = np.ones((1, 2, 8, 8))
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(error, match=r"^conv2d: ") as raised:
        conv2d_forward(x, w, **kwargs)
    assert message in str(raised.value)
    assert "expected" in str(raised.value) and "got" in str(raised.value)


# ------------------------------------------- dilation and padding far beyond the input (CR3)

NAMED = ("direct", "im2col", "fft", "winograd", "winograd4", "depthwise")


def _accepts(algorithm: str, x_shape: tuple, w_shape: tuple, stride: object, padding: object,
             dilation: object) -> bool:  # fmt: skip
    """Whether a named algorithm computes the full problem (Winograd: 3x3, stride 1;
    depthwise: one channel per group)."""
    from convprop._shapes import conv_geometry
    from convprop.functional.conv2d import ALGORITHMS

    geom = conv_geometry("conv2d", x_shape, w_shape, None, stride=stride, padding=padding,
                         dilation=dilation, groups=x_shape[1] // w_shape[1])  # fmt: skip
    return ALGORITHMS[algorithm].decline(geom) is None


# (x shape, w shape, stride, padding, dilation), each small enough for tests/reference.py's
# loops over x_pad, large enough to be reduced: one live tap (a 1x1 kernel over x), a run of
# taps along one axis only, and windows meeting x through opposite taps (four pieces)
DILATED = [
    ((1, 2, 6, 6), (2, 2, 3, 3), 1, 150, 150),
    ((2, 2, 8, 5), (2, 2, 3, 3), 1, (5000, 2), (5000, 2)),
    ((1, 2, 8, 8), (2, 2, 3, 3), 200, 200, 100),
    ((2, 3, 5, 7), (3, 1, 3, 3), 1, 152, 150),
]


@pytest.mark.parametrize(
    ("geometry", "algorithm"),
    [
        (geometry, algorithm)
        for geometry in DILATED
        for algorithm in ("auto", *NAMED)
        if algorithm == "auto" or _accepts(algorithm, *geometry)
    ],
    ids=lambda v: v if isinstance(v, str) else f"s{v[2]}p{v[3]}d{v[4]}",
)
def test_far_dilation_equals_the_direct_sums_CR3(geometry: tuple, algorithm: str) -> None:
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(9)
    x, w, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    groups = x_shape[1] // w_shape[1]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    assert conv2d_crop.crop(_geometry(x_shape, w_shape, **kwargs)) is not None
    y = _run(x, w, b, None, algorithm=algorithm, **kwargs)[0]
    dy = rng.standard_normal(y.shape)
    ours = _run(x, w, b, dy, algorithm=algorithm, **kwargs)
    expected = (
        conv2d_ref(x, w, b, groups=groups, **kwargs),
        conv2d_dx_ref(dy, w, x_shape, groups=groups, **kwargs),
        conv2d_dw_ref(x, dy, w_shape, groups=groups, **kwargs),
        conv2d_db_ref(dy),
    )
    tolerance = 1e-6 if algorithm == "winograd4" else 1e-10
    for a, e in zip(ours, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)


def _geometry(x_shape: tuple, w_shape: tuple, **kwargs: Any) -> Any:
    from convprop._shapes import conv_geometry

    return conv_geometry("conv2d", x_shape, w_shape, None, groups=x_shape[1] // w_shape[1],
                         **kwargs)  # fmt: skip


# The case and its relatives at 10^6: a padded plane of 4·10^12 cells
HUGE_DILATION = [
    ((1, 1, 8, 8), (1, 1, 3, 3), 1, 10**6, 10**6),
    ((2, 2, 8, 5), (2, 2, 3, 3), 1, (10**6, 2), (10**6, 2)),
    ((1, 2, 8, 8), (2, 2, 3, 3), 2 * 10**6, 2 * 10**6, 10**6),
    ((2, 3, 5, 7), (3, 1, 3, 3), 1, 10**6 + 2, 10**6),
]


@pytest.mark.parametrize("geometry", HUGE_DILATION, ids=lambda g: f"s{g[2]}p{g[3]}d{g[4]}")
def test_huge_dilation_and_padding_cost_what_x_costs_CR3(geometry: tuple) -> None:
    """Forward and backward of every algorithm that accepts the case: equal to PyTorch, and
    a tracemalloc peak bounded by the arrays (the padded plane would be 32 TB)."""
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(10)
    x, w, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    yt = torch.nn.functional.conv2d(
        xt, wt, bt, pair(stride), pair(padding), pair(dilation), x_shape[1] // w_shape[1]
    )
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    theirs = (yt.detach().numpy(), xt.grad, wt.grad, bt.grad)
    arrays = x.nbytes + w.nbytes + dy.nbytes
    for algorithm in ("auto", *NAMED):
        if algorithm != "auto" and not _accepts(algorithm, *geometry):
            continue
        ours = _run(x, w, b, dy, algorithm=algorithm, **kwargs)  # warm: choices and plans
        tolerance = 1e-6 if algorithm == "winograd4" else 1e-10
        for a, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, np.asarray(t), rtol=tolerance, atol=tolerance)
        tracemalloc.start()
        try:
            _run(x, w, b, dy, algorithm=algorithm, **kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * arrays + 256 * 1024, (algorithm, peak, arrays)


def test_one_live_tap_is_a_1x1_convolution_CR3() -> None:
    """Dilation 10^6, padding 10^6 on 8x8, 3x3 kernel: rows p - 10^6 + r·10^6 meet x only for
    r = 1, so y = b + w[:, :, 1, 1] · x (8x8 out), dw is zero off the centre tap."""
    rng = np.random.default_rng(11)
    x, w, b = (
        rng.standard_normal((2, 3, 8, 8)),
        rng.standard_normal((4, 3, 3, 3)),
        rng.standard_normal(4),
    )
    y, cache = conv2d_forward(x, w, b, padding=10**6, dilation=10**6)
    centre = w[:, :, 1, 1]  # (K, C)
    np.testing.assert_allclose(
        y, np.einsum("kc,nchw->nkhw", centre, x) + b[:, None, None], rtol=1e-12
    )
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    assert dx is not None and db is not None
    np.testing.assert_allclose(dx, np.einsum("kc,nkhw->nchw", centre, dy), rtol=1e-12)
    expected_dw = np.zeros_like(w)
    expected_dw[:, :, 1, 1] = np.einsum("nkhw,nchw->kc", dy, x)
    np.testing.assert_allclose(dw, expected_dw, rtol=1e-12, atol=1e-14)
    reduced = cache.crop[0]
    assert (
        [(a.r_lo, a.r_hi) for a in reduced.rows]
        == [(1, 1)]
        == [(a.r_lo, a.r_hi) for a in reduced.cols]
    )
    assert [(a.span, a.pad_lo, a.pad_hi) for a in reduced.rows] == [(8, 0, 0)]


def test_windows_meeting_x_through_opposite_taps_are_separate_pieces_CR3() -> None:
    """Stride 2·10^6, dilation 10^6, padding 2·10^6, 3 taps: window 0 reads x through tap 2,
    window 1 through tap 0; one run over both would read 4·10^6 rows, two runs read one each."""
    runs = conv2d_crop.axis_runs(8, 2 * 10**6, 3, 2 * 10**6, 10**6, 2)
    assert [(a.r_lo, a.r_hi, a.p_lo, a.p_hi, a.x_lo, a.x_hi, a.span) for a in runs] == [
        (0, 0, 1, 1, 0, 1, 1),
        (2, 2, 0, 0, 0, 1, 1),
    ]
    # an ordinary geometry: every tap live, one run over the padded input as it is
    (run,) = conv2d_crop.axis_runs(8, 1, 3, 1, 1, 8)
    assert (run.r_lo, run.r_hi, run.p_lo, run.p_hi, run.pad_lo, run.pad_hi) == (0, 2, 0, 7, 1, 1)
