"""The recorded graph: Tensor operators and methods, leaves, no_grad, Function and gradcheck.

Witnesses: every Tensor op's gradient through the graph equals its pair's hand-written
backward (GR1) and central differences (convprop.gradcheck, G1); a tensor read by several
nodes receives the sum of their gradients (GR2); reverse recording order is a topological
order, so each node's dy is complete when it runs (GR3).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop import Function, Tensor
from convprop.autograd import FunctionContext, nodes_in_backward_order, set_grad_enabled
from convprop.autograd.graph import Node
from convprop.errors import DTypeError, ShapeError
from convprop.explain_graph import describe_nodes
from convprop.functional.arithmetic import (
    add_backward,
    add_forward,
    div_backward,
    div_forward,
    mul_backward,
    mul_forward,
    neg_backward,
    neg_forward,
    sub_backward,
    sub_forward,
)
from convprop.functional.join import cat_backward, cat_forward, stack_backward, stack_forward
from convprop.functional.matmul import matmul_backward, matmul_forward
from convprop.functional.reduction import mean_backward, mean_forward, sum_backward, sum_forward
from convprop.functional.view import (
    getitem_backward,
    getitem_forward,
    permute_backward,
    permute_forward,
    reshape_backward,
    reshape_forward,
)
from convprop.nn import Parameter
from convprop.nn import functional as F

# -- every Tensor operator and method against its pair (GR1) and finite differences (G1) ------


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values with |v| in [0.5, 2]: safe divisors."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def pair(forward: Callable[..., Any], backward: Callable[..., Any], *args: Any) -> Callable:
    """The gradients that the array-level pair alone gives for arrays and an upstream dy."""

    def grads(arrays: list[np.ndarray], dy: np.ndarray) -> tuple[np.ndarray, ...]:
        _, cache = forward(*arrays, *args)
        result = backward(dy, cache)
        return result if isinstance(result, tuple) else (result,)

    return grads


def joined(forward: Callable[..., Any], backward: Callable[..., Any], dim: int) -> Callable:
    def grads(arrays: list[np.ndarray], dy: np.ndarray) -> tuple[np.ndarray, ...]:
        _, cache = forward(list(arrays), dim)
        return tuple(backward(dy, cache))

    return grads


def scalar_left(forward: Callable[..., Any], backward: Callable[..., Any], c: float) -> Callable:
    """``c (op) x`` with the Python number c: the pair sees c as a 0-d array of x's dtype."""

    def grads(arrays: list[np.ndarray], dy: np.ndarray) -> tuple[np.ndarray, ...]:
        _, cache = forward(np.asarray(c, dtype=arrays[0].dtype), arrays[0])
        return (backward(dy, cache)[1],)

    return grads


def array_operand(
    forward: Callable[..., Any], backward: Callable[..., Any], c: np.ndarray, left: bool
) -> Callable:
    """``c (op) x`` or ``x (op) c`` with a plain array c (no gradient)."""

    def grads(arrays: list[np.ndarray], dy: np.ndarray) -> tuple[np.ndarray, ...]:
        operands = (c, arrays[0]) if left else (arrays[0], c)
        _, cache = forward(*operands)
        return (backward(dy, cache)[1 if left else 0],)

    return grads


def mask_index(arrays: list[np.ndarray], dy: np.ndarray) -> tuple[np.ndarray, ...]:
    _, cache = getitem_forward(arrays[0], arrays[0] > 0)
    return (getitem_backward(dy, cache),)


C23 = np.random.default_rng(100).standard_normal((2, 3))
C32 = np.random.default_rng(101).standard_normal((3, 2))


@dataclass(frozen=True)
class GraphOp:
    name: str
    shapes: tuple[tuple[int, ...], ...]
    fn: Callable[..., Tensor]
    pair_grads: Callable[[list[np.ndarray], np.ndarray], tuple[np.ndarray, ...]]
    divisor: int | None = None  # the input drawn away from 0


