"""The recorded graph: Tensors, the ops that record their pairs, and user-defined Functions.

``loss.backward()`` calls the recorded nodes' hand-written backwards in reverse order of
recording (the chain rule, equations GR1–GR3); nothing here differentiates anything.
"""

from convprop.autograd.check import gradcheck
from convprop.autograd.function import Function, FunctionContext
from convprop.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from convprop.autograd.graph import Node, nodes_in_backward_order
from convprop.autograd.ops import cat, stack
from convprop.autograd.tensor import Tensor, tensor

__all__ = [
    "Function",
    "FunctionContext",
    "Node",
    "Tensor",
    "cat",
    "enable_grad",
    "gradcheck",
    "is_grad_enabled",
    "no_grad",
    "nodes_in_backward_order",
    "set_grad_enabled",
    "stack",
    "tensor",
]
