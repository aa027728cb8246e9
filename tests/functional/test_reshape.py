"""Flatten: (FL1) the row-major reshape and (FL2) its inverse.

Witnesses: explicit index loops written from (FL1), the adjoint identity, and PyTorch's
flatten with autograd as an extra witness.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional.reshape import flatten, flatten_backward, flatten_forward

CASES = [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 2), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), -1),
         ((2, 3, 4, 5), -3), ((1, 1, 1, 1), 1), ((3, 7), 1), ((6,), 0)]  # fmt: skip
CASE_IDS = [f"{shape}-start{start}" for shape, start in CASES]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("shape", "start_dim"), CASES, ids=CASE_IDS)
def test_flatten_matches_FL1_FL2_index_map(
    xp: ModuleType, shape: tuple[int, ...], start_dim: int, dtype: str
) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    y, cache = flatten_forward(xp.asarray(x), start_dim=start_dim)
    start = start_dim % len(shape)
    y_host = to_host(y)
    assert y.dtype == np.dtype(dtype)
    assert y_host.shape == (*shape[:start], int(np.prod(shape[start:])))
    dy = rng.standard_normal(y_host.shape).astype(dtype)
    dx = to_host(flatten_backward(xp.asarray(dy), cache))
    assert dx.shape == shape and dx.dtype == np.dtype(dtype)
    tail = shape[start:]
    for index in np.ndindex(shape):  # (FL1): the trailing index, read in row-major order
        flat = 0
        for i, size in zip(index[start:], tail, strict=True):
            flat = flat * size + i
        assert y_host[(*index[:start], flat)] == x[index]
        assert dx[index] == dy[(*index[:start], flat)]  # (FL2)


def test_flatten_FL2_is_the_adjoint_of_FL1() -> None:
    rng = np.random.default_rng(2)
    u = rng.standard_normal((2, 3, 4, 5))
    y, cache = flatten_forward(u)
    v = rng.standard_normal(y.shape)
    assert abs(np.vdot(y, v) - np.vdot(u, flatten_backward(v, cache))) <= 1e-12


def test_flatten_alone_equals_forward_pair() -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(flatten(x, start_dim=2), flatten_forward(x, start_dim=2)[0])


@pytest.mark.parametrize(("shape", "start_dim"), CASES, ids=CASE_IDS)
def test_flatten_agrees_with_torch(shape: tuple[int, ...], start_dim: int) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch.flatten(x_t, start_dim=start_dim)
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = flatten_forward(x, start_dim=start_dim)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(flatten_backward(dy, cache), x_t.grad.numpy())


def test_flatten_backward_returns_fresh_arrays_and_mutates_nothing() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    x_before = x.copy()
    y, cache = flatten_forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy_before = dy.copy()
    dx1, dx2 = flatten_backward(dy, cache), flatten_backward(dy, cache)
    np.testing.assert_array_equal(dx1, dx2)
    assert dx1 is not dx2 and not np.shares_memory(dx1, dy) and not np.shares_memory(dx1, dx2)
    assert dx1.dtype == np.float32 and dx1.flags.c_contiguous
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)


def test_flatten_accepts_non_contiguous_input() -> None:
    x = np.random.default_rng(6).standard_normal((2, 5, 4, 3)).transpose(0, 3, 2, 1)[:, :, ::2]
    y, cache = flatten_forward(x)
    np.testing.assert_array_equal(y, np.ascontiguousarray(x).reshape(2, -1))
    dy = np.random.default_rng(7).standard_normal(y.shape)
    np.testing.assert_array_equal(flatten_backward(dy, cache), dy.reshape(x.shape))


@pytest.mark.parametrize(
    ("x", "start_dim", "error", "match"),
    [
        ([1.0, 2.0], 1, DTypeError, r"x must be a numpy or cupy array; .*got list"),
        (np.zeros((2, 3), dtype=np.int64), 1, DTypeError,
         r"x has dtype int64; expected float32 or float64"),
        (np.array(1.0), 0, ShapeError,
         r"x must have at least 1 dimension; expected ndim >= 1, got 0"),
        (np.zeros((2, 3)), 2, ParameterError,
         r"start_dim out of range; expected an int in \[-2, 1\], got 2 \(x.shape=\(2, 3\)\)"),
        (np.zeros((2, 3)), -3, ParameterError, r"start_dim out of range; .*got -3"),
        (np.zeros((2, 3)), 1.0, ParameterError, r"start_dim out of range; .*got 1.0"),
        (np.zeros((2, 3)), True, ParameterError, r"start_dim out of range; .*got True"),
    ],
)  # fmt: skip
def test_flatten_rejects_bad_input(
    x: Any, start_dim: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=f"^flatten: {match}"):
        flatten_forward(x, start_dim=start_dim)


@pytest.mark.parametrize(
    ("dy", "error", "match"),
    [
        (np.zeros((2, 6)), ShapeError,
         r"dy.shape=\(2, 6\) does not match the forward output; expected \(2, 12\)"),
        (np.zeros((2, 12), dtype=np.float32), DTypeError,
         r"dy has dtype float32; expected the forward dtype float64"),
        ("dy", DTypeError, r"dy must be a numpy or cupy array; .*got str"),
    ],
)  # fmt: skip
def test_flatten_backward_rejects_bad_dy(dy: Any, error: type[Exception], match: str) -> None:
    _, cache = flatten_forward(np.zeros((2, 3, 2, 2)))
    with pytest.raises(error, match=f"^flatten_backward: {match}"):
        flatten_backward(dy, cache)