OPS = [
    GraphOp("add", ((2, 3), (3,)), lambda a, b: a + b, pair(add_forward, add_backward)),
    GraphOp("sub", ((2, 1, 3), (4, 3)), lambda a, b: a - b, pair(sub_forward, sub_backward)),
    GraphOp("mul", ((2, 3), (2, 1)), lambda a, b: a * b, pair(mul_forward, mul_backward)),
    GraphOp("div", ((2, 3), (3,)), lambda a, b: a / b, pair(div_forward, div_backward), 1),
    GraphOp("neg", ((2, 3),), lambda a: -a, pair(neg_forward, neg_backward)),
    GraphOp("matmul", ((2, 2, 3), (3, 4)), lambda a, b: a @ b,
            pair(matmul_forward, matmul_backward)),
    GraphOp("matmul-1d", ((3,), (3,)), lambda a, b: a @ b, pair(matmul_forward, matmul_backward)),
    GraphOp("radd", ((2, 3),), lambda x: 2.0 + x, scalar_left(add_forward, add_backward, 2.0)),
    GraphOp("rsub", ((2, 3),), lambda x: 2.0 - x, scalar_left(sub_forward, sub_backward, 2.0)),
    GraphOp("rmul", ((2, 3),), lambda x: 3.0 * x, scalar_left(mul_forward, mul_backward, 3.0)),
    GraphOp("rtruediv", ((2, 3),), lambda x: 3.0 / x,
            scalar_left(div_forward, div_backward, 3.0), 0),
    GraphOp("sub-scalar", ((2, 3),), lambda x: x - 0.5,
            lambda arrays, dy: (sub_backward(dy, sub_forward(arrays[0], np.asarray(0.5))[1])[0],)),
    GraphOp("array-plus-tensor", ((2, 3),), lambda x: C23 + x,
            array_operand(add_forward, add_backward, C23, left=True)),
    GraphOp("array-minus-tensor", ((2, 3),), lambda x: C23 - x,
            array_operand(sub_forward, sub_backward, C23, left=True)),
    GraphOp("tensor-times-array", ((2, 3),), lambda x: x * C23,
            array_operand(mul_forward, mul_backward, C23, left=False)),
    GraphOp("array-over-tensor", ((2, 3),), lambda x: C23 / x,
            array_operand(div_forward, div_backward, C23, left=True), 0),
    GraphOp("array-matmul-tensor", ((3, 4),), lambda x: C23 @ x,
            array_operand(matmul_forward, matmul_backward, C23, left=True)),
    GraphOp("tensor-matmul-array", ((4, 3),), lambda x: x @ C32,
            array_operand(matmul_forward, matmul_backward, C32, left=False)),
    GraphOp("getitem-int", ((2, 3, 4),), lambda x: x[1],
            pair(getitem_forward, getitem_backward, 1)),
    GraphOp("getitem-slices", ((2, 3, 4),), lambda x: x[:, ::2, -3:],
            pair(getitem_forward, getitem_backward, (slice(None), slice(None, None, 2),
                                                     slice(-3, None)))),
    GraphOp("getitem-none-ellipsis", ((2, 3, 4),), lambda x: x[None, ..., 0],
            pair(getitem_forward, getitem_backward, (None, Ellipsis, 0))),
    GraphOp("getitem-repeats", ((2, 3, 4),), lambda x: x[np.array([0, 1, 0, 0])],
            pair(getitem_forward, getitem_backward, np.array([0, 1, 0, 0]))),
    GraphOp("getitem-tensor-index", ((2, 3, 4),),
            lambda x: x[:, convprop.tensor(np.array([2, 2, 0]))],
            pair(getitem_forward, getitem_backward, (slice(None), np.array([2, 2, 0])))),
    GraphOp("getitem-mask", ((2, 3, 4),), lambda x: x[x > 0], mask_index),
    GraphOp("reshape", ((2, 3, 4),), lambda x: x.reshape(4, -1),
            pair(reshape_forward, reshape_backward, (4, -1))),
    GraphOp("reshape-tuple", ((2, 3, 4),), lambda x: x.reshape((6, 4)),
            pair(reshape_forward, reshape_backward, (6, 4))),
    GraphOp("view", ((2, 3, 4),), lambda x: x.view(2, 12),
            pair(reshape_forward, reshape_backward, (2, 12))),
    GraphOp("flatten", ((2, 3, 4),), lambda x: x.flatten(),
            pair(reshape_forward, reshape_backward, (24,))),
    GraphOp("flatten-1", ((2, 3, 4),), lambda x: x.flatten(1),
            pair(reshape_forward, reshape_backward, (2, 12))),
    GraphOp("flatten-0-1", ((2, 3, 4),), lambda x: x.flatten(0, 1),
            pair(reshape_forward, reshape_backward, (6, 4))),
    GraphOp("unsqueeze", ((2, 3),), lambda x: x.unsqueeze(1),
            pair(reshape_forward, reshape_backward, (2, 1, 3))),
    GraphOp("unsqueeze-last", ((2, 3),), lambda x: x.unsqueeze(-1),
            pair(reshape_forward, reshape_backward, (2, 3, 1))),
    GraphOp("squeeze", ((2, 1, 3, 1),), lambda x: x.squeeze(),
            pair(reshape_forward, reshape_backward, (2, 3))),
    GraphOp("squeeze-dim", ((2, 1, 3),), lambda x: x.squeeze(1),
            pair(reshape_forward, reshape_backward, (2, 3))),
    GraphOp("transpose", ((2, 3, 4),), lambda x: x.transpose(0, 2),
            pair(permute_forward, permute_backward, (2, 1, 0))),
    GraphOp("transpose-negative", ((2, 3, 4),), lambda x: x.transpose(-1, 1),
            pair(permute_forward, permute_backward, (0, 2, 1))),
    GraphOp("permute", ((2, 3, 4, 5),), lambda x: x.permute(3, 1, 0, 2),
            pair(permute_forward, permute_backward, (3, 1, 0, 2))),
    GraphOp("permute-tuple", ((2, 3, 4),), lambda x: x.permute((1, 2, 0)),
            pair(permute_forward, permute_backward, (1, 2, 0))),
    GraphOp("T", ((2, 3),), lambda x: x.T, pair(permute_forward, permute_backward, (1, 0))),
    GraphOp("sum", ((2, 3, 4),), lambda x: x.sum(), pair(sum_forward, sum_backward)),
    GraphOp("sum-dim", ((2, 3, 4),), lambda x: x.sum(1), pair(sum_forward, sum_backward, 1)),
    GraphOp("sum-dims-keepdim", ((2, 3, 4),), lambda x: x.sum((0, -1), keepdim=True),
            pair(sum_forward, sum_backward, (0, -1), True)),
    GraphOp("mean", ((2, 3, 4),), lambda x: x.mean(), pair(mean_forward, mean_backward)),
    GraphOp("mean-dim-keepdim", ((2, 3, 4),), lambda x: x.mean(-1, keepdim=True),
            pair(mean_forward, mean_backward, -1, True)),
    GraphOp("mean-dims", ((2, 3, 4),), lambda x: x.mean(dim=(0, 2)),
            pair(mean_forward, mean_backward, (0, 2))),
    GraphOp("cat", ((2, 1, 4), (2, 3, 4)), lambda a, b: convprop.cat([a, b], dim=1),
            joined(cat_forward, cat_backward, 1)),
    GraphOp("cat-negative-dim", ((2, 3), (2, 2), (2, 1)),
            lambda a, b, c: convprop.cat((a, b, c), dim=-1), joined(cat_forward, cat_backward, -1)),
    GraphOp("stack", ((2, 3), (2, 3)), lambda a, b: convprop.stack([a, b], dim=1),
            joined(stack_forward, stack_backward, 1)),
    GraphOp("stack-negative-dim", ((3,), (3,), (3,)),
            lambda a, b, c: convprop.stack([a, b, c], dim=-1),
            joined(stack_forward, stack_backward, -1)),
]  # fmt: skip
OP_IDS = [op.name for op in OPS]


