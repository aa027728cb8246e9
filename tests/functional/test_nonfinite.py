"""NaN and ±∞ stay where the sums put them, as in PyTorch (conv2d_ieee, AA5, AA6).

Forward and gradients of conv2d under ``auto`` and the algorithms that keep IEEE semantics,
conv_transpose2d under ``auto``, and adaptive_avg_pool2d: the positions of NaN, +∞ and -∞
equal PyTorch's, and the finite values agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from convprop import _native
from convprop.functional import conv2d_ieee
from convprop.functional.adaptive_pool2d import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
)
from convprop.functional.conv2d import conv2d_backward, conv2d_forward
from convprop.functional.conv_transpose2d import (
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)


@contextmanager
def _quiet() -> Iterator[None]:
    """NumPy warns on ∞ - ∞ and 0·∞; the values, not the warnings, are under test."""
    with np.errstate(all="ignore"):
        yield


def _same_non_finite(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape
    for name, mask in (
        ("NaN", np.isnan),
        ("+inf", np.isposinf),
        ("-inf", np.isneginf),
    ):
        np.testing.assert_array_equal(mask(ours), mask(theirs), err_msg=name)
    finite = np.isfinite(theirs)
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-9, atol=1e-9)


def _poison(a: np.ndarray, value: float, index: tuple[int, ...]) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


# (x shape, w shape, stride, padding, groups); the first is the issue's case (5×5, one +∞)
CASES = [
    ((16, 8, 14, 14), (8, 8, 5, 5), 1, 2, 1),
    ((2, 4, 9, 9), (6, 4, 3, 3), 1, 1, 1),
    ((2, 4, 9, 9), (6, 2, 3, 3), 2, 1, 2),
    ((2, 6, 8, 8), (6, 1, 3, 3), 1, 1, 6),
]
POISONS = [("x", np.inf), ("x", np.nan), ("x", -np.inf), ("w", np.inf), ("w", np.nan)]


def _torch_conv(
    x: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: int, padding: int, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None, stride, padding, 1, groups)
    yt.backward(torch.tensor(dy))
    assert xt.grad is not None and wt.grad is not None
    return yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x{}w{}s{}p{}g{}".format(*c))
@pytest.mark.parametrize("poison", POISONS, ids=lambda p: f"{p[0]}{p[1]}")
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col", "depthwise"])
def test_conv2d_non_finite_positions_match_pytorch(
    case: tuple, poison: tuple[str, float], algorithm: str
) -> None:
    x_shape, w_shape, stride, padding, groups = case
    if algorithm == "depthwise" and groups != x_shape[1]:
        pytest.skip("depthwise needs groups == C")
    if algorithm in ("direct", "depthwise") and poison[0] == "w":
        pytest.skip("their input gradient pads dy: 0·∞ is NaN there (conv2d_ieee)")
    rng = np.random.default_rng(19)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    if poison[0] == "x":
        x = _poison(x, poison[1], (0, 0, x_shape[2] // 2, 1))
    else:
        w = _poison(w, poison[1], (0, 0, 0, 1))
    y_shape = torch.nn.functional.conv2d(
        torch.tensor(x), torch.tensor(w), None, stride, padding, 1, groups
    ).shape
    dy = rng.standard_normal(tuple(y_shape))
    y_ref, dx_ref, dw_ref = _torch_conv(x, w, dy, stride, padding, groups)
    with _quiet():
        y, cache = conv2d_forward(
            x, w, stride=stride, padding=padding, groups=groups, algorithm=algorithm
        )
        dx, dw, _ = conv2d_backward(dy, cache)
    assert dx is not None
    _same_non_finite(y, y_ref)
    _same_non_finite(dx, dx_ref)
    _same_non_finite(dw, dw_ref)


def test_auto_takes_transform_algorithms_only_for_finite_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's layer: ``auto`` takes a transform algorithm for finite x, the IEEE
    algorithms once x holds one +∞ (and PyTorch has no NaN there). The choices of a CPU
    without AVX-512: with it, the direct sums' blocking of 16 columns by 16 filters makes
    them the cheapest for finite x too."""
    monkeypatch.setattr(_native, "wide_blockings_run", lambda: False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    w = rng.standard_normal((8, 32, 5, 5)).astype(np.float32)
    _, finite_cache = conv2d_forward(x, w, padding=2)
    assert not conv2d_ieee.keeps_ieee(finite_cache.algorithms)
    x_inf = _poison(x, np.inf, (0, 0, 7, 1))
    with _quiet():
        y, cache = conv2d_forward(x_inf, w, padding=2)
    assert conv2d_ieee.keeps_ieee(cache.algorithms)
    assert int(np.isnan(y).sum()) == 0
    assert int(np.isinf(y).sum()) > 0


def test_auto_backward_checks_dy() -> None:
    """A non-finite dy after a finite forward: the gradients still match PyTorch's."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 8, 14, 14))
    w = rng.standard_normal((8, 8, 5, 5))
    y, cache = conv2d_forward(x, w, padding=2)
    dy = _poison(rng.standard_normal(y.shape), np.inf, (0, 0, 3, 4))
    _, dx_ref, dw_ref = _torch_conv(x, w, dy, 1, 2, 1)
    with _quiet():
        dx, dw, _ = conv2d_backward(dy, cache)
    assert dx is not None
    _same_non_finite(dx, dx_ref)
    _same_non_finite(dw, dw_ref)


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: f"{p[0]}{p[1]}")
def test_conv_transpose2d_auto_non_finite_positions_match_pytorch(
    poison: tuple[str, float],
) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 8, 12, 12))
    w = rng.standard_normal((8, 6, 5, 5))
    if poison[0] == "x":
        x = _poison(x, poison[1], (0, 0, 5, 1))
    else:
        w = _poison(w, poison[1], (0, 0, 0, 1))
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, None, 1, 2)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    assert xt.grad is not None and wt.grad is not None
    with _quiet():
        y, cache = conv_transpose2d_forward(x, w, padding=2)
        dx, dw, _ = conv_transpose2d_backward(dy, cache)
    assert dx is not None
    _same_non_finite(y, yt.detach().numpy())
    _same_non_finite(dx, xt.grad.numpy())
    _same_non_finite(dw, wt.grad.numpy())


@pytest.mark.parametrize(
    ("shape", "output_size"),
    [((2, 3, 4, 4), 2), ((1, 1, 3, 5), (2, 2)), ((1, 2, 7, 5), (3, 4)), ((1, 1, 2, 3), (3, 5)),
     ((2, 1, 5, 5), 1), ((1, 2, 1, 4), (3, 1))],
)  # fmt: skip
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_adaptive_avg_pool2d_keeps_non_finite_in_its_bins_AA5_AA6(
    shape: tuple[int, ...], output_size: int | tuple[int, int], value: float
) -> None:
    rng = np.random.default_rng(3)
    x = _poison(rng.standard_normal(shape), value, (0, 0, min(1, shape[2] - 1), 1))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, output_size)
    dy = _poison(rng.standard_normal(tuple(yt.shape)), value, (0, 0, 0, -1))
    yt.backward(torch.tensor(dy))
    assert xt.grad is not None
    with _quiet():
        y, cache = adaptive_avg_pool2d_forward(x, output_size)
        dx = adaptive_avg_pool2d_backward(dy, cache)
    _same_non_finite(y, yt.detach().numpy())
    _same_non_finite(dx, xt.grad.numpy())


def test_adaptive_avg_pool2d_issue_case_one_nan_one_output() -> None:
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan
    y, _ = adaptive_avg_pool2d_forward(x, 2)
    assert int(np.isnan(y).sum()) == 1
