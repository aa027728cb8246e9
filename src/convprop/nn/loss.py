"""Loss modules: ``loss = fn(pred, target)``; ``fn.backward()`` returns d(loss)/d(pred)."""

from __future__ import annotations

from convprop.backend import Array
from convprop.functional.loss import (
    mse_loss_backward,
    mse_loss_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)


class _Loss:
    """A loss holds one cache slot, like a layer, but takes two inputs and has no parameters."""

    def __init__(self) -> None:
        self._cache: object = None

    def _take_cache(self) -> object:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        cache, self._cache = self._cache, None
        return cache


class CrossEntropyLoss(_Loss):
    """Mean softmax cross-entropy of logits (N, K) against integer labels (N,)."""

    def forward(self, logits: Array, labels: Array) -> Array:
        loss, self._cache = softmax_cross_entropy_forward(logits, labels)
        return loss

    __call__ = forward

    def backward(self, dloss: float = 1.0) -> Array:
        """d(loss)/d(logits) (N, K), scaled by the upstream scalar ``dloss``."""
        return softmax_cross_entropy_backward(dloss, self._take_cache())  # type: ignore[arg-type]


class MSELoss(_Loss):
    """Mean squared error over all elements (PyTorch's default reduction)."""

    def forward(self, pred: Array, target: Array) -> Array:
        loss, self._cache = mse_loss_forward(pred, target)
        return loss

    __call__ = forward

    def backward(self, dloss: float = 1.0) -> Array:
        """d(loss)/d(pred), same shape as pred."""
        return mse_loss_backward(dloss, self._take_cache())  # type: ignore[arg-type]
