"""Layer and group normalisation (LN1–LN8, GN1–GN4) and batch normalisation of (N, C) and
(N, C, L) (BatchNorm1d): naive reference, finite differences, PyTorch, modules, errors."""

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
from convprop.functional.group_normalization import group_norm_backward, group_norm_forward
from convprop.functional.layer_normalization import layer_norm_backward, layer_norm_forward
from convprop.io import build
from convprop.nn import functional as F

# (x shape, normalized_shape, affine: weight, bias)
LAYER_CASES = [
    ((4, 5), (5,), True, True),
    ((2, 3, 4), (3, 4), True, False),
    ((2, 3, 4), 4, False, False),
    ((6,), (6,), True, True),  # one unbatched sample
    ((1, 2, 3), (1, 2, 3), True, True),
    ((3, 1), (1,), True, True),  # M = 1: x̂ = 0, y = β
]
# (x shape, groups, affine)
GROUP_CASES = [
    ((2, 6, 3), 3, True),
    ((2, 4, 2, 3), 2, True),
    ((3, 4), 4, True),  # instance normalisation of (N, C) with no positions: M = 1
    ((1, 6, 2, 2), 1, False),
    ((2, 3, 5), 3, True),
]


def _params(rng: np.random.Generator, shape: Any, weight: bool, bias: bool):
    shape = (shape,) if isinstance(shape, int) else shape
    gamma = rng.uniform(0.5, 1.5, size=shape) if weight else None
    beta = rng.normal(size=shape) if bias else None
    return gamma, beta


@pytest.mark.parametrize(("shape", "normalized", "weight", "bias"), LAYER_CASES, ids=str)
def test_layer_norm_matches_reference_ln1_ln8(shape, normalized, weight, bias) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * 2 + 1
    gamma, beta = _params(rng, normalized, weight, bias)
    dy = rng.normal(size=shape)
    k = 1 if isinstance(normalized, int) else len(normalized)
    y, cache = layer_norm_forward(x, normalized, gamma, beta, eps=1e-3)
    np.testing.assert_allclose(y, ref.layer_norm(x, k, gamma, beta, 1e-3), rtol=1e-12, atol=1e-13)
    dx, dgamma, dbeta = layer_norm_backward(dy, cache)
    rdx, rdgamma, rdbeta = ref.layer_norm_grad(x, k, gamma, dy, 1e-3)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-12)
    if weight:
        np.testing.assert_allclose(dgamma, rdgamma, rtol=1e-11, atol=1e-13)
    else:
        assert dgamma is None
    if bias:
        np.testing.assert_allclose(dbeta, rdbeta, rtol=1e-12, atol=1e-13)
    else:
        assert dbeta is None


@pytest.mark.parametrize(("shape", "groups", "affine"), GROUP_CASES, ids=str)
def test_group_norm_matches_reference_gn1_gn4(shape, groups, affine) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape) * 3
    gamma, beta = _params(rng, shape[1], affine, affine)
    dy = rng.normal(size=shape)
    y, cache = group_norm_forward(x, groups, gamma, beta, eps=1e-4)
    np.testing.assert_allclose(y, ref.group_norm(x, groups, gamma, beta, 1e-4), rtol=1e-12,
                               atol=1e-13)  # fmt: skip
    dx, dgamma, dbeta = group_norm_backward(dy, cache)
    rdx, rdgamma, rdbeta = ref.group_norm_grad(x, groups, gamma, dy, 1e-4)
    np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-11)
    if affine:
        np.testing.assert_allclose(dgamma, rdgamma, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(dbeta, rdbeta, rtol=1e-12, atol=1e-12)


def _check_finite_differences(forward: Callable[..., Any], backward, x, gamma, beta, rng) -> None:
    y, cache = forward(x, gamma, beta)
    dy = rng.normal(size=y.shape)
    grads = backward(dy, cache)
    for index, value in enumerate((x, gamma, beta)):

        def objective(v: np.ndarray, index: int = index) -> float:
            args = [x, gamma, beta]
            args[index] = v
            return float(np.sum(dy * forward(*args)[0]))

        np.testing.assert_allclose(grads[index], numerical_gradient(objective, value),
                                   rtol=1e-6, atol=1e-8)  # fmt: skip


def test_layer_norm_gradients_match_finite_differences_ln5_ln8() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 4))
    gamma, beta = rng.uniform(0.5, 1.5, size=(2, 4)), rng.normal(size=(2, 4))

    def forward(x_, g_, b_):
        return layer_norm_forward(x_, (2, 4), g_, b_, eps=1e-2)

    _check_finite_differences(forward, layer_norm_backward, x, gamma, beta, rng)