def leaves(op: GraphOp, seed: int) -> list[Tensor]:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in op.shapes]
    if op.divisor is not None:
        arrays[op.divisor] = away_from_zero(rng, op.shapes[op.divisor])
    return [convprop.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_tensor_op_gradient_is_its_pairs_backward_GR1(op: GraphOp) -> None:
    inputs = leaves(op, 0)
    y = op.fn(*inputs)
    assert isinstance(y, Tensor) and y.requires_grad and not y.is_leaf
    assert y.grad_fn is not None
    dy = np.asarray(np.random.default_rng(1).standard_normal(y.shape))
    y.backward(dy)
    expected = op.pair_grads([t.data for t in inputs], dy)
    assert len(expected) == len(inputs)
    for t, grad in zip(inputs, expected, strict=True):
        assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == t.dtype
        np.testing.assert_array_equal(t.grad, grad)
    assert y.grad is None  # a non-leaf keeps no gradient


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_tensor_op_passes_gradcheck_G1(op: GraphOp) -> None:
    inputs = leaves(op, 2)
    assert convprop.gradcheck(op.fn, tuple(inputs)) is True


def test_reflected_scalar_ops_keep_the_tensor_dtype() -> None:
    x = convprop.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    for y in (2.0 - x, 3.0 / x, 2.0 * x, x + 1, 1 + x, x / 4.0):
        assert y.dtype == np.float32
    np.testing.assert_allclose((2.0 - x).data, [1.0, 0.0])
    np.testing.assert_allclose((3.0 / x).data, [3.0, 1.5])


def test_float32_and_float64_leaves_get_gradients_in_their_own_dtype() -> None:
    rng = np.random.default_rng(3)
    a = convprop.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    b = convprop.tensor(rng.standard_normal(3), requires_grad=True)
    y = (a * b).sum()
    assert y.dtype == np.float64
    y.backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad, np.broadcast_to(b.data, (2, 3)), rtol=1e-7)
    np.testing.assert_allclose(b.grad, a.data.astype(np.float64).sum(0), rtol=1e-12)


# -- forks (GR2), diamonds, long chains (GR3) ----------------------------------------------------


def test_a_tensor_read_three_times_receives_the_sum_GR2() -> None:
    rng = np.random.default_rng(4)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = x * x + x  # x feeds mul twice and add once
    dy = rng.standard_normal((2, 3))
    y.backward(dy)
    _, mul_cache = mul_forward(x.data, x.data)
    from_mul = mul_backward(dy, mul_cache)
    _, add_cache = add_forward(x.data * x.data, x.data)
    np.testing.assert_allclose(
        x.grad, from_mul[0] + from_mul[1] + add_backward(dy, add_cache)[1], rtol=1e-15
    )
    np.testing.assert_allclose(x.grad, dy * (2 * x.data + 1), rtol=1e-14)
    x.grad = None
    assert convprop.gradcheck(lambda t: t * t + t, (x,))


def test_a_residual_sum_hands_dy_on_to_both_operands_without_a_copy_AR2_GR2() -> None:
    rng = np.random.default_rng(41)
    x = convprop.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = convprop.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    body = x * w
    y = body + x  # x is read by the body and by the shortcut (a residual block)
    dy = rng.standard_normal((2, 3, 4))
    dy_before = dy.copy()
    grads = y.grad_fn.backward(dy, y.grad_fn.cache, (True, True))
    assert grads[0] is dy and grads[1] is dy  # (AR2): dy itself, read by both branches
    y.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)  # nobody wrote into the shared dy
    assert x.grad is not None and w.grad is not None
    np.testing.assert_array_equal(x.grad, dy_before * w.data + dy_before)  # (GR2)
    np.testing.assert_array_equal(w.grad, dy_before * x.data)
    assert not np.shares_memory(x.grad, dy) and not np.shares_memory(w.grad, dy)
    x.grad = w.grad = None
    assert convprop.gradcheck(lambda a, b: a * b + a, (x, w))


def test_a_backward_from_a_leaf_s_own_grad_leaves_the_shared_dy_intact_GR2() -> None:
    rng = np.random.default_rng(44)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    (x * w + x).sum().backward()
    g = x.grad.copy()  # the upstream gradient of the second backward is x.grad itself
    (x + x * w).backward(x.grad)  # the sum hands dy to x's leaf (+= into x.grad) and to x * w
    np.testing.assert_array_equal(x.grad, (g + g) + g * w.data)  # (GR2), in the graph's order
    np.testing.assert_array_equal(w.grad, x.data + g * x.data)


