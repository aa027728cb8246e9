"""NLL loss and cross-entropy (NLL1–NLL3, CE5–CE10, RD1–RD4): class weights, ignore_index,
label smoothing, probability targets, K-dimensional and unbatched inputs, every reduction;
against the per-position reference, finite differences and PyTorch; modules; errors."""

from __future__ import annotations

import math
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
from convprop.functional import classification_loss as cl
from convprop.functional.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from convprop.io import build
from convprop.nn import functional as F

SHAPES = [(5, 4), (4,), (2, 4, 3), (2, 4, 2, 3)]  # (N, C), unbatched (C,), (N, C, d1[, d2])


def _target(rng, shape, probabilities: bool, ignore: int | None):
    if probabilities:
        p = rng.dirichlet(np.ones(shape[1] if len(shape) > 1 else shape[0]),
                          size=(shape[0], *shape[2:]) if len(shape) > 1 else ())  # fmt: skip
        return np.ascontiguousarray(np.moveaxis(p, -1, 1)) if len(shape) > 1 else p
    t_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    C = shape[1] if len(shape) > 1 else shape[0]
    t = rng.integers(0, C, size=t_shape)
    if ignore is not None and t.size:
        t.flat[0] = ignore
    return t


def _cases():
    out = []
    for shape in SHAPES:
        for reduction in ("mean", "sum", "none"):
            for weighted in (False, True):
                for probabilities, ignore, smoothing in [(False, None, 0.0), (False, 1, 0.0),
                                                         (False, -100, 0.2), (True, None, 0.0),
                                                         (True, None, 0.3)]:  # fmt: skip
                    out.append((shape, reduction, weighted, probabilities, ignore, smoothing))
    return out


CASES = _cases()


def _kwargs(rng, shape, weighted, ignore, smoothing):
    C = shape[1] if len(shape) > 1 else shape[0]
    weight = rng.uniform(0.3, 2.0, size=C) if weighted else None
    return {"weight": weight, "ignore_index": -100 if ignore is None else ignore,
            "label_smoothing": smoothing}  # fmt: skip


def _dloss(rng, loss):
    return rng.normal(size=np.shape(loss)) if np.ndim(loss) else 0.7


@pytest.mark.parametrize(("shape", "reduction", "weighted", "prob", "ignore", "eps"), CASES,
                         ids=str)  # fmt: skip
def test_cross_entropy_matches_reference_ce5_ce10(shape, reduction, weighted, prob, ignore, eps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * 2
    target = _target(rng, shape, prob, ignore)
    kw = _kwargs(rng, shape, weighted, ignore, eps)
    loss, cache = cl.cross_entropy_forward(x, target, reduction=reduction, **kw)
    options = {"weight": kw["weight"], "ignore_index": kw["ignore_index"], "smoothing": eps,
               "reduction": reduction}  # fmt: skip
    expected, _ = ref.class_loss(x, target, log_softmax=True, **options)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14)
    dloss = _dloss(rng, loss)
    dx, dtarget = cl.cross_entropy_backward(dloss, cache, need_dtarget=True)
    rdx, rdtarget = ref.class_loss_grad(x, target, dloss, log_softmax=True, **options)
    np.testing.assert_allclose(dx, rdx, rtol=1e-11, atol=1e-14)
    if prob:
        np.testing.assert_allclose(dtarget, rdtarget, rtol=1e-11, atol=1e-14)
    else:
        assert dtarget is None


@pytest.mark.parametrize(("shape", "reduction", "weighted", "ignore"),
                         [(c[0], c[1], c[2], c[4]) for c in CASES if not c[3] and not c[5]],
                         ids=str)  # fmt: skip