def test_group_norm_gradients_match_finite_differences_gn3_gn4() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 3))
    gamma, beta = rng.uniform(0.5, 1.5, size=4), rng.normal(size=4)

    def forward(x_, g_, b_):
        return group_norm_forward(x_, 2, g_, b_, eps=1e-2)

    _check_finite_differences(forward, group_norm_backward, x, gamma, beta, rng)


def _torch_grads(fn, arrays, dy):
    tensors = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(dy))
    return out.detach().numpy(), [None if t is None else t.grad.numpy() for t in tensors]


@pytest.mark.parametrize(("shape", "normalized", "weight", "bias"), LAYER_CASES, ids=str)
def test_layer_norm_tensor_op_matches_torch(shape, normalized, weight, bias) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=shape) * 2
    gamma, beta = _params(rng, normalized, weight, bias)
    dy = rng.normal(size=shape)
    tensors = [None if a is None else convprop.tensor(a, requires_grad=True)
               for a in (x, gamma, beta)]  # fmt: skip
    y = F.layer_norm(tensors[0], normalized, tensors[1], tensors[2], eps=1e-5)
    y.backward(dy)
    shape_t = [normalized] if isinstance(normalized, int) else list(normalized)
    yt, grads = _torch_grads(
        lambda a, b, c: torch.nn.functional.layer_norm(a, shape_t, b, c, 1e-5), (x, gamma, beta), dy
    )
    np.testing.assert_allclose(y.data, yt, rtol=1e-10, atol=1e-12)
    for tensor, grad in zip(tensors, grads, strict=True):
        if tensor is not None:
            np.testing.assert_allclose(tensor.grad, grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("shape", "groups", "affine"), [*GROUP_CASES, ((0, 4, 2), 2, True)],
                         ids=str)  # fmt: skip
