"""Where a training step's time goes, by layer type, in convprop and in PyTorch.

convprop: :func:`layer_timer` times, for the steps run inside it,
- every call of a *leaf* module (one without sub-modules: Conv2d, BatchNorm2d, ReLU, the loss
  module, ...), which is the op's forward with its validation and its node recording;
- every residual add written as ``a + b`` on Tensors (``Tensor.__add__``) outside a leaf;
- every recorded node's backward during ``loss.backward()`` (the hand-written
  ``NAME_backward`` and its adapter), by the node's op name.
It does so by wrapping ``Module.__call__``, ``Tensor.__add__`` and the graph's ``Node`` in
this process only, and restores them on exit; the library's code is unchanged. The optimizer
(``zero_grad`` and ``step``) is timed by the caller. What remains of the step is framework
overhead: the containers' and the user's forward code, the graph's walk, and the gradient
sums at forks and leaves (GR2).

PyTorch: :func:`torch_layer_times` reads one step's ``torch.profiler`` trace: the direct
children of the step (``aten::conv2d``, ``autograd::engine::evaluate_function:
ConvolutionBackward0``, ``Optimizer.step#SGD.step``, ...) are sorted into the same types by
name; the profiler's own cost stays in the overhead.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from convprop.autograd.graph import Node
from convprop.autograd.tensor import Tensor
from convprop.nn import Module

# the module, not the function convprop.autograd.tensor() that the package exports
tensor_module: Any = importlib.import_module("convprop.autograd.tensor")

CATEGORIES = (
    "conv", "batchnorm", "activation", "pool", "linear", "loss", "add", "other", "optimizer",
    "overhead",
)  # fmt: skip
"""The layer types of the breakdown: "add" is the residual adds, "other" the remaining ops
(flatten, dropout, identity), "overhead" the rest of the step."""

_ACTIVATIONS = ("relu", "threshold", "sigmoid", "tanh", "gelu", "silu", "elu", "softplus")


def category(name: str) -> str:
    """The layer type of an op, module or profiler event name.

    Examples
    --------
    >>> [category(n) for n in ("Conv2d", "batch_norm", "ReluBackward0", "aten::max_pool2d")]
    ['conv', 'batchnorm', 'activation', 'pool']
    >>> [category(n) for n in ("AddmmBackward0", "CrossEntropyLoss", "aten::add", "aten::add_")]
    ['linear', 'loss', 'add', 'other']
    """
    lowered = name.lower().removeprefix("autograd::engine::evaluate_function: ")
    if "accumulategrad" in lowered or lowered == "aten::ones_like":
        return "overhead"  # the gradient seed and the sums into .grad: the graph's own work
    if "optimizer" in lowered:
        return "optimizer"
    checks = (
        ("conv", ("conv",)),
        ("batchnorm", ("batch_norm", "batchnorm")),
        ("activation", _ACTIVATIONS),
        ("pool", ("pool", "meanbackward")),
        ("loss", ("loss", "nll", "softmax", "cross_entropy")),
        ("linear", ("linear", "addmm", "tbackward", "mmbackward")),
    )
    for kind, words in checks:
        if any(word in lowered for word in words):
            return kind
    if lowered in ("add", "aten::add", "addbackward0"):
        return "add"
    return "other"


class LayerTimes:
    """Seconds per layer type, added up while :func:`layer_timer` is active."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)
        self.depth = 0  # > 0 inside a timed call: what it calls is its own time

    def timed(self, kind: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.depth:
            return function(*args, **kwargs)
        self.depth += 1
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[kind] += time.perf_counter() - start
            self.depth -= 1

    def reset(self) -> None:
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)


@contextmanager
def layer_timer() -> Iterator[LayerTimes]:
    """Time convprop's leaf modules, residual adds and node backwards by layer type."""
    times = LayerTimes()
    module_call, tensor_add, node_class = Module.__call__, Tensor.__add__, tensor_module.Node
    kinds: dict[type, str | None] = {}

    def call(self: Module, *args: Any, **kwargs: Any) -> Any:
        owner = type(self)
        if owner not in kinds:  # a container is not timed: its leaves are
            kinds[owner] = None if next(self.children(), None) else category(owner.__name__)
        kind = kinds[owner]
        if kind is None:
            return module_call(self, *args, **kwargs)
        return times.timed(kind, module_call, self, *args, **kwargs)

    def add(self: Tensor, other: Any) -> Tensor:
        return times.timed("add", tensor_add, self, other)  # type: ignore[no-any-return]

    class TimedNode(Node):
        __slots__ = ()

        def __init__(self, name: str, labels: str, backward: Any, *rest: Any) -> None:
            kind = category(name)

            def timed_backward(*args: Any) -> Any:
                return times.timed(kind, backward, *args)

            super().__init__(name, labels, timed_backward, *rest)

    Module.__call__ = call  # type: ignore[method-assign]
    Tensor.__add__ = add  # type: ignore[method-assign]
    tensor_module.Node = TimedNode
    try:
        yield times
    finally:
        Module.__call__ = module_call  # type: ignore[method-assign]
        Tensor.__add__ = tensor_add  # type: ignore[method-assign]
        tensor_module.Node = node_class


def torch_layer_times(step: Callable[[], object]) -> dict[str, float]:
    """Milliseconds per layer type of one call of ``step`` under ``torch.profiler``.

    "overhead" is the step's wall time less the typed ops: PyTorch's Python, its graph, the
    sums into ``.grad`` and the profiler's own cost.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    marker = "bench_nets step"
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        start = time.perf_counter()
        with record_function(marker):
            step()
        total_ms = (time.perf_counter() - start) * 1e3
    events = trace.events()
    root = next(event for event in events if event.name == marker)
    result = dict.fromkeys(CATEGORIES, 0.0)
    for event in events:
        if event.cpu_parent is root:
            kind = category(event.name)
            if kind != "overhead":
                result[kind] += event.cpu_time_total / 1e3  # microseconds
    result["overhead"] = max(0.0, total_ms - sum(result.values()))
    result["total"] = total_ms
    return result
