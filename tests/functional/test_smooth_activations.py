"""GELU, SiLU, ELU (GE1–GE6, SI1, SI2, EL1, EL2) and the Softmax/LogSoftmax modules:
naive reference, finite differences, PyTorch, the graph, modules and errors."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_layers_losses as ref
from convprop import nn
from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional import activation_smooth as smooth
from convprop.io import build
from convprop.nn import functional as F

CASES: list[tuple[str, dict[str, Any]]] = [
    ("gelu", {"approximate": "none"}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("elu", {"alpha": 1.0}),
    ("elu", {"alpha": 0.35}),
]
IDS = [f"{name}-{'-'.join(str(v) for v in kw.values()) or 'plain'}" for name, kw in CASES]


def _pair(name: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    return (
        getattr(smooth, f"{name}_forward"),
        getattr(smooth, f"{name}_backward"),
        getattr(smooth, name),
    )


def _reference(name: str, kw: dict[str, Any], x: np.ndarray, dy: np.ndarray | None = None):
    if name == "gelu":
        a = kw["approximate"]
        return ref.gelu(x, a) if dy is None else ref.gelu_grad(x, dy, a)
    if name == "silu":
        return ref.silu(x) if dy is None else ref.silu_grad(x, dy)
    return ref.elu(x, kw["alpha"]) if dy is None else ref.elu_grad(x, dy, kw["alpha"])


def _torch(name: str, kw: dict[str, Any], t: torch.Tensor) -> torch.Tensor:
    return getattr(torch.nn.functional, name)(t, **kw)


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_forward_and_backward_match_reference_ge2_ge3_ge5_ge6_si1_si2_el1_el2(
    name: str, kw: dict[str, Any]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4)) * 3
    x[0, 0, :3] = [0.1, -0.1, -8.0]  # ELU's two sides near the kink, a saturated GELU
    dy = rng.normal(size=x.shape)
    forward, backward, alone = _pair(name)
    y, cache = forward(x, **kw)
    np.testing.assert_allclose(y, _reference(name, kw, x), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(alone(x, **kw), y)
    np.testing.assert_allclose(backward(dy, cache), _reference(name, kw, x, dy), rtol=1e-12,
                               atol=1e-15)  # fmt: skip


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_backward_matches_finite_differences_a1(name: str, kw: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    x = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.05, 3.0, size=(3, 4))
    dy = rng.normal(size=x.shape)
    forward, backward, _ = _pair(name)
    _, cache = forward(x, **kw)

    def objective(x_: np.ndarray) -> float:
        return float(np.sum(dy * forward(x_, **kw)[0]))

    np.testing.assert_allclose(
        backward(dy, cache), numerical_gradient(objective, x), rtol=1e-7, atol=1e-9
    )


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3, 4, 5)], ids=str)
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_tensor_op_matches_torch_forward_and_gradient(
    name: str, kw: dict[str, Any], shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(2)
    x_array = rng.normal(size=shape) * 4
    dy = rng.normal(size=shape)
    x = convprop.tensor(x_array, requires_grad=True)
    y = getattr(F, name)(x, **kw)
    y.backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    yt = _torch(name, kw, xt)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_float32_in_float32_out_and_inputs_untouched(name: str, kw: dict[str, Any]) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    x_copy, dy_copy = x.copy(), dy.copy()
    forward, backward, _ = _pair(name)
    y, cache = forward(x, **kw)
    dx = backward(dy, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(backward(dy, cache), dx)  # backward is pure
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, dy_copy)
    np.testing.assert_allclose(dx, _reference(name, kw, x.astype(float), dy.astype(float)),
                               rtol=2e-5, atol=1e-6)  # fmt: skip


def test_gelu_known_values_ge2_and_the_tanh_form_stays_within_1e3_of_it() -> None:
    x = np.linspace(-4, 4, 81)
    exact = smooth.gelu(x)
    np.testing.assert_allclose(smooth.gelu(np.array([0.0, 1.0])), [0.0, 0.8413447460685429])
    assert np.max(np.abs(smooth.gelu(x, approximate="tanh") - exact)) < 1e-3


def test_elu_derivative_at_zero_is_alpha_and_large_negatives_do_not_overflow_el2() -> None:
    y, cache = smooth.elu_forward(np.array([0.0, -1000.0, 800.0]), alpha=0.5)
    np.testing.assert_array_equal(y, [0.0, -0.5, 800.0])
    np.testing.assert_array_equal(smooth.elu_backward(np.ones(3), cache), [0.5, 0.0, 1.0])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: smooth.gelu_forward(np.ones(2), approximate="erf"), ParameterError, "unknown"),
        (lambda: smooth.gelu_forward(np.ones(2, dtype=int)), DTypeError, "float32 or float64"),
        (lambda: smooth.silu_forward([1.0]), DTypeError, "ndarray"),
        (lambda: smooth.elu_forward(np.ones(2), alpha=float("nan")), ParameterError, "finite"),
        (lambda: smooth.elu_forward(np.ones(2), alpha=True), ParameterError, "finite"),
        (lambda: smooth.silu_backward(np.ones(3), smooth.silu_forward(np.ones(2))[1]),
         ShapeError, "does not match"),
        (lambda: F.silu(np.ones(2), inplace=True), ParameterError, "in-place"),
        (lambda: F.elu(np.ones(2), inplace=True), ParameterError, "in-place"),
        (lambda: nn.GELU("fast"), ParameterError, "unknown approximation"),
        (lambda: nn.ELU(alpha="1"), ParameterError, "finite"),
        (lambda: nn.SiLU(inplace=True), ParameterError, "in-place"),
        (lambda: nn.ELU(inplace=True), ParameterError, "in-place"),
        (lambda: nn.Softmax(dim=1.5), ParameterError, "dim must be an int"),
        (lambda: F.softmax(np.ones(2), 0, dtype="int32"), DTypeError, "float32 or float64"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("module", "torch_module", "config"),
    [
        (nn.GELU(), torch.nn.GELU(), {"approximate": "none"}),
        (nn.GELU("tanh"), torch.nn.GELU("tanh"), {"approximate": "tanh"}),
        (nn.SiLU(), torch.nn.SiLU(), {}),
        (nn.ELU(0.7), torch.nn.ELU(0.7), {"alpha": 0.7}),
        (nn.Softmax(dim=1), torch.nn.Softmax(dim=1), {"dim": 1}),
        (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1), {"dim": -1}),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, dict) else "",
)
def test_modules_match_torch_modules_and_rebuild_from_config(
    module: nn.Module, torch_module: torch.nn.Module, config: dict[str, Any]
) -> None:
    rng = np.random.default_rng(4)
    x_array = rng.normal(size=(3, 5)) * 2
    dy = rng.normal(size=x_array.shape)
    x = convprop.tensor(x_array, requires_grad=True)
    module(x).backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    torch_module(xt).backward(torch.tensor(dy))
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
    assert module.config() == config
    rebuilt = build(
        {"type": type(module).__name__, "config": module.config()}
    )  # from the JSON of a model file
    np.testing.assert_array_equal(rebuilt(x_array).data, module(x_array).data)


@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
def test_softmax_without_dim_warns_and_takes_pytorchs_implicit_dim(ndim: int) -> None:
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 5)[:ndim])
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y = nn.Softmax()(x)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        y_torch = torch.nn.functional.softmax(torch.tensor(x))  # PyTorch's rule, and warning
    np.testing.assert_allclose(y.data, y_torch.numpy(), rtol=1e-13)
    implicit = 0 if ndim in (0, 1, 3) else 1
    np.testing.assert_allclose(y.data, F.softmax(x, implicit).data, rtol=1e-15)


def test_softmax_dtype_casts_the_input_and_casts_the_gradient_back() -> None:
    rng = np.random.default_rng(6)
    x = convprop.tensor(rng.normal(size=(3, 4)).astype(np.float32), requires_grad=True)
    dy = rng.normal(size=(3, 4))
    y = F.log_softmax(x, 1, dtype=np.float64)
    assert y.dtype == np.float64
    y.backward(dy)
    assert x.grad.dtype == np.float32
    xt = torch.tensor(x.data, requires_grad=True)
    torch.log_softmax(xt, 1, dtype=torch.float64).backward(torch.tensor(dy))
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-6)


def test_softmax_of_an_empty_array_is_empty_and_so_is_its_gradient() -> None:
    x = convprop.tensor(np.zeros((5, 0, 0)), requires_grad=True)
    for op in (F.softmax, F.log_softmax):
        y = op(x, -1)
        assert y.shape == (5, 0, 0)
        y.backward(np.zeros((5, 0, 0)))
        assert x.grad.shape == (5, 0, 0)


def test_activations_on_the_array_module_of_the_input(xp: ModuleType) -> None:
    rng = np.random.default_rng(7)
    x_host = rng.normal(size=(4, 6))
    dy_host = rng.normal(size=x_host.shape)
    for name, kw in CASES:
        forward, backward, _ = _pair(name)
        y, cache = forward(xp.asarray(x_host), **kw)
        dx = backward(xp.asarray(dy_host), cache)
        np.testing.assert_allclose(to_host(y), _reference(name, kw, x_host), rtol=1e-12)
        np.testing.assert_allclose(to_host(dx), _reference(name, kw, x_host, dy_host),
                                   rtol=1e-11, atol=1e-15)  # fmt: skip
