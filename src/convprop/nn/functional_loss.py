"""Tensor ops: the losses under PyTorch's names and signatures (re-exported by nn.functional).

Each records its pair's hand-written backward (functional/classification_loss.py,
functional/binary_loss.py, functional/loss.py) in the graph. A target that needs a
gradient gets one where PyTorch gives one (probabilities, BCE targets, MSE targets);
integer class indices get none.
"""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array
from convprop.errors import ParameterError
from convprop.functional import binary_loss, classification_loss
from convprop.functional import loss as loss_pair


def _array(value: Any) -> Array:
    return value.data if isinstance(value, Tensor) else value


def _no_legacy(op: str, size_average: Any, reduce: Any) -> None:
    """PyTorch's deprecated size_average/reduce: only their default None is accepted."""
    if size_average is not None or reduce is not None:
        raise ParameterError(
            f"{op}: size_average and reduce are deprecated in PyTorch; expected None (use "
            f"reduction='mean', 'sum' or 'none'), got size_average={size_average!r}, "
            f"reduce={reduce!r}"
        )


def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities (NLL1, NLL2); backward (NLL3)."""
    _no_legacy("nll_loss", size_average, reduce)
    loss, cache = classification_loss.nll_loss_forward(
        _array(input), _array(target), weight=_array(weight), ignore_index=ignore_index,
        reduction=reduction,
    )  # fmt: skip

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return classification_loss.nll_loss_backward(dy, cache), None

    return record("nll_loss", "NLL3", loss, cache, (input, target), backward)


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits against class indices or probabilities (CE5)–(CE8), with
    class weights, ignore_index and label smoothing; backward (CE9), (CE10)."""
    _no_legacy("cross_entropy", size_average, reduce)
    loss, cache = classification_loss.cross_entropy_forward(
        _array(input), _array(target), weight=_array(weight), ignore_index=ignore_index,
        reduction=reduction, label_smoothing=label_smoothing,
    )  # fmt: skip

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return classification_loss.cross_entropy_backward(dy, cache, need_dtarget=needs[1])

    plain = not (cache.probabilities or cache.smoothing or weight is not None)
    plain = plain and reduction == "mean"
    labels = "CE4" if plain else "CE9, CE10"  # (CE9) is (CE4) for plain one-hot targets
    return record("cross_entropy", labels, loss, cache, (input, target), backward)


def binary_cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross-entropy of probabilities (BCE1); backward (BCE2), (BCE3)."""
    _no_legacy("binary_cross_entropy", size_average, reduce)
    loss, cache = binary_loss.binary_cross_entropy_forward(
        _array(input), _array(target), weight=_array(weight), reduction=reduction
    )

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return binary_loss.binary_cross_entropy_backward(dy, cache, need_dtarget=needs[1])

    return record("binary_cross_entropy", "BCE2, BCE3", loss, cache, (input, target), backward)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Binary cross-entropy of logits, sigmoid folded in (BCE4, BCE5); backward (BCE6),
    (BCE7)."""
    _no_legacy("binary_cross_entropy_with_logits", size_average, reduce)
    loss, cache = binary_loss.binary_cross_entropy_with_logits_forward(
        _array(input), _array(target), weight=_array(weight), pos_weight=_array(pos_weight),
        reduction=reduction,
    )  # fmt: skip

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        pair = binary_loss.binary_cross_entropy_with_logits_backward
        return pair(dy, cache, need_dtarget=needs[1])

    name = "binary_cross_entropy_with_logits"
    return record(name, "BCE6, BCE7", loss, cache, (input, target), backward)


def mse_loss(
    input: Any,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Any = None,
) -> Tensor:
    """Mean squared error (MSE1), or summed / element-wise / weighted (MSE4); backward
    (MSE2) or (MSE5), and −dpred for a target that needs a gradient (MSE6)."""
    _no_legacy("mse_loss", size_average, reduce)
    loss, cache = loss_pair.mse_loss_forward(
        _array(input), _array(target), reduction=reduction, weight=_array(weight)
    )

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        dpred = loss_pair.mse_loss_backward(dy, cache)
        return dpred, (-dpred if needs[1] else None)  # (MSE6)

    return record("mse_loss", "MSE2, MSE5, MSE6", loss, cache, (input, target), backward)
