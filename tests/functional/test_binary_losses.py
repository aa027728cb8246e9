"""Binary cross-entropy on probabilities and on logits (BCE1–BCE7) and the squared error's
reductions and weight (MSE4–MSE6): reference, finite differences, PyTorch, modules, errors."""

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
from convprop.functional import binary_loss as bl
from convprop.functional import loss as loss_pair
from convprop.io import build
from convprop.nn import functional as F

REDUCTIONS = ["mean", "sum", "none"]
# (x shape, weight shape or None, pos_weight shape or None)
SHAPES = [((), None, None), ((5,), None, None), ((4, 3), (3,), (3,)), ((4, 3), (4, 3), None),
          ((2, 3, 2), (1, 3, 1), (2,)), ((0, 3), None, None)]  # fmt: skip


def _data(rng, shape, wshape, pshape, logits: bool):
    x = rng.normal(size=shape) * 3 if logits else rng.uniform(0.05, 0.95, size=shape)
    t = rng.uniform(0, 1, size=shape)
    w = None if wshape is None else rng.uniform(0.5, 2.0, size=wshape)
    p = None if pshape is None else rng.uniform(0.5, 3.0, size=pshape)
    return x, t, w, p


def _full(a, shape):
    return np.broadcast_to(np.ones(()) if a is None else a, shape)


def _dloss(rng, loss):
    return rng.normal(size=np.shape(loss)) if np.ndim(loss) else 0.7


