"""convprop.nn.utils: clip_grad_norm_ (CLIP1-CLIP4) and clip_grad_value_ (CLIP5).

Witnesses: the naive references of tests/reference_training.py (loops over every entry)
and torch.nn.utils on the same gradients (float64 to 1e-12, float32 to float32 rounding).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_training as ref
from convprop.errors import ParameterError
from convprop.nn import Parameter
from convprop.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)

SHAPES = [(3, 4), (5,), (2, 3, 2, 2), (1,)]


def make_grads(seed: int, dtype: Any = np.float64, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES]


def ours_with(grads: list[np.ndarray]) -> list[Parameter]:
    params = [Parameter(np.zeros_like(g)) for g in grads]
    for param, g in zip(params, grads, strict=True):
        param.grad[...] = g
    return params


def theirs_with(grads: list[np.ndarray]) -> list[torch.nn.Parameter]:
    params = [
        torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype)) for g in grads
    ]
    for param, g in zip(params, grads, strict=True):
        param.grad = torch.from_numpy(g.copy())
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.0, 0.3, 1.5, 100.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_clip_grad_norm_matches_reference_clip1_to_clip4_and_torch(
    norm_type: Any, max_norm: float, seed: int
) -> None:
    grads = make_grads(seed)
    p = float(norm_type)
    want_norm, want_grads = ref.clip_grad_norm(grads, max_norm, p)
    ours = ours_with(grads)
    theirs = theirs_with(grads)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=False)
    assert isinstance(total, convprop.Tensor) and total.shape == () and total.dtype == np.float64
    assert total.item() == pytest.approx(want_norm, rel=1e-12)
    assert total.item() == pytest.approx(torch_total.item(), rel=1e-12)
    for param, want, twin in zip(ours, want_grads, theirs, strict=True):
        np.testing.assert_allclose(param.grad, want, rtol=1e-12, atol=0)
        np.testing.assert_allclose(param.grad, twin.grad.numpy(), rtol=1e-12, atol=0)


def test_clip_grad_norm_scales_to_max_norm_and_leaves_small_gradients_alone() -> None:
    grads = make_grads(3, scale=10.0)
    params = ours_with(grads)
    before = ref.grad_norm(grads, 2.0)
    assert clip_grad_norm_(params, 1.0).item() == pytest.approx(before, rel=1e-12)
    assert ref.grad_norm([p.grad for p in params], 2.0) == pytest.approx(1.0, rel=1e-5)
    small = ours_with(make_grads(3, scale=1e-3))
    clip_grad_norm_(small, 1.0)  # c = min(1/(n + 1e-6), 1) = 1: multiplied by 1
    for param, g in zip(small, make_grads(3, scale=1e-3), strict=True):
        np.testing.assert_array_equal(param.grad, g)


def test_clip_grad_norm_float32_tracks_torch() -> None:
    grads = make_grads(4, np.float32, scale=3.0)
    ours, theirs = ours_with(grads), theirs_with(grads)
    total = clip_grad_norm_(ours, 0.5)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    assert total.dtype == np.float32
    assert total.item() == pytest.approx(torch_total.item(), rel=1e-6)
    for param, twin in zip(ours, theirs, strict=True):
        assert param.grad.dtype == np.float32
        np.testing.assert_allclose(param.grad, twin.grad.numpy(), rtol=2e-6, atol=1e-9)


def test_clip_grad_norm_accepts_one_tensor_a_generator_and_skips_missing_grads() -> None:
    grads = make_grads(5)
    single = ours_with(grads[:1])[0]
    clip_grad_norm_(single, 0.1)
    np.testing.assert_allclose(
        single.grad, ref.clip_grad_norm(grads[:1], 0.1, 2.0)[1][0], rtol=1e-12
    )
    params = ours_with(grads)
    no_grad = convprop.tensor(np.ones(7), requires_grad=True)  # a Tensor without .grad yet
    total = clip_grad_norm_((p for p in [*params, no_grad]), 0.1)
    assert total.item() == pytest.approx(ref.grad_norm(grads, 2.0), rel=1e-12)
    assert no_grad.grad is None


def test_clip_grad_norm_of_no_gradients_is_a_float32_zero_as_torch() -> None:
    assert clip_grad_norm_([], 1.0).item() == 0.0
    assert clip_grad_norm_([], 1.0).dtype == np.float32
    assert torch.nn.utils.clip_grad_norm_([], 1.0).dtype == torch.float32
    assert clip_grad_norm_([convprop.tensor(np.ones(2), requires_grad=True)], 1.0).item() == 0.0


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_gradients_are_scaled_as_torch_or_refused(bad: float) -> None:
    grads = make_grads(6)
    grads[1][2] = bad
    ours, theirs = ours_with(grads), theirs_with(grads)
    total = clip_grad_norm_(ours, 1.0)
    torch_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=False)
    np.testing.assert_equal(total.item(), torch_total.item())
    for param, twin in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(param.grad, twin.grad.numpy())  # zeros, or NaN
    refused = ours_with(grads)
    with pytest.raises(
        RuntimeError,
        match=r"clip_grad_norm_: the total norm of order 2.0 .* is "
        r"non-finite",
    ):
        clip_grad_norm_(refused, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs_with(grads), 1.0, error_if_nonfinite=True)
    for param, g in zip(refused, grads, strict=True):
        np.testing.assert_array_equal(param.grad, g)  # nothing was scaled


def test_get_total_norm_and_clip_grads_with_norm_match_torch() -> None:
    grads = make_grads(7)
    ours, theirs = ours_with(grads), theirs_with(grads)
    total = get_total_norm([p.grad for p in ours], 3.0)
    torch_total = torch.nn.utils.get_total_norm([p.grad for p in theirs], 3.0)
    assert total.item() == pytest.approx(torch_total.item(), rel=1e-12)
    assert get_total_norm(grads[0]).item() == pytest.approx(ref.grad_norm(grads[:1], 2.0))
    assert get_total_norm(convprop.tensor(grads[0])).item() == pytest.approx(
        ref.grad_norm(grads[:1], 2.0)
    )
    clip_grads_with_norm_(ours, 0.2, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.2, torch_total)
    for param, twin in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(param.grad, twin.grad.numpy(), rtol=1e-12)
    clip_grads_with_norm_([convprop.tensor(np.ones(2), requires_grad=True)], 1.0, total)


@pytest.mark.parametrize("clip_value", [0.0, 0.25, 1.0, math.inf])
def test_clip_grad_value_matches_reference_clip5_and_torch(clip_value: float) -> None:
    grads = make_grads(8, scale=2.0)
    grads[0][0, 0] = math.nan
    ours, theirs = ours_with(grads), theirs_with(grads)
    assert clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value, foreach=False)
    for param, want, twin in zip(ours, ref.clip_grad_value(grads, clip_value), theirs, strict=True):
        np.testing.assert_array_equal(param.grad, want)
        np.testing.assert_array_equal(param.grad, twin.grad.numpy())
    single = ours_with(grads[1:2])[0]
    clip_grad_value_(single, 0.5)
    assert np.abs(single.grad).max() <= 0.5


def test_clipping_between_backward_and_step_matches_torch_training() -> None:
    rng = np.random.default_rng(9)
    w0 = rng.standard_normal((3, 4))
    x, target = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    weight = Parameter(w0.copy())
    optimizer = convprop.optim.SGD([weight], lr=0.1, momentum=0.9)
    twin = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    torch_optimizer = torch.optim.SGD([twin], lr=0.1, momentum=0.9, foreach=False)
    for _ in range(4):
        optimizer.zero_grad()
        loss = convprop.nn.functional.mse_loss(convprop.tensor(x) @ weight.T * 4.0, target)
        loss.backward()
        norm = clip_grad_norm_([weight], 0.5)
        optimizer.step()
        torch_optimizer.zero_grad()
        torch_loss = torch.nn.functional.mse_loss(
            torch.from_numpy(x) @ twin.T * 4.0, torch.from_numpy(target)
        )
        torch_loss.backward()
        torch_norm = torch.nn.utils.clip_grad_norm_([twin], 0.5)
        torch_optimizer.step()
        assert norm.item() == pytest.approx(torch_norm.item(), rel=1e-12)
    np.testing.assert_allclose(weight.data, twin.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda p: clip_grad_norm_(p, -1.0),
            ParameterError,
            r"clip_grad_norm_: max_norm must be "
            r"a number >= 0; expected max_norm >= 0, got -1.0",
        ),
        (lambda p: clip_grad_norm_(p, math.nan), ParameterError, r"max_norm must be a number"),
        (lambda p: clip_grad_norm_(p, True), ParameterError, r"max_norm must be a number"),
        (lambda p: clip_grad_norm_(p, "1"), ParameterError, r"max_norm must be a number"),
        (
            lambda p: clip_grad_norm_(p, 1.0, 0),
            ParameterError,
            r"clip_grad_norm_: norm_type must "
            r"be a positive number or inf; expected p > 0, got 0",
        ),
        (lambda p: clip_grad_norm_(p, 1.0, -2.0), ParameterError, r"norm_type must be a positive"),
        (lambda p: clip_grad_norm_(p, 1.0, "two"), ParameterError, r"got 'two'"),
        (lambda p: clip_grad_norm_(p, 1.0, True), ParameterError, r"norm_type must be a positive"),
        (
            lambda p: clip_grad_norm_(3.0, 1.0),
            TypeError,
            r"clip_grad_norm_: parameters must be a "
            r"Tensor or an iterable of Tensors; expected e.g. model.parameters\(\), got float",
        ),
        (
            lambda p: clip_grad_norm_([*p, np.ones(2)], 1.0),
            TypeError,
            r"parameters\[4\] is not a "
            r"Tensor; expected a Parameter or Tensor, got ndarray",
        ),
        (
            lambda p: clip_grad_value_(p, -0.5),
            ParameterError,
            r"clip_grad_value_: clip_value must"
            r" be a number >= 0",
        ),
        (lambda p: clip_grad_value_(7, 0.5), TypeError, r"clip_grad_value_: parameters must be"),
        (lambda p: get_total_norm(p, -1), ParameterError, r"get_total_norm: norm_type must be"),
        (
            lambda p: clip_grads_with_norm_(p, -1, 1.0),
            ParameterError,
            r"clip_grads_with_norm_: "
            r"max_norm must be",
        ),
    ],
)
def test_errors(call: Any, error: type[Exception], match: str) -> None:
    grads = make_grads(10)
    params = ours_with(grads)
    with pytest.raises(error, match=match):
        call(params)
    for param, g in zip(params, grads, strict=True):
        np.testing.assert_array_equal(param.grad, g)  # refused before anything changed
