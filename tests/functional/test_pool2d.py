"""Max, average and adaptive average pooling: (PS1)-(PS3), (MP1)-(MP3), (AP1)-(AP3), (AA1)-(AA4).

Witnesses: the naive loops of reference_layers (forward and backward), central finite
differences, dot-product (adjoint) tests for the linear ops, hypothesis properties, the tie
rule, and PyTorch as an extra witness.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional.adaptive_pool2d import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
)
from convprop.functional.pool2d import (
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_forward,
)
from reference_layers import (
    POOL_CASES,
    PoolCase,
    adaptive_avg_pool2d_backward_ref,
    adaptive_avg_pool2d_ref,
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    max_pool2d_backward_ref,
    max_pool2d_ref,
    numeric_gradient,
    pool_output_size,
)

TOL = {"float64": 1e-12, "float32": 1e-5}


CASES = POOL_CASES
CASE_IDS = [case.name for case in CASES]

ADAPTIVE_CASES = [
    ((2, 3, 5, 7), (2, 3)),
    ((1, 2, 4, 4), (1, 1)),
    ((1, 1, 3, 5), (5, 2)),
    ((2, 2, 6, 6), (3, 3)),
    ((1, 2, 7, 4), (4, 4)),
    ((2, 1, 1, 1), (2, 3)),
]


def distinct_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values at least 0.01 apart, so no two cells tie and no max sits near a kink."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 0.3


def assert_close(actual: Any, expected: np.ndarray, dtype: str) -> None:
    actual = to_host(actual)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


# ------------------------------------------------------------------- reference agreement


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_max_pool2d_matches_MP1_MP3_reference(xp: ModuleType, case: PoolCase, dtype: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    y_ref, winner = max_pool2d_ref(x.astype(np.float64), *case.ref_args)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y, cache = max_pool2d_forward(xp.asarray(x), case.kernel, **case.kwargs)
    dx = max_pool2d_backward(xp.asarray(dy), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype)
    assert_close(dx, max_pool2d_backward_ref(dy.astype(np.float64), winner, x.shape), dtype)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_avg_pool2d_matches_AP2_AP3_reference(
    xp: ModuleType, case: PoolCase, dtype: str, count_include_pad: bool
) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    y_ref = avg_pool2d_ref(x.astype(np.float64), *case.ref_args, count_include_pad)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y, cache = avg_pool2d_forward(
        xp.asarray(x), case.kernel, **case.kwargs, count_include_pad=count_include_pad
    )
    dx = avg_pool2d_backward(xp.asarray(dy), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype)
    dx_ref = avg_pool2d_backward_ref(
        dy.astype(np.float64), x.shape, case.kernel, case.stride, case.padding, count_include_pad
    )
    assert_close(dx, dx_ref, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("x_shape", "out"), ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_matches_AA3_AA4_reference(
    xp: ModuleType, x_shape: tuple[int, int, int, int], out: tuple[int, int], dtype: str
) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(dtype)
    y_ref = adaptive_avg_pool2d_ref(x.astype(np.float64), out)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y, cache = adaptive_avg_pool2d_forward(xp.asarray(x), out)
    dx = adaptive_avg_pool2d_backward(xp.asarray(dy), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype)
    assert_close(dx, adaptive_avg_pool2d_backward_ref(dy.astype(np.float64), x_shape), dtype)


def test_one_shot_functions_equal_forward() -> None:
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 5))
    np.testing.assert_array_equal(max_pool2d(x, 3, stride=2, padding=1), max_pool2d_forward(
        x, 3, stride=2, padding=1)[0])  # fmt: skip
    np.testing.assert_array_equal(
        avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False),
        avg_pool2d_forward(x, 2, ceil_mode=True, count_include_pad=False)[0],
    )
    np.testing.assert_allclose(
        adaptive_avg_pool2d(x, 1), x.mean(axis=(2, 3), keepdims=True), atol=1e-15
    )


# -------------------------------------------------------------------- finite differences


@pytest.mark.parametrize("case", CASES[:8], ids=CASE_IDS[:8])
def test_max_pool2d_MP3_matches_finite_differences(
    case: PoolCase,
) -> None:
    x = distinct_input(case.x_shape, seed=5)
    y, cache = max_pool2d_forward(x, case.kernel, **case.kwargs)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    numeric = numeric_gradient(
        lambda v: float(np.sum(max_pool2d(v, case.kernel, **case.kwargs) * dy)), x
    )
    np.testing.assert_allclose(max_pool2d_backward(dy, cache), numeric, atol=1e-8)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", CASES[:8], ids=CASE_IDS[:8])
def test_avg_pool2d_AP3_matches_finite_differences(case: PoolCase, count_include_pad: bool) -> None:
    x = np.random.default_rng(7).standard_normal(case.x_shape)
    kwargs = {**case.kwargs, "count_include_pad": count_include_pad}
    y, cache = avg_pool2d_forward(x, case.kernel, **kwargs)
    dy = np.random.default_rng(8).standard_normal(y.shape)
    numeric = numeric_gradient(
        lambda v: float(np.sum(avg_pool2d(v, case.kernel, **kwargs) * dy)), x
    )
    np.testing.assert_allclose(avg_pool2d_backward(dy, cache), numeric, atol=1e-8)


@pytest.mark.parametrize(("x_shape", "out"), ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_AA4_matches_finite_differences(
    x_shape: tuple[int, int, int, int], out: tuple[int, int]
) -> None:
    x = np.random.default_rng(9).standard_normal(x_shape)
    y, cache = adaptive_avg_pool2d_forward(x, out)
    dy = np.random.default_rng(10).standard_normal(y.shape)
    numeric = numeric_gradient(lambda v: float(np.sum(adaptive_avg_pool2d(v, out) * dy)), x)
    np.testing.assert_allclose(adaptive_avg_pool2d_backward(dy, cache), numeric, atol=1e-8)


# ------------------------------------------------------------------------ adjoint tests


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_avg_pool2d_AP3_is_the_adjoint_of_AP2(case: PoolCase, count_include_pad: bool) -> None:
    rng = np.random.default_rng(11)
    u = rng.standard_normal(case.x_shape)
    Au, cache = avg_pool2d_forward(
        u, case.kernel, **case.kwargs, count_include_pad=count_include_pad
    )
    v = rng.standard_normal(Au.shape)
    lhs, rhs = np.vdot(Au, v), np.vdot(u, avg_pool2d_backward(v, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize(("x_shape", "out"), ADAPTIVE_CASES)
def test_adaptive_avg_pool2d_AA4_is_the_adjoint_of_AA3(
    x_shape: tuple[int, int, int, int], out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(12)
    u = rng.standard_normal(x_shape)
    Au, cache = adaptive_avg_pool2d_forward(u, out)
    v = rng.standard_normal(Au.shape)
    lhs, rhs = np.vdot(Au, v), np.vdot(u, adaptive_avg_pool2d_backward(v, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


# ---------------------------------------------------------------------------- properties


@st.composite
def pool_geometries(draw: st.DrawFn) -> dict[str, Any]:
    """Valid (x_shape, kernel, stride, padding, ceil_mode) with small sizes."""
    R, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad_h, pad_w = draw(st.integers(0, R // 2)), draw(st.integers(0, S // 2))
    H = draw(st.integers(max(R - 2 * pad_h, 1), 8))
    W = draw(st.integers(max(S - 2 * pad_w, 1), 8))
    return {
        "x_shape": (draw(st.integers(1, 2)), draw(st.integers(1, 2)), H, W),
        "kernel": (R, S),
        "stride": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "padding": (pad_h, pad_w),
        "ceil_mode": draw(st.booleans()),
    }


@settings(max_examples=30, deadline=None)
@given(geometry=pool_geometries(), seed=st.integers(0, 2**16))
def test_pool_output_shape_follows_PS1_PS2(geometry: dict[str, Any], seed: int) -> None:
    g = geometry
    x = np.random.default_rng(seed).standard_normal(g["x_shape"])
    kwargs = {"stride": g["stride"], "padding": g["padding"], "ceil_mode": g["ceil_mode"]}
    P = pool_output_size(
        g["x_shape"][2], g["kernel"][0], g["stride"][0], g["padding"][0], g["ceil_mode"]
    )
    Q = pool_output_size(
        g["x_shape"][3], g["kernel"][1], g["stride"][1], g["padding"][1], g["ceil_mode"]
    )
    expected = (*g["x_shape"][:2], P, Q)
    assert max_pool2d(x, g["kernel"], **kwargs).shape == expected
    assert avg_pool2d(x, g["kernel"], **kwargs).shape == expected
    assert avg_pool2d(x, g["kernel"], **kwargs, count_include_pad=False).shape == expected


@settings(max_examples=30, deadline=None)
@given(geometry=pool_geometries(), seed=st.integers(0, 2**16))
def test_max_pool2d_backward_sends_each_dy_to_one_input(
    geometry: dict[str, Any], seed: int
) -> None:
    g = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x_shape"])
    kwargs = {"stride": g["stride"], "padding": g["padding"], "ceil_mode": g["ceil_mode"]}
    y, cache = max_pool2d_forward(x, g["kernel"], **kwargs)
    dy = rng.standard_normal(y.shape)
    assert np.isclose(max_pool2d_backward(dy, cache).sum(), dy.sum(), rtol=0, atol=1e-12)
    for index in np.ndindex(y.shape):  # (MP3) one-hot dy -> one-hot dx holding y's value
        one_hot = np.zeros_like(y)
        one_hot[index] = 1.0
        dx = max_pool2d_backward(one_hot, cache)
        assert np.count_nonzero(dx) == 1
        assert x[np.nonzero(dx)] == y[index]


@settings(max_examples=30, deadline=None)
@given(geometry=pool_geometries(), seed=st.integers(0, 2**16))
def test_avg_pool2d_without_padded_cells_conserves_total_gradient(
    geometry: dict[str, Any], seed: int
) -> None:
    g = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x_shape"])
    kwargs = {"stride": g["stride"], "padding": g["padding"], "ceil_mode": g["ceil_mode"]}
    y, cache = avg_pool2d_forward(x, g["kernel"], **kwargs, count_include_pad=False)
    dy = rng.standard_normal(y.shape)
    assert np.isclose(avg_pool2d_backward(dy, cache).sum(), dy.sum(), rtol=0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    R=st.integers(1, 3), S=st.integers(1, 3), P=st.integers(1, 3), Q=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_avg_pool2d_tiling_windows_conserve_total_gradient(
    R: int, S: int, P: int, Q: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, R * P, S * Q))
    y, cache = avg_pool2d_forward(x, (R, S))  # stride = kernel, no padding: exact tiling
    dy = rng.standard_normal(y.shape)
    assert np.isclose(avg_pool2d_backward(dy, cache).sum(), dy.sum(), rtol=0, atol=1e-12)


def test_avg_pool2d_counting_padded_cells_loses_their_share() -> None:
    x = np.random.default_rng(13).standard_normal((1, 1, 4, 4))
    y, cache = avg_pool2d_forward(x, 3, stride=1, padding=1)
    dy = np.random.default_rng(14).standard_normal(y.shape)
    assert not np.isclose(avg_pool2d_backward(dy, cache).sum(), dy.sum())


@settings(max_examples=30, deadline=None)
@given(
    H=st.integers(1, 9), W=st.integers(1, 9), P=st.integers(1, 5), Q=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_adaptive_avg_pool2d_conserves_total_gradient(
    H: int, W: int, P: int, Q: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2, H, W))
    y, cache = adaptive_avg_pool2d_forward(x, (P, Q))
    assert y.shape == (1, 2, P, Q)
    dy = rng.standard_normal(y.shape)
    assert np.isclose(adaptive_avg_pool2d_backward(dy, cache).sum(), dy.sum(), rtol=0, atol=1e-12)


def test_adaptive_avg_pool2d_equals_avg_pool2d_when_bins_tile() -> None:
    x = np.random.default_rng(15).standard_normal((2, 3, 6, 8))
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (3, 2)), avg_pool2d(x, (2, 4)), atol=1e-14)


# ------------------------------------------------------------------------ ties and kinks


def test_max_pool2d_MP2_ties_go_to_the_first_maximum() -> None:
    x = np.array([[[[1.0, 3.0, 0.0],
                    [3.0, 2.0, 3.0],
                    [0.0, 3.0, 3.0]]]])  # fmt: skip
    y, cache = max_pool2d_forward(x, 2, stride=1)
    np.testing.assert_array_equal(y[0, 0], [[3.0, 3.0], [3.0, 3.0]])
    # window (0,0): (0,1) before (1,0); (0,1): (0,1) before (1,2); (1,0): (1,0) before (2,1);
    # (1,1): (1,2) before (2,1) and (2,2).
    np.testing.assert_array_equal(cache.argmax[0, 0], [[1, 0], [0, 1]])
    dx = max_pool2d_backward(np.array([[[[1.0, 10.0], [100.0, 1000.0]]]]), cache)
    np.testing.assert_array_equal(
        dx[0, 0], [[0.0, 11.0, 0.0], [100.0, 0.0, 1000.0], [0.0, 0.0, 0.0]]
    )


def test_max_pool2d_constant_input_sends_gradient_to_each_window_first_cell() -> None:
    x = np.full((1, 1, 4, 4), 2.0)
    _, cache = max_pool2d_forward(x, 2)
    assert not cache.argmax.any()
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = np.zeros((4, 4))
    expected[::2, ::2] = dy[0, 0]
    np.testing.assert_array_equal(max_pool2d_backward(dy, cache)[0, 0], expected)


def test_max_pool2d_padding_never_wins_even_against_minus_infinity() -> None:
    x = np.full((1, 1, 3, 3), -np.inf)
    y, cache = max_pool2d_forward(x, 3, stride=2, padding=1)
    assert np.all(y == -np.inf)
    dx = max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    # each window points at its first real cell: (0,0), (0,1), (1,0), (1,1) of x
    np.testing.assert_array_equal(dx[0, 0], [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])


# --------------------------------------------------------------------- PyTorch agreement


def torch_flat_indices(cache: Any, case: PoolCase) -> np.ndarray:
    """Our tap arg-max (MP2) as PyTorch's flat index h*W + w into each x[n, c]."""
    (_, _, _, W), (_, S) = case.x_shape, case.kernel
    P, Q = cache.argmax.shape[2:]
    r, s = np.divmod(cache.argmax, S)
    h = np.arange(P)[:, None] * case.stride[0] - case.padding[0] + r
    w = np.arange(Q)[None, :] * case.stride[1] - case.padding[1] + s
    return np.asarray(h * W + w)


