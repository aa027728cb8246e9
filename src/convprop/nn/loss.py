"""Loss modules: ``loss = fn(pred, target)``, a 0-d Tensor; ``loss.backward()`` runs the graph."""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.nn import functional as F
from convprop.nn.module import Module


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,) (CE1)–(CE4)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction("CrossEntropyLoss", reduction)
        self.reduction = reduction

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.cross_entropy(input, target, self.reduction)


class MSELoss(Module):
    """Mean squared error over all elements (PyTorch's default reduction) (MSE1), (MSE2)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        F._check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, input: Any, target: Any) -> Tensor:
        return F.mse_loss(input, target, self.reduction)