def test_nll_loss_matches_reference_nll1_nll3(shape, reduction, weighted, ignore) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape) - 2
    target = _target(rng, shape, False, ignore)
    kw = _kwargs(rng, shape, weighted, ignore, 0.0)
    del kw["label_smoothing"]
    loss, cache = cl.nll_loss_forward(x, target, reduction=reduction, **kw)
    options = {"weight": kw["weight"], "ignore_index": kw["ignore_index"], "smoothing": 0.0,
               "reduction": reduction}  # fmt: skip
    expected, _ = ref.class_loss(x, target, log_softmax=False, **options)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14)
    dloss = _dloss(rng, loss)
    rdx, _ = ref.class_loss_grad(x, target, dloss, log_softmax=False, **options)
    np.testing.assert_allclose(cl.nll_loss_backward(dloss, cache), rdx, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("prob", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients_match_finite_differences_ce9_ce10(reduction, prob) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2))
    target = _target(rng, x.shape, prob, None)
    weight = rng.uniform(0.5, 2.0, size=4)
    options = {"weight": weight, "reduction": reduction, "label_smoothing": 0.25}
    loss, cache = cl.cross_entropy_forward(x, target, **options)
    dloss = _dloss(rng, loss)
    dx, dtarget = cl.cross_entropy_backward(dloss, cache, need_dtarget=True)

    def objective(x_: np.ndarray, t_: np.ndarray) -> float:
        return float(np.sum(np.asarray(dloss) * cl.cross_entropy(x_, t_, **options)))

    np.testing.assert_allclose(dx, numerical_gradient(lambda v: objective(v, target), x),
                               rtol=1e-7, atol=1e-9)  # fmt: skip
    if prob:
        np.testing.assert_allclose(dtarget, numerical_gradient(lambda v: objective(x, v), target),
                                   rtol=1e-7, atol=1e-9)  # fmt: skip


@pytest.mark.parametrize(("shape", "reduction", "weighted", "prob", "ignore", "eps"), CASES,
                         ids=str)  # fmt: skip
def test_tensor_ops_match_torch(shape, reduction, weighted, prob, ignore, eps) -> None:
    rng = np.random.default_rng(3)
    x_array = rng.normal(size=shape) * 2
    target_array = _target(rng, shape, prob, ignore)
    kw = _kwargs(rng, shape, weighted, ignore, eps)
    x = convprop.tensor(x_array, requires_grad=True)
    target = convprop.tensor(target_array, requires_grad=prob)
    loss = F.cross_entropy(x, target, kw["weight"], ignore_index=kw["ignore_index"],
                           reduction=reduction, label_smoothing=eps)  # fmt: skip
    dloss = _dloss(rng, loss.data)
    loss.backward(np.asarray(dloss))
    xt = torch.tensor(x_array, requires_grad=True)
    tt = torch.tensor(target_array, requires_grad=prob)
    weight_t = None if kw["weight"] is None else torch.tensor(kw["weight"])
    loss_t = torch.nn.functional.cross_entropy(
        xt, tt, weight_t, ignore_index=kw["ignore_index"], reduction=reduction,
        label_smoothing=eps,
    )  # fmt: skip
    loss_t.backward(torch.tensor(dloss, dtype=torch.float64))
    np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    if prob:
        np.testing.assert_allclose(target.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-14)
    if not prob and not eps:  # the same through log_softmax and nll_loss
        x2 = convprop.tensor(x_array, requires_grad=True)
        dim = 1 if len(shape) > 1 else 0
        nll = F.nll_loss(F.log_softmax(x2, dim), target_array, kw["weight"],
                         ignore_index=kw["ignore_index"], reduction=reduction)  # fmt: skip
        np.testing.assert_allclose(nll.data, loss.data, rtol=1e-13, atol=1e-15)
        nll.backward(np.asarray(dloss))
        np.testing.assert_allclose(x2.grad, x.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_cross_entropy_equals_the_softmax_cross_entropy_pair_bit_for_bit_ce4(dtype):
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(9, 6)) * 3).astype(dtype)
    labels = rng.integers(0, 6, size=9)
    loss, cache = cl.cross_entropy_forward(x, labels)
    old_loss, old_cache = softmax_cross_entropy_forward(x, labels)
    np.testing.assert_array_equal(loss, old_loss)
    assert loss.dtype == dtype
    for dloss in (1.0, np.array(0.7)):
        dx, _ = cl.cross_entropy_backward(dloss, cache)
        np.testing.assert_array_equal(dx, softmax_cross_entropy_backward(dloss, old_cache))
        assert dx.dtype == dtype


def test_worked_example_of_the_derivations_label_smoothing_ce6_ce9() -> None:
    x = np.array([0.0, 0.0, math.log(2.0)])
    loss, cache = cl.cross_entropy_forward(x, np.array(2), label_smoothing=0.3)
    assert float(loss) == pytest.approx(0.8317766166719343, rel=1e-14)
    np.testing.assert_allclose(cl.cross_entropy_backward(1.0, cache)[0], [0.15, 0.15, -0.3],
                               atol=1e-15)  # fmt: skip


def test_a_mean_over_ignored_targets_only_is_nan_with_zero_gradient_rd3_rd4() -> None:
    x = convprop.tensor(np.random.default_rng(5).normal(size=(2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, np.array([1, 1]), ignore_index=1, label_smoothing=0.1)
    assert math.isnan(float(loss.data))
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))
    assert math.isnan(float(F.nll_loss(x, np.array([1, 1]), ignore_index=1).data))


