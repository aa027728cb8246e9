"""A pooling window far larger than x costs what x costs: taps that read only padding are
skipped, which changes no result (PS3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convprop
import convprop.nn.functional as F
from convprop.functional.pool2d import pool2d_geometry


def test_a_window_of_3001_on_a_1x1_input_visits_one_tap() -> None:
    geom = pool2d_geometry("avg_pool2d", np.ones((1, 1, 1, 1)), 3001, None, 1500, False)
    assert [(r, s) for _, r, s in geom.taps()] == [(1500, 1500)]


@pytest.mark.parametrize("op", ["avg_pool2d", "max_pool2d"])
@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [((2, 3, 1, 1), 301, 1, 150), ((1, 2, 5, 4), 41, 3, 20), ((1, 1, 7, 2), (9, 5), 2, (4, 2))],
)
def test_huge_windows_equal_pytorch_forward_and_backward(
    op: str, shape: tuple[int, ...], kernel: object, stride: int, padding: object
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    ours_x = convprop.tensor(x, requires_grad=True)
    y = getattr(F, op)(ours_x, kernel, stride, padding)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, op)(theirs_x, kernel, stride, padding)
    theirs.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert theirs_x.grad is not None
    np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("op", "shape", "kernel", "padding", "dilation"),
    [
        ("avg_pool1d", (1, 2, 3), 2001, 1000, None),
        ("max_pool1d", (1, 2, 3), 2001, 1000, 1),
        ("max_pool1d", (2, 1, 9), 5, 2, 2),
        ("avg_pool3d", (1, 1, 5, 7, 3), (5, 7, 3), (2, 3, 1), None),
        ("max_pool3d", (1, 1, 3, 4, 2), (5, 7, 3), (2, 3, 1), 1),
    ],
)
def test_huge_windows_in_1d_3d_and_with_dilation_equal_pytorch(
    op: str, shape: tuple[int, ...], kernel: object, padding: object, dilation: object
) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    extra = {} if dilation is None else {"dilation": dilation}
    ours_x = convprop.tensor(x, requires_grad=True)
    y = getattr(F, op)(ours_x, kernel, 1, padding, **extra)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, op)(theirs_x, kernel, 1, padding, **extra)
    theirs.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert theirs_x.grad is not None
    np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-12, atol=1e-15)
