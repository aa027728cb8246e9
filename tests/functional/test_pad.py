"""Padding (PD1)–(PD7): every mode against the per-element reference, the adjoint identity,
finite differences and PyTorch's ``F.pad`` (negative pads, unbatched, 1-3 padded axes)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_layers_losses as ref
from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import dot_product_check, numerical_gradient
from convprop.functional.padding import pad_backward, pad_forward
from convprop.nn import functional as F

# (x shape, pad, mode): the first axis last in pad; unbatched and batched; negative pads
CASES = [
    ((2, 5), (2, 1), "reflect"),
    ((1, 2, 5), (4, 4), "reflect"),
    ((2, 3, 4, 5), (1, 2, 3, 0), "reflect"),
    ((1, 2, 3, 3, 4), (1, 1, 2, 2, 1, 0), "reflect"),
    ((1, 3, 4, 4), (-1, 1, -2, 1), "reflect"),
    ((2, 4), (3, 2), "replicate"),
    ((2, 2, 4, 4), (-3, 5, 2, -2), "replicate"),
    ((1, 2, 2, 3, 3), (1, 0, 0, 2, 2, 1), "replicate"),
    ((2, 3, 4), (4, 1), "circular"),
    ((1, 2, 4, 5), (-1, 2, 1, -2), "circular"),
    ((1, 1, 3, 3, 3), (1, 1, 1, 1, 3, 0), "circular"),
    ((2, 3), (1, 2, -1, 0), "constant"),
    ((2, 3, 4), (0, 0, 2, 1, 1, 1), "constant"),
    ((3, 5), (-2, -1), "constant"),
    ((2, 2, 2, 2, 2), (1, 0, 0, 1, 1, 1, 0, 1), "constant"),
]
IDS = [f"{mode}-{shape}-{pad}" for shape, pad, mode in CASES]


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES, ids=IDS)
def test_forward_and_backward_match_reference_pd1_pd7(shape, pad, mode) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    value = 0.75 if mode == "constant" else 0.0
    y, cache = pad_forward(x, pad, mode=mode, value=value)
    np.testing.assert_array_equal(y, ref.pad(x, pad, mode, value))
    dy = rng.normal(size=y.shape)
    np.testing.assert_allclose(pad_backward(dy, cache), ref.pad_grad(shape, pad, mode, dy),
                               rtol=1e-14, atol=1e-15)  # fmt: skip


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES, ids=IDS)
def test_backward_is_the_adjoint_of_the_forward_g3(shape, pad, mode) -> None:
    y_shape = pad_forward(np.zeros(shape), pad, mode=mode)[0].shape
    cache = pad_forward(np.zeros(shape), pad, mode=mode)[1]
    lhs, rhs = dot_product_check(
        lambda u: pad_forward(u, pad, mode=mode)[0],
        lambda v: pad_backward(v, cache),
        shape,
        y_shape,
        rng=np.random.default_rng(1),
    )
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_backward_matches_finite_differences_pd7() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 2, 3, 4))
    y, cache = pad_forward(x, (2, 3, 2, 1), mode="reflect")
    dy = rng.normal(size=y.shape)

    def objective(x_: np.ndarray) -> float:
        return float(np.sum(dy * pad_forward(x_, (2, 3, 2, 1), mode="reflect")[0]))

    np.testing.assert_allclose(pad_backward(dy, cache), numerical_gradient(objective, x),
                               rtol=1e-8, atol=1e-10)  # fmt: skip


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES, ids=IDS)
def test_tensor_op_matches_torch_pad(shape, pad, mode) -> None:
    rng = np.random.default_rng(3)
    x_array = rng.normal(size=shape)
    value = 0.75 if mode == "constant" else None
    x = convprop.tensor(x_array, requires_grad=True)
    y = F.pad(x, pad, mode, value)
    dy = rng.normal(size=y.shape)
    y.backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    yt = torch.nn.functional.pad(xt, pad, mode, value)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-14, atol=1e-15)


def test_worked_example_of_the_derivations_pd7() -> None:
    """Reflect with L = 3 and pads (2, 2) reads x at [2, 1, 0, 1, 2, 1, 0]."""
    y, cache = pad_forward(np.array([[10.0, 11.0, 12.0]]), (2, 2), mode="reflect")
    np.testing.assert_array_equal(y, [[12, 11, 10, 11, 12, 11, 10]])
    dy = np.array([[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]])
    np.testing.assert_array_equal(pad_backward(dy, cache), [[4 + 64, 2 + 8 + 32, 1 + 16]])


def test_conv2d_padding_mode_reflect_matches_torch_through_pad() -> None:
    rng = np.random.default_rng(4)
    conv = convprop.nn.Conv2d(2, 3, 3, padding=2, padding_mode="reflect", rng=0, dtype="float64")
    torch_conv = torch.nn.Conv2d(2, 3, 3, padding=2, padding_mode="reflect").double()
    torch_conv.load_state_dict({k: torch.tensor(v) for k, v in conv.state_dict().items()})
    x = rng.normal(size=(2, 2, 5, 6))
    np.testing.assert_allclose(conv(x).data, torch_conv(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-13)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: pad_forward(np.ones((2, 3)), (1,)), ParameterError, "even number"),
        (lambda: pad_forward(np.ones((2, 3)), (1.0, 1)), ParameterError, "even number"),
        (lambda: pad_forward(np.ones((2, 3)), 1), ParameterError, "even number"),
        (lambda: pad_forward(np.ones((2, 3)), (1, 1), mode="wrap"), ParameterError, "mode"),
        (lambda: pad_forward(np.ones(3), (1, 1, 1, 1)), ShapeError, "at most 1 pairs"),
        (lambda: pad_forward(np.ones(3), (1, 1), mode="reflect"), ShapeError,
         "expected 2 or 3 dimensions"),
        (lambda: pad_forward(np.ones((1, 2, 3, 4, 5)), (1, 1), mode="replicate"), ShapeError,
         "expected 2 or 3 dimensions"),
        (lambda: pad_forward(np.ones((1, 2, 3)), (3, 0), mode="reflect"), ShapeError,
         "smaller than its size 3"),
        (lambda: pad_forward(np.ones((1, 2, 3)), (4, 0), mode="circular"), ShapeError,
         "at most once"),
        (lambda: pad_forward(np.ones((1, 2, 3)), (-2, -1), mode="replicate"), ShapeError,
         "must be positive"),
        (lambda: pad_forward(np.ones((1, 2, 3)), (-2, -2)), ShapeError, "must be positive"),
        (lambda: pad_forward(np.ones((1, 2, 0)), (1, 1), mode="replicate"), ShapeError,
         "value to repeat"),
        (lambda: pad_forward(np.ones((1, 2, 3)), (1, 1), mode="reflect", value=2.0),
         ParameterError, "only mode 'constant'"),
        (lambda: F.pad(np.ones((1, 2, 3)), (1, 1), "reflect", 0.0), ParameterError,
         "takes no fill value"),
        (lambda: pad_forward(np.ones((1, 2), int), (1, 1)), DTypeError, "float32"),
        (lambda: pad_backward(np.ones((1, 2)), pad_forward(np.ones((1, 2)), (1, 1))[1]),
         ShapeError, "does not match"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_pad_on_the_array_module_of_the_input(xp: ModuleType) -> None:
    rng = np.random.default_rng(5)
    for shape, pad, mode in CASES[:6]:
        x = rng.normal(size=shape)
        y, cache = pad_forward(xp.asarray(x), pad, mode=mode)
        dy = rng.normal(size=y.shape)
        np.testing.assert_array_equal(to_host(y), ref.pad(x, pad, mode, 0.0))
        np.testing.assert_allclose(to_host(pad_backward(xp.asarray(dy), cache)),
                                   ref.pad_grad(shape, pad, mode, dy), rtol=1e-12)  # fmt: skip
