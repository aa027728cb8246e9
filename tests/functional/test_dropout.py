"""Inverted dropout (DO1)–(DO6): reproducible mask, statistics, gradients, contract, errors."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import reference_activations as ref
from convprop.backend import get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional.dropout import dropout, dropout_backward, dropout_forward

SHAPE = (2, 3, 4, 5)
SEED = 1234


def test_mask_is_reproducible_from_the_seed_do1_do2_do3() -> None:
    x = np.random.default_rng(0).normal(size=SHAPE)
    y1, _ = dropout_forward(x, p=0.3, rng=np.random.default_rng(SEED))
    y2, _ = dropout_forward(x, p=0.3, rng=np.random.default_rng(SEED))
    np.testing.assert_array_equal(y1, y2)
    mask = np.random.default_rng(SEED).random(SHAPE) >= 0.3  # (DO1), (DO2) drawn by hand
    np.testing.assert_allclose(y1, ref.dropout(x, mask, 0.3), rtol=1e-15)
    y3, _ = dropout_forward(x, p=0.3, rng=np.random.default_rng(SEED + 1))
    assert not np.array_equal(y1, y3)


def test_successive_calls_draw_fresh_masks() -> None:
    rng = np.random.default_rng(SEED)
    x = np.ones(SHAPE)
    assert not np.array_equal(dropout(x, p=0.5, rng=rng), dropout(x, p=0.5, rng=rng))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_kept_fraction_and_mean_are_statistically_right_do2_do3(p: float) -> None:
    count = 200_000
    y, cache = dropout_forward(np.ones(count), p=p, rng=np.random.default_rng(SEED))
    kept = np.count_nonzero(y) / count
    sigma = np.sqrt(p * (1 - p) / count)
    assert abs(kept - (1 - p)) < 5 * sigma  # each element is kept with probability 1 − p
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - p)  # inverted dropout: E[y] = x
    np.testing.assert_array_equal(np.unique(y), [0.0, 1 / (1 - p)])
    assert cache.mask is not None and cache.mask.dtype == bool


def test_backward_matches_reference_do5() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=SHAPE)
    dy = rng.normal(size=SHAPE)
    _, cache = dropout_forward(x, p=0.4, rng=np.random.default_rng(SEED))
    mask = np.random.default_rng(SEED).random(SHAPE) >= 0.4
    np.testing.assert_allclose(dropout_backward(dy, cache), ref.dropout(dy, mask, 0.4), rtol=1e-15)


def test_backward_matches_finite_differences_with_the_mask_fixed_do5() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 2, 2))
    dy = rng.normal(size=x.shape)
    _, cache = dropout_forward(x, p=0.25, rng=np.random.default_rng(SEED))
    dx = dropout_backward(dy, cache)

    def objective(x_: np.ndarray) -> float:  # the same seed gives the same mask every time
        y, _ = dropout_forward(x_, p=0.25, rng=np.random.default_rng(SEED))
        return float(np.sum(dy * y))

    np.testing.assert_allclose(dx, ref.numerical_gradient(objective, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("p", "training"), [(0.5, False), (0.0, True), (0.0, False)])
def test_evaluation_mode_and_p_zero_are_the_identity_do4_do6(p: float, training: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=SHAPE)
    dy = rng.normal(size=SHAPE)
    y, cache = dropout_forward(x, p=p, training=training)  # no generator needed
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(y, x)
    dx = dropout_backward(dy, cache)
    np.testing.assert_array_equal(dx, dy)
    assert not np.shares_memory(dx, dy)
    xt = torch.tensor(x)
    yt = torch.nn.functional.dropout(xt, p=p, training=training)
    np.testing.assert_array_equal(y, yt.numpy())


def test_evaluation_mode_leaves_the_generator_untouched() -> None:
    rng = np.random.default_rng(SEED)
    dropout_forward(np.ones(3), p=0.5, training=False, rng=rng)
    assert rng.random() == np.random.default_rng(SEED).random()


def test_p_one_drops_everything_without_warnings_do3() -> None:
    x = np.random.default_rng(4).normal(size=SHAPE)
    y, cache = dropout_forward(x, p=1.0, rng=np.random.default_rng(SEED))
    np.testing.assert_array_equal(y, np.zeros(SHAPE))
    np.testing.assert_array_equal(dropout_backward(np.ones(SHAPE), cache), np.zeros(SHAPE))
    yt = torch.nn.functional.dropout(torch.tensor(x), p=1.0, training=True)
    np.testing.assert_array_equal(y, yt.numpy())


def test_p_as_int_one_is_accepted() -> None:
    y = dropout(np.ones(4, dtype=np.float32), p=1, rng=np.random.default_rng(SEED))
    np.testing.assert_array_equal(y, np.zeros(4))


def test_float32_is_preserved() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=SHAPE).astype(np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    for training in (True, False):
        y, cache = dropout_forward(x, p=0.3, training=training, rng=np.random.default_rng(SEED))
        dx = dropout_backward(dy, cache)
        assert y.dtype == np.float32 and dx.dtype == np.float32
        assert y.shape == SHAPE and dx.shape == SHAPE


def test_no_mutation_and_backward_twice_identical() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=SHAPE)
    dy = rng.normal(size=SHAPE)
    x_before, dy_before = x.copy(), dy.copy()
    _, cache = dropout_forward(x, p=0.5, rng=np.random.default_rng(SEED))
    mask_before = cache.mask.copy()
    dx1 = dropout_backward(dy, cache)
    dx2 = dropout_backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(cache.mask, mask_before)
    assert not np.shares_memory(dx1, dx2) and not np.shares_memory(dx1, dy)


def test_non_contiguous_input_is_accepted() -> None:
    x = np.random.default_rng(7).normal(size=(5, 4, 3, 2)).transpose(3, 2, 1, 0)
    y, _ = dropout_forward(x, p=0.5, rng=np.random.default_rng(SEED))
    mask = np.random.default_rng(SEED).random(x.shape) >= 0.5
    np.testing.assert_allclose(y, ref.dropout(x, mask, 0.5), rtol=1e-15)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_rejects_p_outside_zero_one(p: Any) -> None:
    with pytest.raises(ParameterError, match=r"dropout: p is the probability .* expected a number"):
        dropout_forward(np.ones(2), p=p, rng=np.random.default_rng(SEED))


def test_rejects_non_bool_training() -> None:
    with pytest.raises(ParameterError, match="dropout: training must be a bool"):
        dropout_forward(np.ones(2), p=0.5, training="yes", rng=np.random.default_rng(SEED))


@pytest.mark.parametrize("rng", [None, 1234, object()])
def test_training_needs_a_generator(rng: Any) -> None:
    with pytest.raises(ParameterError, match=r"dropout: training with p=0.5 .* needs a generator"):
        dropout_forward(np.ones(2), p=0.5, rng=rng)


def test_rejects_bad_arrays() -> None:
    with pytest.raises(DTypeError, match="dropout: x must be a numpy or cupy array"):
        dropout_forward([1.0], p=0.5, rng=np.random.default_rng(SEED))
    with pytest.raises(DTypeError, match="dropout: x has dtype int64; expected float32"):
        dropout_forward(np.arange(3), p=0.5, rng=np.random.default_rng(SEED))
    _, cache = dropout_forward(np.ones((2, 3)), p=0.5, rng=np.random.default_rng(SEED))
    with pytest.raises(ShapeError, match=r"dropout_backward: dy.shape=\(3, 2\) does not match"):
        dropout_backward(np.ones((3, 2)), cache)
    with pytest.raises(DTypeError, match="dropout_backward: dy has dtype float32"):
        dropout_backward(np.ones((2, 3), dtype=np.float32), cache)


def test_backend_parity(xp: ModuleType) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=SHAPE).astype(np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    y, cache = dropout_forward(xp.asarray(x), p=0.3, rng=np.random.default_rng(SEED))
    dx = dropout_backward(xp.asarray(dy), cache)
    assert get_xp(y, dx) is xp
    y_host, cache_host = dropout_forward(x, p=0.3, rng=np.random.default_rng(SEED))
    np.testing.assert_array_equal(to_host(y), y_host)  # the same seed, the same mask
    np.testing.assert_array_equal(to_host(dx), dropout_backward(dy, cache_host))