@pytest.mark.parametrize(("shape", "wshape", "pshape"), SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_reference_bce1_bce3(shape, wshape, pshape, reduction) -> None:
    rng = np.random.default_rng(0)
    x, t, w, _ = _data(rng, shape, wshape, pshape, logits=False)
    loss, cache = bl.binary_cross_entropy_forward(x, t, weight=w, reduction=reduction)
    expected = ref.bce(x, t, _full(w, shape), reduction)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-14, equal_nan=True)
    dloss = _dloss(rng, loss)
    dx, dt = bl.binary_cross_entropy_backward(dloss, cache, need_dtarget=True)
    rdx, rdt = ref.bce_grad(x, t, _full(w, shape), dloss, reduction)
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dt, rdt, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("shape", "wshape", "pshape"), SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_reference_bce4_bce7(shape, wshape, pshape, reduction) -> None:
    rng = np.random.default_rng(1)
    x, t, w, p = _data(rng, shape, wshape, pshape, logits=True)
    loss, cache = bl.binary_cross_entropy_with_logits_forward(
        x, t, weight=w, pos_weight=p, reduction=reduction
    )
    W, P = _full(w, shape), _full(p, shape)
    np.testing.assert_allclose(loss, ref.bce_logits(x, t, W, P, reduction), rtol=1e-12,
                               atol=1e-14, equal_nan=True)  # fmt: skip
    dloss = _dloss(rng, loss)
    dx, dt = bl.binary_cross_entropy_with_logits_backward(dloss, cache, need_dtarget=True)
    rdx, rdt = ref.bce_logits_grad(x, t, W, P, dloss, reduction)
    np.testing.assert_allclose(dx, rdx, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(dt, rdt, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize(("shape", "weighted"), [((4, 3), False), ((2, 3, 2), True), ((), False)],
                         ids=str)  # fmt: skip
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_reference_mse4_mse6(shape, weighted, reduction) -> None:
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=shape), rng.normal(size=shape)
    w = rng.uniform(0.5, 2.0, size=shape) if weighted else None
    loss, cache = loss_pair.mse_loss_forward(pred, target, reduction=reduction, weight=w)
    np.testing.assert_allclose(loss, ref.mse(pred, target, _full(w, shape), reduction),
                               rtol=1e-12)  # fmt: skip
    dloss = _dloss(rng, loss)
    rdpred, _ = ref.mse_grad(pred, target, _full(w, shape), dloss, reduction)
    np.testing.assert_allclose(loss_pair.mse_loss_backward(dloss, cache), rdpred, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradients_match_finite_differences_bce2_bce3_bce6_bce7_mse5(reduction) -> None:
    rng = np.random.default_rng(3)
    shape = (3, 4)
    cases = [
        (bl.binary_cross_entropy_forward, bl.binary_cross_entropy_backward,
         rng.uniform(0.1, 0.9, size=shape), {"weight": rng.uniform(0.5, 2, size=4)}),
        (bl.binary_cross_entropy_with_logits_forward, bl.binary_cross_entropy_with_logits_backward,
         rng.normal(size=shape) * 2, {"weight": rng.uniform(0.5, 2, size=shape),
                                      "pos_weight": rng.uniform(0.5, 3, size=4)}),
    ]  # fmt: skip
    t = rng.uniform(0.1, 0.9, size=shape)
    for forward, backward, x, options in cases:
        loss, cache = forward(x, t, reduction=reduction, **options)
        dloss = _dloss(rng, loss)
        dx, dt = backward(dloss, cache, need_dtarget=True)

        def objective(
            x_: np.ndarray, t_: np.ndarray, forward=forward, options=options, dloss=dloss
        ) -> float:
            losses = forward(x_, t_, reduction=reduction, **options)[0]
            return float(np.sum(np.asarray(dloss) * losses))  # fmt: skip

        np.testing.assert_allclose(dx, numerical_gradient(lambda v, t=t: objective(v, t), x),
                                   rtol=1e-7, atol=1e-9)  # fmt: skip
        np.testing.assert_allclose(dt, numerical_gradient(lambda v, x=x: objective(x, v), t),
                                   rtol=1e-7, atol=1e-9)  # fmt: skip


def _torch_args(arrays):
    return [None if a is None else torch.tensor(a) for a in arrays]


@pytest.mark.parametrize(("shape", "wshape", "pshape"), SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_tensor_ops_match_torch_with_target_gradients(shape, wshape, pshape, reduction) -> None:
    rng = np.random.default_rng(4)
    for logits in (False, True):
        x_array, t_array, w, p = _data(rng, shape, wshape, pshape, logits)
        x = convprop.tensor(x_array, requires_grad=True)
        t = convprop.tensor(t_array, requires_grad=True)
        xt = torch.tensor(x_array, requires_grad=True)
        tt = torch.tensor(t_array, requires_grad=True)
        wt, pt = _torch_args((w, p))
        if logits:
            loss = F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=p)
            loss_t = torch.nn.functional.binary_cross_entropy_with_logits(
                xt, tt, wt, reduction=reduction, pos_weight=pt
            )
        else:
            loss = F.binary_cross_entropy(x, t, w, reduction=reduction)
            loss_t = torch.nn.functional.binary_cross_entropy(xt, tt, wt, reduction=reduction)
        dloss = _dloss(rng, loss.data)
        loss.backward(np.asarray(dloss))
        loss_t.backward(torch.tensor(dloss, dtype=torch.float64))
        np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-10, atol=1e-14,
                                   equal_nan=True)  # fmt: skip
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_tensor_op_matches_torch_weighted_and_with_the_target_gradient(reduction) -> None:
    rng = np.random.default_rng(5)
    pred_array, target_array = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    for w in (None, rng.uniform(0.5, 2.0, size=(2, 3, 4))):
        pred = convprop.tensor(pred_array, requires_grad=True)
        target = convprop.tensor(target_array, requires_grad=True)
        loss = F.mse_loss(pred, target, reduction=reduction, weight=w)
        pt = torch.tensor(pred_array, requires_grad=True)
        tt = torch.tensor(target_array, requires_grad=True)
        wt = None if w is None else torch.tensor(w)
        loss_t = torch.nn.functional.mse_loss(pt, tt, reduction=reduction, weight=wt)
        dloss = _dloss(rng, loss.data)
        loss.backward(np.asarray(dloss))
        loss_t.backward(torch.tensor(dloss, dtype=torch.float64))
        np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(pred.grad, pt.grad.numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(target.grad, tt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_bce_at_zero_and_one_clamps_the_log_at_minus_100_and_the_denominator_bce1_bce2() -> None:
    x_array = np.array([0.0, 1.0, 0.0, 1.0])
    t_array = np.array([1.0, 0.0, 0.3, 0.6])
    x = convprop.tensor(x_array, requires_grad=True)
    loss = F.binary_cross_entropy(x, t_array, reduction="none")
    loss.backward(np.ones(4))
    np.testing.assert_allclose(loss.data, [100.0, 100.0, 30.0, 40.0], rtol=1e-15)
    xt = torch.tensor(x_array, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(xt, torch.tensor(t_array), reduction="none").backward(
        torch.ones(4, dtype=torch.float64)
    )
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-15)


def test_bce_with_logits_never_overflows_bce5() -> None:
    loss, cache = bl.binary_cross_entropy_with_logits_forward(
        np.array([-800.0, 800.0]), np.array([1.0, 0.0]), reduction="none"
    )
    np.testing.assert_array_equal(loss, [800.0, 800.0])
    dx, _ = bl.binary_cross_entropy_with_logits_backward(np.ones(2), cache)
    np.testing.assert_array_equal(dx, [-1.0, 1.0])


def test_loss_modules_match_torch_and_keep_weights_as_buffers() -> None:
    rng = np.random.default_rng(6)
    w, p = rng.uniform(0.5, 2.0, size=3), rng.uniform(0.5, 3.0, size=3)
    x_array, t = rng.normal(size=(4, 3)), rng.uniform(0, 1, size=(4, 3))
    probabilities = 1 / (1 + np.exp(-x_array))
    pairs = [
        (nn.BCEWithLogitsLoss(w, pos_weight=p), torch.nn.BCEWithLogitsLoss(
            torch.tensor(w), pos_weight=torch.tensor(p)), x_array),
        (nn.BCELoss(w, reduction="sum"), torch.nn.BCELoss(torch.tensor(w), reduction="sum"),
         probabilities),
        (nn.MSELoss(reduction="none"), torch.nn.MSELoss(reduction="none"), x_array),
    ]  # fmt: skip
    for ours, theirs, data in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())
        x = convprop.tensor(data, requires_grad=True)
        xt = torch.tensor(data, requires_grad=True)
        loss, loss_t = ours(x, t), theirs(xt, torch.tensor(t))
        dloss = _dloss(rng, loss.data)
        loss.backward(np.asarray(dloss))
        loss_t.backward(torch.tensor(dloss, dtype=torch.float64))
        np.testing.assert_allclose(loss.data, loss_t.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
        rebuilt = build({"type": type(ours).__name__, "config": ours.config()})
        assert rebuilt.reduction == ours.reduction


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bl.binary_cross_entropy_forward(np.array([1.5]), np.array([1.0])), ShapeError,
         "input must hold probabilities"),
        (lambda: bl.binary_cross_entropy_forward(np.array([0.5]), np.array([-0.5])), ShapeError,
         "target must hold probabilities"),
        (lambda: bl.binary_cross_entropy_forward(np.ones(3) / 2, np.ones(2) / 2), ShapeError,
         "shape of the input"),
        (lambda: bl.binary_cross_entropy_forward(np.ones(3) / 2, np.ones(3) / 2,
                                                 weight=np.ones((2, 3))), ShapeError, "broadcast"),
        (lambda: bl.binary_cross_entropy_with_logits_forward(np.ones(3), np.ones(3),
                                                             pos_weight=np.ones(2)),
         ShapeError, "pos_weight must broadcast"),
        (lambda: bl.binary_cross_entropy_with_logits_forward(np.ones(3), np.ones(3, np.float32)),
         DTypeError, "share one dtype"),
        (lambda: bl.binary_cross_entropy_with_logits_forward(np.ones(3), np.ones(3),
                                                             reduction="total"),
         ParameterError, "unknown reduction"),
        (lambda: bl.binary_cross_entropy_backward(np.ones(2), bl.binary_cross_entropy_forward(
            np.ones(3) / 2, np.ones(3) / 2, reduction="none")[1]), ShapeError, "shape of the loss"),
        (lambda: loss_pair.mse_loss_forward(np.ones(3), np.ones(3), weight=np.ones(2)),
         ShapeError, "one value per element"),
        (lambda: loss_pair.mse_loss_forward(np.ones(3), np.ones(3), reduction="avg"),
         ParameterError, "unknown reduction"),
        (lambda: F.binary_cross_entropy(np.ones(3) / 2, np.ones(3) / 2, reduce=False),
         ParameterError, "deprecated"),
        (lambda: nn.BCEWithLogitsLoss(reduction="max"), ParameterError, "unknown reduction"),
        (lambda: nn.MSELoss(size_average=False), ParameterError, "deprecated"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
