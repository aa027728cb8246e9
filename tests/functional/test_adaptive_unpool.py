"""Adaptive max pooling (AMP1)-(AMP3), 1-D adaptive average pooling (PL1), (PL2) and max
unpooling (MU1)-(MU3).

Witnesses: the naive loops of reference_pooling, central finite differences, the adjoint
identities of the linear ops, the tie and NaN rules, and PyTorch as an extra witness (with
the one place where max unpooling's gradient departs from PyTorch's worked out).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional import adaptive_max_pool, pool1d, pool2d, unpool
from reference_pooling import (
    adaptive_avg_pool1d_ref,
    adaptive_max_pool2d_ref,
    max_unpool2d_ref,
    scatter_ref,
)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


ADAPTIVE_CASES = [
    ((2, 3, 5, 7), (2, 3)),
    ((1, 2, 4, 4), (1, 1)),
    ((1, 1, 3, 5), (5, 2)),
    ((2, 2, 6, 6), (3, 3)),
    ((1, 2, 7, 4), (4, 4)),
    ((2, 1, 1, 1), (2, 3)),
    ((1, 1, 13, 11), (5, 7)),
]


def distinct_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 0.3


# ----------------------------------------------------------------- adaptive max pooling


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("x_shape", "out"), ADAPTIVE_CASES)
def test_adaptive_max_pool2d_matches_AMP1_AMP3_reference(
    x_shape: tuple[int, ...], out: tuple[int, int], dtype: str
) -> None:

    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, x_shape).astype(dtype)  # many ties
    y_ref, winner = adaptive_max_pool2d_ref(x.astype(np.float64), out)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, out)
    dx = adaptive_max_pool.adaptive_max_pool2d_backward(dy, cache)
    assert y.dtype == dx.dtype == np.dtype(dtype) and dx.shape == x.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.indices, winner)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(dx, scatter_ref(dy.astype(np.float64), winner, x_shape), atol=tol)


@pytest.mark.parametrize(("x_shape", "out"), ADAPTIVE_CASES)
def test_adaptive_max_pool2d_AMP3_matches_finite_differences(
    x_shape: tuple[int, ...], out: tuple[int, int]
) -> None:
    x = distinct_input(x_shape, seed=2)
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, out)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    numeric = numerical_gradient(
        lambda v: float(np.sum(adaptive_max_pool.adaptive_max_pool2d(v, out) * dy)), x
    )
    np.testing.assert_allclose(
        adaptive_max_pool.adaptive_max_pool2d_backward(dy, cache), numeric, atol=1e-8
    )


def test_adaptive_max_pool2d_worked_example_ties_and_nan() -> None:
    x = np.array([[[[1.0, 7.0, 2.0], [9.0, 3.0, 9.0]]]])
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, (1, 2))
    np.testing.assert_array_equal(y[0, 0], [[9.0, 9.0]])
    np.testing.assert_array_equal(cache.indices[0, 0], [[3, 5]])
    dx = adaptive_max_pool.adaptive_max_pool2d_backward(np.array([[[[1.0, 2.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 0.0, 0.0], [1.0, 0.0, 2.0]])
    x = np.array([[[[np.nan, 1.0, np.nan, 5.0, 0.0]]]])  # a NaN wins, the last one is named
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, (1, 1))
    assert np.isnan(y).all() and cache.indices.ravel().tolist() == [2]


def test_adaptive_max_pool2d_with_equal_bins_is_max_pool2d() -> None:
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 8))
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, (3, 2))
    y2, cache2 = pool2d.max_pool2d_forward(x, (2, 4))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(cache.indices, pool2d.max_pool2d_indices(cache2))


@pytest.mark.parametrize("values", ["normal", "ties", "nan-and-inf"])
@pytest.mark.parametrize(("x_shape", "out"), [*ADAPTIVE_CASES, ((2, 2, 5, 5), (3, None))])
def test_adaptive_max_pool2d_agrees_with_torch(
    x_shape: tuple[int, ...], out: Any, values: str
) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape) if values == "normal" else rng.integers(0, 3, x_shape) * 1.0
    if values == "nan-and-inf":
        x[rng.random(x_shape) < 0.2] = -np.inf
        x[rng.random(x_shape) < 0.1] = np.nan
    x_t = torch.tensor(x, requires_grad=True)
    y_t, indices_t = torch.nn.functional.adaptive_max_pool2d(x_t, out, True)
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, out)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(cache.indices, indices_t.numpy())
    np.testing.assert_allclose(
        adaptive_max_pool.adaptive_max_pool2d_backward(dy, cache), x_t.grad.numpy(), rtol=1e-10
    )


@pytest.mark.parametrize(
    ("x", "output_size", "error", "match"),
    [
        ((1.0,), 1, DTypeError, r"x must be a numpy or cupy array"),
        (np.zeros((1, 1, 3, 3), dtype=np.float16), 1, DTypeError, r"x has dtype float16"),
        (np.zeros((3, 3)), 1, ShapeError, r"x must be 4-D \(N, C, H, W\) and non-empty; .*got 2"),
        (np.zeros((1, 0, 3, 3)), 1, ShapeError, r".*\(N may be 0\).*x.shape=\(1, 0, 3, 3\)"),
        (np.zeros((1, 1, 3, 3)), 0, ParameterError, r"output_size must be >= 1"),
        (np.zeros((1, 1, 3, 3)), (1, 2, 3), ParameterError,
         r"output_size must be an int or a pair of ints \(None keeps an axis\)"),
        (np.zeros((1, 1, 3, 3)), 2.5, ParameterError, r"output_size must be an int or a pair"),
    ],
)  # fmt: skip
def test_adaptive_max_pool2d_rejects_bad_input(
    x: Any, output_size: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^adaptive_max_pool2d: {match}"):
        adaptive_max_pool.adaptive_max_pool2d_forward(x, output_size)


def test_adaptive_max_pool2d_backward_rejects_bad_dy() -> None:
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(np.zeros((1, 2, 4, 4)), 2)
    with pytest.raises(ShapeError, match=r"^adaptive_max_pool2d_backward: dy.shape=\(2,\)"):
        adaptive_max_pool.adaptive_max_pool2d_backward(np.zeros(2), cache)
    with pytest.raises(DTypeError, match=r"^adaptive_max_pool2d_backward: dy has dtype float32"):
        adaptive_max_pool.adaptive_max_pool2d_backward(np.zeros(y.shape, np.float32), cache)


def test_adaptive_pools_take_an_empty_batch() -> None:
    x = np.zeros((0, 2, 5, 4))
    y, cache = adaptive_max_pool.adaptive_max_pool2d_forward(x, (2, 3))
    assert y.shape == (0, 2, 2, 3)
    assert adaptive_max_pool.adaptive_max_pool2d_backward(np.zeros(y.shape), cache).shape == x.shape
    y1, cache1 = pool1d.adaptive_avg_pool1d_forward(x[:, :, 0], 3)
    assert y1.shape == (0, 2, 3)
    assert pool1d.adaptive_avg_pool1d_backward(np.zeros(y1.shape), cache1).shape == (0, 2, 4)


# --------------------------------------------------------- 1-D adaptive average pooling


@pytest.mark.parametrize(("L", "out"), [(5, 2), (8, 8), (3, 7), (10, 1), (7, 3), (1, 4)])
def test_adaptive_avg_pool1d_PL1_PL2_reference_adjoint_and_finite_differences(
    L: int, out: int
) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, L))
    y, cache = pool1d.adaptive_avg_pool1d_forward(x, out)
    np.testing.assert_allclose(y, adaptive_avg_pool1d_ref(x, out), atol=1e-14)
    v = rng.standard_normal(y.shape)
    dx = pool1d.adaptive_avg_pool1d_backward(v, cache)
    assert abs(np.vdot(y, v) - np.vdot(x, dx)) <= 1e-12 * max(1.0, abs(np.vdot(y, v)))
    numeric = numerical_gradient(lambda u: float(np.sum(pool1d.adaptive_avg_pool1d(u, out) * v)), x)
    np.testing.assert_allclose(dx, numeric, atol=1e-8)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.nn.functional.adaptive_avg_pool1d(x_t, out)
    y_t.backward(torch.tensor(v))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("x", "output_size", "error", "match"),
    [
        (np.zeros((2, 4)), 2, ShapeError, r"x must be 3-D \(N, C, L\) with C, L >= 1"),
        (np.zeros((1, 1, 0)), 2, ShapeError, r"x must be 3-D"),
        (np.zeros((1, 1, 4)), (2, 2), ParameterError, r"output_size must be an int or a 1-tuple"),
        (np.zeros((1, 1, 4)), (0,), ParameterError, r"output_size must be >= 1"),
        (np.zeros((1, 1, 4), dtype=np.int8), 2, DTypeError, r"x has dtype int8"),
    ],
)  # fmt: skip
def test_adaptive_avg_pool1d_rejects_bad_input(
    x: Any, output_size: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^adaptive_avg_pool1d: {match}"):
        pool1d.adaptive_avg_pool1d_forward(x, output_size)


def test_adaptive_avg_pool1d_keeps_the_length_for_none_and_checks_dy() -> None:
    x = np.random.default_rng(7).standard_normal((1, 2, 5))
    np.testing.assert_allclose(pool1d.adaptive_avg_pool1d(x, (None,)), x, atol=1e-15)
    _, cache = pool1d.adaptive_avg_pool1d_forward(x, 2)
    with pytest.raises(ShapeError, match=r"^adaptive_avg_pool1d_backward: dy.shape=\(1, 2, 3\)"):
        pool1d.adaptive_avg_pool1d_backward(np.zeros((1, 2, 3)), cache)


# ------------------------------------------------------------------------- max unpooling

UNPOOL_CASES = [  # (x_shape, kernel, stride, padding): max_pool2d then max_unpool2d
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 7, 5), 2, None, 0),  # a remainder row and column: output_size needed
    ((1, 2, 6, 7), 3, 3, 1),
    ((2, 1, 5, 6), (2, 3), (2, 3), (1, 1)),
    ((1, 2, 6, 6), 3, 2, 1),  # overlapping windows: repeated indices
    ((1, 1, 5, 5), 2, 1, 0),  # overlapping windows: repeated indices
]


def pooled(x_shape: tuple[int, ...], kernel: Any, stride: Any, padding: Any, seed: int) -> Any:
    x = np.random.default_rng(seed).standard_normal(x_shape)
    y, cache = pool2d.max_pool2d_forward(x, kernel, stride=stride, padding=padding)
    return x, y, pool2d.max_pool2d_indices(cache)


@pytest.mark.parametrize("case", UNPOOL_CASES)
def test_max_unpool2d_matches_MU2_MU3_reference_and_finite_differences(case: Any) -> None:
    x_shape, kernel, stride, padding = case
    _, pooled_x, indices = pooled(x_shape, kernel, stride, padding, seed=8)
    rng = np.random.default_rng(9)
    values = rng.standard_normal(pooled_x.shape)  # distinct values: the last write shows
    kwargs = {"stride": stride, "padding": padding, "output_size": x_shape[2:]}
    y, cache = unpool.max_unpool2d_forward(values, indices, kernel, **kwargs)
    dy = rng.standard_normal(y.shape)
    y_ref, dx_ref = max_unpool2d_ref(values, indices, x_shape[2:], dy)
    np.testing.assert_array_equal(y, y_ref)
    dx = unpool.max_unpool2d_backward(dy, cache)
    np.testing.assert_array_equal(dx, dx_ref)
    numeric = numerical_gradient(
        lambda v: float(np.sum(unpool.max_unpool2d(v, indices, kernel, **kwargs) * dy)), values
    )
    np.testing.assert_allclose(dx, numeric, atol=1e-8)  # (MU3) is (MU2)'s derivative
    u = rng.standard_normal(values.shape)  # (MU3) is the adjoint of (MU2)
    lhs = np.vdot(unpool.max_unpool2d(u, indices, kernel, **kwargs), dy)
    assert abs(lhs - np.vdot(u, dx)) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("case", UNPOOL_CASES)
def test_max_unpool2d_agrees_with_torch_and_differs_only_on_repeated_indices(case: Any) -> None:
    x_shape, kernel, stride, padding = case
    _, pooled_x, indices = pooled(x_shape, kernel, stride, padding, seed=10)
    p_t = torch.tensor(pooled_x, requires_grad=True)
    y_t = torch.nn.functional.max_unpool2d(
        p_t, torch.tensor(indices), kernel, stride, padding, output_size=x_shape[2:]
    )
    dy = np.random.default_rng(11).standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = unpool.max_unpool2d_forward(
        pooled_x, indices, kernel, stride=stride, padding=padding, output_size=x_shape
    )
    np.testing.assert_array_equal(y, y_t.detach().numpy())  # repeated entries hold one value
    dx = unpool.max_unpool2d_backward(dy, cache)
    planes = indices.reshape(*indices.shape[:2], -1)
    repeated = np.zeros(planes.shape, dtype=bool)
    for plane in np.ndindex(planes.shape[:2]):
        values, counts = np.unique(planes[plane], return_counts=True)
        repeated[plane] = np.isin(planes[plane], values[counts > 1])
    repeated = repeated.reshape(indices.shape)
    torch_dx = p_t.grad.numpy()
    np.testing.assert_array_equal(dx[~repeated], torch_dx[~repeated])
    # where a cell is named twice PyTorch gives each entry its dy; (MU3) only the written one
    np.testing.assert_array_equal(dx[repeated] == 0, dx[repeated] != torch_dx[repeated])
    overlapping = stride is not None and bool(np.any(np.array(stride) < np.array(kernel)))
    assert repeated.any() == overlapping  # the grid holds both kinds


def test_max_unpool2d_worked_example_of_the_derivations() -> None:
    x = np.array([[[[1.0, 3.0, 2.0], [4.0, 0.0, 5.0], [2.0, 6.0, 1.0]]]])
    y, pool_cache = pool2d.max_pool2d_forward(x, 2, stride=1)
    indices = pool2d.max_pool2d_indices(pool_cache)
    np.testing.assert_array_equal(indices[0, 0], [[3, 5], [7, 7]])
    u, cache = unpool.max_unpool2d_forward(y, indices, 2, stride=1)
    np.testing.assert_array_equal(u[0, 0], [[0.0, 0.0, 0.0], [4.0, 0.0, 5.0], [0.0, 6.0, 0.0]])
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(
        unpool.max_unpool2d_backward(dy, cache)[0, 0], [[4.0, 6.0], [0.0, 8.0]]
    )
    # through max_pool2d -> max_unpool2d the copied cell 7 of x gets its dy once (MU3, MP3)
    dx = pool2d.max_pool2d_backward(unpool.max_unpool2d_backward(dy, cache), pool_cache)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 0.0, 0.0], [4.0, 0.0, 6.0], [0.0, 8.0, 0.0]])


@pytest.mark.parametrize(
    ("x", "indices", "kwargs", "error", "match"),
    [
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), {}, DTypeError,
         r"indices must be integers; expected an int64 array"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 1), np.int64), {}, ShapeError,
         r"indices must have the shape of x; expected \(1, 1, 2, 2\), got \(1, 1, 2, 1\)"),
        (np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16), {}, ShapeError,
         r"indices must name cells of the output plane; expected 0 <= index < 16, got values "
         r"from 16 to 16"),
        (np.zeros((1, 1, 2, 2)), -np.ones((1, 1, 2, 2), np.int64), {}, ShapeError,
         r"indices must name .*; expected 0 <= index < 16, got values from -1 to -1"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), {"output_size": (6, 4)},
         ParameterError, r"output_size \(6, 4\) is too far from the default \(4, 4\) on axis 0; "
         r"expected 2 < size < 6, got 6"),
        (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), {"output_size": (4,)},
         ParameterError, r"output_size must be an int or a pair of ints"),
        (np.zeros((1, 2, 2)), np.zeros((1, 2, 2), np.int64), {}, ShapeError,
         r"x must be 4-D \(N, C, P, Q\)"),
        (np.zeros((1, 1, 2, 2), np.int64), np.zeros((1, 1, 2, 2), np.int64), {}, DTypeError,
         r"x has dtype int64"),
        (np.zeros((1, 1, 2, 2)), [[0]], {}, DTypeError, r"indices must be a numpy or cupy array"),
    ],
)  # fmt: skip
def test_max_unpool2d_rejects_bad_input(
    x: Any, indices: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^max_unpool2d: {match}"):
        unpool.max_unpool2d_forward(x, indices, 2, **kwargs)


def test_max_unpool2d_output_size_forms_and_backward_checks() -> None:
    assert unpool.unpool_output_size("max_unpool2d", (3, 3), 2, None, 0, (1, 1, 7, 5)) == (7, 5)
    assert unpool.unpool_output_size("max_unpool2d", (3, 3), 3, 2, 1, None) == (5, 5)
    y, cache = unpool.max_unpool2d_forward(
        np.ones((0, 1, 2, 2)), np.zeros((0, 1, 2, 2), np.int64), 2
    )
    assert y.shape == (0, 1, 4, 4)
    _, cache = unpool.max_unpool2d_forward(
        np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2
    )
    with pytest.raises(ShapeError, match=r"^max_unpool2d_backward: dy.shape=\(1, 1, 2, 2\)"):
        unpool.max_unpool2d_backward(np.zeros((1, 1, 2, 2)), cache)