def test_a_broadcast_operand_gets_dy_summed_over_the_broadcast_axis_AR0_AR2() -> None:
    rng = np.random.default_rng(42)
    a = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = convprop.tensor(rng.standard_normal(3), requires_grad=True)
    dy = rng.standard_normal((2, 3))
    (a + b).backward(dy)
    np.testing.assert_array_equal(a.grad, dy)
    np.testing.assert_allclose(b.grad, dy.sum(0), rtol=1e-15)


def test_the_graph_keeps_no_intermediate_that_no_cache_needs_GR1() -> None:
    rng = np.random.default_rng(45)
    x = convprop.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    w = convprop.tensor(rng.standard_normal((4, 5)), requires_grad=True)
    h = x * w  # read only by the ReLU, whose cache keeps its output, not h
    h_data = weakref.ref(h.data)
    y = F.relu(h)
    del h
    gc.collect()
    assert h_data() is None  # freed during the forward, as in PyTorch's graph
    dy = rng.standard_normal((4, 5))
    y.backward(dy)
    mask = (x.data * w.data) > 0
    np.testing.assert_array_equal(x.grad, dy * mask * w.data)  # (A1), (A3), (AR6)
    np.testing.assert_array_equal(w.grad, dy * mask * x.data)


def test_a_batch_norm_output_read_only_by_a_relu_is_freed_in_the_forward() -> None:
    rng = np.random.default_rng(46)
    x = convprop.tensor(rng.standard_normal((4, 3, 5, 5)), requires_grad=True)
    bn = convprop.nn.BatchNorm2d(3, dtype="float64")
    h = bn(x)  # the BatchNorm's node keeps x (its cache) and shapes, not its output
    h_data = weakref.ref(h.data)
    y = F.relu(h)
    del h
    gc.collect()
    assert h_data() is None
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    x_ref = convprop.tensor(x.data, requires_grad=True)
    bn_ref = convprop.nn.BatchNorm2d(3, dtype="float64")
    convprop.nn.Sequential(bn_ref, convprop.nn.ReLU())(x_ref).backward(dy)  # (BR1)-(BR4)
    np.testing.assert_allclose(x.grad, x_ref.grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bn.weight.grad, bn_ref.weight.grad, rtol=1e-12)


def test_describe_nodes_of_a_released_graph_names_the_root() -> None:
    x = convprop.tensor(np.ones((2, 2)), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    lines = describe_nodes(loss)
    assert len(lines) == 1 and "sum" in lines[0]


def test_a_fork_across_different_ops_GR2() -> None:
    x = convprop.tensor(np.random.default_rng(5).standard_normal((3, 4)), requires_grad=True)

    def fn(t: Tensor) -> Tensor:
        return t.sum(0) * 2.0 + t.mean(0) - t[1] + t.T[:, 2] * t[0]

    assert convprop.gradcheck(fn, (x,))


def test_a_diamond_graph_matches_the_pairs_chained_by_hand_GR1_GR2_GR3() -> None:
    rng = np.random.default_rng(6)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = convprop.tensor(rng.standard_normal(3), requires_grad=True)
    h = x * w  # h feeds two branches that meet again in y
    a = h.sum(dim=1)
    b = (h * h).mean(dim=1)
    y = a * b
    dy = rng.standard_normal(2)
    y.backward(dy)
    # the same chain by hand: each pair's backward in reverse order, sums at the fork
    h_, c1 = mul_forward(x.data, w.data)
    a_, c2 = sum_forward(h_, 1)
    hh, c3 = mul_forward(h_, h_)
    b_, c4 = mean_forward(hh, 1)
    _, c5 = mul_forward(a_, b_)
    da, db = mul_backward(dy, c5)
    dhh = mean_backward(db, c4)
    dh_1, dh_2 = mul_backward(dhh, c3)
    dh = dh_1 + dh_2 + sum_backward(da, c2)
    dx, dw = mul_backward(dh, c1)
    np.testing.assert_allclose(x.grad, dx, rtol=1e-13)
    np.testing.assert_allclose(w.grad, dw, rtol=1e-13)
    x.grad = w.grad = None

    def diamond(x: Tensor, w: Tensor) -> Tensor:
        h = x * w
        return h.sum(dim=1) * (h * h).mean(dim=1)

    assert convprop.gradcheck(diamond, (x, w))


def long_chain(x: Tensor, w: Tensor) -> Tensor:
    """30 steps, each reading x again, so that x's dy is complete only at the very end."""
    y = x
    for step in range(30):
        y = (y * w + x) / 2.0 if step % 2 else (y - x[0]) * 0.9
    return y


def test_a_long_chain_runs_in_reverse_recording_order_GR3() -> None:
    rng = np.random.default_rng(7)
    x = convprop.tensor(rng.standard_normal(3), requires_grad=True)
    w = convprop.tensor(rng.uniform(0.5, 1.5, 3), requires_grad=True)
    y = long_chain(x, w)
    assert y.grad_fn is not None
    order = nodes_in_backward_order(y.grad_fn)
    assert len(order) == 30 * 3  # three recorded ops per step
    position = {id(node): i for i, node in enumerate(order)}
    sequences = [node.sequence for node in order]
    assert sequences == sorted(sequences, reverse=True)
    for node in order:  # a node comes before every node that made one of its inputs
        for source in node.sources:
            if isinstance(source, Node):
                assert position[id(source)] > position[id(node)]
    assert convprop.gradcheck(long_chain, (x, w))


def test_long_chain_agrees_with_torch() -> None:
    rng = np.random.default_rng(8)
    x_np, w_np, dy = rng.standard_normal(3), rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    x = convprop.tensor(x_np, requires_grad=True)
    w = convprop.tensor(w_np, requires_grad=True)
    y = long_chain(x, w)
    y.backward(dy)
    x_t = torch.tensor(x_np, requires_grad=True)
    w_t = torch.tensor(w_np, requires_grad=True)
    y_t = x_t
    for step in range(30):
        y_t = (y_t * w_t + x_t) / 2.0 if step % 2 else (y_t - x_t[0]) * 0.9
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, y_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad, w_t.grad.numpy(), rtol=1e-12)


