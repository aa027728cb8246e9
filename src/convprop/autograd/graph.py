"""The recorded graph and the backward pass: the chain rule, as a loop over recorded nodes.

Every op applied to a Tensor that needs a gradient runs the forward of its pair in
convprop.functional and records one node: the pair's backward, its cache, the input
Tensors, and a sequence number that grows with every node recorded. ``loss.backward()``
then visits the nodes that lead to the loss in *reverse order of recording* and calls each
node's backward once. The graph computes no derivative itself; it only orders the calls.

Notation  a node computes y = f(x_1, …, x_m); L the loss; dy = ∂L/∂y
  dx_i = f's hand-written backward applied to dy        -- the chain rule, one node   (GR1)
  a tensor read by several nodes (a fork: a residual input, a shared weight) receives
  the sum of what those nodes send back:  dx = Σ_readers dx^(reader)                   (GR2)
  reverse order of recording is a topological order of the graph: a node is recorded
  after every node that made its inputs, so in reverse order a node is reached only
  after every reader of its output has sent its share; its dy is then complete         (GR3)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from convprop.backend import Array, get_xp
from convprop.functional.arithmetic import add_arrays

BackwardFn = Callable[[Array, Any, tuple[bool, ...]], tuple[Array | None, ...]]
"""``backward(dy, cache, needs) -> one gradient (or None) per input``; ``needs[i]`` says
whether input i wants its gradient (a pair may skip work for the others, as need_dx)."""

_sequence = itertools.count()
_FREED = object()


class Node:
    """One recorded op: what its backward needs, and where the gradients go.

    Attributes
    ----------
    name : str
        The op ("conv2d", "add", a Function's class name).
    labels : str
        The equations its backward implements (e.g. "B1–B3"), for ``explain graph``.
    backward : BackwardFn
        Calls the pair's hand-written backward.
    cache : object
        The pair's cache; released after the backward unless the graph is retained.
    inputs : tuple
        The input Tensors (None for inputs that are not Tensors).
    needs : tuple of bool
        Which inputs need a gradient.
    sequence : int
        The recording order (GR3).
    y_shape : tuple of int
        The output's shape.
    """

    __slots__ = ("backward", "cache", "inputs", "labels", "name", "needs", "sequence", "y_shape")

    def __init__(
        self,
        name: str,
        labels: str,
        backward: BackwardFn,
        cache: Any,
        inputs: tuple[Any, ...],
        needs: tuple[bool, ...],
        y_shape: tuple[int, ...],
    ) -> None:
        self.name, self.labels, self.backward = name, labels, backward
        self.cache, self.inputs, self.needs = cache, inputs, needs
        self.sequence = next(_sequence)
        self.y_shape = y_shape

    def __repr__(self) -> str:
        return f"<{self.name} node {self.sequence}: {self.labels}, y {self.y_shape}>"


def nodes_in_backward_order(root: Node) -> list[Node]:
    """Every node the gradient of ``root`` flows through, in reverse recording order (GR3)."""
    found: dict[int, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in found:
            continue
        found[id(node)] = node
        for tensor, need in zip(node.inputs, node.needs, strict=True):
            if need and tensor._node is not None:
                stack.append(tensor._node)
    return sorted(found.values(), key=lambda node: node.sequence, reverse=True)  # (GR3)


def _accumulate_leaf(tensor: Any, grad: Array) -> None:
    """Add ``grad`` into a leaf's ``.grad`` (GR2); the first one is copied, never aliased."""
    if tensor.grad is None:
        tensor.grad = get_xp(grad).array(grad, dtype=tensor.data.dtype, copy=True)
    else:
        tensor.grad += grad  # (GR2)


def run_backward(root: Any, dy: Array, *, retain_graph: bool = False) -> None:
    """Send ``dy`` = ∂L/∂root back through the recorded nodes into the leaves' ``.grad``.

    Parameters
    ----------
    root : Tensor
        The tensor the backward starts from (usually the 0-d loss).
    dy : Array
        ∂L/∂root, of root's shape and dtype.
    retain_graph : bool
        Keep the caches, so that a second backward through the same graph works.

    Raises
    ------
    RuntimeError
        When a node's cache was already released by an earlier backward.
    """
    if root._node is None:
        _accumulate_leaf(root, dy)
        return
    pending: dict[Node, Array] = {root._node: dy}
    for node in nodes_in_backward_order(root._node):
        node_dy = pending.pop(node, None)
        if node_dy is None:
            continue
        if node.cache is _FREED:
            raise RuntimeError(
                f"backward: the graph of {node.name} was already released by an earlier "
                "backward; expected a fresh forward, got a second backward (pass "
                "retain_graph=True to the first one to keep it)"
            )
        grads = node.backward(node_dy, node.cache, node.needs)  # (GR1)
        inputs, needs = node.inputs, node.needs
        if not retain_graph:
            # release the cache and the inputs now, not at the end of the backward: memory
            # falls as the backward proceeds, as it rises during the forward
            node.cache, node.inputs, node.needs = _FREED, (), ()
        for tensor, grad, need in zip(inputs, grads, needs, strict=True):
            if not need or grad is None:
                continue
            if tensor._node is None:
                _accumulate_leaf(tensor, grad)
            elif tensor._node in pending:
                pending[tensor._node] = add_arrays(pending[tensor._node], grad)  # (GR2)
            else:
                pending[tensor._node] = grad
