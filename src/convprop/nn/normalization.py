"""LayerNorm and GroupNorm: per-sample normalisation, the same in train() and eval()."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy

from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.functional._checks import check_parameter_size
from convprop.functional.layer_normalization import normalized_shape_of
from convprop.nn import functional as F
from convprop.nn.init import check_dtype
from convprop.nn.module import Module
from convprop.nn.parameter import Parameter


def _check_eps(op: str, eps: Any) -> float:
    is_real = isinstance(eps, numbers.Real) and not isinstance(eps, bool)
    if not (is_real and 0 < eps < math.inf):
        raise ParameterError(
            f"{op}: eps keeps the division finite; expected a finite number > 0, got eps={eps!r}"
        )
    return float(eps)


class LayerNorm(Module):
    """Each sample standardised over its last axes, then scaled and shifted element-wise
    (LN1)–(LN8).

    Attributes
    ----------
    weight, bias : Parameter (normalized_shape)
        γ (ones) and β (zeros); None without ``elementwise_affine`` (bias also without
        ``bias``), registered as PyTorch so that state_dict keys agree.
    """

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.normalized_shape = normalized_shape_of("LayerNorm", normalized_shape)
        if not all(d > 0 for d in self.normalized_shape):
            raise ParameterError(
                f"LayerNorm: normalized_shape must be positive sizes; expected each > 0, got "
                f"{normalized_shape!r}"
            )
        self.eps = _check_eps("LayerNorm", eps)
        self.elementwise_affine, self.use_bias = bool(elementwise_affine), bool(bias)
        dtype = check_dtype("LayerNorm", dtype)
        shape = self.normalized_shape
        affine = self.elementwise_affine
        check_parameter_size("LayerNorm", (shape, shape), numpy.dtype(dtype).itemsize)
        weight = Parameter(numpy.ones(shape, dtype=dtype)) if affine else None
        shift = Parameter(numpy.zeros(shape, dtype=dtype)) if affine and self.use_bias else None
        self.register_parameter("weight", weight)
        self.register_parameter("bias", shift)

    def forward(self, x: Any) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def config(self) -> dict[str, Any]:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.use_bias,
        }


class GroupNorm(Module):
    """The channels of each sample standardised in ``num_groups`` groups, then scaled and
    shifted per channel (GN1)–(GN4). Input (N, C, *).

    Attributes
    ----------
    weight, bias : Parameter (C,)
        γ (ones) and β (zeros); None without ``affine`` (bias also without ``bias``).
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        bias: bool = True,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise ParameterError(
                    f"GroupNorm: {name} must be a positive int; expected >= 1, got {value!r}"
                )
        if num_channels % num_groups:
            raise ParameterError(
                f"GroupNorm: the channels must split into equal groups; expected num_channels "
                f"divisible by num_groups={num_groups}, got num_channels={num_channels}"
            )
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps = _check_eps("GroupNorm", eps)
        self.affine, self.use_bias = bool(affine), bool(bias)
        dtype = check_dtype("GroupNorm", dtype)
        check_parameter_size(
            "GroupNorm", ((num_channels,), (num_channels,)), numpy.dtype(dtype).itemsize
        )
        weight = Parameter(numpy.ones(num_channels, dtype=dtype)) if self.affine else None
        shift = (
            Parameter(numpy.zeros(num_channels, dtype=dtype))
            if self.affine and self.use_bias
            else None
        )
        self.register_parameter("weight", weight)
        self.register_parameter("bias", shift)

    def forward(self, x: Any) -> Tensor:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_channels": self.num_channels,
            "eps": self.eps,
            "affine": self.affine,
            "bias": self.use_bias,
        }