def test_cat_and_stack_inside_a_graph() -> None:
    rng = np.random.default_rng(9)
    a = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = convprop.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    fixed = rng.standard_normal((2, 1))

    def fn(a: Tensor, b: Tensor) -> Tensor:
        z = convprop.cat([a, b * 2.0, a[:, :1], fixed], dim=1)  # (2, 7), a read twice
        return convprop.stack([z, z * z], dim=0).sum(dim=-1) @ b

    assert convprop.gradcheck(fn, (a, b))
    a.grad = None
    y = convprop.cat([a, fixed], dim=-1)  # an array among the inputs gets no gradient
    y.backward(np.ones((2, 4)) * 3.0)
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 3.0))


# -- leaves, .grad, backward's checks ---------------------------------------------------------


def test_grad_is_none_before_backward_and_accumulates_across_two_backwards() -> None:
    rng = np.random.default_rng(10)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert x.grad is None and x.is_leaf and x.grad_fn is None
    dy = rng.standard_normal((2, 3))
    (x * 3.0).backward(dy)
    first = x.grad.copy()
    np.testing.assert_allclose(first, 3.0 * dy, rtol=1e-15)
    (x * 3.0).backward(dy)  # a second forward and backward add into the same .grad
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-15)


def test_first_gradient_is_a_copy_never_an_alias_of_dy() -> None:
    x = convprop.tensor(np.zeros(3), requires_grad=True)
    dy = np.array([1.0, 2.0, 3.0])
    x.backward(dy)  # a leaf's own backward: dy goes straight into .grad
    assert x.grad is not None and not np.shares_memory(x.grad, dy)
    x.backward(dy)
    np.testing.assert_array_equal(dy, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


def test_parameter_grad_starts_as_zeros_and_is_added_into_in_place() -> None:
    rng = np.random.default_rng(11)
    p = Parameter(rng.standard_normal((2, 3)))
    assert p.requires_grad and p.is_leaf
    buffer = p.grad
    assert buffer is not None and buffer.shape == (2, 3) and buffer.dtype == np.float64
    np.testing.assert_array_equal(buffer, np.zeros((2, 3)))
    dy = rng.standard_normal((2, 3))
    (p * 2.0).backward(dy)
    (p * 2.0).backward(dy)
    assert p.grad is buffer
    np.testing.assert_allclose(p.grad, 4.0 * dy, rtol=1e-15)


def test_non_leaf_tensors_get_no_grad() -> None:
    x = convprop.tensor(np.arange(3.0), requires_grad=True)
    h = x * 2.0
    y = (h * h).sum()
    y.backward()
    assert h.grad is None and y.grad is None
    np.testing.assert_array_equal(x.grad, 8.0 * x.data)


def test_backward_of_a_non_scalar_needs_a_gradient() -> None:
    y = convprop.tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(
        ShapeError,
        match=r"^backward: a gradient is implied only for a one-element loss; expected "
        r"gradient= of shape \(2, 3\), got None",
    ):
        y.backward()


def test_backward_of_a_one_element_tensor_implies_one() -> None:
    x = convprop.tensor(np.array([[2.0]]), requires_grad=True)
    (x * 5.0).backward()
    np.testing.assert_array_equal(x.grad, [[5.0]])


@pytest.mark.parametrize("gradient", [np.ones(3), np.ones((3, 2)), np.ones(())])
def test_backward_gradient_of_the_wrong_shape_is_refused(gradient: np.ndarray) -> None:
    y = convprop.tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(
        ShapeError,
        match=r"^backward: gradient has the wrong shape; expected \(2, 3\), got "
        + str(gradient.shape).replace("(", r"\(").replace(")", r"\)"),
    ):
        y.backward(gradient)


def test_backward_gradient_must_be_an_array() -> None:
    y = convprop.tensor(np.ones(2), requires_grad=True) * 2.0
    with pytest.raises(DTypeError, match=r"^backward: expected a NumPy or CuPy array, got .*list"):
        y.backward([1.0, 1.0])
    with pytest.raises(DTypeError, match=r"call \.numpy\(\) on it first"):
        y.backward(torch.ones(2))


def test_backward_accepts_a_tensor_gradient_and_casts_it_to_the_output_dtype() -> None:
    x = convprop.tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    (x * 2.0).backward(convprop.tensor(np.array([1.0, -1.0])))
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, -2.0])


def test_backward_of_a_tensor_that_needs_no_gradient_is_refused() -> None:
    y = convprop.tensor(np.ones(3)) * 2.0
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match=r"^backward: this tensor does not need a gradient"):
        y.sum().backward()


def test_second_backward_raises_unless_the_graph_is_retained() -> None:
    x = convprop.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"^backward: the graph of .* was already released"):
        loss.backward()
    x.grad = None
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, 3 * 2 * x.data)
    with pytest.raises(RuntimeError, match="already released"):
        loss.backward()


