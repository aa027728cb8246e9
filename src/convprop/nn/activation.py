"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh (backward: δ ⊙ f′(x))."""

from __future__ import annotations

import math
import numbers
from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.nn import functional as F
from convprop.nn.module import Module


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Any) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """x for x > 0, negative_slope·x otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        is_real = isinstance(negative_slope, numbers.Real) and not isinstance(negative_slope, bool)
        if not (is_real and math.isfinite(negative_slope)):
            raise ParameterError(
                "LeakyReLU: negative_slope must be a finite real number; expected e.g. 0.01, "
                f"got {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Any) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Any) -> Tensor:
        return F.tanh(x)
