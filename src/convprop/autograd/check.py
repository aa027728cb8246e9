"""gradcheck: a recorded graph's gradients against central differences (G1), in float64.

For a function ``fn`` of Tensors and a random upstream v (never all ones), the scalar
f = ⟨fn(inputs), v⟩ has ∂f/∂input = what ``backward(v)`` puts into each input's ``.grad``;
each coordinate is compared with (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps) (G1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from convprop.autograd.grad_mode import no_grad
from convprop.autograd.tensor import Tensor
from convprop.backend import to_device, to_host
from convprop.errors import DTypeError
from convprop.finite_differences import numerical_gradient


def _output(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> Tensor:
    y = fn(*inputs)
    if not isinstance(y, Tensor):
        raise TypeError(
            f"gradcheck: fn must return a Tensor; expected a Tensor, got {type(y).__name__}"
        )
    return y


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check the gradient of ``fn`` with respect to every input that requires a gradient.

    Parameters
    ----------
    fn : callable
        Takes the inputs (Tensors and anything else) and returns a Tensor.
    inputs : Tensor or tuple
        float64 Tensors with ``requires_grad=True`` are checked; others are passed as is.
    eps, atol, rtol : float
        Step of the central differences, and the tolerance |a − n| ≤ atol + rtol·|n|.
    seed : int
        Draws the upstream v.

    Returns
    -------
    bool
        True when every coordinate agrees.

    Raises
    ------
    ValueError
        Naming the input, the worst coordinate and both values when they disagree.
    DTypeError
        When a checked input is not float64 (float32 differences are mostly rounding).

    Examples
    --------
    >>> import numpy as np, convprop
    >>> x = convprop.tensor(np.array([0.5, -1.5]), requires_grad=True)
    >>> convprop.gradcheck(lambda t: t * t * 3.0, (x,))
    True
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            raise DTypeError(
                f"gradcheck: input {i} must be float64 for finite differences; expected "
                f"float64, got {inputs[i].dtype} (shape={inputs[i].shape})"
            )
    y = _output(fn, inputs)
    v = numpy.random.default_rng(seed).standard_normal(y.shape)
    saved = [inputs[i].grad for i in checked]
    for i in checked:
        inputs[i].grad = None
    y.backward(to_device(v.astype(y.dtype), y.device))
    analytic = [to_host(inputs[i].grad) for i in checked]
    for i, grad in zip(checked, saved, strict=True):
        inputs[i].grad = grad
    for position, i in enumerate(checked):
        original = inputs[i].data

        def scalar(values: numpy.ndarray, i: int = i) -> float:
            inputs[i].data = to_device(values, inputs[i].device)
            with no_grad():
                return float(numpy.sum(to_host(_output(fn, inputs).data) * v))

        try:
            numeric = numerical_gradient(scalar, to_host(original).copy(), eps=eps)
        finally:
            inputs[i].data = original
        got = analytic[position] if analytic[position] is not None else numpy.zeros_like(numeric)
        error = numpy.abs(got - numeric) - (atol + rtol * numpy.abs(numeric))
        if error.size and error.max() > 0:
            worst = numpy.unravel_index(int(error.argmax()), error.shape)
            raise ValueError(
                f"gradcheck: the gradient of input {i} disagrees with finite differences; "
                f"expected {numeric[worst]!r} at index {tuple(int(k) for k in worst)}, got "
                f"{got[worst]!r} (shape={tuple(numeric.shape)}, atol={atol}, rtol={rtol})"
            )
    return True