def test_requires_grad_needs_a_floating_tensor() -> None:
    t = convprop.tensor(np.arange(3))
    with pytest.raises(
        DTypeError,
        match=r"^requires_grad: only floating tensors have gradients; expected float32 or "
        r"float64, got int64 \(shape=\(3,\)\)",
    ):
        t.requires_grad_()
    with pytest.raises(DTypeError, match=r"^requires_grad: only floating tensors"):
        convprop.tensor(np.arange(3), requires_grad=True)
    assert t.requires_grad_(False) is t and not t.requires_grad


def test_a_non_leaf_cannot_stop_requiring_its_gradient() -> None:
    y = convprop.tensor(np.ones(2), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"^requires_grad: a tensor made by a recorded op .*mul"):
        y.requires_grad_(False)


def test_detach_shares_the_array_and_records_nothing() -> None:
    x = convprop.tensor(np.arange(3.0), requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert d.data is y.data and d.is_leaf and not d.requires_grad and d.grad is None
    z = d * 3.0
    assert not z.requires_grad and z.grad_fn is None
    (y.sum() + (d * x).sum()).backward()  # d is a constant: only the x factor gets dy
    np.testing.assert_array_equal(x.grad, 2.0 + d.data)


# -- no_grad ----------------------------------------------------------------------------------


def test_no_grad_as_context_records_nothing_and_restores_the_mode() -> None:
    x = convprop.tensor(np.ones(3), requires_grad=True)
    assert convprop.is_grad_enabled()
    with convprop.no_grad():
        assert not convprop.is_grad_enabled()
        y = (x * 2.0).sum()
        with convprop.no_grad():
            pass
        assert not convprop.is_grad_enabled()  # the inner block restores "off"
    assert convprop.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    with pytest.raises(RuntimeError, match="does not need a gradient"):
        y.backward()


def test_no_grad_restores_the_mode_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), convprop.no_grad():
        assert not convprop.is_grad_enabled()
        _ = 1 / 0
    assert convprop.is_grad_enabled()


def test_enable_grad_records_again_inside_no_grad() -> None:
    x = convprop.tensor(np.ones(2), requires_grad=True)
    with convprop.no_grad():
        with convprop.enable_grad():
            y = x * 2.0
        assert not convprop.is_grad_enabled()
    assert y.requires_grad and y.grad_fn is not None


def test_no_grad_as_decorator_records_nothing_and_restores_the_mode() -> None:
    x = convprop.tensor(np.ones(2), requires_grad=True)

    @convprop.no_grad()
    def infer(t: Tensor) -> Tensor:
        assert not convprop.is_grad_enabled()
        return t * 2.0

    @convprop.no_grad()
    def fail(t: Tensor) -> Tensor:
        raise ValueError("inside")

    y = infer(x)
    assert not y.requires_grad and y.grad_fn is None
    assert convprop.is_grad_enabled()
    with pytest.raises(ValueError, match="inside"):
        fail(x)
    assert convprop.is_grad_enabled()
    with convprop.no_grad():
        infer(x)
        assert not convprop.is_grad_enabled()  # the decorator restores "off", too
    assert convprop.is_grad_enabled()


def test_no_grad_decorator_restores_the_mode_after_a_recursive_call() -> None:
    """The same decorated function entered twice (recursion) must restore the outer mode."""
    seen: list[bool] = []

    @convprop.no_grad()
    def depth(n: int) -> int:
        seen.append(convprop.is_grad_enabled())
        return 0 if n == 0 else 1 + depth(n - 1)

    try:
        assert depth(2) == 2
        after = convprop.is_grad_enabled()
    finally:
        set_grad_enabled(True)  # never leave the other tests without recording
    assert seen == [False, False, False]
    assert after, "recording stays off after a recursive call of a no_grad-decorated function"


# -- construction, values and non-differentiable results ---------------------------------------


def test_tensor_of_a_list_number_array_or_tensor() -> None:
    t = convprop.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert t.shape == (2, 2) and t.dtype == np.float64 and t.requires_grad
    assert convprop.tensor([1, 2]).dtype == np.int64
    assert convprop.tensor(2.5).shape == ()
    a = np.ones((2, 3), dtype=np.float32)
    assert convprop.tensor(a).data is a  # no copy
    assert convprop.tensor(convprop.tensor(a)).data is a
    assert convprop.tensor(a, dtype=np.float64).dtype == np.float64


def test_a_torch_tensor_is_refused_with_a_hint_to_call_numpy() -> None:
    with pytest.raises(DTypeError, match=r"^tensor: expected a NumPy or CuPy array, got torch\."):
        convprop.tensor(torch.ones(2))
    with pytest.raises(DTypeError, match=r"call \.numpy\(\) on it first"):
        Tensor(torch.ones(2))
    with pytest.raises(DTypeError, match=r"^tensor: expected a NumPy or CuPy array, got .*str"):
        convprop.tensor("1.0")


def test_item_float_numpy_shape_len() -> None:
    x = convprop.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    total = x.sum()
    assert total.item() == 15.0 and isinstance(total.item(), float)
    assert float(total) == 15.0 and int(total) == 15
    assert convprop.tensor(np.array([[7.0]])).item() == 7.0
    with pytest.raises(ShapeError, match=r"^item: only a one-element tensor has one value; "):
        x.item()
    assert x.numpy() is x.data
    assert x.shape == (2, 3) and all(type(n) is int for n in x.shape)
    assert x.ndim == 2 and x.dim() == 2 and x.numel() == 6 and x.size() == (2, 3)
    assert x.size(1) == 3 and x.dtype == np.float64 and x.device == "cpu"
    assert len(x) == 2
    with pytest.raises(TypeError, match=r"len\(\) of a 0-d tensor"):
        len(total)
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_repr_shows_values_and_how_the_tensor_was_made() -> None:
    x = convprop.tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(convprop.tensor(np.array([1.0, 2.0]))) == "tensor([1., 2.])"
    assert repr(x * 2.0) == "tensor([2., 4.], grad_fn=mul)"
    assert repr(x.sum()) == "tensor(3., grad_fn=sum)"


