"""Each parameter's gradient norm, averaged over an epoch's steps: the training history's
record of vanishing and exploding gradients (the report draws it per layer).

For a parameter θ with gradient dθ_t at step t of an epoch of T steps::

    g(θ) = (1/T) Σ_t ‖dθ_t‖₂,   ‖dθ_t‖₂ = sqrt(Σ_i dθ_t[i]²)                  (DIAG1)

One dot product per parameter and step, on the parameter's own device (no host copy until
the epoch ends): a pass over the gradients, which are as large as the weights and far smaller
than the activations of the step that made them.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.backend import get_xp, to_host
from convprop.nn import Module


class GradientNorms:
    """Running sums of ‖dθ‖₂ for each parameter of ``model``, in ``named_parameters`` order.

    Parameters
    ----------
    model : Module
        Its parameters' ``.grad`` arrays are read after each step's backward.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Linear
    >>> layer = Linear(3, 2, rng=0)
    >>> norms = GradientNorms(layer)
    >>> for step in (1.0, 3.0):
    ...     layer.weight.grad[...] = step   # a (2, 3) gradient of norm step·sqrt(6)
    ...     layer.bias.grad[...] = 0.0
    ...     norms.add()
    >>> {name: round(value, 6) for name, value in norms.means().items()}
    {'weight': 4.898979, 'bias': 0.0}
    """

    def __init__(self, model: Module) -> None:
        self.names: list[str] = []
        self.parameters: list[Any] = []
        for name, parameter in model.named_parameters():
            self.names.append(name)
            self.parameters.append(parameter)
        self.sums: Any = None  # (number of parameters,) on the parameters' device
        self.steps = 0

    def add(self) -> None:
        """Add this step's norms: ‖dθ‖₂ of every parameter's current ``.grad`` (DIAG1)."""
        if not self.parameters:
            return
        xp = get_xp(self.parameters[0].data)
        norms = []
        for parameter in self.parameters:
            grad = parameter.grad
            if grad is None:
                norms.append(xp.zeros((), dtype=xp.float64))
                continue
            norms.append(xp.sqrt(xp.vdot(grad, grad).astype(xp.float64)))  # (DIAG1)
        step = xp.stack(norms)
        self.sums = step if self.sums is None else self.sums + step
        self.steps += 1

    def means(self) -> dict[str, float]:
        """{parameter name: mean of ‖dθ‖₂ over the steps added} (DIAG1); empty before a step."""
        if self.sums is None:
            return {}
        values = numpy.asarray(to_host(self.sums), dtype=numpy.float64) / self.steps
        return {name: float(value) for name, value in zip(self.names, values, strict=True)}
