"""Linear and Flatten layers (PyTorch's names, arguments and initialisation)."""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.nn import functional as F
from convprop.nn.init import RNGLike, check_dtype, weight_and_bias
from convprop.nn.module import Module


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
        self.weight, bias_parameter = weight_and_bias(
            (out_features, in_features), out_features if bias else None, in_features, rng, dtype
        )
        self.register_parameter("bias", bias_parameter)  # None is registered too, as PyTorch

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }


class Flatten(Module):
    """Flatten the axes ``start_dim`` … ``end_dim``: (N, C, H, W) -> (N, C·H·W) by default."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ParameterError(
                    f"Flatten: {name} must be an int; expected e.g. 1 (negative counts from "
                    f"the end), got {value!r}"
                )
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def config(self) -> dict[str, Any]:
        if self.end_dim == -1:  # the default, left out as in files written before end_dim
            return {"start_dim": self.start_dim}
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}