@pytest.mark.parametrize("name", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
def test_comparisons_return_non_differentiable_bool_tensors(name: str) -> None:
    rng = np.random.default_rng(12)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    other = convprop.tensor(x.data.copy())
    other.data[0, 0] += 1.0
    for operand, raw in ((other, other.data), (0.0, 0.0)):
        result = getattr(x, name)(operand)
        assert isinstance(result, Tensor) and result.dtype == np.bool_
        assert not result.requires_grad and result.grad_fn is None
        np.testing.assert_array_equal(result.data, getattr(x.data, name)(raw))


def test_argmax_returns_a_non_differentiable_index_tensor() -> None:
    x = convprop.tensor(np.random.default_rng(13).standard_normal((3, 4)), requires_grad=True)
    for dim in (None, 0, 1, -1):
        index = x.argmax(dim)
        assert not index.requires_grad and index.grad_fn is None
        assert index.dtype.kind == "i"
        np.testing.assert_array_equal(index.data, x.data.argmax(axis=dim))
    assert x.argmax(1, keepdim=True).shape == (3, 1)
    assert x.argmax().shape == ()


# -- Function: a user's op with its own backward ----------------------------------------------


class Swish(Function):
    """y = x·σ(βx) with a learnable β of shape (1,):
    ∂y/∂x = σ + βx·σ(1 − σ),   ∂y/∂β = x²·σ(1 − σ)."""

    @staticmethod
    def forward(ctx: FunctionContext, x: np.ndarray, beta: np.ndarray) -> np.ndarray:
        s = 1.0 / (1.0 + np.exp(-beta * x))
        ctx.save_for_backward(x, beta, s)
        return x * s

    @staticmethod
    def backward(ctx: FunctionContext, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, beta, s = ctx.saved_tensors
        slope = dy * s * (1.0 - s)  # dy·σ′(βx)
        dx = dy * s + slope * beta * x
        dbeta = np.sum(slope * x * x).reshape(beta.shape)
        return dx, dbeta


def swish_inputs(seed: int) -> tuple[Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    x = convprop.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    beta = convprop.tensor(np.array([0.7]), requires_grad=True)
    return x, beta


def test_function_swish_passes_gradcheck_for_x_and_beta() -> None:
    x, beta = swish_inputs(14)
    assert convprop.gradcheck(Swish.apply, (x, beta))
    assert convprop.gradcheck(lambda x, b: (Swish.apply(x, b) * x).mean(dim=0), (x, beta))


def test_function_swish_agrees_with_torch() -> None:
    x, beta = swish_inputs(15)
    dy = np.random.default_rng(16).standard_normal(x.shape)
    y = Swish.apply(x, beta)
    assert y.grad_fn is not None and y.grad_fn.name == "Swish"
    y.backward(dy)
    x_t = torch.tensor(x.data, requires_grad=True)
    beta_t = torch.tensor(beta.data, requires_grad=True)
    y_t = x_t * torch.sigmoid(beta_t * x_t)
    y_t.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, y_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(beta.grad, beta_t.grad.numpy(), rtol=1e-12)


def test_function_ctx_needs_input_grad_and_non_tensor_arguments() -> None:
    seen: dict[str, Any] = {}

    class ScaleAdd(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: Any, c: Any, factor: Any) -> np.ndarray:
            seen["needs"], seen["types"] = ctx.needs_input_grad, (type(x), type(c), factor)
            ctx.save_for_backward(factor)
            return x * factor + c

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> tuple[Any, ...]:
            (factor,) = ctx.saved_tensors
            seen["backward_needs"] = ctx.needs_input_grad
            return dy * factor, None, None

    x = convprop.tensor(np.arange(3.0), requires_grad=True)
    c = convprop.tensor(np.ones(3))  # a Tensor that needs no gradient
    y = ScaleAdd.apply(x, c, 2.5)
    assert seen["needs"] == (True, False, False)
    assert seen["types"] == (np.ndarray, np.ndarray, 2.5)  # arrays in; the float as it is
    np.testing.assert_array_equal(y.data, x.data * 2.5 + 1.0)
    y.backward(np.array([1.0, -1.0, 2.0]))
    assert seen["backward_needs"] == (True, False, False)
    np.testing.assert_array_equal(x.grad, [2.5, -2.5, 5.0])
    assert c.grad is None
    plain = np.arange(3.0)
    z = ScaleAdd.apply(x, plain, 0.5)  # a plain array among the inputs
    assert convprop.gradcheck(lambda t: ScaleAdd.apply(t, plain, 0.5), (x,))
    assert z.requires_grad
    with convprop.no_grad():
        assert ScaleAdd.apply(x, c, 2.0).grad_fn is None


def test_function_backward_with_the_wrong_number_of_gradients_names_the_class() -> None:
    class TwoGrads(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: np.ndarray) -> np.ndarray:
            return x * 2.0

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return dy * 2.0, dy

    x = convprop.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(
        TypeError,
        match=r"^TwoGrads\.backward: expected one gradient per forward input \(1\), got 2",
    ):
        TwoGrads.apply(x).sum().backward()


def test_function_backward_with_a_gradient_of_the_wrong_shape_names_the_class() -> None:
    class WrongShape(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: np.ndarray) -> np.ndarray:
            return x * 2.0

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> np.ndarray:
            return dy.sum(axis=0)

    x = convprop.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(
        ShapeError,
        match=r"^WrongShape\.backward: the gradient of input 0 has the wrong shape; expected "
        r"\(2, 3\), got \(3,\)",
    ):
        WrongShape.apply(x).backward(np.ones((2, 3)))


def test_function_backward_may_write_into_its_dy_without_changing_other_gradients_GR2() -> None:
    class Doubles(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: np.ndarray) -> np.ndarray:
            return x * 2.0

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> np.ndarray:
            dy *= 2.0  # its own copy: the shortcut's share of the sum's dy stays as it was
            return dy

    rng = np.random.default_rng(43)
    x = convprop.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    dy = rng.standard_normal((2, 3))
    dy_before = dy.copy()
    (Doubles.apply(x) + x).backward(dy)  # the sum hands dy itself to both operands
    np.testing.assert_array_equal(dy, dy_before)
    np.testing.assert_array_equal(x.grad, 2.0 * dy_before + dy_before)  # (GR2)


def test_function_returning_its_dy_returns_a_copy_of_the_graph_s_dy_GR1() -> None:
    class Identity(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: np.ndarray) -> np.ndarray:
            return x.copy()

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> np.ndarray:
            return dy

    x = convprop.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = Identity.apply(x)
    dy = np.full((2, 3), 0.5)
    (grad,) = y.grad_fn.backward(dy, y.grad_fn.cache, (True,))
    assert not np.shares_memory(grad, dy)  # the Function's own copy
    np.testing.assert_array_equal(grad, dy)
    y.backward(dy)
    np.testing.assert_array_equal(x.grad, dy)


@pytest.mark.parametrize("result", [[1.0, 2.0], 3.0, "x"], ids=["list", "float", "str"])
def test_function_forward_returning_a_non_array_names_the_class(result: Any) -> None:
    class BadForward(Function):
        @staticmethod
        def forward(ctx: FunctionContext, x: np.ndarray) -> Any:
            return result

        @staticmethod
        def backward(ctx: FunctionContext, dy: np.ndarray) -> np.ndarray:
            return dy

    with pytest.raises(
        TypeError,
        match=rf"^BadForward\.forward: expected to return one NumPy or CuPy array, got "
        rf"{type(result).__name__}",
    ):
        BadForward.apply(convprop.tensor(np.ones(2), requires_grad=True))


# -- gradcheck --------------------------------------------------------------------------------


class SwishWrongBeta(Swish):
    """Swish with a deliberately wrong ∂/∂β (twice the truth)."""

    @staticmethod
    def backward(ctx: FunctionContext, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dbeta = Swish.backward(ctx, dy)
        return dx, 2.0 * dbeta


class SwishWrongX(Swish):
    """Swish that forgets the σ′ term of ∂/∂x."""

    @staticmethod
    def backward(ctx: FunctionContext, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, dbeta = Swish.backward(ctx, dy)
        _, _, s = ctx.saved_tensors
        return dy * s, dbeta


@pytest.mark.parametrize(("fn", "wrong"), [(SwishWrongBeta, 1), (SwishWrongX, 0)])
def test_gradcheck_names_the_input_whose_gradient_is_wrong(fn: type[Function], wrong: int) -> None:
    x, beta = swish_inputs(17)
    with pytest.raises(
        ValueError,
        match=rf"^gradcheck: the gradient of input {wrong} disagrees with finite differences; "
        r"expected .* at index \(",
    ):
        convprop.gradcheck(fn.apply, (x, beta))


def test_gradcheck_checks_only_inputs_that_require_grad() -> None:
    x, beta = swish_inputs(18)
    beta.requires_grad_(False)
    assert convprop.gradcheck(SwishWrongBeta.apply, (x, beta))  # β's wrong gradient unchecked


def test_gradcheck_refuses_float32_inputs() -> None:
    x = convprop.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    with pytest.raises(
        DTypeError,
        match=r"^gradcheck: input 0 must be float64 for finite differences; expected float64, "
        r"got float32 \(shape=\(2, 3\)\)",
    ):
        convprop.gradcheck(lambda t: t * 2.0, (x,))


def test_gradcheck_refuses_a_function_that_returns_no_tensor() -> None:
    x = convprop.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match=r"^gradcheck: fn must return a Tensor; .*got ndarray"):
        convprop.gradcheck(lambda t: t.data * 2.0, (x,))


def test_gradcheck_leaves_values_and_gradients_as_they_were() -> None:
    x, beta = swish_inputs(19)
    x_before = x.data.copy()
    x.grad = np.full(x.shape, 7.0)
    data = x.data
    assert convprop.gradcheck(Swish.apply, (x, beta))
    assert x.data is data
    np.testing.assert_array_equal(x.data, x_before)
    np.testing.assert_array_equal(x.grad, np.full(x.shape, 7.0))
    assert beta.grad is None
    assert convprop.gradcheck(lambda t: t * 3.0, x)  # a single Tensor, not in a tuple


def test_an_integer_tensor_times_a_float_is_a_float_as_in_pytorch() -> None:
    y = convprop.tensor(np.arange(3)) * 0.5
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    assert y.dtype.kind == "f"
    assert (convprop.tensor(np.arange(3)) * 2).dtype == np.arange(3).dtype
