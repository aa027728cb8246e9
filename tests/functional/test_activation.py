"""Activations (A1)–(A9): naive reference, finite differences, PyTorch, contract, errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference_activations as ref
from convprop import _native
from convprop.backend import get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional import activation as act

SHAPE = (2, 3, 4, 5)
SLOPE = 0.2


@dataclass(frozen=True)
class Op:
    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    alone: Callable[..., Any]
    reference: Callable[[np.ndarray], np.ndarray]
    reference_grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    torch_fn: Callable[[torch.Tensor], torch.Tensor]
    kwargs: dict[str, Any]


OPS = [
    Op("relu", act.relu_forward, act.relu_backward, act.relu, ref.relu, ref.relu_grad,
       torch.nn.functional.relu, {}),
    Op("leaky_relu", act.leaky_relu_forward, act.leaky_relu_backward, act.leaky_relu,
       lambda x: ref.leaky_relu(x, SLOPE), lambda x, dy: ref.leaky_relu_grad(x, dy, SLOPE),
       lambda t: torch.nn.functional.leaky_relu(t, negative_slope=SLOPE),
       {"negative_slope": SLOPE}),
    Op("sigmoid", act.sigmoid_forward, act.sigmoid_backward, act.sigmoid, ref.sigmoid,
       ref.sigmoid_grad, torch.sigmoid, {}),
    Op("tanh", act.tanh_forward, act.tanh_backward, act.tanh, ref.tanh, ref.tanh_grad,
       torch.tanh, {}),
]  # fmt: skip
IDS = [op.name for op in OPS]


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |x| in [0.1, 2]: finite differences never straddle the kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_forward_matches_reference_a2_a4_a6_a8(op: Op) -> None:
    x = np.random.default_rng(0).normal(size=SHAPE) * 3
    y, _ = op.forward(x, **op.kwargs)
    np.testing.assert_allclose(y, op.reference(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(op.alone(x, **op.kwargs), y)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_backward_matches_reference_a1(op: Op) -> None:
    rng = np.random.default_rng(1)
    x = away_from_zero(rng, SHAPE)
    dy = rng.normal(size=SHAPE)
    _, cache = op.forward(x, **op.kwargs)
    dx = op.backward(dy, cache)
    np.testing.assert_allclose(dx, op.reference_grad(x, dy), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_backward_matches_finite_differences_a1(op: Op) -> None:
    rng = np.random.default_rng(2)
    x = away_from_zero(rng, (2, 3, 2, 2))
    dy = rng.normal(size=x.shape)
    _, cache = op.forward(x, **op.kwargs)
    dx = op.backward(dy, cache)

    def objective(x_: np.ndarray) -> float:
        return float(np.sum(dy * op.forward(x_, **op.kwargs)[0]))

    np.testing.assert_allclose(dx, ref.numerical_gradient(objective, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_matches_torch_forward_and_autograd(op: Op) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=SHAPE) * 3
    x[0, 0, 0, :3] = [0.0, -0.0, 50.0]  # the kink at 0 follows PyTorch's convention too
    dy = rng.normal(size=SHAPE)
    y, cache = op.forward(x, **op.kwargs)
    dx = op.backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = op.torch_fn(xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_relu_derivative_at_zero_is_zero_a3() -> None:
    x = np.array([-1.0, 0.0, -0.0, 1.0])
    _, cache = act.relu_forward(x)
    np.testing.assert_array_equal(act.relu_backward(np.full(4, 3.0), cache), [0, 0, 0, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("native", [True, False], ids=["compiled", "numpy"])
def test_relu_derivative_read_from_y_is_a3_of_x_on_every_special_value(
    dtype: type, native: bool
) -> None:
    """The cache keeps y = max(x, 0); f′ read from it is (A3)'s f′(x) = ~(x <= 0), bit for
    bit, also at ±0, subnormals, ±inf and NaN (1 there, as PyTorch)."""
    special = [0.0, -0.0, 1e-40, -1e-40, 1.5, -2.0, np.inf, -np.inf, np.nan, 3e38]
    x = np.repeat(np.array(special, dtype=dtype), len(special))
    dy = np.tile(np.array([3.0, -0.5, 0.0, -0.0, np.inf, np.nan, 2.0, -1.0, 1e-40, 7.0],
                          dtype=dtype), len(special))  # fmt: skip
    switch = contextlib.nullcontext() if native else _native.disabled()
    with switch, np.errstate(invalid="ignore"):  # inf * 0 is NaN, as intended
        y, cache = act.relu_forward(x)
        dx = act.relu_backward(dy, cache)
        expected = dy * ~(x <= 0)  # (A1), (A3) written with x
    assert cache.y is y
    np.testing.assert_array_equal(dx.view(f"u{dx.itemsize}"), expected.view(f"u{dx.itemsize}"))


def test_leaky_relu_derivative_at_zero_is_slope_a5() -> None:
    _, cache = act.leaky_relu_forward(np.array([0.0, 2.0]), negative_slope=0.3)
    np.testing.assert_allclose(act.leaky_relu_backward(np.array([2.0, 2.0]), cache), [0.6, 2.0])


def test_leaky_relu_default_slope_is_pytorch_default() -> None:
    x = np.array([-4.0, 4.0])
    np.testing.assert_allclose(act.leaky_relu(x), torch.nn.functional.leaky_relu(torch.tensor(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_saturate_without_overflow_a6(dtype: type) -> None:
    x = np.array([-1e30, -1e4, -1000.0, -20.0, 0.0, 20.0, 1000.0, 1e4, 1e30], dtype=dtype)
    for forward in (act.sigmoid_forward, act.tanh_forward):
        y, _ = forward(x)  # filterwarnings=error turns any overflow warning into a failure
        assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(act.sigmoid(x)[[0, 1, 2, 6, 7, 8]], [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(act.sigmoid(x)[[3, 4, 5]], ref.sigmoid(x[[3, 4, 5]]), rtol=1e-6)


def test_sigmoid_tiny_values_keep_relative_accuracy_a6() -> None:
    """e^x/(1 + e^x) for x < 0 avoids the cancellation of 1 − 1/(1 + e^(−x))."""
    x = np.array([-30.0, -200.0, -700.0])
    np.testing.assert_allclose(act.sigmoid(x), np.exp(x) / (1 + np.exp(x)), rtol=1e-14)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, 6, elements=st.floats(-1e6, 1e6)))
def test_sigmoid_symmetry_and_range_a6(x: np.ndarray) -> None:
    y = act.sigmoid(x)
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(act.sigmoid(-x), 1 - y, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, 6, elements=st.floats(-1e6, 1e6)))
def test_relu_splits_x_into_positive_and_negative_parts_a2(x: np.ndarray) -> None:
    np.testing.assert_array_equal(act.relu(x) - act.relu(-x), x)
    np.testing.assert_allclose(act.leaky_relu(x, negative_slope=1.0), x)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_float32_is_preserved(op: Op) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=SHAPE).astype(np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    y, cache = op.forward(x, **op.kwargs)
    dx = op.backward(dy, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert y.shape == SHAPE and dx.shape == SHAPE
    np.testing.assert_allclose(y, op.reference(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_no_mutation_and_backward_twice_identical(op: Op) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=SHAPE)
    dy = rng.normal(size=SHAPE)
    x_before, dy_before = x.copy(), dy.copy()
    y, cache = op.forward(x, **op.kwargs)
    y_before = y.copy()
    dx1 = op.backward(dy, cache)
    dx2 = op.backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(y, y_before)
    assert not np.shares_memory(dx1, dx2) and not np.shares_memory(dx1, dy)
    assert not np.shares_memory(y, x)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_non_contiguous_input_is_accepted(op: Op) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 4, 3, 2)).transpose(3, 2, 1, 0)
    dy = rng.normal(size=(2, 3, 4, 5))
    y, cache = op.forward(x, **op.kwargs)
    np.testing.assert_allclose(y, op.reference(x), rtol=1e-13, atol=1e-15)
    dx = op.backward(dy[:, :, :, ::-1], cache)
    assert dx.shape == x.shape


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_errors_name_the_op(op: Op) -> None:
    with pytest.raises(DTypeError, match=rf"{op.name}: x must be a numpy or cupy array"):
        op.forward([1.0, 2.0], **op.kwargs)
    with pytest.raises(DTypeError, match=rf"{op.name}: x has dtype int64; expected float32"):
        op.forward(np.arange(3), **op.kwargs)
    _, cache = op.forward(np.zeros((2, 3)), **op.kwargs)
    with pytest.raises(ShapeError, match=rf"{op.name}_backward: dy.shape=\(3, 2\) does not match"):
        op.backward(np.zeros((3, 2)), cache)
    with pytest.raises(DTypeError, match=rf"{op.name}_backward: dy has dtype float32"):
        op.backward(np.zeros((2, 3), dtype=np.float32), cache)


@pytest.mark.parametrize("slope", ["0.1", True, None, float("nan"), float("inf")])
def test_leaky_relu_rejects_bad_slope(slope: Any) -> None:
    with pytest.raises(ParameterError, match="leaky_relu: negative_slope must be"):
        act.leaky_relu_forward(np.zeros(2), negative_slope=slope)


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_backend_parity(xp: ModuleType, op: Op) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=SHAPE).astype(np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    y, cache = op.forward(xp.asarray(x), **op.kwargs)
    dx = op.backward(xp.asarray(dy), cache)
    assert get_xp(y, dx) is xp
    y_host, cache_host = op.forward(x, **op.kwargs)
    np.testing.assert_allclose(to_host(y), y_host, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(to_host(dx), op.backward(dy, cache_host), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("compiled", [True, False])
def test_relu_gradient_at_nan_passes_dy_as_pytorch(compiled: bool) -> None:
    """(A3) f′ = 0 where x ≤ 0, else 1: NaN fails the test, so its δ passes (PyTorch's mask)."""
    import contextlib

    import convprop
    import convprop.nn.functional as F
    from convprop import _native

    rng = np.random.default_rng(5)
    x = rng.standard_normal(1 << 16)
    x[::7] = np.nan
    x[1::11] = 0.0
    dy = rng.standard_normal(x.shape)
    with contextlib.nullcontext() if compiled else _native.disabled():
        ours = convprop.tensor(x, requires_grad=True)
        F.relu(ours).backward(dy)
    theirs = torch.tensor(x, requires_grad=True)
    torch.relu(theirs).backward(torch.tensor(dy))
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())
