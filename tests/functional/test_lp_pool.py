"""Power-average (LP) pooling: (LPP1)-(LPP4), p = 1, 2, 3, in one and two dimensions.

Witnesses: the naive loops of reference_pooling (forward and backward), central finite
differences, the rule at a zero window sum worked by hand, and PyTorch as an extra witness.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional import lp_pool
from reference_pooling import lp_pool_backward_ref, lp_pool_ref


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class Case(NamedTuple):
    name: str
    x_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...] | None
    ceil_mode: bool

    @property
    def dims(self) -> int:
        return len(self.kernel)

    def run(self, x: np.ndarray, p: float) -> tuple[np.ndarray, Any]:
        forward = lp_pool.lp_pool1d_forward if self.dims == 1 else lp_pool.lp_pool2d_forward
        return forward(x, p, self.kernel, stride=self.stride, ceil_mode=self.ceil_mode)

    @property
    def ref_stride(self) -> tuple[int, ...]:
        return self.kernel if self.stride is None else self.stride


CASES = [
    Case("1d-k3", (2, 3, 9), (3,), None, False),
    Case("1d-overlap-stride1", (1, 2, 7), (3,), (1,), False),
    Case("1d-stride-not-dividing-ceil", (1, 2, 10), (3,), (2,), True),
    Case("1d-ceil-short-window", (1, 1, 5), (2,), None, True),
    Case("2d-k2", (2, 2, 4, 6), (2, 2), None, False),
    Case("2d-nonsquare-overlap", (1, 2, 6, 7), (3, 2), (1, 2), False),
    Case("2d-ceil-remainder", (1, 2, 7, 8), (3, 3), (2, 3), True),
]
IDS = [case.name for case in CASES]
NORMS = [1, 2, 3]


def draw(case: Case, p: float, seed: int) -> np.ndarray:
    """Inputs away from the kinks: positive for p = 3 (a negative sum has no real cube root
    under NumPy's and PyTorch's pow), otherwise normal with no window summing near 0."""
    rng = np.random.default_rng(seed)
    if p == 3:
        return rng.uniform(0.3, 1.5, case.x_shape)
    return rng.standard_normal(case.x_shape) + 2.0 * (p == 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lp_pool_matches_LPP1_LPP4_reference(case: Case, p: float, dtype: str) -> None:
    x = draw(case, p, seed=1).astype(dtype)
    y_ref, _ = lp_pool_ref(x.astype(np.float64), p, case.kernel, case.ref_stride, case.ceil_mode)
    dy = np.random.default_rng(2).standard_normal(y_ref.shape)
    dx_ref = lp_pool_backward_ref(
        dy, x.astype(np.float64), p, case.kernel, case.ref_stride, case.ceil_mode
    )
    y, cache = case.run(x, p)
    dx = lp_pool.lp_pool_nd_backward(dy.astype(dtype), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lp_pool_LPP3_matches_finite_differences(case: Case, p: float) -> None:
    x = draw(case, p, seed=3)
    y, cache = case.run(x, p)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    numeric = numerical_gradient(lambda v: float(np.sum(case.run(v, p)[0] * dy)), x)
    np.testing.assert_allclose(lp_pool.lp_pool_nd_backward(dy, cache), numeric, atol=1e-7)


def test_lp_pool1d_worked_example_of_the_derivations() -> None:
    x = np.array([[[3.0, 4.0, 1.0, -1.0, 5.0]]])
    y, cache = lp_pool.lp_pool1d_forward(x, 2, 2, ceil_mode=True)
    np.testing.assert_allclose(y[0, 0], [5.0, np.sqrt(2.0), np.sqrt(50.0)], rtol=1e-15)
    dx = lp_pool.lp_pool1d_backward(np.array([[[1.0, 2.0, 3.0]]]), cache)
    expected = [0.6, 0.8, 2 / np.sqrt(2), -2 / np.sqrt(2), 3 * 2 * 5 / np.sqrt(50)]  # (LPP3)
    np.testing.assert_allclose(dx[0, 0], expected, rtol=1e-15)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_LPP4_a_window_whose_sum_is_zero_passes_no_gradient(p: int) -> None:
    # window 0: all zeros; window 1: 1 and -1 (x^p sums to 0 for odd p); window 2: 2 and 1
    x = np.array([[[0.0, 0.0, 1.0, -1.0, 2.0, 1.0]]])
    y, cache = lp_pool.lp_pool1d_forward(x, p, 2)
    dy = np.array([[[5.0, 7.0, 11.0]]])
    dx = lp_pool.lp_pool1d_backward(dy, cache)
    assert y[0, 0, 0] == 0.0 and dx[0, 0, 0] == dx[0, 0, 1] == 0.0  # (LPP4)
    if p % 2:
        assert y[0, 0, 1] == 0.0 and dx[0, 0, 2] == dx[0, 0, 3] == 0.0  # (LPP4)
    else:
        np.testing.assert_allclose(dx[0, 0, 2:4], [7 / np.sqrt(2), -7 / np.sqrt(2)])  # (LPP3)
    y_ref = (2.0**p + 1.0) ** (1 / p)
    np.testing.assert_allclose(y[0, 0, 2], y_ref, rtol=1e-15)
    expected = [11 * 2.0 ** (p - 1) / y_ref ** (p - 1), 11 / y_ref ** (p - 1)]  # (LPP3)
    np.testing.assert_allclose(dx[0, 0, 4:], expected, rtol=1e-14)
    x_t = torch.tensor(x, requires_grad=True)  # PyTorch's documented rule is the same
    torch.nn.functional.lp_pool1d(x_t, p, 2).backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-14)


def test_lp_pool_p_two_is_the_euclidean_norm_of_each_window() -> None:
    x = np.random.default_rng(5).standard_normal((2, 3, 6, 4))
    y = lp_pool.lp_pool2d(x, 2, 2)
    windows = x.reshape(2, 3, 3, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 2, 4)
    np.testing.assert_allclose(y, np.linalg.norm(windows, axis=-1), rtol=1e-14)
    np.testing.assert_array_equal(
        lp_pool.lp_pool1d(x[:, :, 0], 1.0, 2), x[:, :, 0, 0::2] + x[:, :, 0, 1::2]
    )


def test_lp_pool_negative_sum_with_odd_norm_is_nan_as_numpy_and_torch() -> None:
    x = np.array([[[-2.0, 1.0, 3.0, 1.0]]])
    y, cache = lp_pool.lp_pool1d_forward(x, 3, 2)
    assert np.isnan(y[0, 0, 0]) and not np.isnan(y[0, 0, 1])
    dx = lp_pool.lp_pool1d_backward(np.ones_like(y), cache)
    assert np.isnan(dx[0, 0, :2]).all() and np.isfinite(dx[0, 0, 2:]).all()
    y_t = torch.nn.functional.lp_pool1d(torch.tensor(x), 3, 2).numpy()
    np.testing.assert_allclose(y, y_t, rtol=1e-14, equal_nan=True)


def test_real_power_gives_numpy_real_results_without_warnings() -> None:
    base = np.array([-8.0, -0.0, 0.0, 2.0, np.nan])
    with np.errstate(all="raise"):  # no warning may be raised inside
        np.testing.assert_array_equal(
            lp_pool.real_power(np, base, -1.0), [-0.125, -np.inf, np.inf, 0.5, np.nan]
        )
        np.testing.assert_array_equal(
            lp_pool.real_power(np, base, 2.0), [64.0, 0.0, 0.0, 4.0, np.nan]
        )
        np.testing.assert_array_equal(
            lp_pool.real_power(np, base, 0.5), [np.nan, 0.0, 0.0, np.sqrt(2.0), np.nan]
        )


def test_lp_pool_preserves_float32_and_mutates_nothing() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    x_before = x.copy()
    y, cache = lp_pool.lp_pool2d_forward(x, 2, 2, stride=1)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx1, dx2 = lp_pool.lp_pool2d_backward(dy, cache), lp_pool.lp_pool2d_backward(dy, cache)
    assert y.dtype == dx1.dtype == np.float32 and dx1.shape == x.shape
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_lp_pool_agrees_with_torch(case: Case, p: float) -> None:
    x = draw(case, 3 if p == 1.5 else p, seed=7)
    x_t = torch.tensor(x, requires_grad=True)
    function = torch.nn.functional.lp_pool1d if case.dims == 1 else torch.nn.functional.lp_pool2d
    kernel = case.kernel[0] if case.dims == 1 else case.kernel
    y_t = function(x_t, p, kernel, case.stride, case.ceil_mode)
    dy = np.random.default_rng(8).standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = case.run(x, p)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(
        lp_pool.lp_pool_nd_backward(dy, cache), x_t.grad.numpy(), rtol=1e-10, atol=1e-14
    )


@pytest.mark.parametrize(
    ("x", "norm_type", "kernel", "error", "match"),
    [
        (np.zeros((1, 1, 4)), 0, 2, ParameterError, r"norm_type must be finite and nonzero"),
        (np.zeros((1, 1, 4)), float("inf"), 2, ParameterError,
         r"norm_type must be finite and nonzero; expected e.g. 1, 2 or 3, got inf \(for p = inf"),
        (np.zeros((1, 1, 4)), "2", 2, ParameterError, r"norm_type must be a number"),
        (np.zeros((1, 1, 4)), True, 2, ParameterError, r"norm_type must be a number"),
        (np.zeros((1, 1, 4)), 2, (2, 2), ParameterError,
         r"kernel_size must be an int or a 1-tuple; expected e.g. 2 or \(2,\), got \(2, 2\)"),
        (np.zeros((1, 4)), 2, 2, ShapeError, r"x must be 3-D \(N, C, L\)"),
        (np.zeros((1, 1, 4), dtype=np.int64), 2, 2, DTypeError, r"x has dtype int64"),
        ([1.0, 2.0], 2, 2, DTypeError, r"x must be a numpy or cupy array"),
        (np.zeros((1, 1, 1)), 2, 2, ShapeError,
         r"padded input length 1 is smaller than the window length 2"),
    ],
)  # fmt: skip
def test_lp_pool1d_rejects_bad_input(
    x: Any, norm_type: Any, kernel: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^lp_pool1d: {match}"):
        lp_pool.lp_pool1d_forward(x, norm_type, kernel)


def test_lp_pool2d_backward_rejects_bad_dy() -> None:
    y, cache = lp_pool.lp_pool2d_forward(np.ones((1, 1, 4, 4)), 2, 2)
    with pytest.raises(ShapeError, match=r"^lp_pool2d_backward: dy.shape=\(1, 1\) does not match"):
        lp_pool.lp_pool2d_backward(np.zeros((1, 1)), cache)
    with pytest.raises(DTypeError, match=r"^lp_pool2d_backward: dy has dtype float32"):
        lp_pool.lp_pool2d_backward(np.zeros(y.shape, dtype=np.float32), cache)