def test_group_norm_tensor_op_matches_torch(shape, groups, affine) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=shape) * 2
    gamma, beta = _params(rng, shape[1], affine, affine)
    dy = rng.normal(size=shape)
    tensors = [None if a is None else convprop.tensor(a, requires_grad=True)
               for a in (x, gamma, beta)]  # fmt: skip
    y = F.group_norm(tensors[0], groups, tensors[1], tensors[2], eps=1e-5)
    y.backward(dy)
    yt, grads = _torch_grads(
        lambda a, b, c: torch.nn.functional.group_norm(a, groups, b, c, 1e-5), (x, gamma, beta), dy
    )
    np.testing.assert_allclose(y.data, yt, rtol=1e-10, atol=1e-12)
    for tensor, grad in zip(tensors, grads, strict=True):
        if tensor is not None:
            np.testing.assert_allclose(tensor.grad, grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)], ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_of_n_c_and_n_c_l_matches_torch_and_updates_running_stats(shape, training):
    rng = np.random.default_rng(6)
    x = rng.normal(size=shape) * 2 + 1
    gamma, beta = rng.uniform(0.5, 1.5, size=3), rng.normal(size=3)
    mean, var = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    dy = rng.normal(size=shape)
    tensors = [convprop.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    ours_mean, ours_var = mean.copy(), var.copy()
    y = F.batch_norm(tensors[0], ours_mean, ours_var, tensors[1], tensors[2], training, 0.3, 1e-4)
    y.backward(dy)
    torch_mean, torch_var = torch.tensor(mean), torch.tensor(var)
    yt, grads = _torch_grads(
        lambda a, b, c: torch.nn.functional.batch_norm(
            a, torch_mean, torch_var, b, c, training, 0.3, 1e-4
        ),
        (x, gamma, beta),
        dy,
    )
    np.testing.assert_allclose(y.data, yt, rtol=1e-10, atol=1e-12)
    for tensor, grad in zip(tensors, grads, strict=True):
        np.testing.assert_allclose(tensor.grad, grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_mean, torch_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_var, torch_var.numpy(), rtol=1e-12)


def test_batchnorm1d_follows_torch_over_training_and_eval_steps() -> None:
    rng = np.random.default_rng(7)
    ours = nn.BatchNorm1d(4, momentum=0.2, dtype="float64")
    theirs = torch.nn.BatchNorm1d(4, momentum=0.2).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for step, shape in enumerate([(5, 4), (3, 4, 6), (5, 4)]):
        ours.train(step < 2)
        theirs.train(step < 2)
        x = rng.normal(size=shape) * 3
        xt = torch.tensor(x, requires_grad=True)
        x_ours = convprop.tensor(x, requires_grad=True)
        dy = rng.normal(size=shape)
        ours.zero_grad()
        ours(x_ours).backward(dy)
        theirs.zero_grad()
        theirs(xt).backward(torch.tensor(dy))
        np.testing.assert_allclose(x_ours.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10)
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12)


