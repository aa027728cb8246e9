"""Linear layer: (L1) forward, (L2) dw, (L3) dx, (L4) db.

Witnesses: the naive loops of reference_layers, central finite differences, dot-product
tests (linear in x and in w), and PyTorch's linear with autograd as an extra witness.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from convprop.backend import to_host
from convprop.errors import DTypeError, ShapeError
from convprop.functional.linear import linear, linear_backward, linear_forward
from reference_layers import linear_backward_ref, linear_ref, numeric_gradient

TOL = {"float64": 1e-12, "float32": 1e-5}
SHAPES = [(1, 1, 1), (2, 3, 4), (5, 7, 3), (4, 16, 10)]  # (N, C, K)
SHAPE_IDS = [f"N{n}-C{c}-K{k}" for n, c, k in SHAPES]


def random_inputs(N: int, C: int, K: int, dtype: str, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x, w, b, dy = (rng.standard_normal(shape) for shape in ((N, C), (K, C), (K,), (N, K)))
    return tuple(a.astype(dtype) for a in (x, w, b, dy))


def assert_close(actual: Any, expected: np.ndarray, dtype: str) -> None:
    actual = to_host(actual)
    assert actual.shape == expected.shape and actual.dtype == np.dtype(dtype)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_linear_matches_L1_to_L4_reference(
    xp: ModuleType, shape: tuple[int, int, int], dtype: str, with_bias: bool
) -> None:
    x, w, b, dy = random_inputs(*shape, dtype=dtype, seed=1)
    bias = b if with_bias else None
    y, cache = linear_forward(xp.asarray(x), xp.asarray(w), None if bias is None else xp.asarray(b))
    dx, dw, db = linear_backward(xp.asarray(dy), cache)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    assert_close(y, linear_ref(x64, w64, None if bias is None else b.astype(np.float64)), dtype)
    dx_ref, dw_ref, db_ref = linear_backward_ref(dy64, x64, w64)
    assert_close(dx, dx_ref, dtype)
    assert_close(dw, dw_ref, dtype)
    if with_bias:
        assert_close(db, db_ref, dtype)
    else:
        assert db is None


def test_linear_need_dx_false_skips_only_dx() -> None:
    x, w, b, dy = random_inputs(3, 4, 2, dtype="float64", seed=2)
    _, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dy, cache, need_dx=False)
    full = linear_backward(dy, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])


def test_linear_alone_equals_forward_pair() -> None:
    x, w, b, _ = random_inputs(3, 4, 2, dtype="float64", seed=3)
    np.testing.assert_array_equal(linear(x, w, b), linear_forward(x, w, b)[0])
    np.testing.assert_array_equal(linear(x, w), linear_forward(x, w)[0])


@pytest.mark.parametrize("shape", SHAPES[:3], ids=SHAPE_IDS[:3])
def test_linear_gradients_match_finite_differences(shape: tuple[int, int, int]) -> None:
    x, w, b, dy = random_inputs(*shape, dtype="float64", seed=4)
    _, cache = linear_forward(x, w, b)
    dx, dw, db = linear_backward(dy, cache)

    def loss(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
        return float(np.sum(linear(x, w, b) * dy))

    np.testing.assert_allclose(dx, numeric_gradient(lambda v: loss(v, w, b), x), atol=1e-8)
    np.testing.assert_allclose(dw, numeric_gradient(lambda v: loss(x, v, b), w), atol=1e-8)
    np.testing.assert_allclose(db, numeric_gradient(lambda v: loss(x, w, v), b), atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_linear_L3_and_L2_are_adjoints(shape: tuple[int, int, int]) -> None:
    """<x wᵀ, v> = <x, v w> (dx, L3) and = <w, vᵀ x> (dw, L2), for the bias-free map."""
    rng = np.random.default_rng(5)
    N, C, K = shape
    x, w, v = rng.standard_normal((N, C)), rng.standard_normal((K, C)), rng.standard_normal((N, K))
    y, cache = linear_forward(x, w)
    dx, dw, _ = linear_backward(v, cache)
    lhs = np.vdot(y, v)
    assert abs(lhs - np.vdot(x, dx)) <= 1e-12 * max(1.0, abs(lhs))
    assert abs(lhs - np.vdot(w, dw)) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_linear_agrees_with_torch(shape: tuple[int, int, int], with_bias: bool) -> None:
    x, w, b, dy = random_inputs(*shape, dtype="float64", seed=6)
    x_t, w_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y_t = torch.nn.functional.linear(x_t, w_t, b_t if with_bias else None)
    y_t.backward(torch.tensor(dy))
    y, cache = linear_forward(x, w, b if with_bias else None)
    dx, dw, db = linear_backward(dy, cache)
    np.testing.assert_allclose(y, y_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dw, w_t.grad.numpy(), atol=1e-12)
    if with_bias:
        np.testing.assert_allclose(db, b_t.grad.numpy(), atol=1e-12)


def test_linear_preserves_float32_returns_fresh_arrays_and_mutates_nothing() -> None:
    x, w, b, dy = random_inputs(3, 5, 4, dtype="float32", seed=7)
    before = [a.copy() for a in (x, w, b, dy)]
    y, cache = linear_forward(x, w, b)
    first = linear_backward(dy, cache)
    second = linear_backward(dy, cache)
    assert y.dtype == np.float32
    for grad, again, source in zip(first, second, (x, w, b), strict=True):
        assert grad.dtype == np.float32 and grad.shape == source.shape
        np.testing.assert_array_equal(grad, again)
        assert grad is not again and grad.flags.c_contiguous
        assert not any(np.shares_memory(grad, a) for a in (x, w, b, dy))
    for a, saved in zip((x, w, b, dy), before, strict=True):
        np.testing.assert_array_equal(a, saved)


def test_linear_accepts_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 4))[::2]  # (3, 4), strided rows
    w = rng.standard_normal((4, 5)).T  # (5, 4), transposed
    dy = rng.standard_normal((3, 5))
    y, cache = linear_forward(x, w)
    y_c, cache_c = linear_forward(np.ascontiguousarray(x), np.ascontiguousarray(w))
    np.testing.assert_allclose(y, y_c, atol=1e-14)
    for grad, grad_c in zip(linear_backward(dy, cache), linear_backward(dy, cache_c), strict=True):
        if grad is None:
            assert grad_c is None
        else:
            np.testing.assert_allclose(grad, grad_c, atol=1e-14)


X, W, B = np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(4)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([1.0], W, None), DTypeError, r"x must be a numpy or cupy array; .*got list"),
        ((X, W, (0.0,)), DTypeError, r"b must be a numpy or cupy array; .*got tuple"),
        ((X.astype(np.int32), W, None), DTypeError, r"x has dtype int32; expected float32 or"),
        ((X, W.astype(np.float32), None), DTypeError,
         r"arrays must share one dtype; expected all float32 or all float64, got x: float64, "
         r"w: float32"),
        ((np.zeros(()), W, None), ShapeError,
         r"x must be \(\*, C\); expected at least 1 dimension, got 0 \(x.shape=\(\), "
         r"w.shape=\(4, 3\)\)"),
        ((np.zeros((2, 3, 1)), W, None), ShapeError,
         r"x has C=1 features but w expects C=3; expected x.shape\[-1\] == w.shape\[1\]"),
        ((X, np.zeros(3), None), ShapeError, r"w must be 2-D \(K, C\); .*got 1"),
        ((np.zeros((0, 3)), W, None), ShapeError, r"every dimension must be >= 1"),
        ((X, np.zeros((4, 5)), None), ShapeError,
         r"x has C=3 features but w expects C=5; expected x.shape\[-1\] == w.shape\[1\], got "
         r"3 != 5 \(x.shape=\(2, 3\), w.shape=\(4, 5\)\)"),
        ((X, W, np.zeros(3)), ShapeError,
         r"b must have shape \(K,\) = \(4,\); expected \(4,\), got \(3,\) \(.*b.shape=\(3,\)\)"),
    ],
)  # fmt: skip
def test_linear_rejects_bad_input(
    args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^linear: {match}"):
        linear_forward(*args)


@pytest.mark.parametrize(
    ("dy", "error", "match"),
    [
        (np.zeros((2, 3)), ShapeError, r"dy.shape=\(2, 3\) does not match the forward output; "
         r"expected \(2, 4\), got \(2, 3\)"),
        (np.zeros((2, 4), dtype=np.float32), DTypeError,
         r"dy has dtype float32; expected the forward dtype float64"),
        ([[0.0] * 4] * 2, DTypeError, r"dy must be a numpy or cupy array"),
    ],
)  # fmt: skip
def test_linear_backward_rejects_bad_dy(dy: Any, error: type[Exception], match: str) -> None:
    _, cache = linear_forward(X, W, B)
    with pytest.raises(error, match=f"^linear_backward: {match}"):
        linear_backward(dy, cache)


@pytest.mark.parametrize("x_shape", [(5,), (2, 3, 5), (2, 1, 3, 5)])
def test_linear_on_leading_axes_is_L1_L4_over_every_position(x_shape: tuple[int, ...]) -> None:
    """x (*, C): n of (L1)-(L4) runs over every position of the leading axes. Witnesses: the
    naive loops on x viewed as (N, C), central finite differences, and PyTorch."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape)
    w, b = rng.standard_normal((4, 5)), rng.standard_normal(4)
    y, cache = linear_forward(x, w, b)
    assert y.shape == (*x_shape[:-1], 4)
    x2 = x.reshape(-1, 5)
    np.testing.assert_allclose(y.reshape(-1, 4), linear_ref(x2, w, b), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = linear_backward(dy, cache)
    dx_ref, dw_ref, db_ref = linear_backward_ref(dy.reshape(-1, 4), x2, w)
    assert dx is not None and db is not None and dx.shape == x_shape
    np.testing.assert_allclose(dx.reshape(-1, 5), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, db_ref, rtol=1e-12, atol=1e-12)
    numeric = numeric_gradient(lambda v: float(np.sum(linear(v, w, b) * dy)), x.copy())
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.linear(tx, torch.tensor(w), torch.tensor(b))
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
