"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh (backward: δ ⊙ f′(x))."""

from __future__ import annotations

import math
import numbers
from typing import Any

from convprop.backend import Array
from convprop.errors import ParameterError
from convprop.functional.activation import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from convprop.nn.module import Module


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Array) -> Array:
        y, self._cache = relu_forward(x)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        return relu_backward(dy, self._take_cache())


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

    def forward(self, x: Array) -> Array:
        y, self._cache = leaky_relu_forward(x, negative_slope=self.negative_slope)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        return leaky_relu_backward(dy, self._take_cache())

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Array) -> Array:
        y, self._cache = sigmoid_forward(x)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        return sigmoid_backward(dy, self._take_cache())


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Array) -> Array:
        y, self._cache = tanh_forward(x)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        return tanh_backward(dy, self._take_cache())