def test_loss_modules_match_torch_and_keep_weight_as_a_buffer() -> None:
    rng = np.random.default_rng(6)
    weight = rng.uniform(0.5, 2.0, size=4)
    x_array = rng.normal(size=(5, 4, 3))
    labels = rng.integers(0, 4, size=(5, 3))
    pairs = [
        (nn.CrossEntropyLoss(weight, ignore_index=2, label_smoothing=0.1, reduction="sum"),
         torch.nn.CrossEntropyLoss(torch.tensor(weight), ignore_index=2, label_smoothing=0.1,
                                   reduction="sum")),
        (nn.NLLLoss(weight, reduction="none"),
         torch.nn.NLLLoss(torch.tensor(weight), reduction="none")),
        (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
    ]  # fmt: skip
    for ours, theirs in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        x = convprop.tensor(x_array, requires_grad=True)
        loss = ours(x, labels)
        xt = torch.tensor(x_array, requires_grad=True)
        loss_t = theirs(xt, torch.tensor(labels))
        np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-12)
        dloss = _dloss(rng, loss.data)
        loss.backward(np.asarray(dloss))
        loss_t.backward(torch.tensor(dloss, dtype=torch.float64))
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
        rebuilt = build({"type": type(ours).__name__, "config": ours.config()})
        config, rebuilt_config = ours.config(), rebuilt.config()
        if config["weight"] is not None:  # a config's list becomes float32, the default dtype
            np.testing.assert_allclose(rebuilt_config.pop("weight"), config.pop("weight"),
                                       rtol=1e-7)  # fmt: skip
        assert rebuilt_config == config


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, 3])), ShapeError,
         r"lie in \[0, C\)"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, -1])), ShapeError,
         "got -1"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0])), ShapeError,
         "one class index per position"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.ones((2, 2))), ShapeError,
         "shape of the input"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([True, False])),
         DTypeError, "integer or float"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.ones((2, 3)), ignore_index=0),
         ParameterError, "ignore_index applies to class indices"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, 1]),
                                          label_smoothing=1.5), ParameterError, "label_smoothing"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, 1]), reduction="avg"),
         ParameterError, "unknown reduction"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, 1]), weight=np.ones(2)),
         ShapeError, "one value per class"),
        (lambda: cl.cross_entropy_forward(np.array(1.0), np.array(0)), ShapeError, "0-d"),
        (lambda: cl.cross_entropy_forward(np.ones((2, 3)), np.array([0, 1]), ignore_index=1.5),
         ParameterError, "ignore_index must be an int"),
        (lambda: cl.nll_loss_forward(np.ones((2, 3)), np.ones((2, 3))), DTypeError,
         "class indices"),
        (lambda: cl.nll_loss_forward(np.ones((2, 3), int), np.array([0, 1])), DTypeError,
         "float32"),
        (lambda: cl.nll_loss_backward(np.ones(3), cl.nll_loss_forward(
            np.ones((2, 3)), np.array([0, 1]), reduction="none")[1]), ShapeError,
         "shape of the loss"),
        (lambda: F.cross_entropy(np.ones((2, 3)), np.array([0, 1]), size_average=True),
         ParameterError, "deprecated"),
        (lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ParameterError, "label_smoothing"),
        (lambda: nn.NLLLoss(reduction="mean2"), ParameterError, "unknown reduction"),
        (lambda: nn.NLLLoss(ignore_index=None), ParameterError, "ignore_index"),
        (lambda: nn.CrossEntropyLoss(weight="heavy"), ParameterError, "weight must be"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_cross_entropy_with_minus_infinity_at_another_class_is_finite_as_pytorch() -> None:
    """(CE7) with a class index picks −logp[i, t_i]: a −∞ logit of another class adds no
    0·(−∞) = NaN term (PyTorch: 0); at the target class the loss is +∞, as PyTorch's."""
    import convprop
    import convprop.nn.functional as F

    x = np.array([[0.5, -np.inf, 1.0], [-np.inf, 0.25, 2.0]])
    target = np.array([0, 1])
    ours = convprop.tensor(x, requires_grad=True)
    loss = F.cross_entropy(ours, target)
    loss.backward()
    theirs = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(theirs, torch.tensor(target))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
    at_target = F.cross_entropy(convprop.tensor(x), np.array([1, 0]))
    assert at_target.item() == np.inf
