"""Loss modules: ``loss = fn(input, target)``; ``loss.backward()`` runs the graph.

Names, arguments and state_dict keys are PyTorch's: a class ``weight`` (and BCEWithLogits'
``pos_weight``) is a buffer, in the state_dict when given. ``reduction`` is "mean" (a 0-d
Tensor), "sum" or "none" (one loss per position).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy

from convprop.autograd.tensor import Tensor
from convprop.backend import Array, is_array, to_host
from convprop.errors import ParameterError
from convprop.functional._loss_reduction import check_reduction
from convprop.nn import functional as F
from convprop.nn.module import Module


def _legacy(op: str, size_average: Any, reduce: Any) -> None:
    if size_average is not None or reduce is not None:
        raise ParameterError(
            f"{op}: size_average and reduce are deprecated in PyTorch; expected None (use "
            f"reduction='mean', 'sum' or 'none'), got size_average={size_average!r}, "
            f"reduce={reduce!r}"
        )


def _as_list(array: Array | None) -> Any:
    """A weight buffer as JSON data for ``config`` (None stays None)."""
    return None if array is None else to_host(array).tolist()


def _as_array(name: str, op: str, value: Any) -> Array | None:
    """An array, a Tensor's array, or a list (a config's) as float32, the layers' default
    dtype (``.double()`` converts the buffer with the model)."""
    if value is None or is_array(value):
        return value
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return numpy.asarray(value, dtype=numpy.float32)
    raise ParameterError(
        f"{op}: {name} must be an array, a Tensor or a list of numbers; got {value!r}"
    )


class _Loss(Module):
    """Keeps ``reduction`` (checked when built)."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__()
        name = type(self).__name__
        _legacy(name, size_average, reduce)
        self.reduction = check_reduction(name, reduction)


class MSELoss(_Loss):
    """Squared error, averaged (PyTorch's default), summed or per element (MSE1)–(MSE6)."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C, …) or (C,) against class indices or probabilities,
    with class weights, ignore_index and label smoothing (CE5)–(CE10)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if not (isinstance(ignore_index, int) and not isinstance(ignore_index, bool)):
            raise ParameterError(
                f"CrossEntropyLoss: ignore_index must be an int; expected e.g. -100, got "
                f"{ignore_index!r}"
            )
        is_real = isinstance(label_smoothing, numbers.Real) and not isinstance(
            label_smoothing, bool
        )
        if not (is_real and 0.0 <= label_smoothing <= 1.0):
            raise ParameterError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1]; expected e.g. 0.1, got "
                f"{label_smoothing!r}"
            )
        self.ignore_index, self.label_smoothing = ignore_index, float(label_smoothing)
        self.register_buffer("weight", _as_array("weight", "CrossEntropyLoss", weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(
            input, target, self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {
            "weight": _as_list(self.weight),
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
        }


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C, …) or (C,) against class indices,
    with class weights and ignore_index (NLL1)–(NLL3)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        if not (isinstance(ignore_index, int) and not isinstance(ignore_index, bool)):
            raise ParameterError(
                f"NLLLoss: ignore_index must be an int; expected e.g. -100, got {ignore_index!r}"
            )
        self.ignore_index = ignore_index
        self.register_buffer("weight", _as_array("weight", "NLLLoss", weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.nll_loss(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )

    def config(self) -> dict[str, Any]:
        return {
            "weight": _as_list(self.weight),
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
        }


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (BCE1)–(BCE3)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_array("weight", "BCELoss", weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)

    def config(self) -> dict[str, Any]:
        return {"weight": _as_list(self.weight), "reduction": self.reduction}


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits, the sigmoid folded in for stability, with
    ``pos_weight`` for the positive term (BCE4)–(BCE7)."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_array("weight", "BCEWithLogitsLoss", weight))
        self.register_buffer("pos_weight", _as_array("pos_weight", "BCEWithLogitsLoss", pos_weight))

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )

    def config(self) -> dict[str, Any]:
        return {
            "weight": _as_list(self.weight),
            "reduction": self.reduction,
            "pos_weight": _as_list(self.pos_weight),
        }
