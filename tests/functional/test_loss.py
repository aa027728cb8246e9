"""Losses (CE1)–(CE4), (MSE1)–(MSE3): references, finite differences, PyTorch, contract, errors."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_activations as ref
from convprop.backend import get_xp, to_host
from convprop.errors import DTypeError, ShapeError
from convprop.functional.loss import (
    mse_loss,
    mse_loss_backward,
    mse_loss_forward,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

N, K = 5, 4
DLOSS = 0.7  # a random-looking upstream scalar, not 1.0


def make_classification(seed: int, scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, K)) * scale, rng.integers(0, K, size=N)


# ---------------------------------------------------------------- softmax cross-entropy


def test_cross_entropy_forward_matches_reference_ce1_ce2_ce3() -> None:
    logits, labels = make_classification(0)
    loss, _ = softmax_cross_entropy_forward(logits, labels)
    assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss, ref.softmax_cross_entropy(logits, labels), rtol=1e-14)
    np.testing.assert_array_equal(softmax_cross_entropy(logits, labels), loss)


@pytest.mark.parametrize("dloss", [DLOSS, np.array(DLOSS), np.float32(DLOSS), 2])
def test_cross_entropy_backward_matches_reference_ce4(dloss: Any) -> None:
    logits, labels = make_classification(1)
    _, cache = softmax_cross_entropy_forward(logits, labels)
    dlogits = softmax_cross_entropy_backward(dloss, cache)
    expected = ref.softmax_cross_entropy_grad(logits, labels, float(dloss))
    np.testing.assert_allclose(dlogits, expected, rtol=1e-7, atol=1e-15)
    assert dlogits.dtype == np.float64


def test_cross_entropy_backward_matches_finite_differences_ce4() -> None:
    logits, labels = make_classification(2)
    _, cache = softmax_cross_entropy_forward(logits, labels)
    dlogits = softmax_cross_entropy_backward(DLOSS, cache)
    numeric = ref.numerical_gradient(
        lambda v: DLOSS * float(softmax_cross_entropy_forward(v, labels)[0]), logits
    )
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("scale", [3.0, 1000.0])
def test_cross_entropy_matches_torch_including_huge_logits(scale: float) -> None:
    logits, labels = make_classification(3, scale)
    logits[0] = [1000.0, -1000.0, 1000.0, -1000.0]
    logits[1] = [-1000.0, -1000.0, -1000.0, -1000.0]
    loss, cache = softmax_cross_entropy_forward(logits, labels)  # no overflow warning (error)
    dlogits = softmax_cross_entropy_backward(DLOSS, cache)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.tensor(labels))
    (DLOSS * loss_t).backward()
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-13)
    np.testing.assert_allclose(dlogits, logits_t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_softmax_is_stable_and_matches_torch_ce2() -> None:
    logits, _ = make_classification(4, 1000.0)
    probs = softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(N), rtol=1e-14)
    expected = torch.softmax(torch.tensor(logits), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=1e-300)
    assert softmax(logits.astype(np.float32)).dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(st.floats(-1e3, 1e3), st.integers(0, 99))
def test_cross_entropy_is_invariant_to_a_shift_of_each_row_ce1(shift: float, seed: int) -> None:
    logits, labels = make_classification(seed)
    loss, _ = softmax_cross_entropy_forward(logits, labels)
    shifted, _ = softmax_cross_entropy_forward(logits + shift, labels)
    np.testing.assert_allclose(shifted, loss, rtol=1e-9, atol=1e-9)


def test_cross_entropy_gradient_rows_sum_to_zero_ce4() -> None:
    logits, labels = make_classification(5)
    _, cache = softmax_cross_entropy_forward(logits, labels)
    np.testing.assert_allclose(
        softmax_cross_entropy_backward(DLOSS, cache).sum(axis=1), 0, atol=1e-16
    )


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_cross_entropy_float32_is_preserved(label_dtype: type) -> None:
    logits, labels = make_classification(6)
    logits32 = logits.astype(np.float32)
    loss, cache = softmax_cross_entropy_forward(logits32, labels.astype(label_dtype))
    assert isinstance(loss, np.ndarray) and loss.dtype == np.float32
    for dloss in (DLOSS, np.array(DLOSS), np.array(DLOSS, dtype=np.float32)):
        assert softmax_cross_entropy_backward(dloss, cache).dtype == np.float32
    np.testing.assert_allclose(loss, ref.softmax_cross_entropy(logits32, labels), rtol=1e-6)


def test_cross_entropy_no_mutation_and_backward_twice_identical() -> None:
    logits, labels = make_classification(7)
    logits_before, labels_before = logits.copy(), labels.copy()
    _, cache = softmax_cross_entropy_forward(logits, labels)
    probs_before = cache.probs.copy()
    first = softmax_cross_entropy_backward(DLOSS, cache)
    second = softmax_cross_entropy_backward(DLOSS, cache)
    np.testing.assert_array_equal(first, second)
    assert not np.shares_memory(first, second) and not np.shares_memory(first, cache.probs)
    np.testing.assert_array_equal(logits, logits_before)
    np.testing.assert_array_equal(labels, labels_before)
    np.testing.assert_array_equal(cache.probs, probs_before)


def test_cross_entropy_non_contiguous_logits_are_accepted() -> None:
    logits, labels = make_classification(8)
    view = np.asfortranarray(logits)[:, ::-1]
    loss, _ = softmax_cross_entropy_forward(view, labels)
    np.testing.assert_allclose(loss, ref.softmax_cross_entropy(view, labels), rtol=1e-14)


def test_cross_entropy_rejects_bad_logits() -> None:
    labels = np.zeros(N, dtype=np.int64)
    with pytest.raises(ShapeError, match=r"softmax_cross_entropy: logits must be \(N, K\)"):
        softmax_cross_entropy_forward(np.zeros((N, K, 1)), labels)
    with pytest.raises(ShapeError, match=r"got logits.shape=\(0, 4\)"):
        softmax_cross_entropy_forward(np.zeros((0, K)), labels[:0])
    with pytest.raises(DTypeError, match="softmax_cross_entropy: logits has dtype int64"):
        softmax_cross_entropy_forward(np.zeros((N, K), dtype=np.int64), labels)
    with pytest.raises(DTypeError, match="softmax_cross_entropy: logits must be a numpy"):
        softmax_cross_entropy_forward([[0.0]], labels)
    with pytest.raises(ShapeError, match=r"softmax: logits must be \(N, K\)"):
        softmax(np.zeros(K))


def test_cross_entropy_rejects_bad_labels() -> None:
    logits = np.zeros((N, K))
    with pytest.raises(DTypeError, match=r"labels must be integer class indices; .* got float64"):
        softmax_cross_entropy_forward(logits, np.zeros(N))
    with pytest.raises(DTypeError, match=r"labels must be integer class indices; .* got bool"):
        softmax_cross_entropy_forward(logits, np.zeros(N, dtype=bool))
    with pytest.raises(
        ShapeError, match=r"one class index per sample; expected shape \(N,\)=\(5,\)"
    ):
        softmax_cross_entropy_forward(logits, np.zeros(N - 1, dtype=np.int64))
    with pytest.raises(ShapeError, match=r"expected shape \(N,\)=\(5,\), got \(5, 1\)"):
        softmax_cross_entropy_forward(logits, np.zeros((N, 1), dtype=np.int64))
    with pytest.raises(DTypeError, match="softmax_cross_entropy: labels must be a numpy"):
        softmax_cross_entropy_forward(logits, [0] * N)


@pytest.mark.parametrize(("bad", "low", "high"), [(-1, -1, 3), (K, 0, 4)])
def test_cross_entropy_rejects_labels_out_of_range(bad: int, low: int, high: int) -> None:
    labels = np.array([0, 1, 2, 3, bad])
    with pytest.raises(
        ShapeError, match=rf"labels must lie in \[0, K\) for K=4 .* from {low} to {high}"
    ):
        softmax_cross_entropy_forward(np.zeros((N, K)), labels)


@pytest.mark.parametrize(
    ("dloss", "error", "message"),
    [
        (np.ones(1), ShapeError, r"dloss is the gradient of a scalar loss; .* got shape \(1,\)"),
        (np.array(1), DTypeError, "dloss has dtype int64"),
        ("1.0", DTypeError, "dloss must be a numpy or cupy array"),
        (True, DTypeError, "dloss must be a numpy or cupy array"),
    ],
)
def test_backward_rejects_bad_upstream_scalar(dloss: Any, error: type, message: str) -> None:
    _, ce_cache = softmax_cross_entropy_forward(*make_classification(9))
    with pytest.raises(error, match=f"softmax_cross_entropy_backward: {message}"):
        softmax_cross_entropy_backward(dloss, ce_cache)
    _, mse_cache = mse_loss_forward(np.zeros(3), np.ones(3))
    with pytest.raises(error, match=f"mse_loss_backward: {message}"):
        mse_loss_backward(dloss, mse_cache)


# ---------------------------------------------------------------- mean squared error


def make_regression(seed: int, shape: tuple[int, ...] = (3, 2, 4)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=shape)


def test_mse_forward_matches_reference_mse1() -> None:
    pred, target = make_regression(10)
    loss, _ = mse_loss_forward(pred, target)
    assert isinstance(loss, np.ndarray) and loss.shape == ()
    np.testing.assert_allclose(loss, ref.mse_loss(pred, target), rtol=1e-14)
    np.testing.assert_array_equal(mse_loss(pred, target), loss)


def test_mse_backward_matches_reference_and_finite_differences_mse2() -> None:
    pred, target = make_regression(11)
    _, cache = mse_loss_forward(pred, target)
    dpred = mse_loss_backward(DLOSS, cache)
    np.testing.assert_allclose(dpred, ref.mse_loss_grad(pred, target, DLOSS), rtol=1e-14)
    numeric = ref.numerical_gradient(lambda v: DLOSS * float(mse_loss_forward(v, target)[0]), pred)
    np.testing.assert_allclose(dpred, numeric, rtol=1e-6, atol=1e-9)


def test_mse_gradient_is_the_half_sum_gradient_scaled_mse3() -> None:
    pred, target = make_regression(12)
    _, cache = mse_loss_forward(pred, target)
    half_sum_gradient = ref.numerical_gradient(
        lambda v: 0.5 * float(np.sum((v - target) ** 2)), pred
    )  # (MSE3): pred − target
    np.testing.assert_allclose(half_sum_gradient, pred - target, rtol=1e-7, atol=1e-9)
    scale = 2 * DLOSS / pred.size
    np.testing.assert_allclose(mse_loss_backward(DLOSS, cache), scale * (pred - target), rtol=1e-14)


def test_mse_matches_torch() -> None:
    pred, target = make_regression(13)
    loss, cache = mse_loss_forward(pred, target)
    pred_t = torch.tensor(pred, requires_grad=True)
    loss_t = torch.nn.functional.mse_loss(pred_t, torch.tensor(target))
    (DLOSS * loss_t).backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-14)
    np.testing.assert_allclose(mse_loss_backward(DLOSS, cache), pred_t.grad.numpy(), rtol=1e-14)


def test_mse_float32_no_mutation_and_backward_twice_identical() -> None:
    pred, target = (a.astype(np.float32) for a in make_regression(14))
    before = (pred.copy(), target.copy())
    loss, cache = mse_loss_forward(pred, target)
    assert loss.dtype == np.float32
    first = mse_loss_backward(np.array(DLOSS), cache)
    second = mse_loss_backward(np.array(DLOSS), cache)
    assert first.dtype == np.float32 and first.shape == pred.shape
    np.testing.assert_array_equal(first, second)
    assert not np.shares_memory(first, second) and not np.shares_memory(first, cache.diff)
    np.testing.assert_array_equal(pred, before[0])
    np.testing.assert_array_equal(target, before[1])


def test_mse_rejects_bad_inputs() -> None:
    pred, target = make_regression(15)
    with pytest.raises(
        ShapeError,
        match=r"mse_loss: pred and target must have the same non-empty shape.*\(3, 2, 4\)",
    ):
        mse_loss_forward(pred, target[:, :1])
    with pytest.raises(ShapeError, match=r"got pred.shape=\(0,\)"):
        mse_loss_forward(np.zeros(0), np.zeros(0))
    with pytest.raises(DTypeError, match="mse_loss: arrays must share one dtype"):
        mse_loss_forward(pred, target.astype(np.float32))
    with pytest.raises(DTypeError, match="mse_loss: target must be a numpy or cupy array"):
        mse_loss_forward(pred, 0.0)


def test_backend_parity(xp: ModuleType) -> None:
    logits, labels = make_classification(16, 1000.0)
    loss, cache = softmax_cross_entropy_forward(xp.asarray(logits), xp.asarray(labels))
    dlogits = softmax_cross_entropy_backward(xp.asarray(DLOSS), cache)
    assert get_xp(loss, dlogits) is xp
    np.testing.assert_allclose(to_host(loss), ref.softmax_cross_entropy(logits, labels), rtol=1e-13)
    expected = ref.softmax_cross_entropy_grad(logits, labels, DLOSS)
    np.testing.assert_allclose(to_host(dlogits), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(to_host(softmax(xp.asarray(logits))), softmax(logits), rtol=1e-13)
    pred, target = make_regression(17)
    loss, cache = mse_loss_forward(xp.asarray(pred), xp.asarray(target))
    dpred = mse_loss_backward(DLOSS, cache)
    np.testing.assert_allclose(to_host(loss), ref.mse_loss(pred, target), rtol=1e-14)
    np.testing.assert_allclose(to_host(dpred), ref.mse_loss_grad(pred, target, DLOSS), rtol=1e-14)
