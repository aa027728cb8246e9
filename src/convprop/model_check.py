"""Finite-difference check of every parameter of a model (``convprop gradcheck``).

For each parameter (and the input) the analytic gradient from one backward pass is
compared with the derivative of the loss along a random direction (equation G2 of
convprop.gradcheck). Dropout masks are replayed from a saved Generator state so that the
loss is a deterministic function of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from convprop.autograd import Tensor, no_grad
from convprop.finite_differences import directional_derivative_check
from convprop.nn import CrossEntropyLoss, Dropout, Module

TOLERANCE = 1e-6


@dataclass(frozen=True)
class GradcheckRow:
    """One line of the report: a parameter, both derivatives and their relative error."""

    name: str
    shape: tuple[int, ...]
    analytic: float
    numeric: float

    @property
    def relative_error(self) -> float:
        scale = max(abs(self.analytic), abs(self.numeric), 1e-12)
        return abs(self.analytic - self.numeric) / scale

    @property
    def ok(self) -> bool:
        return self.relative_error <= TOLERANCE


def gradcheck_model(
    model: Module, input_shape: tuple[int, ...], *, seed: int = 0, num_classes: int = 10
) -> list[GradcheckRow]:
    """Check d(loss)/d(parameter) for every parameter, and d(loss)/d(x), in float64.

    Parameters
    ----------
    model : Module
        A float64 classifier (logits (N, num_classes)), left in training mode.
    input_shape : tuple (N, C, H, W)
    seed : int
        Draws the input, the labels and the directions.

    Returns
    -------
    list of GradcheckRow, the input first, then parameters in PyTorch order.
    """
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    labels = rng.integers(0, num_classes, size=input_shape[0])
    dropouts = [m for m in model.modules() if isinstance(m, Dropout)]
    saved = [layer.rng.bit_generator.state for layer in dropouts]
    loss_fn = CrossEntropyLoss()
    model.train()

    def loss_at(inputs: numpy.ndarray) -> float:
        for layer, state in zip(dropouts, saved, strict=True):
            layer.rng.bit_generator.state = state
        with no_grad():
            return float(loss_fn(model(inputs), labels).item())

    for layer, state in zip(dropouts, saved, strict=True):
        layer.rng.bit_generator.state = state
    model.zero_grad()
    x_tensor = Tensor(x, requires_grad=True)
    loss_fn(model(x_tensor), labels).backward()  # the graph, back to the input (GR1)-(GR3)
    dx = x_tensor.grad
    if dx is None:  # pragma: no cover - the input requires its gradient, so backward sets it
        raise RuntimeError("gradcheck: the graph gave no input gradient")
    rows = [
        GradcheckRow(
            "input",
            tuple(x.shape),
            *reversed(directional_derivative_check(loss_at, dx, x, rng=rng)),
        )
    ]
    for name, param in model.named_parameters():
        original = param.data
        grad = param.grad.copy()

        def loss_of_param(values: numpy.ndarray, param: object = param) -> float:
            param.data = values  # type: ignore[attr-defined]
            return loss_at(x)

        numeric, analytic = directional_derivative_check(loss_of_param, grad, original, rng=rng)
        param.data = original
        rows.append(GradcheckRow(name, tuple(original.shape), analytic, numeric))
    return rows
