"""Function: a user's own op, with a forward and a hand-written backward on arrays.

As ``torch.autograd.Function``: subclass it with two static methods and call ``apply``::

    class Swish(Function):
        @staticmethod
        def forward(ctx, x, beta):                 # arrays in, an array out
            s = 1 / (1 + numpy.exp(-beta * x))
            ctx.save_for_backward(x, beta, s)
            return x * s
        @staticmethod
        def backward(ctx, dy):                     # one gradient per forward input
            x, beta, s = ctx.saved_tensors
            ds = dy * x * s * (1 - s)
            return dy * s + ds * beta, (ds * x).sum().reshape(beta.shape)

    y = Swish.apply(x, beta)                       # Tensors in, a recorded Tensor out

``backward`` returns one gradient per input of ``forward`` (None for an input that needs
none), each of that input's shape; the graph checks this and names the Function when it
is not so. ``convprop.gradcheck`` checks the result by finite differences.

``dy`` comes to ``backward`` as its own copy, which it may write into: the graph may hand
one gradient array to several tensors (the two operands of a residual sum, (GR2)), and a
write into that array would change the others' gradients.
"""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array, get_xp, is_array
from convprop.errors import ShapeError


class FunctionContext:
    """The ``ctx`` of a Function: what forward keeps for backward.

    Attributes
    ----------
    needs_input_grad : tuple of bool
        Which inputs need a gradient (backward may return None for the others).
    """

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays (or anything) for backward; read them back as ``saved_tensors``."""
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        return self._saved


class Function:
    """Base class of user-defined ops; see the module docstring for an example."""

    @staticmethod
    def forward(ctx: FunctionContext, *inputs: Any) -> Array:
        raise NotImplementedError("Function.forward must be defined by the subclass")

    @staticmethod
    def backward(ctx: FunctionContext, dy: Array) -> Any:
        raise NotImplementedError("Function.backward must be defined by the subclass")

    @classmethod
    def apply(cls, *inputs: Any) -> Tensor:
        """Run ``forward`` on the inputs' arrays and record ``backward`` for the graph."""
        needs = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        ctx = FunctionContext(needs)
        arrays = tuple(t.data if isinstance(t, Tensor) else t for t in inputs)
        y = cls.forward(ctx, *arrays)
        if not is_array(y):
            raise TypeError(
                f"{cls.__name__}.forward: expected to return one NumPy or CuPy array, got "
                f"{type(y).__name__}"
            )
        shapes = tuple(tuple(a.shape) if is_array(a) else None for a in arrays)
        name, count = cls.__name__, len(inputs)  # the backward keeps no input

        def backward(dy: Array, context: FunctionContext, _needs: tuple[bool, ...]) -> Any:
            grads = cls.backward(context, get_xp(dy).array(dy, copy=True))  # its own dy
            grads = grads if isinstance(grads, tuple) else (grads,)
            if len(grads) != count:
                raise TypeError(
                    f"{name}.backward: expected one gradient per forward input "
                    f"({count}), got {len(grads)}"
                )
            for index, (grad, shape, need) in enumerate(zip(grads, shapes, needs, strict=True)):
                if need and grad is not None and tuple(grad.shape) != shape:
                    raise ShapeError(
                        f"{name}.backward: the gradient of input {index} has the wrong shape; "
                        f"expected {shape}, got {tuple(grad.shape)}"
                    )
            return grads

        return record(name, f"{name}.backward", y, ctx, inputs, backward)
