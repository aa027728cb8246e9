"""Linear and Flatten layers (PyTorch's names, arguments and initialisation)."""

from __future__ import annotations

from typing import Any

from convprop.backend import Array
from convprop.errors import ParameterError
from convprop.functional.linear import linear_backward, linear_forward
from convprop.functional.reshape import flatten_backward, flatten_forward
from convprop.nn.init import RNGLike, check_dtype, weight_and_bias
from convprop.nn.module import Module
from convprop.nn.parameter import add_gradients


class Linear(Module):
    """Fully connected layer y = x·Wᵀ + b.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    rng : numpy.random.Generator, int or None
        Source of the Kaiming-uniform initial weights.
    dtype : "float32" or "float64"

    Attributes
    ----------
    weight : Parameter (out_features, in_features)
    bias : Parameter (out_features,) or None
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ParameterError(
                    f"Linear: {name} must be a positive int; expected >= 1, got {value!r}"
                )
        self.in_features, self.out_features = in_features, out_features
        dtype = check_dtype("Linear", dtype)
        self.weight, self.bias = weight_and_bias(
            (out_features, in_features), out_features if bias else None, in_features, rng, dtype
        )
        self._parameters.update(weight=self.weight, bias=self.bias)

    def forward(self, x: Array) -> Array:
        b = None if self.bias is None else self.bias.data
        y, self._cache = linear_forward(x, self.weight.data, b)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        dx, dw, db = linear_backward(dy, self._take_cache(), need_dx=need_dx)
        add_gradients(self.weight, self.bias, dw, db)
        return dx

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }


class Flatten(Module):
    """Flatten every axis from ``start_dim`` on: (N, C, H, W) -> (N, C·H·W)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        if not isinstance(start_dim, int) or isinstance(start_dim, bool):
            raise ParameterError(
                f"Flatten: start_dim must be an int; expected e.g. 1 (negative counts from the "
                f"end), got {start_dim!r}"
            )
        self.start_dim = start_dim

    def forward(self, x: Array) -> Array:
        y, self._cache = flatten_forward(x, start_dim=self.start_dim)
        return y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        return flatten_backward(dy, self._take_cache())

    def config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim}