@pytest.mark.parametrize("values", ["normal", "ties", "nan-and-inf"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_max_pool2d_agrees_with_torch(case: PoolCase, values: str) -> None:
    rng = np.random.default_rng(16)
    if values == "normal":
        x = rng.standard_normal(case.x_shape)
    else:
        x = rng.integers(0, 3, case.x_shape).astype(np.float64)  # many ties
    if values == "nan-and-inf":
        x[rng.random(case.x_shape) < 0.2] = -np.inf
        x[rng.random(case.x_shape) < 0.1] = np.nan
    x_t = torch.tensor(x, requires_grad=True)
    y_t, indices_t = torch.nn.functional.max_pool2d(
        x_t, case.kernel, case.stride, case.padding, ceil_mode=case.ceil_mode, return_indices=True
    )
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = max_pool2d_forward(x, case.kernel, **case.kwargs)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(torch_flat_indices(cache, case), indices_t.numpy())
    np.testing.assert_allclose(max_pool2d_backward(dy, cache), x_t.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_avg_pool2d_agrees_with_torch(case: PoolCase, count_include_pad: bool) -> None:
    rng = np.random.default_rng(17)
    x = rng.standard_normal(case.x_shape)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.avg_pool2d(
        x_t, case.kernel, case.stride, case.padding, ceil_mode=case.ceil_mode,
        count_include_pad=count_include_pad,
    )  # fmt: skip
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = avg_pool2d_forward(
        x, case.kernel, **case.kwargs, count_include_pad=count_include_pad
    )
    np.testing.assert_allclose(y, y_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(avg_pool2d_backward(dy, cache), x_t.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize(("x_shape", "out"), [*ADAPTIVE_CASES, ((2, 3, 13, 11), (5, 7))])
def test_adaptive_avg_pool2d_agrees_with_torch(
    x_shape: tuple[int, int, int, int], out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(18)
    x = rng.standard_normal(x_shape)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.adaptive_avg_pool2d(x_t, out)
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = adaptive_avg_pool2d_forward(x, out)
    np.testing.assert_allclose(y, y_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(
        adaptive_avg_pool2d_backward(dy, cache), x_t.grad.numpy(), atol=1e-12
    )


# ----------------------------------------------------------------------------- contract


def _run(op: str, x: np.ndarray) -> tuple[Any, Any, Any]:
    """(y, cache, backward) of one op on x."""
    if op == "max":
        return (*max_pool2d_forward(x, 3, stride=2, padding=1, ceil_mode=True), max_pool2d_backward)
    if op == "avg":
        return (*avg_pool2d_forward(x, 3, stride=1, padding=1), avg_pool2d_backward)
    return (*adaptive_avg_pool2d_forward(x, (2, 3)), adaptive_avg_pool2d_backward)


OPS = ["max", "avg", "adaptive"]


@pytest.mark.parametrize("op", OPS)
def test_pooling_preserves_float32_and_shapes(op: str) -> None:
    x = np.random.default_rng(19).standard_normal((2, 3, 6, 5)).astype(np.float32)
    y, cache, backward = _run(op, x)
    dy = np.random.default_rng(20).standard_normal(y.shape).astype(np.float32)
    dx = backward(dy, cache)
    assert y.dtype == dx.dtype == np.float32
    assert dx.shape == x.shape
    assert dx.flags.c_contiguous


@pytest.mark.parametrize("op", OPS)
def test_pooling_mutates_nothing_and_backward_twice_is_identical(op: str) -> None:
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 6, 5))
    x_before = x.copy()
    y, cache, backward = _run(op, x)
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    cache_before = {
        name: getattr(cache, name).copy()
        for name in cache.__slots__
        if isinstance(getattr(cache, name), np.ndarray)
    }
    dx1 = backward(dy, cache)
    dx2 = backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    assert dx1 is not dx2 and not np.shares_memory(dx1, dy)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)
    for name, value in cache_before.items():
        np.testing.assert_array_equal(getattr(cache, name), value)


@pytest.mark.parametrize("op", OPS)
def test_pooling_accepts_non_contiguous_input(op: str) -> None:
    rng = np.random.default_rng(22)
    base = rng.standard_normal((2, 5, 12, 6))
    x = base[:, ::2, ::2, :].transpose(0, 1, 3, 2)  # (2, 3, 6, 6), strided and transposed
    y, cache, backward = _run(op, x)
    y_c, cache_c, _ = _run(op, np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, y_c)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(backward(dy, cache), backward(dy, cache_c))


# -------------------------------------------------------------------------------- errors

X = np.zeros((1, 2, 5, 5))
FORWARDS = [pytest.param(max_pool2d_forward, id="max"), pytest.param(avg_pool2d_forward, id="avg")]


@pytest.mark.parametrize("forward", FORWARDS)
@pytest.mark.parametrize(
    ("x", "kwargs", "error", "match"),
    [
        ([[1.0]], {}, DTypeError, r"x must be a numpy or cupy array; .*got list"),
        (X.astype(np.int64), {}, DTypeError, r"x has dtype int64; expected float32 or float64"),
        (np.zeros((2, 5, 5)), {}, ShapeError, r"x must be 4-D \(N, C, H, W\); .*got 3 "),
        (np.zeros((1, 0, 5, 5)), {}, ShapeError,
         r"C, H, W must be >= 1 \(only N may be 0\).*\(1, 0, 5, 5\)"),
        (X, {"kernel_size": 0}, ParameterError, r"kernel_size must be >= 1"),
        (X, {"kernel_size": 2.0}, ParameterError, r"kernel_size must be an int or a pair"),
        (X, {"stride": (1, 0)}, ParameterError, r"stride must be >= 1; .*got \(1, 0\)"),
        (X, {"padding": -1}, ParameterError, r"padding must be >= 0"),
        (X, {"kernel_size": 3, "padding": 2}, ParameterError,
         r"padding 2 is more than half the window height R=3; expected padding <= 1, got 2"),
        (X, {"kernel_size": (3, 2), "padding": (1, 2)}, ParameterError,
         r"padding 2 is more than half the window width S=2; expected padding <= 1, got 2"),
        (np.zeros((1, 1, 2, 9)), {"kernel_size": 3}, ShapeError,
         r"padded input height 2 is smaller than the window height 3; expected an output size "
         r">= 1, got 0 \(H=2, padding=0, R=3; x.shape=\(1, 1, 2, 9\)"),
        (np.zeros((1, 1, 9, 1)), {"kernel_size": (1, 4), "padding": (0, 1)}, ShapeError,
         r"padded input width 3 is smaller than the window width 4; .*\(W=1, padding=1, S=4"),
        (X, {"ceil_mode": 1}, ParameterError, r"ceil_mode must be a bool; expected True or False"),
    ],
)  # fmt: skip
def test_max_and_avg_pool2d_reject_bad_input(
    forward: Any, x: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    kwargs = {"kernel_size": 2, **kwargs}
    name = "max_pool2d" if forward is max_pool2d_forward else "avg_pool2d"
    with pytest.raises(error, match=f"^{name}: {match}"):
        forward(x, **kwargs)


def test_avg_pool2d_rejects_non_bool_count_include_pad() -> None:
    with pytest.raises(ParameterError, match=r"avg_pool2d: count_include_pad must be a bool"):
        avg_pool2d_forward(X, 2, count_include_pad="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    ("dy_change", "error", "match"),
    [
        ("shape", ShapeError, r"dy.shape=\(2, 3, 1, 1\) does not match the forward output"),
        ("dtype", DTypeError, r"dy has dtype float32; expected the forward dtype float64"),
        ("list", DTypeError, r"dy must be a numpy or cupy array"),
    ],
)
def test_pooling_backward_rejects_bad_dy(
    op: str, dy_change: str, error: type[Exception], match: str
) -> None:
    x = np.zeros((2, 3, 6, 5))
    y, cache, backward = _run(op, x)
    dy: Any = {
        "shape": np.zeros((2, 3, 1, 1)),
        "dtype": np.zeros(y.shape, dtype=np.float32),
        "list": y.tolist(),
    }[dy_change]
    name = {"max": "max_pool2d", "avg": "avg_pool2d", "adaptive": "adaptive_avg_pool2d"}[op]
    with pytest.raises(error, match=f"^{name}_backward: {match}"):
        backward(dy, cache)


@pytest.mark.parametrize(
    ("x", "output_size", "error", "match"),
    [
        ((1.0,), 1, DTypeError, r"x must be a numpy or cupy array"),
        (X.astype(np.float16), 1, DTypeError, r"x has dtype float16; expected float32 or float64"),
        (np.zeros((5, 5)), 1, ShapeError, r"x must be 4-D \(N, C, H, W\) and non-empty; .*got 2"),
        (np.zeros((1, 2, 0, 5)), 1, ShapeError, r".*non-empty.*x.shape=\(1, 2, 0, 5\)"),
        (X, 0, ParameterError, r"output_size must be >= 1; expected values >= 1, got 0"),
        (X, (1, 2, 3), ParameterError, r"output_size must be an int or a pair of ints"),
    ],
)
def test_adaptive_avg_pool2d_rejects_bad_input(
    x: Any, output_size: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^adaptive_avg_pool2d: {match}"):
        adaptive_avg_pool2d_forward(x, output_size)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape", [(2, 3, 8, 8), (1, 2, 7, 5), (3, 1, 1, 6)])
def test_global_adaptive_avg_pool2d_backward_is_the_matrix_products_bits(
    x_shape: tuple[int, int, int, int], dtype: str
) -> None:
    """output_size 1: (AA4) written per cell, (dy·M_h[0, h])·M_w[0, w], gives the bits of the
    products M_h^T @ dy @ M_w it stands for, and a contiguous dx."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(dtype)
    _, cache = adaptive_avg_pool2d_forward(x, 1)
    dy = rng.standard_normal((x_shape[0], x_shape[1], 1, 1)).astype(dtype)
    dx = adaptive_avg_pool2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, cache.M_h.T @ dy @ cache.M_w)
    assert dx.flags.c_contiguous and dx.dtype == np.dtype(dtype) and dx.shape == x_shape
