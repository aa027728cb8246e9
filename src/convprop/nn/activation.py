"""Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, ELU, Softmax, LogSoftmax.

The backward of each is its pair's (δ ⊙ f′(x) for the element-wise ones), through the graph.
"""

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


def _no_inplace(op: str, inplace: Any) -> None:
    if inplace:
        raise ParameterError(
            f"{op}: in-place ops would overwrite what the graph keeps for backward; expected "
            f"inplace=False, got {inplace!r}"
        )


class GELU(Module):
    """x·Φ(x), Φ the standard normal distribution function; approximate="tanh" for the
    tanh form (GE1)–(GE6)."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ParameterError(
                f"GELU: unknown approximation; expected 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class SiLU(Module):
    """x·σ(x) (SI1), (SI2)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        _no_inplace("SiLU", inplace)

    def forward(self, x: Any) -> Tensor:
        return F.silu(x)


class ELU(Module):
    """x for x > 0, alpha·(exp(x) − 1) otherwise (EL1), (EL2)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        is_real = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
        if not (is_real and math.isfinite(alpha)):
            raise ParameterError(
                f"ELU: alpha must be a finite real number; expected e.g. 1.0, got {alpha!r}"
            )
        _no_inplace("ELU", inplace)
        self.alpha = float(alpha)

    def forward(self, x: Any) -> Tensor:
        return F.elu(x, self.alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class _AlongDim(Module):
    """Softmax and LogSoftmax: one op along ``dim`` (None: PyTorch's deprecated choice)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None and not (isinstance(dim, int) and not isinstance(dim, bool)):
            raise ParameterError(
                f"{type(self).__name__}: dim must be an int or None; expected e.g. 1, got {dim!r}"
            )
        self.dim = dim

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}


class Softmax(_AlongDim):
    """exp(x) / Σ exp(x) along ``dim`` (SM1), (SM2)."""

    def forward(self, x: Any) -> Tensor:
        return F.softmax(x, self.dim)


class LogSoftmax(_AlongDim):
    """log softmax along ``dim`` (SM3), (SM4)."""

    def forward(self, x: Any) -> Tensor:
        return F.log_softmax(x, self.dim)