def test_layernorm_and_groupnorm_modules_match_torch_and_rebuild_from_config() -> None:
    rng = np.random.default_rng(8)
    pairs = [
        (nn.LayerNorm([3, 4], eps=1e-4, dtype="float64"), torch.nn.LayerNorm([3, 4], eps=1e-4)),
        (nn.LayerNorm(4, bias=False, dtype="float64"), torch.nn.LayerNorm(4, bias=False)),
        (nn.LayerNorm(4, elementwise_affine=False, dtype="float64"),
         torch.nn.LayerNorm(4, elementwise_affine=False)),
        (nn.GroupNorm(3, 6, dtype="float64"), torch.nn.GroupNorm(3, 6)),
        (nn.GroupNorm(2, 6, affine=False, dtype="float64"), torch.nn.GroupNorm(2, 6, affine=False)),
    ]  # fmt: skip
    for ours, theirs in pairs:
        theirs = theirs.double()
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for param in theirs.parameters():  # not the initial ones and zeros
            param.data = torch.tensor(rng.uniform(0.5, 1.5, size=tuple(param.shape)))
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        shape = (2, 6, 3, 4) if isinstance(ours, nn.GroupNorm) else (2, 3, 4)
        x = rng.normal(size=shape)
        dy = rng.normal(size=shape)
        x_ours = convprop.tensor(x, requires_grad=True)
        ours(x_ours).backward(dy)
        xt = torch.tensor(x, requires_grad=True)
        theirs(xt).backward(torch.tensor(dy))
        np.testing.assert_allclose(x_ours.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        for (name, param), torch_param in zip(ours.named_parameters(), theirs.parameters(),
                                              strict=True):  # fmt: skip
            np.testing.assert_allclose(param.grad, torch_param.grad.numpy(), rtol=1e-10,
                                       err_msg=name)  # fmt: skip
        rebuilt = build({"type": type(ours).__name__, "config": ours.config()})
        assert list(rebuilt.state_dict()) == list(ours.state_dict())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: layer_norm_forward(np.ones((2, 3)), (4,)), ShapeError, "last axes of x"),
        (lambda: layer_norm_forward(np.ones((2, 3)), ()), ParameterError, "non-empty tuple"),
        (lambda: layer_norm_forward(np.ones((2, 3)), 3.0), ParameterError, "normalized_shape"),
        (lambda: layer_norm_forward(np.ones((2, 3)), 3, np.ones(2)), ShapeError, "weight"),
        (lambda: layer_norm_forward(np.ones((2, 3)), 3, None, np.ones(4)), ShapeError, "bias"),
        (lambda: layer_norm_forward(np.ones((2, 3)), 3, eps=0.0), ParameterError, "eps"),
        (lambda: layer_norm_forward(np.ones((2, 3)), 3, eps=-0.5), ParameterError, "eps"),
        (lambda: layer_norm_forward(np.ones((2, 3), int), 3), DTypeError, "float32"),
        (lambda: layer_norm_forward(np.ones(3), 3, np.ones(3, np.float32)), DTypeError, "share"),
        (lambda: group_norm_forward(np.ones(4), 2), ShapeError, "at least 2 dimensions"),
        (lambda: group_norm_forward(np.ones((2, 4)), 3), ShapeError, "divisible"),
        (lambda: group_norm_forward(np.ones((2, 4)), 0), ParameterError, "positive int"),
        (lambda: group_norm_forward(np.ones((2, 4)), 2, np.ones(3)), ShapeError, "per channel"),
        (lambda: group_norm_forward(np.ones((2, 4)), 2, eps=float("inf")), ParameterError, "eps"),
        (lambda: layer_norm_backward(np.ones(4), layer_norm_forward(np.ones(3), 3)[1]),
         ShapeError, "does not match"),
        (lambda: nn.LayerNorm(0), ParameterError, "positive sizes"),
        (lambda: nn.LayerNorm(3, eps=0), ParameterError, "eps"),
        (lambda: nn.GroupNorm(4, 6), ParameterError, "divisible"),
        (lambda: nn.GroupNorm(0, 6), ParameterError, "positive int"),
        (lambda: nn.BatchNorm1d(3)(np.ones((2, 3, 4, 5), np.float32)), ShapeError,
         r"BatchNorm1d: x must be \(N, C\) or \(N, C, L\)"),
        (lambda: nn.BatchNorm2d(3)(np.ones((2, 3), np.float32)), ShapeError,
         r"BatchNorm2d: x must be \(N, C, H, W\)"),
        (lambda: nn.BatchNorm1d(0), ParameterError, "BatchNorm1d: num_features"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_batch_norm_inference_ignores_momentum_as_pytorch() -> None:
    x = np.random.default_rng(9).normal(size=(3, 2, 4))
    y = F.batch_norm(x, np.zeros(2), np.ones(2), training=False, momentum=-1.2)
    expected = torch.nn.functional.batch_norm(
        torch.tensor(x), torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64),
        training=False, momentum=-1.2,
    )  # fmt: skip
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-12)
    with pytest.raises(ParameterError, match="momentum"):
        F.batch_norm(x, np.zeros(2), np.ones(2), training=True, momentum=-1.0)


def test_normalisations_on_the_array_module_of_the_input(xp: ModuleType) -> None:
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, 4, 3))
    gamma, beta, dy = rng.uniform(0.5, 1.5, 4), rng.normal(size=4), rng.normal(size=x.shape)
    y, cache = group_norm_forward(xp.asarray(x), 2, xp.asarray(gamma), xp.asarray(beta))
    dx, _, _ = group_norm_backward(xp.asarray(dy), cache)
    np.testing.assert_allclose(to_host(y), ref.group_norm(x, 2, gamma, beta, 1e-5), rtol=1e-11)
    np.testing.assert_allclose(to_host(dx), ref.group_norm_grad(x, 2, gamma, dy, 1e-5)[0],
                               rtol=1e-9, atol=1e-11)  # fmt: skip
    y, cache = layer_norm_forward(xp.asarray(x), 3)
    dx, _, _ = layer_norm_backward(xp.asarray(dy), cache)
    np.testing.assert_allclose(to_host(dx), ref.layer_norm_grad(x, 1, None, dy, 1e-5)[0],
                               rtol=1e-9, atol=1e-11)  # fmt: skip
