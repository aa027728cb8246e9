"""The recorded graph and the backward pass: the chain rule, as a loop over recorded nodes.

Every op applied to a Tensor that needs a gradient runs the forward of its pair in
convprop.functional and records one node: the pair's backward, its cache, where each
input's gradient goes (the node that made the input, or the input itself where it is a
leaf), and a sequence number that grows with every node recorded. ``loss.backward()``
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
    sources : tuple
        Where each input's gradient goes: the Node that made the input, the input itself
        where it is a leaf that needs a gradient, or None where it needs none. Not the
        input Tensors: an intermediate result that the backward does not read (what a
        ReLU or a sum read, when their caches keep other arrays) is then freed as the
        forward goes on, as in PyTorch's graph.
    needs : tuple of bool
        Which inputs need a gradient.
    input_shapes : tuple
        Each needed input's shape (None for the others), for ``explain graph``.
    sequence : int
        The recording order (GR3).
    y_shape : tuple of int
        The output's shape.
    """

    __slots__ = ("backward", "cache", "input_shapes", "labels", "name", "needs", "sequence",
                 "sources", "y_shape")  # fmt: skip

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
        self.cache, self.needs = cache, needs
        self.sources = tuple(
            _source(t) if need else None for t, need in zip(inputs, needs, strict=True)
        )
        self.input_shapes = tuple(
            t.shape if need else None for t, need in zip(inputs, needs, strict=True)
        )
        self.sequence = next(_sequence)
        self.y_shape = y_shape

    def __repr__(self) -> str:
        return f"<{self.name} node {self.sequence}: {self.labels}, y {self.y_shape}>"


def _source(tensor: Any) -> Any:
    """Where a needed input's gradient goes: its maker's node, or the leaf itself."""
    return tensor if tensor._node is None else tensor._node


def nodes_in_backward_order(root: Node) -> list[Node]:
    """Every node the gradient of ``root`` flows through, in reverse recording order (GR3)."""
    found: dict[int, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in found:
            continue
        found[id(node)] = node
        stack.extend(source for source in node.sources if isinstance(source, Node))
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
        sources = node.sources
        if not retain_graph:
            # release the cache and the sources now, not at the end of the backward: memory
            # falls as the backward proceeds, as it rises during the forward
            node.cache, node.sources, node.needs, node.input_shapes = _FREED, (), (), ()
        for source, grad in zip(sources, grads, strict=True):
            if source is None or grad is None:
                continue
            if not isinstance(source, Node):
                _accumulate_leaf(source, grad)
            elif source in pending:
                pending[source] = add_arrays(pending[source], grad)  # (GR2)
            else:
                pending[source] = grad
