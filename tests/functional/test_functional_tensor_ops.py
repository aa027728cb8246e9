"""The array-level pairs under the recorded graph.

arithmetic (AR0–AR10), matmul (MM1–MM3), view: reshape (RS1, RS2), permute (TR1, TR2),
getitem (IX1, IX2); join: cat (CAT1, CAT2), stack (ST1, ST2); reduction (SUM1, SUM2,
MEAN1, MEAN2); softmax and log-softmax (SM1–SM4).

Witnesses: naive float64 references written from the module docstrings (loops over
np.ndindex, independent of the code under test), central finite differences (G1) with a
random upstream dy, the adjoint identity (G3) for every linear map, PyTorch as an extra
witness, the op contract (backward twice, nothing mutated, fresh gradients of each input's
shape and dtype, non-contiguous inputs), and every validation branch.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import dot_product_check, numerical_gradient
from convprop.functional.arithmetic import (
    add_backward,
    add_backward_passed_on,
    add_forward,
    div_backward,
    div_forward,
    mul_backward,
    mul_forward,
    neg_backward,
    neg_forward,
    sub_backward,
    sub_forward,
    unbroadcast,
)
from convprop.functional.join import cat_backward, cat_forward, stack_backward, stack_forward
from convprop.functional.matmul import matmul_backward, matmul_forward
from convprop.functional.reduction import mean_backward, mean_forward, sum_backward, sum_forward
from convprop.functional.softmax_dim import (
    log_softmax_backward,
    log_softmax_forward,
    softmax_backward,
    softmax_forward,
)
from convprop.functional.view import (
    getitem_backward,
    getitem_forward,
    permute_backward,
    permute_forward,
    reshape_backward,
    reshape_forward,
)

# -- helpers -----------------------------------------------------------------------------------


def assert_adjoint(
    forward: Callable[[np.ndarray], Any],
    adjoint: Callable[[np.ndarray], Any],
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
) -> None:
    """(G3) <A u, v> = <u, A^T v> to about 1e-12 in float64, for random u and v."""
    lhs, rhs = dot_product_check(
        forward, adjoint, tuple(x_shape), tuple(y_shape), rng=np.random.default_rng(0)
    )
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def fd_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(G1) the gradient of sum(f(x) ⊙ dy) by central differences."""
    return numerical_gradient(lambda v: float(np.sum(f(v) * dy)), x)


FD = {"rtol": 1e-6, "atol": 1e-8}  # central differences in float64 with eps=1e-6


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |v| in [0.5, 2]: safe divisors."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def torch_grads(
    fn: Callable[..., torch.Tensor], arrays: list[np.ndarray], dy: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch's forward and its autograd gradients for an upstream dy (float64)."""
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*tensors)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), [t.grad.numpy() for t in tensors]


def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcast shape of shapes that do broadcast: pad with leading 1s, take the max."""
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    return tuple(max(sizes) for sizes in zip(*padded, strict=True))


def source_index(y_index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The element of an operand of ``shape`` that broadcasting pairs with y[y_index]."""
    offset = len(y_index) - len(shape)
    return tuple(0 if size == 1 else y_index[offset + k] for k, size in enumerate(shape))


# -- arithmetic (AR0–AR10) ---------------------------------------------------------------------

LOCAL = {  # one element: (y, ∂y/∂a, ∂y/∂b) from (AR1), (AR3), (AR5), (AR7)
    "add": lambda a, b: (a + b, 1.0, 1.0),
    "sub": lambda a, b: (a - b, 1.0, -1.0),
    "mul": lambda a, b: (a * b, b, a),
    "div": lambda a, b: (a / b, 1.0 / b, -a / (b * b)),
}
BINARY = {
    "add": (add_forward, add_backward, lambda a, b: a + b),
    "sub": (sub_forward, sub_backward, lambda a, b: a - b),
    "mul": (mul_forward, mul_backward, lambda a, b: a * b),
    "div": (div_forward, div_backward, lambda a, b: a / b),
}
BINARY_NAMES = list(BINARY)
BROADCAST_SHAPES = [
    ((2, 3), (2, 3)),  # no broadcasting
    ((2, 3), (3,)),  # b misses a leading axis
    ((3,), (2, 3)),  # a misses a leading axis
    ((4, 1, 3), (2, 1)),  # trailing 1s on both sides, b misses an axis: y (4, 2, 3)
    ((2, 1, 4), (1, 3, 1)),  # every axis stretched on one side
    ((), (2, 3)),  # a scalar as a 0-d array
    ((2, 3), ()),
    ((), ()),
    ((3, 1), (1,)),
]
SHAPE_IDS = [f"{a}-{b}" for a, b in BROADCAST_SHAPES]


