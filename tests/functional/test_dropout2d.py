"""Channel dropout (DO7)–(DO10): whole maps dropped, reference, finite differences, the
statistics of the mask, the module and its generator, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_layers_losses as ref
from convprop import nn
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional.dropout_channels import dropout2d_backward, dropout2d_forward
from convprop.io import build
from convprop.nn import functional as F


@pytest.mark.parametrize("shape", [(3, 5, 4, 2), (4, 6, 7)], ids=str)
def test_forward_and_backward_match_reference_with_the_same_draws_do7_do10(shape) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    dy = rng.normal(size=shape)
    y, cache = dropout2d_forward(x, p=0.4, rng=np.random.default_rng(11))
    keep = np.random.default_rng(11).random(shape[:2]) >= 0.4  # (DO7), (DO8) redrawn
    np.testing.assert_allclose(y, ref.dropout2d(x, keep, 0.4), rtol=1e-15)
    np.testing.assert_allclose(dropout2d_backward(dy, cache), ref.dropout2d(dy, keep, 0.4),
                               rtol=1e-15)  # fmt: skip


def test_backward_matches_finite_differences_for_the_fixed_mask_do10() -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 2, 2))
    dy = np.random.default_rng(2).normal(size=x.shape)
    _, cache = dropout2d_forward(x, p=0.5, rng=np.random.default_rng(3))

    def objective(x_: np.ndarray) -> float:
        y, _ = dropout2d_forward(x_, p=0.5, rng=np.random.default_rng(3))
        return float(np.sum(dy * y))

    np.testing.assert_allclose(dropout2d_backward(dy, cache), numerical_gradient(objective, x),
                               rtol=1e-8, atol=1e-10)  # fmt: skip


def test_whole_channels_are_kept_or_dropped_with_probability_p() -> None:
    x = np.ones((400, 50, 3, 3))
    y, _ = dropout2d_forward(x, p=0.3, rng=np.random.default_rng(4))
    per_map = y.reshape(400, 50, 9)
    assert np.all(per_map == per_map[:, :, :1])  # one value per map: 0 or 1/(1 − p)
    assert set(np.unique(per_map).tolist()) == {0.0, 1 / 0.7}
    dropped = float(np.mean(per_map[:, :, 0] == 0))
    assert abs(dropped - 0.3) < 0.01  # 20000 Bernoulli draws: 4.5 standard deviations
    assert abs(float(y.mean()) - 1.0) < 0.02  # inverted: E[y] = x


@pytest.mark.parametrize(("p", "training"), [(0.0, True), (0.7, False), (1.0, True)])
def test_identity_and_p_one_match_torch_do4_do6(p: float, training: bool) -> None:
    x_array = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    x = convprop.tensor(x_array, requires_grad=True)
    y = F.dropout2d(x, p, training, rng=np.random.default_rng(6))
    dy = np.random.default_rng(7).normal(size=x_array.shape)
    y.backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    yt = torch.nn.functional.dropout2d(xt, p, training)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    np.testing.assert_array_equal(x.grad, xt.grad.numpy())


def test_module_draws_from_its_own_generator_and_is_the_identity_in_eval() -> None:
    x = np.ones((2, 8, 3, 3))
    first = nn.Dropout2d(0.5, rng=42)
    second = nn.Dropout2d(0.5, rng=42)
    np.testing.assert_array_equal(first(x).data, second(x).data)
    assert not np.array_equal(first(x).data, second.eval()(x).data)
    np.testing.assert_array_equal(second(x).data, x)
    assert first.config() == {"p": 0.5}
    assert isinstance(build({"type": "Dropout2d", "config": {"p": 0.25}}), nn.Dropout2d)
    assert not isinstance(first, nn.Dropout)  # as PyTorch: a sibling, not a kind of Dropout


def test_functional_default_generator_is_seeded_by_manual_seed() -> None:
    x = np.ones((4, 6, 2, 2))
    convprop.nn.functional.manual_seed(3)
    a = F.dropout2d(x).data
    convprop.nn.functional.manual_seed(3)
    np.testing.assert_array_equal(F.dropout2d(x).data, a)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: dropout2d_forward(np.ones((2, 3)), rng=np.random.default_rng()), ShapeError,
         "3 or 4 dimensions"),
        (lambda: dropout2d_forward(np.ones((2, 3, 4)), p=1.5), ParameterError, "probability"),
        (lambda: dropout2d_forward(np.ones((2, 3, 4)), training=1), ParameterError, "bool"),
        (lambda: dropout2d_forward(np.ones((2, 3, 4))), ParameterError, "generator"),
        (lambda: dropout2d_forward(np.ones((2, 3, 4), int)), DTypeError, "float32"),
        (lambda: F.dropout2d(np.ones((2, 3, 4)), inplace=True), ParameterError, "in-place"),
        (lambda: nn.Dropout2d(-0.1), ParameterError, "probability"),
        (lambda: nn.Dropout2d(inplace=True), ParameterError, "in-place"),
        (lambda: dropout2d_backward(np.ones((2, 3)),
                                    dropout2d_forward(np.ones((2, 3, 4)), training=False)[1]),
         ShapeError, "does not match"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