def binary_reference(
    name: str, a: np.ndarray, b: np.ndarray, dy: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(AR1)–(AR8) element by element; (AR0): each copy of an operand sends its share back."""
    y_shape = broadcast_shape(a.shape, b.shape)
    y, da, db = np.zeros(y_shape), np.zeros(a.shape), np.zeros(b.shape)
    for index in np.ndindex(y_shape):
        i_a, i_b = source_index(index, a.shape), source_index(index, b.shape)
        value, d_a, d_b = LOCAL[name](float(a[i_a]), float(b[i_b]))
        y[index] = value
        if dy is not None:
            da[i_a] += float(dy[index]) * d_a
            db[i_b] += float(dy[index]) * d_b
    return y, da, db


def binary_inputs(
    name: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0])
    b = away_from_zero(rng, shapes[1]) if name == "div" else rng.standard_normal(shapes[1])
    dy = rng.standard_normal(broadcast_shape(*shapes))
    return np.asarray(a), np.asarray(b), np.asarray(dy)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_forward_matches_AR1_AR3_AR5_AR7_reference(
    xp: ModuleType, name: str, shapes: Any
) -> None:
    forward = BINARY[name][0]
    a, b, _ = binary_inputs(name, shapes, 0)
    y, _ = forward(xp.asarray(a), xp.asarray(b))
    expected, _, _ = binary_reference(name, a, b)
    assert y.shape == expected.shape and y.dtype == np.float64
    np.testing.assert_allclose(to_host(y), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_backward_matches_AR0_AR2_AR4_AR6_AR8_reference(
    xp: ModuleType, name: str, shapes: Any
) -> None:
    forward, backward, _ = BINARY[name]
    a, b, dy = binary_inputs(name, shapes, 1)
    _, cache = forward(xp.asarray(a), xp.asarray(b))
    da, db = backward(xp.asarray(dy), cache)
    _, da_ref, db_ref = binary_reference(name, a, b, dy)
    assert da.shape == a.shape and db.shape == b.shape
    np.testing.assert_allclose(to_host(da), da_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_host(db), db_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_backward_matches_finite_differences(name: str, shapes: Any) -> None:
    forward, backward, _ = BINARY[name]
    a, b, dy = binary_inputs(name, shapes, 2)
    _, cache = forward(a, b)
    da, db = backward(dy, cache)
    da_fd = fd_gradient(lambda v: forward(v, b)[0], a, dy)
    db_fd = fd_gradient(lambda v: forward(a, v)[0], b, dy)
    np.testing.assert_allclose(da, da_fd, **FD)
    np.testing.assert_allclose(db, db_fd, **FD)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", BINARY_NAMES)
def test_binary_agrees_with_torch(name: str, shapes: Any) -> None:
    forward, backward, torch_fn = BINARY[name]
    a, b, dy = binary_inputs(name, shapes, 3)
    y, cache = forward(a, b)
    da, db = backward(dy, cache)
    y_t, (da_t, db_t) = torch_grads(torch_fn, [a, b], dy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(da, da_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, db_t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
def test_add_backward_passed_on_equals_AR2_and_copies_nothing_where_nothing_broadcast(
    shapes: Any,
) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    y, cache = add_forward(a, b)
    dy = rng.standard_normal(y.shape)
    passed = add_backward_passed_on(dy, cache)
    fresh = add_backward(dy, cache)
    for got, expected in zip(passed, fresh, strict=True):
        np.testing.assert_array_equal(got, expected)  # (AR2)
    same = a.shape == b.shape == y.shape
    assert (passed[0] is dy and passed[1] is dy) == same
    assert not any(np.shares_memory(grad, dy) for grad in fresh)  # the pair's contract


def test_add_backward_passed_on_checks_dy_against_the_forward() -> None:
    _, cache = add_forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r"^add_backward: "):
        add_backward_passed_on(np.ones((3, 2)), cache)


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", ["add", "sub"])
def test_add_sub_AR2_AR4_are_the_adjoints_wrt_each_input(name: str, shapes: Any) -> None:
    forward, backward, _ = BINARY[name]
    a_shape, b_shape = shapes
    y_shape = broadcast_shape(a_shape, b_shape)
    zeros_a, zeros_b = np.zeros(a_shape), np.zeros(b_shape)
    _, cache = forward(zeros_a, zeros_b)
    assert_adjoint(
        lambda u: forward(u, zeros_b)[0], lambda v: backward(v, cache)[0], a_shape, y_shape
    )
    assert_adjoint(
        lambda u: forward(zeros_a, u)[0], lambda v: backward(v, cache)[1], b_shape, y_shape
    )


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=SHAPE_IDS)
def test_mul_AR6_is_the_adjoint_of_the_map_linear_in_a(shapes: Any) -> None:
    b = np.random.default_rng(4).standard_normal(shapes[1])
    _, cache = mul_forward(np.zeros(shapes[0]), b)
    y_shape = broadcast_shape(*shapes)
    assert_adjoint(
        lambda u: mul_forward(u, b)[0], lambda v: mul_backward(v, cache)[0], shapes[0], y_shape
    )


@pytest.mark.parametrize(
    ("shape", "y_shape"),
    [((3,), (2, 3)), ((2, 1), (2, 3)), ((1, 3, 1), (4, 3, 2)), ((), (2, 3)), ((2, 3), (2, 3)),
     ((1,), (5, 1)), ((3, 1), (2, 2, 3, 4))],
)  # fmt: skip
def test_unbroadcast_AR0_is_the_adjoint_of_broadcasting(
    shape: tuple[int, ...], y_shape: tuple[int, ...]
) -> None:
    assert_adjoint(
        lambda u: np.broadcast_to(u, y_shape),
        lambda v: unbroadcast(v, shape, np.float64),
        shape,
        y_shape,
    )


def test_unbroadcast_AR0_sums_the_copies_and_casts_to_the_operand_dtype() -> None:
    g = np.random.default_rng(5).standard_normal((4, 2, 3))
    summed = unbroadcast(g, (2, 1), np.float32)
    assert summed.shape == (2, 1) and summed.dtype == np.float32
    expected = np.zeros((2, 1))
    for n, i, j in np.ndindex(4, 2, 3):
        expected[i, 0] += g[n, i, j]
    np.testing.assert_allclose(summed, expected, rtol=1e-6)
    same = unbroadcast(g, (4, 2, 3), np.float64)
    np.testing.assert_array_equal(same, g)
    assert not np.shares_memory(same, g)


@pytest.mark.parametrize("name", BINARY_NAMES)
@pytest.mark.parametrize("swap", [False, True], ids=["a32-b64", "a64-b32"])
def test_float32_and_float64_promote_and_gradients_keep_each_input_dtype_AR0(
    name: str, swap: bool
) -> None:
    forward, backward, _ = BINARY[name]
    a, b, dy = binary_inputs(name, ((2, 1, 3), (4, 1)), 6)
    a = a.astype(np.float32) if not swap else a
    b = b.astype(np.float32) if swap else b
    y, cache = forward(a, b)
    assert y.dtype == np.float64
    da, db = backward(dy, cache)
    assert da.dtype == a.dtype and db.dtype == b.dtype
    assert da.shape == a.shape and db.shape == b.shape
    y_ref, da_ref, db_ref = binary_reference(name, a.astype(np.float64), b.astype(np.float64), dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-14)
    np.testing.assert_allclose(da, da_ref, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(db, db_ref, rtol=2e-6, atol=1e-6)
    with pytest.raises(DTypeError, match=rf"^{name}_backward: dy has dtype float32"):
        backward(dy.astype(np.float32), cache)


@pytest.mark.parametrize("shape", [(2, 3, 4), (5,), ()])
def test_neg_matches_AR9_AR10_reference_and_finite_differences(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    a, dy = np.asarray(rng.standard_normal(shape)), np.asarray(rng.standard_normal(shape))
    y, cache = neg_forward(a)
    da = neg_backward(dy, cache)
    for index in np.ndindex(shape):
        assert y[index] == -a[index]  # (AR9)
        assert da[index] == -dy[index]  # (AR10)
    np.testing.assert_allclose(da, fd_gradient(lambda v: neg_forward(v)[0], a, dy), **FD)
    y_t, (da_t,) = torch_grads(torch.neg, [a], dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(da, da_t)
    assert_adjoint(lambda u: neg_forward(u)[0], lambda v: neg_backward(v, cache), shape, shape)


# -- matmul (MM1–MM3) --------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3, 4)),  # 1-D · 2-D: a row
    ((2, 3), (3,)),  # 2-D · 1-D: a column
    ((3,), (3,)),  # 1-D · 1-D: a 0-d result
    ((2, 3), (3, 4)),
    ((2, 2, 3), (3, 4)),  # batched 3-D · 2-D: b broadcast over the batch
    ((3, 4), (2, 4, 2)),  # 2-D · 3-D: a broadcast over the batch
    ((3,), (2, 3, 4)),  # 1-D · 3-D
    ((2, 3, 4), (4,)),  # 3-D · 1-D
    ((2, 1, 2, 3), (3, 3, 2)),  # 4-D batches (2, 1) and (3,) broadcast to (2, 3)
    ((2, 3, 2, 3), (2, 3, 3, 2)),  # 4-D, same batch
]
MATMUL_IDS = [f"{a}@{b}" for a, b in MATMUL_SHAPES]


def matmul_reference(
    a: np.ndarray, b: np.ndarray, dy: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MM1) as a loop, and its derivative entry by entry (MM2, MM3), with a 1-D a a row
    (1, J), a 1-D b a column (J, 1), and the leading axes broadcast (AR0)."""
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    batch = broadcast_shape(a2.shape[:-2], b2.shape[:-2])
    I, J = a2.shape[-2:]
    L = b2.shape[-1]
    y_shape = batch + ((I,) if a.ndim > 1 else ()) + ((L,) if b.ndim > 1 else ())
    y = np.zeros((*batch, I, L))
    dy2 = None if dy is None else dy.reshape((*batch, I, L))  # the dropped axes have size 1
    da2, db2 = np.zeros(a2.shape), np.zeros(b2.shape)
    for n in np.ndindex(batch):
        n_a, n_b = source_index(n, a2.shape[:-2]), source_index(n, b2.shape[:-2])
        for i, j, l in np.ndindex(I, J, L):
            y[(*n, i, l)] += a2[(*n_a, i, j)] * b2[(*n_b, j, l)]  # (MM1)
            if dy2 is not None:
                da2[(*n_a, i, j)] += dy2[(*n, i, l)] * b2[(*n_b, j, l)]  # (MM2)
                db2[(*n_b, j, l)] += a2[(*n_a, i, j)] * dy2[(*n, i, l)]  # (MM3)
    return y.reshape(y_shape), da2.reshape(a.shape), db2.reshape(b.shape)


def matmul_inputs(shapes: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    y_shape = np.matmul(np.zeros(shapes[0]), np.zeros(shapes[1])).shape
    return a, b, np.asarray(rng.standard_normal(y_shape))


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_forward_matches_MM1_reference(xp: ModuleType, shapes: Any) -> None:
    a, b, _ = matmul_inputs(shapes, 10)
    y, _ = matmul_forward(xp.asarray(a), xp.asarray(b))
    expected, _, _ = matmul_reference(a, b)
    assert y.shape == expected.shape
    np.testing.assert_allclose(to_host(y), expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_backward_matches_MM2_MM3_reference(xp: ModuleType, shapes: Any) -> None:
    a, b, dy = matmul_inputs(shapes, 11)
    _, cache = matmul_forward(xp.asarray(a), xp.asarray(b))
    da, db = matmul_backward(xp.asarray(dy), cache)
    _, da_ref, db_ref = matmul_reference(a, b, dy)
    assert da.shape == a.shape and db.shape == b.shape
    np.testing.assert_allclose(to_host(da), da_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_host(db), db_ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_backward_matches_finite_differences(shapes: Any) -> None:
    a, b, dy = matmul_inputs(shapes, 12)
    _, cache = matmul_forward(a, b)
    da, db = matmul_backward(dy, cache)
    da_fd = fd_gradient(lambda v: matmul_forward(v, b)[0], a, dy)
    db_fd = fd_gradient(lambda v: matmul_forward(a, v)[0], b, dy)
    np.testing.assert_allclose(da, da_fd, **FD)
    np.testing.assert_allclose(db, db_fd, **FD)


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_MM2_MM3_are_the_adjoints_wrt_each_input(shapes: Any) -> None:
    a, b, dy = matmul_inputs(shapes, 13)
    _, cache = matmul_forward(a, b)
    assert_adjoint(
        lambda u: matmul_forward(u, b)[0],
        lambda v: matmul_backward(v, cache)[0],
        a.shape,
        dy.shape,
    )
    assert_adjoint(
        lambda u: matmul_forward(a, u)[0],
        lambda v: matmul_backward(v, cache)[1],
        b.shape,
        dy.shape,
    )


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=MATMUL_IDS)
def test_matmul_agrees_with_torch(shapes: Any) -> None:
    a, b, dy = matmul_inputs(shapes, 14)
    y, cache = matmul_forward(a, b)
    da, db = matmul_backward(dy, cache)
    y_t, (da_t, db_t) = torch_grads(torch.matmul, [a, b], dy)
    assert y.shape == y_t.shape
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(da, da_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(db, db_t, rtol=1e-12, atol=1e-14)


def test_matmul_float32_times_float64_gives_gradients_in_each_dtype() -> None:
    a, b, dy = matmul_inputs(((2, 3), (3, 4)), 15)
    y, cache = matmul_forward(a.astype(np.float32), b)
    assert y.dtype == np.float64
    da, db = matmul_backward(dy, cache)
    assert da.dtype == np.float32 and db.dtype == np.float64
    _, da_ref, db_ref = matmul_reference(a.astype(np.float32).astype(np.float64), b, dy)
    np.testing.assert_allclose(da, da_ref, rtol=1e-6)
    np.testing.assert_allclose(db, db_ref, rtol=1e-12)


# -- view: reshape (RS1, RS2), permute (TR1, TR2) -----------------------------------------------

RESHAPES = [((2, 3, 4), (4, -1)), ((6,), (2, 1, 3)), ((2, 3, 4), (-1,)), ((2, 3), (3, 2)),
            ((2, 3, 4), (2, -1, 2)), ((1,), ()), ((), (1, 1))]  # fmt: skip
RESHAPE_IDS = [f"{x}->{s}" for x, s in RESHAPES]


def reshape_reference(
    x: np.ndarray, y_shape: tuple[int, ...], dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(RS1) y.ravel() = x.ravel(), (RS2) its inverse, walking the row-major order k."""
    y, dx = np.zeros(y_shape), np.zeros(x.shape)
    for k in range(x.size):
        at_x = np.unravel_index(k, x.shape) if x.ndim else ()
        at_y = np.unravel_index(k, y_shape) if len(y_shape) else ()
        y[at_y] = x[at_x]  # (RS1)
        dx[at_x] = dy[at_y]  # (RS2)
    return y, dx


@pytest.mark.parametrize(("x_shape", "shape"), RESHAPES, ids=RESHAPE_IDS)
def test_reshape_matches_RS1_RS2_reference(
    xp: ModuleType, x_shape: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(20)
    x = np.asarray(rng.standard_normal(x_shape))
    y, cache = reshape_forward(xp.asarray(x), shape)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = reshape_backward(xp.asarray(dy), cache)
    y_ref, dx_ref = reshape_reference(x, tuple(y.shape), dy)
    assert y.shape == np.empty(x_shape).reshape(shape).shape and dx.shape == x_shape
    np.testing.assert_array_equal(to_host(y), y_ref)
    np.testing.assert_array_equal(to_host(dx), dx_ref)
    np.testing.assert_allclose(
        to_host(dx), fd_gradient(lambda v: reshape_forward(v, shape)[0], x, dy), **FD
    )
    assert_adjoint(
        lambda u: reshape_forward(u, shape)[0],
        lambda v: reshape_backward(v, cache),
        x_shape,
        tuple(y.shape),
    )
    y_t, (dx_t,) = torch_grads(lambda t: t.reshape(shape), [x], dy)
    np.testing.assert_array_equal(to_host(y), y_t)
    np.testing.assert_array_equal(to_host(dx), dx_t)


PERMUTES = [((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (1, 2, 0)), ((2, 3, 4), (0, 2, 1)),
            ((2, 3, 4, 5), (3, 1, 0, 2)), ((2, 3, 4, 5), (0, 1, 2, 3)),
            ((2, 3, 4, 5), (-1, 0, -2, 1)), ((3, 2), (1, 0)), ((5,), (0,))]  # fmt: skip
PERMUTE_IDS = [f"{x}-{axes}" for x, axes in PERMUTES]


@pytest.mark.parametrize(("x_shape", "axes"), PERMUTES, ids=PERMUTE_IDS)
def test_permute_matches_TR1_TR2_reference(
    xp: ModuleType, x_shape: tuple[int, ...], axes: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(21)
    x = rng.standard_normal(x_shape)
    order = [a % len(x_shape) for a in axes]
    y_shape = tuple(x_shape[a] for a in order)
    y, cache = permute_forward(xp.asarray(x), axes)
    dy = rng.standard_normal(y_shape)
    dx = permute_backward(xp.asarray(dy), cache)
    assert y.shape == y_shape and dx.shape == x_shape
    y_host, dx_host = to_host(y), to_host(dx)
    for index in np.ndindex(y_shape):
        source = [0] * len(x_shape)
        for position, axis in enumerate(order):
            source[axis] = index[position]  # (TR1): y axis i is x axis axes[i]
        assert y_host[index] == x[tuple(source)]
        assert dx_host[tuple(source)] == dy[index]  # (TR2)
    np.testing.assert_allclose(
        dx_host, fd_gradient(lambda v: permute_forward(v, axes)[0], x, dy), **FD
    )
    assert_adjoint(
        lambda u: permute_forward(u, axes)[0],
        lambda v: permute_backward(v, cache),
        x_shape,
        y_shape,
    )
    y_t, (dx_t,) = torch_grads(lambda t: t.permute(*axes), [x], dy)
    np.testing.assert_array_equal(y_host, y_t)
    np.testing.assert_array_equal(dx_host, dx_t)


# -- view: getitem (IX1, IX2) ------------------------------------------------------------------

X_SHAPE = (2, 3, 4)
INDICES: list[tuple[str, Any, bool]] = [  # (id, index, PyTorch supports it)
    ("int", 1, True),
    ("negative-int", -1, True),
    ("ints-to-0d", (1, 2, 3), True),
    ("slice-step", (slice(None), slice(None, None, 2)), True),
    ("slice-step-3", (0, slice(None), slice(0, 4, 3)), True),
    ("negative-step", (slice(None, None, -1), slice(3, 0, -2)), False),
    ("negative-indices", (-1, slice(-2, None), -3), True),
    ("none", (None, 0, slice(None), None), True),
    ("ellipsis", (Ellipsis, 1), True),
    ("ellipsis-middle", (0, Ellipsis, slice(1, 3)), True),
    ("int-array-repeats", np.array([0, 1, 0, 0]), True),
    ("int-array-2d-repeats", (slice(None), np.array([[0, 2], [2, 2]])), True),
    ("two-int-arrays", (np.array([1, 1, 0]), slice(None), np.array([3, 3, -1])), True),
    ("list-repeats", [1, 0, 1], True),
    ("bool-mask-full", "mask", True),
    ("bool-mask-axis0", np.array([False, True]), True),
    ("bool-mask-axis1", (slice(None), np.array([True, False, True])), True),
]
INDEX_IDS = [case[0] for case in INDICES]


def resolve_index(index: Any, x: np.ndarray) -> Any:
    return (x > 0.2) if isinstance(index, str) else index


def getitem_reference(
    x: np.ndarray, index: Any, dy: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(IX1) y[j] = x[index(j)] and (IX2) dx[index(j)] += dy[j], where index(j), the flat
    position of x that y's j-th entry reads, is found by indexing the array of positions."""
    positions = np.asarray(np.arange(x.size).reshape(x.shape)[index])
    y = np.zeros(positions.shape)
    dx = np.zeros(x.size)
    for j in np.ndindex(positions.shape):
        y[j] = x.flat[positions[j]]  # (IX1)
        if dy is not None:
            dx[positions[j]] += dy[j]  # (IX2): a position read twice collects both
    return y, dx.reshape(x.shape)


@pytest.mark.parametrize(("name", "index", "torch_ok"), INDICES, ids=INDEX_IDS)
def test_getitem_matches_IX1_IX2_reference(name: str, index: Any, torch_ok: bool) -> None:
    rng = np.random.default_rng(22)
    x = rng.standard_normal(X_SHAPE)
    index = resolve_index(index, x)
    y, cache = getitem_forward(x, index)
    y_ref, _ = getitem_reference(x, index)
    assert y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = getitem_backward(dy, cache)
    _, dx_ref = getitem_reference(x, index, dy)
    assert dx.shape == X_SHAPE and dx.dtype == np.float64
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-15, atol=0)


def test_getitem_IX2_sums_the_entries_of_a_repeated_index() -> None:
    _, cache = getitem_forward(np.zeros(4), np.array([0, 0, 3, 0]))
    np.testing.assert_array_equal(
        getitem_backward(np.array([1.0, 2.0, 5.0, 4.0]), cache), [7.0, 0.0, 0.0, 5.0]
    )


@pytest.mark.parametrize(("name", "index", "torch_ok"), INDICES, ids=INDEX_IDS)
def test_getitem_backward_matches_finite_differences_and_is_the_adjoint(
    name: str, index: Any, torch_ok: bool
) -> None:
    rng = np.random.default_rng(23)
    x = rng.standard_normal(X_SHAPE)
    index = resolve_index(index, x)
    y, cache = getitem_forward(x, index)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = getitem_backward(dy, cache)
    np.testing.assert_allclose(dx, fd_gradient(lambda v: getitem_forward(v, index)[0], x, dy), **FD)
    assert_adjoint(
        lambda u: getitem_forward(u, index)[0],
        lambda v: getitem_backward(v, cache),
        X_SHAPE,
        tuple(y.shape),
    )


@pytest.mark.parametrize(
    ("name", "index"), [(c[0], c[1]) for c in INDICES if c[2]], ids=[c[0] for c in INDICES if c[2]]
)
def test_getitem_agrees_with_torch(name: str, index: Any) -> None:
    rng = np.random.default_rng(24)
    x = rng.standard_normal(X_SHAPE)
    index = resolve_index(index, x)
    y, cache = getitem_forward(x, index)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = getitem_backward(dy, cache)

    def torch_index(part: Any) -> Any:
        return torch.from_numpy(part) if isinstance(part, np.ndarray) else part

    t_index = (
        tuple(torch_index(p) for p in index) if isinstance(index, tuple) else torch_index(index)
    )
    y_t, (dx_t,) = torch_grads(lambda t: t[t_index], [x], dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-12, atol=1e-15)


# -- join: cat (CAT1, CAT2), stack (ST1, ST2) ---------------------------------------------------

CATS = [
    ([(2, 1, 4), (2, 3, 4), (2, 2, 4)], 1),
    ([(1, 3, 2), (2, 3, 2)], 0),
    ([(2, 3, 1), (2, 3, 2)], 2),
    ([(2, 3, 1), (2, 3, 2), (2, 3, 1)], -1),
    ([(1, 2, 2), (3, 2, 2)], -3),
    ([(2, 2), (2, 3)], -1),
    ([(4,), (2,)], 0),
    ([(2, 3)], 1),
]
CAT_IDS = [f"{len(shapes)}x-dim{dim}" for shapes, dim in CATS]


def cat_reference(
    arrays: list[np.ndarray], dim: int, dy: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(CAT1) y[…, o_i + j, …] = x_i[…, j, …] and (CAT2) dx_i = dy's slice, by loops."""
    axis = dim % arrays[0].ndim
    y_shape = list(arrays[0].shape)
    y_shape[axis] = sum(a.shape[axis] for a in arrays)
    y, grads, offset = np.zeros(y_shape), [], 0
    for x_i in arrays:
        dx_i = np.zeros(x_i.shape)
        for index in np.ndindex(x_i.shape):
            target = list(index)
            target[axis] += offset
            y[tuple(target)] = x_i[index]  # (CAT1)
            dx_i[index] = dy[tuple(target)]  # (CAT2)
        grads.append(dx_i)
        offset += x_i.shape[axis]
    return y, grads


@pytest.mark.parametrize(("shapes", "dim"), CATS, ids=CAT_IDS)
def test_cat_matches_CAT1_CAT2_reference(xp: ModuleType, shapes: Any, dim: int) -> None:
    rng = np.random.default_rng(30)
    arrays = [rng.standard_normal(s) for s in shapes]
    y, cache = cat_forward([xp.asarray(a) for a in arrays], dim)
    dy = rng.standard_normal(y.shape)
    grads = cat_backward(xp.asarray(dy), cache)
    y_ref, grads_ref = cat_reference(arrays, dim, dy)
    np.testing.assert_array_equal(to_host(y), y_ref)
    assert isinstance(grads, tuple) and len(grads) == len(arrays)
    for grad, grad_ref, a in zip(grads, grads_ref, arrays, strict=True):
        assert grad.shape == a.shape
        np.testing.assert_array_equal(to_host(grad), grad_ref)


@pytest.mark.parametrize(("shapes", "dim"), CATS, ids=CAT_IDS)
def test_cat_finite_differences_adjoint_and_torch(shapes: Any, dim: int) -> None:
    rng = np.random.default_rng(31)
    arrays = [rng.standard_normal(s) for s in shapes]
    y, cache = cat_forward(arrays, dim)
    dy = rng.standard_normal(y.shape)
    grads = cat_backward(dy, cache)
    for i, grad in enumerate(grads):

        def with_i(v: np.ndarray, i: int = i) -> np.ndarray:
            return cat_forward([v if k == i else a for k, a in enumerate(arrays)], dim)[0]

        np.testing.assert_allclose(grad, fd_gradient(with_i, arrays[i], dy), **FD)
    sizes = [math.prod(s) for s in shapes]

    def split(u: np.ndarray) -> list[np.ndarray]:
        parts = np.split(u, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]

    assert_adjoint(  # the inputs stacked into one vector u = (u_1, …, u_m)
        lambda u: cat_forward(split(u), dim)[0],
        lambda v: np.concatenate([g.ravel() for g in cat_backward(v, cache)]),
        (sum(sizes),),
        tuple(y.shape),
    )
    y_t, grads_t = torch_grads(lambda *ts: torch.cat(ts, dim=dim), arrays, dy)
    np.testing.assert_array_equal(y, y_t)
    for grad, grad_t in zip(grads, grads_t, strict=True):
        np.testing.assert_array_equal(grad, grad_t)


STACK_DIMS = [0, 1, 2, -1, -3]


@pytest.mark.parametrize("dim", STACK_DIMS)
def test_stack_matches_ST1_ST2_reference(xp: ModuleType, dim: int) -> None:
    rng = np.random.default_rng(32)
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    y, cache = stack_forward([xp.asarray(a) for a in arrays], dim)
    axis = dim % 3
    y_shape = [2, 3]
    y_shape.insert(axis, 3)
    assert y.shape == tuple(y_shape)
    dy = rng.standard_normal(y_shape)
    grads = stack_backward(xp.asarray(dy), cache)
    y_host = to_host(y)
    for i, (x_i, grad) in enumerate(zip(arrays, grads, strict=True)):
        assert grad.shape == (2, 3)
        for index in np.ndindex(2, 3):
            target = list(index)
            target.insert(axis, i)
            assert y_host[tuple(target)] == x_i[index]  # (ST1)
            assert to_host(grad)[index] == dy[tuple(target)]  # (ST2)


@pytest.mark.parametrize("dim", STACK_DIMS)
def test_stack_finite_differences_adjoint_and_torch(dim: int) -> None:
    rng = np.random.default_rng(33)
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    y, cache = stack_forward(arrays, dim)
    dy = rng.standard_normal(y.shape)
    grads = stack_backward(dy, cache)
    for i, grad in enumerate(grads):

        def with_i(v: np.ndarray, i: int = i) -> np.ndarray:
            return stack_forward([v if k == i else a for k, a in enumerate(arrays)], dim)[0]

        np.testing.assert_allclose(grad, fd_gradient(with_i, arrays[i], dy), **FD)
    assert_adjoint(
        lambda u: stack_forward(list(u), dim)[0],
        lambda v: np.stack(stack_backward(v, cache)),
        (3, 2, 3),
        tuple(y.shape),
    )
    y_t, grads_t = torch_grads(lambda *ts: torch.stack(ts, dim=dim), arrays, dy)
    np.testing.assert_array_equal(y, y_t)
    for grad, grad_t in zip(grads, grads_t, strict=True):
        np.testing.assert_array_equal(grad, grad_t)


@pytest.mark.parametrize("join", ["cat", "stack"])
def test_join_of_float32_and_float64_gives_gradients_in_each_dtype(join: str) -> None:
    rng = np.random.default_rng(34)
    arrays = [rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 3))]
    forward, backward = (cat_forward, cat_backward) if join == "cat" else (
        stack_forward, stack_backward)  # fmt: skip
    y, cache = forward(arrays, 1)
    assert y.dtype == np.float64
    grads = backward(rng.standard_normal(y.shape), cache)
    assert [g.dtype for g in grads] == [np.float32, np.float64]


# -- reduction (SUM1, SUM2, MEAN1, MEAN2) -----------------------------------------------------

REDUCE_DIMS = [None, 0, 1, 2, -1, -3, (0, 2), (2, 0), (-1, -3), [0, 1], (0, 1, 2), ()]
REDUCE_IDS = [f"dim={d!r}" for d in REDUCE_DIMS]


def reduce_reference(
    x: np.ndarray, dim: Any, keepdim: bool, dy: np.ndarray | None, mean: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(SUM1)/(MEAN1) and (SUM2)/(MEAN2): every x entry adds into the y entry that drops
    (or, with keepdim, zeroes) its reduced coordinates, and gets that entry's dy back."""
    if dim is None:
        axes = set(range(x.ndim))
    else:
        axes = {d % x.ndim for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}

    def target(index: tuple[int, ...]) -> tuple[int, ...]:
        if keepdim:
            return tuple(0 if a in axes else i for a, i in enumerate(index))
        return tuple(i for a, i in enumerate(index) if a not in axes)

    y_shape = tuple(n + 1 for n in target(tuple(n - 1 for n in x.shape)))  # last index + 1
    m = math.prod(x.shape[a] for a in axes)
    y, dx = np.zeros(y_shape), np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        y[target(index)] += x[index] / m if mean else x[index]
        if dy is not None:
            dx[index] = dy[target(index)] / m if mean else dy[target(index)]
    return y, dx


@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
@pytest.mark.parametrize("dim", REDUCE_DIMS, ids=REDUCE_IDS)
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduction_matches_SUM1_SUM2_MEAN1_MEAN2_reference(
    xp: ModuleType, op: str, dim: Any, keepdim: bool
) -> None:
    forward, backward = (sum_forward, sum_backward) if op == "sum" else (
        mean_forward, mean_backward)  # fmt: skip
    rng = np.random.default_rng(40)
    x = rng.standard_normal((2, 3, 4))
    y, cache = forward(xp.asarray(x), dim, keepdim)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = backward(xp.asarray(dy), cache)
    y_ref, dx_ref = reduce_reference(x, dim, keepdim, dy, op == "mean")
    assert y.shape == y_ref.shape and dx.shape == x.shape and y.dtype == np.float64
    np.testing.assert_allclose(to_host(y), y_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(to_host(dx), dx_ref, rtol=1e-15, atol=0)


@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
@pytest.mark.parametrize("dim", REDUCE_DIMS[:-1], ids=REDUCE_IDS[:-1])
@pytest.mark.parametrize("op", ["sum", "mean"])
def test_reduction_finite_differences_adjoint_and_torch(op: str, dim: Any, keepdim: bool) -> None:
    forward, backward = (sum_forward, sum_backward) if op == "sum" else (
        mean_forward, mean_backward)  # fmt: skip
    rng = np.random.default_rng(41)
    x = rng.standard_normal((2, 3, 4))
    y, cache = forward(x, dim, keepdim)
    dy = np.asarray(rng.standard_normal(y.shape))
    dx = backward(dy, cache)
    np.testing.assert_allclose(dx, fd_gradient(lambda v: forward(v, dim, keepdim)[0], x, dy), **FD)
    assert_adjoint(
        lambda u: forward(u, dim, keepdim)[0], lambda v: backward(v, cache), x.shape, y.shape
    )
    torch_dim = (0, 1, 2) if dim is None else tuple(dim) if isinstance(dim, list) else dim
    torch_fn = torch.sum if op == "sum" else torch.mean
    y_t, (dx_t,) = torch_grads(lambda t: torch_fn(t, dim=torch_dim, keepdim=keepdim), [x], dy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-12, atol=1e-15)


def test_mean_of_float32_stays_float32_MEAN1() -> None:
    x = np.random.default_rng(42).standard_normal((3, 4)).astype(np.float32)
    y, cache = mean_forward(x, 1)
    dx = mean_backward(np.ones(3, dtype=np.float32) * 2, cache)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(dx, np.full((3, 4), 0.5), rtol=1e-7)


# -- softmax (SM1–SM4) ---------------------------------------------------------------------------

SOFTMAX_DIMS = [0, 1, 2, -1, -2, -3]


def softmax_reference(
    x: np.ndarray, dim: int, dy: np.ndarray, log: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(SM1)/(SM3) along each line of ``dim``, and the chain rule through the Jacobian
    ∂p_j/∂x_k = p_j([j = k] − p_k) (softmax) or ∂log p_j/∂x_k = [j = k] − p_k (log-softmax)."""
    axis = dim % x.ndim
    y, dx = np.zeros(x.shape), np.zeros(x.shape)
    others = [n for a, n in enumerate(x.shape) if a != axis]
    size = x.shape[axis]
    for rest in np.ndindex(*others):

        def at(j: int, rest: tuple[int, ...] = rest) -> tuple[int, ...]:
            return (*rest[:axis], j, *rest[axis:])

        total = sum(math.exp(x[at(j)]) for j in range(size))
        p = [math.exp(x[at(j)]) / total for j in range(size)]
        for k in range(size):
            y[at(k)] = math.log(p[k]) if log else p[k]  # (SM3) / (SM1)
            if log:
                dx[at(k)] = sum(dy[at(j)] * ((j == k) - p[k]) for j in range(size))
            else:
                dx[at(k)] = sum(dy[at(j)] * p[j] * ((j == k) - p[k]) for j in range(size))
    return y, dx


SOFTMAX_PAIRS = {
    "softmax": (softmax_forward, softmax_backward, torch.softmax),
    "log_softmax": (log_softmax_forward, log_softmax_backward, torch.log_softmax),
}


@pytest.mark.parametrize("dim", SOFTMAX_DIMS)
@pytest.mark.parametrize("name", list(SOFTMAX_PAIRS))
def test_softmax_matches_SM1_SM2_SM3_SM4_reference(xp: ModuleType, name: str, dim: int) -> None:
    forward, backward, _ = SOFTMAX_PAIRS[name]
    rng = np.random.default_rng(50)
    x = rng.standard_normal((2, 3, 4)) * 2
    dy = rng.standard_normal(x.shape)
    y, cache = forward(xp.asarray(x), dim)
    dx = backward(xp.asarray(dy), cache)
    y_ref, dx_ref = softmax_reference(x, dim, dy, name == "log_softmax")
    np.testing.assert_allclose(to_host(y), y_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(to_host(dx), dx_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dim", SOFTMAX_DIMS)
@pytest.mark.parametrize("name", list(SOFTMAX_PAIRS))
def test_softmax_finite_differences_and_torch(name: str, dim: int) -> None:
    forward, backward, torch_fn = SOFTMAX_PAIRS[name]
    rng = np.random.default_rng(51)
    x = rng.standard_normal((2, 3, 4)) * 2
    dy = rng.standard_normal(x.shape)
    y, cache = forward(x, dim)
    dx = backward(dy, cache)
    np.testing.assert_allclose(dx, fd_gradient(lambda v: forward(v, dim)[0], x, dy), **FD)
    y_t, (dx_t,) = torch_grads(lambda t: torch_fn(t, dim), [x], dy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(SOFTMAX_PAIRS))
def test_softmax_of_large_values_does_not_overflow_SM1_SM3(name: str) -> None:
    forward, backward, torch_fn = SOFTMAX_PAIRS[name]
    x = np.array([[1000.0, 0.0, -1000.0], [800.0, 800.0, 799.0]])
    y, cache = forward(x, 1)  # filterwarnings=error turns an overflow into a failure
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, torch_fn(torch.tensor(x), 1).numpy(), rtol=1e-12)
    assert np.all(np.isfinite(backward(np.ones_like(x) * 0.5, cache)))


# -- the op contract ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    name: str
    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[..., tuple[Any, ...]]
    shapes: tuple[tuple[int, ...], ...]


def _one(backward: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
    return lambda dy, cache: (backward(dy, cache),)


PAIRS = [
    Pair("add", add_forward, add_backward, ((2, 1, 3), (4, 3))),
    Pair("sub", sub_forward, sub_backward, ((4, 3), (2, 1, 3))),
    Pair("mul", mul_forward, mul_backward, ((2, 1, 3), (4, 1))),
    Pair("div", div_forward, div_backward, ((2, 4, 3), (4, 1))),
    Pair("neg", neg_forward, _one(neg_backward), ((2, 3, 4),)),
    Pair("matmul", matmul_forward, matmul_backward, ((2, 2, 3), (3, 4))),
    Pair("matmul", matmul_forward, matmul_backward, ((3,), (2, 3, 4))),
    Pair("reshape", lambda x: reshape_forward(x, (4, -1)), _one(reshape_backward), ((2, 3, 4),)),
    Pair("permute", lambda x: permute_forward(x, (2, 0, 1)), _one(permute_backward),
         ((2, 3, 4),)),
    Pair("getitem", lambda x: getitem_forward(x, (slice(None, None, -1), 0, slice(1, None, 2))),
         _one(getitem_backward), ((2, 3, 4),)),
    Pair("getitem", lambda x: getitem_forward(x, (np.array([1, 0, 1]), slice(None), 2)),
         _one(getitem_backward), ((2, 3, 4),)),
    Pair("getitem", lambda x: getitem_forward(x, x > 0), _one(getitem_backward), ((2, 3, 4),)),
    Pair("cat", lambda *xs: cat_forward(list(xs), 1), cat_backward, ((2, 1, 4), (2, 3, 4))),
    Pair("stack", lambda *xs: stack_forward(list(xs), -1), stack_backward, ((2, 3), (2, 3))),
    Pair("sum", lambda x: sum_forward(x, (0, 2)), _one(sum_backward), ((2, 3, 4),)),
    Pair("sum", lambda x: sum_forward(x, -1, True), _one(sum_backward), ((2, 3, 4),)),
    Pair("mean", lambda x: mean_forward(x, None), _one(mean_backward), ((2, 3, 4),)),
    Pair("mean", lambda x: mean_forward(x, 1, True), _one(mean_backward), ((2, 3, 4),)),
    Pair("softmax", lambda x: softmax_forward(x, 1), _one(softmax_backward), ((2, 3, 4),)),
    Pair("log_softmax", lambda x: log_softmax_forward(x, 0), _one(log_softmax_backward),
         ((2, 3, 4),)),
]  # fmt: skip
PAIR_IDS = [f"{p.name}-{'-'.join(str(s) for s in p.shapes)}" for p in PAIRS]


def pair_inputs(pair: Pair, dtype: Any, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in pair.shapes]
    if pair.name == "div":
        arrays[1] = away_from_zero(rng, pair.shapes[1])
    return [a.astype(dtype) for a in arrays]


def arrays_in(value: Any) -> list[np.ndarray]:
    """Every array inside a cache field (fields may be tuples of arrays)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (tuple, list)):
        return [a for part in value for a in arrays_in(part)]
    return []


def assert_same(before: Any, after: Any) -> None:
    if isinstance(before, np.ndarray):
        np.testing.assert_array_equal(after, before)
    elif isinstance(before, (tuple, list)):
        assert len(before) == len(after)
        for b, a in zip(before, after, strict=True):
            assert_same(b, a)
    else:
        assert before == after


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_backward_is_pure_and_returns_fresh_gradients_of_each_input(pair: Pair, dtype: Any) -> None:
    arrays = pair_inputs(pair, dtype, 60)
    arrays_before = [a.copy() for a in arrays]
    y, cache = pair.forward(*arrays)
    assert y.dtype == dtype
    fields = [f.name for f in dataclasses.fields(cache)]
    cache_before = {f: copy.deepcopy(getattr(cache, f)) for f in fields}
    dy = np.random.default_rng(61).standard_normal(y.shape).astype(dtype)
    dy_before = dy.copy()
    first = pair.backward(dy, cache)
    second = pair.backward(dy, cache)
    assert len(first) == len(arrays)
    cache_arrays = [a for f in fields for a in arrays_in(getattr(cache, f))]
    for grad, again, x in zip(first, second, arrays, strict=True):
        np.testing.assert_array_equal(grad, again)
        assert isinstance(grad, np.ndarray)
        assert grad.shape == x.shape and grad.dtype == x.dtype
        for other in [again, dy, y, *arrays, *cache_arrays]:
            assert not np.shares_memory(grad, other)
    if len(first) > 1:
        assert not np.shares_memory(first[0], first[1])
    for x, x_before in zip(arrays, arrays_before, strict=True):
        np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)
    for f in fields:
        assert_same(cache_before[f], getattr(cache, f))


def strided(array: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous view (every other element of a larger array)."""
    if array.ndim == 0:
        return array
    big = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
    big[..., ::2] = array
    view = big[..., ::2]
    assert not view.flags.c_contiguous or view.size <= 1
    return view


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_non_contiguous_inputs_and_dy_are_accepted(pair: Pair) -> None:
    arrays = pair_inputs(pair, np.float64, 62)
    y, cache = pair.forward(*arrays)
    dy = np.random.default_rng(63).standard_normal(y.shape)
    grads = pair.backward(dy, cache)
    y_nc, cache_nc = pair.forward(*[strided(a) for a in arrays])
    grads_nc = pair.backward(strided(dy), cache_nc)
    np.testing.assert_allclose(y_nc, y, rtol=1e-13, atol=1e-15)
    for grad_nc, grad in zip(grads_nc, grads, strict=True):
        np.testing.assert_allclose(grad_nc, grad, rtol=1e-13, atol=1e-15)
    y_f, cache_f = pair.forward(*[np.asfortranarray(a) for a in arrays])  # column-major
    np.testing.assert_allclose(y_f, y, rtol=1e-13, atol=1e-15)
    dy_f = np.asfortranarray(dy) if dy.ndim else dy  # asfortranarray makes a 0-d array 1-d
    for grad_f, grad in zip(pair.backward(dy_f, cache_f), grads, strict=True):
        np.testing.assert_allclose(grad_f, grad, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_backward_rejects_dy_of_another_shape_or_dtype(pair: Pair) -> None:
    y, cache = pair.forward(*pair_inputs(pair, np.float64, 64))
    op = f"^{pair.name}_backward: "
    wrong = np.zeros((*y.shape, 2))
    with pytest.raises(ShapeError, match=op + rf"dy.shape={re_shape(wrong.shape)} does not"):
        pair.backward(wrong, cache)
    with pytest.raises(DTypeError, match=op + r"dy has dtype float32; expected the forward"):
        pair.backward(np.zeros(y.shape, dtype=np.float32), cache)
    with pytest.raises(DTypeError, match=op + r"dy must be a numpy or cupy array; .*got list"):
        pair.backward([0.0], cache)


def re_shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


# -- errors ----------------------------------------------------------------------------------

Z23 = np.zeros((2, 3))
ERRORS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    *[(f"{name}-no-broadcast", lambda f=BINARY[name][0]: f(Z23, np.zeros(4)), ShapeError,
       rf"^{name}: the shapes do not broadcast; expected equal sizes or 1 in each trailing "
       r"dimension, got a.shape=\(2, 3\), b.shape=\(4,\)") for name in BINARY_NAMES],
    ("add-no-broadcast-2", lambda: add_forward(np.zeros((2, 1, 3)), np.zeros((3, 2))), ShapeError,
     r"^add: the shapes do not broadcast; .*a.shape=\(2, 1, 3\), b.shape=\(3, 2\)"),
    ("add-list", lambda: add_forward([1.0], np.zeros(1)), DTypeError,
     r"^add: a must be a numpy or cupy array; expected an ndarray, got list"),
    ("mul-float", lambda: mul_forward(np.zeros(1), 2.0), DTypeError,
     r"^mul: b must be a numpy or cupy array; .*got float"),
    ("neg-list", lambda: neg_forward([1.0]), DTypeError, r"^neg: a must be a numpy or cupy"),
    ("matmul-inner", lambda: matmul_forward(Z23, np.zeros((4, 2))), ShapeError,
     r"^matmul: the operands do not fit; expected a \(\.\.\., I, J\) and b \(\.\.\., J, L\) "
     r"with the same J, got a.shape=\(2, 3\), b.shape=\(4, 2\)"),
    ("matmul-inner-1d", lambda: matmul_forward(np.zeros(3), np.zeros(4)), ShapeError,
     r"^matmul: the operands do not fit; .*a.shape=\(3,\), b.shape=\(4,\)"),
    ("matmul-inner-2d-1d", lambda: matmul_forward(Z23, np.zeros(2)), ShapeError,
     r"^matmul: the operands do not fit; .*a.shape=\(2, 3\), b.shape=\(2,\)"),
    ("matmul-0d-a", lambda: matmul_forward(np.array(2.0), Z23), ShapeError,
     r"^matmul: the operands do not fit; .*a.shape=\(\), b.shape=\(2, 3\)"),
    ("matmul-0d-b", lambda: matmul_forward(np.zeros(3), np.array(2.0)), ShapeError,
     r"^matmul: the operands do not fit; .*a.shape=\(3,\), b.shape=\(\)"),
    ("matmul-batch", lambda: matmul_forward(np.zeros((2, 2, 3)), np.zeros((3, 3, 2))), ShapeError,
     r"^matmul: the leading \(batch\) axes do not broadcast; expected equal sizes or 1, got "
     r"a.shape=\(2, 2, 3\), b.shape=\(3, 3, 2\)"),
    ("reshape-size", lambda: reshape_forward(Z23, (4, 2)), ShapeError,
     r"^reshape: cannot view x as \(4, 2\); expected a shape with 6 elements \(at most one "
     r"-1\), got \(4, 2\) \(x.shape=\(2, 3\)\)"),
    ("reshape-minus-one-size", lambda: reshape_forward(Z23, (4, -1)), ShapeError,
     r"^reshape: cannot view x as \(4, -1\); expected a shape with 6 elements"),
    ("reshape-two-minus-ones", lambda: reshape_forward(Z23, (-1, -1)), ShapeError,
     r"^reshape: cannot view x as \(-1, -1\)"),
    ("permute-repeat", lambda: permute_forward(Z23, (0, 0)), ParameterError,
     r"^permute: axes must be a permutation of the dimensions; expected an order of \[0, 1\], "
     r"got \[0, 0\] \(x.shape=\(2, 3\)\)"),
    ("permute-short", lambda: permute_forward(Z23, (1,)), ParameterError,
     r"^permute: axes must be a permutation of the dimensions; .*got \[1\]"),
    ("permute-long", lambda: permute_forward(Z23, (0, 1, 2)), ParameterError,
     r"^permute: axes must be a permutation of the dimensions; .*got \[0, 1, 2\]"),
    ("getitem-int", lambda: getitem_forward(Z23, 5), ShapeError,
     r"^getitem: the index does not fit x; expected indices inside x.shape=\(2, 3\), got 5"),
    ("getitem-negative", lambda: getitem_forward(Z23, (0, -4)), ShapeError,
     r"^getitem: the index does not fit x; .*got \(0, -4\)"),
    ("getitem-too-many", lambda: getitem_forward(Z23, (0, 0, 0)), ShapeError,
     r"^getitem: the index does not fit x; .*got \(0, 0, 0\)"),
    ("getitem-array", lambda: getitem_forward(Z23, np.array([0, 2])), ShapeError,
     r"^getitem: the index does not fit x; .*got array\(\[0, 2\]\)"),
    ("getitem-mask", lambda: getitem_forward(Z23, np.array([True, False, True])), ShapeError,
     r"^getitem: the index does not fit x; expected indices inside x.shape=\(2, 3\)"),
    ("cat-shapes", lambda: cat_forward([Z23, np.zeros((3, 3))], 1), ShapeError,
     r"^cat: the arrays must agree on every axis but dim=1; expected shapes like \(2, 3\) "
     r"apart from axis 1, got \[\(2, 3\), \(3, 3\)\]"),
    ("cat-ndim", lambda: cat_forward([Z23, np.zeros((2, 3, 1))], 0), ShapeError,
     r"^cat: the arrays must agree on every axis but dim=0; .*got \[\(2, 3\), \(2, 3, 1\)\]"),
    ("cat-0d", lambda: cat_forward([np.array(1.0), np.array(2.0)], 0), ShapeError,
     r"^cat: the arrays must agree on every axis but dim=0; .*got \[\(\), \(\)\]"),
    ("cat-empty", lambda: cat_forward([], 0), ShapeError,
     r"^cat: nothing to join; expected at least one array, got none"),
    ("cat-dim", lambda: cat_forward([Z23, Z23], 2), ParameterError,
     r"^cat: dim out of range; expected an int in \[-2, 1\], got 2 \(shapes \[\(2, 3\), "
     r"\(2, 3\)\]\)"),
    ("cat-negative-dim", lambda: cat_forward([Z23, Z23], -3), ParameterError,
     r"^cat: dim out of range; expected an int in \[-2, 1\], got -3"),
    ("cat-float-dim", lambda: cat_forward([Z23], 1.0), ParameterError,
     r"^cat: dim out of range; .*got 1.0"),
    ("cat-bool-dim", lambda: cat_forward([Z23], True), ParameterError,
     r"^cat: dim out of range; .*got True"),
    ("cat-list", lambda: cat_forward([Z23, [[1.0, 2.0, 3.0]]], 0), DTypeError,
     r"^cat: tensors\[1\] must be a numpy or cupy array; .*got list"),
    ("stack-shapes", lambda: stack_forward([Z23, np.zeros((3, 2))], 0), ShapeError,
     r"^stack: the arrays must share one shape; expected every shape \(2, 3\), got "
     r"\[\(2, 3\), \(3, 2\)\]"),
    ("stack-empty", lambda: stack_forward([], 0), ShapeError, r"^stack: nothing to join"),
    ("stack-dim", lambda: stack_forward([Z23, Z23], 3), ParameterError,
     r"^stack: dim out of range; expected an int in \[-3, 2\], got 3"),
    ("stack-negative-dim", lambda: stack_forward([Z23, Z23], -4), ParameterError,
     r"^stack: dim out of range; expected an int in \[-3, 2\], got -4"),
    *[(f"{op}-{case}", lambda f=f, d=d: f(Z23, d), ParameterError,
       rf"^{op}: dim out of range or repeated; expected distinct ints in \[-2, 1\], got "
       rf"{expected} \(x.shape=\(2, 3\)\)")
      for op, f in [("sum", sum_forward), ("mean", mean_forward)]
      for case, d, expected in [("repeat", (0, 0), r"\(0, 0\)"),
                                ("repeat-negative", (1, -1), r"\(1, -1\)"),
                                ("out-of-range", 2, "2"), ("out-of-range-negative", -3, "-3"),
                                ("out-of-range-in-tuple", (0, 2), r"\(0, 2\)"),
                                ("float", 1.0, "1.0")]],
    *[(f"{op}-dim", lambda f=f: f(Z23, 2), ParameterError,
       rf"^{op}: dim out of range; expected an int in \[-2, 1\], got 2 \(x.shape=\(2, 3\)\)")
      for op, f in [("softmax", softmax_forward), ("log_softmax", log_softmax_forward)]],
    *[(f"{op}-negative-dim", lambda f=f: f(Z23, -3), ParameterError,
       rf"^{op}: dim out of range; expected an int in \[-2, 1\], got -3")
      for op, f in [("softmax", softmax_forward), ("log_softmax", log_softmax_forward)]],
    *[(f"{op}-none-dim", lambda f=f: f(Z23, None), ParameterError,
       rf"^{op}: dim out of range; .*got None")
      for op, f in [("softmax", softmax_forward), ("log_softmax", log_softmax_forward)]],
    *[(f"{op}-int-dtype", lambda f=f: f(np.arange(6).reshape(2, 3), 1), DTypeError,
       rf"^{op}: x has dtype int64; expected float32 or float64")
      for op, f in [("softmax", softmax_forward), ("log_softmax", log_softmax_forward)]],
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "error", "match"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_invalid_input_raises_with_the_library_message(
    make: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        make()


def test_permute_rejects_axes_out_of_range_TR1() -> None:
    """An axis outside [-ndim, ndim) is no axis of x; NumPy and PyTorch refuse it too."""
    for shape, axes in [((2, 3), (0, 3)), ((2, 3), (0, -3)), ((2, 3, 4), (0, 1, 5))]:
        with pytest.raises(ParameterError, match=r"^permute: "):
            permute_forward(np.zeros(shape), axes)


FORWARDS: list[tuple[str, str, Callable[[Any], Any]]] = [
    ("add", "a", lambda t: add_forward(t, np.zeros(2))),
    ("sub", "b", lambda t: sub_forward(np.zeros(2), t)),
    ("mul", "a", lambda t: mul_forward(t, np.zeros(2))),
    ("div", "b", lambda t: div_forward(np.ones(2), t)),
    ("neg", "a", neg_forward),
    ("matmul", "a", lambda t: matmul_forward(t, np.zeros(2))),
    ("matmul", "b", lambda t: matmul_forward(np.zeros(2), t)),
    ("reshape", "x", lambda t: reshape_forward(t, (2, 1))),
    ("permute", "x", lambda t: permute_forward(t, (0,))),
    ("getitem", "x", lambda t: getitem_forward(t, 0)),
    ("cat", r"tensors\[1\]", lambda t: cat_forward([np.zeros(2), t], 0)),
    ("stack", r"tensors\[0\]", lambda t: stack_forward([t, np.zeros(2)], 0)),
    ("sum", "x", sum_forward),
    ("mean", "x", lambda t: mean_forward(t, 0)),
    ("softmax", "x", lambda t: softmax_forward(t, 0)),
    ("log_softmax", "x", lambda t: log_softmax_forward(t, 0)),
]


@pytest.mark.parametrize(("op", "name", "call"), FORWARDS, ids=[f"{f[0]}-{f[1]}" for f in FORWARDS])
def test_a_torch_tensor_is_refused_with_a_hint_to_call_numpy(
    op: str, name: str, call: Callable[[Any], Any]
) -> None:
    with pytest.raises(
        DTypeError,
        match=rf"^{op}: {name} must be a numpy or cupy array; expected an ndarray, got Tensor; "
        r"call \.numpy\(\) on it first",
    ):
        call(torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize(("op", "name", "call"), FORWARDS, ids=[f"{f[0]}-{f[1]}" for f in FORWARDS])
def test_a_convprop_tensor_is_refused_with_a_hint_to_pass_its_data(
    op: str, name: str, call: Callable[[Any], Any]
) -> None:
    with pytest.raises(
        DTypeError,
        match=rf"^{op}: {name} must be a numpy or cupy array; expected an ndarray, got Tensor; "
        r"pass tensor\.data, or call convprop\.nn\.functional",
    ):
        call(convprop.tensor(np.zeros(2), requires_grad=True))
