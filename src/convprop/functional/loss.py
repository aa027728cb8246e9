"""Losses: softmax cross-entropy for classification, mean squared error for regression.

A loss ends the network: its forward returns a scalar (a 0-d array of the input dtype) and
its backward takes the upstream scalar ``dloss`` (1.0 when the loss is what is minimised).

Softmax cross-entropy.  logits (N,K) float;  labels (N,) integer class indices in [0, K)
  z[n,k] = logits[n,k] − max_j logits[n,j]
           -- softmax is unchanged by the shift and exp(z) ≤ 1 never overflows          (CE1)
  log_softmax[n,k] = z[n,k] − log Σ_j exp(z[n,j]);  softmax = exp(log_softmax)        (CE2)
  loss = −(1/N) Σ_n log_softmax[n, labels[n]]      -- the batch mean, as PyTorch      (CE3)
  dlogits[n,k] = dloss·(softmax[n,k] − [k = labels[n]]) / N                           (CE4)
  (CE4) follows from ∂log_softmax[n,j]/∂logits[n,k] = [j = k] − softmax[n,k].

Mean squared error.  pred, target (any shape, the same);  numel = their number of elements
  loss = (1/numel) Σ (pred − target)²              -- the mean, PyTorch's default     (MSE1)
  dpred = dloss·2·(pred − target) / numel                                             (MSE2)
  The derivations often write the error as E = ½ Σ (pred − target)², whose gradient is
  dE/dpred = pred − target                                                            (MSE3)
  Both have the same minimiser; loss = (2/numel)·E, so (MSE2) is (MSE3) scaled by
  2·dloss/numel. With plain SGD the scale only rescales the learning rate.
  Other reductions (functional/_loss_reduction.py), and a weight w of pred's shape:
  ℓ = w·(pred − target)² element-wise (w = 1 without one), then L = Σ ℓ ("sum"),
  L = ℓ ("none"), or L = Σ ℓ / Σ w ("mean" with a weight: a weighted mean)            (MSE4)
  dpred = g·2·w·(pred − target), g of (RD4): dloss/numel for the plain mean (MSE2),
  dloss/Σ w for the weighted mean, dloss for "sum", dloss element-wise for "none"     (MSE5)
  dtarget = −dpred   -- the loss depends on pred − target only                        (MSE6)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import DTypeError, ShapeError
from convprop.functional._checks import require_array
from convprop.functional._loss_reduction import (
    check_reduction,
    reduce_backward,
    reduce_forward,
    upstream,
)


def _upstream_scalar(op: str, dloss: Any, like: Array) -> Any:
    """Return the upstream scalar as a Python float or a 0-d array of ``like``'s dtype.

    A Python float keeps the dtype of the arrays it multiplies; a 0-d array is cast, since a
    float64 0-d array would otherwise promote float32 gradients to float64.
    """
    if isinstance(dloss, (int, float)) and not isinstance(dloss, bool):
        return float(dloss)
    require_array(op, "dloss", dloss)
    get_xp(dloss, like)
    if tuple(dloss.shape) != ():
        raise ShapeError(
            f"{op}: dloss is the gradient of a scalar loss; expected a float or a 0-d array, "
            f"got shape {tuple(dloss.shape)}"
        )
    check_float_dtype(op, dloss=dloss)
    return dloss.astype(like.dtype)


def _check_logits(op: str, logits: Any) -> None:
    require_array(op, "logits", logits)
    check_float_dtype(op, logits=logits)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ShapeError(
            f"{op}: logits must be (N, K) with N ≥ 1 samples and K ≥ 1 classes; expected 2 "
            f"non-empty dimensions, got logits.shape={tuple(logits.shape)}"
        )


def _check_labels(op: str, xp: ModuleType, labels: Any, logits: Array) -> None:
    N, K = logits.shape
    shapes = f"(logits.shape={tuple(logits.shape)}, labels.shape={tuple(labels.shape)})"
    if labels.dtype.kind not in "iu":
        raise DTypeError(
            f"{op}: labels must be integer class indices; expected an integer dtype, "
            f"got {labels.dtype} {shapes}"
        )
    if labels.ndim != 1 or labels.shape[0] != N:
        raise ShapeError(
            f"{op}: labels must hold one class index per sample; expected shape (N,)=({N},), "
            f"got {tuple(labels.shape)} {shapes}"
        )
    # Validation only: this reads one bool back from the device (a synchronisation).
    if bool(xp.any((labels < 0) | (labels >= K))):
        raise ShapeError(
            f"{op}: labels must lie in [0, K) for K={K} classes; expected 0 <= labels <= {K - 1}, "
            f"got values from {int(labels.min())} to {int(labels.max())} {shapes}"
        )


def _log_softmax(xp: ModuleType, logits: Array) -> Array:
    z = logits - logits.max(axis=1, keepdims=True)  # (CE1) -> (N, K)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))  # (CE2) -> (N, K)


def softmax(logits: Array) -> Array:
    """Class probabilities exp(log_softmax) (CE1, CE2), stable for any finite logits.

    Parameters
    ----------
    logits : Array (N, K)
        float32 or float64.

    Returns
    -------
    probs : Array (N, K)
        Rows sum to 1; same dtype as logits.

    Raises
    ------
    ShapeError, DTypeError
        When logits is not a non-empty float (N, K) array.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    _check_logits("softmax", logits)
    xp = get_xp(logits)
    return xp.exp(_log_softmax(xp, logits))  # (CE2)


@dataclass(frozen=True, slots=True)
class SoftmaxCrossEntropyCache:
    """What softmax_cross_entropy_backward needs.

    Fields
    ------
    probs : Array (N, K)
        softmax(logits) (CE2): N·K elements.
    labels : Array (N,)
        The class indices (a reference).
    """

    probs: Array
    labels: Array


def softmax_cross_entropy_forward(
    logits: Array, labels: Array
) -> tuple[Array, SoftmaxCrossEntropyCache]:
    """Softmax cross-entropy forward pass, equations (CE1)–(CE3).

    Parameters
    ----------
    logits : Array (N, K)
        Unnormalised class scores, float32 or float64.
    labels : Array (N,)
        Integer class indices in [0, K).

    Returns
    -------
    loss : Array ()
        The batch mean of −log softmax[n, labels[n]], a 0-d array of logits' dtype.
    cache : SoftmaxCrossEntropyCache
        For softmax_cross_entropy_backward.

    Raises
    ------
    ShapeError
        Wrong ranks, empty logits, a label count other than N, or labels outside [0, K).
    DTypeError
        Logits not float32/float64, or labels not integer.
    BackendError
        Logits and labels on different devices.

    Notes
    -----
    The range check of the labels reads one bool back from the device, the only
    synchronisation of the op; it is what keeps a bad label from indexing silently.

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.array([[0.0, 0.0], [1000.0, -1000.0]])
    >>> loss, cache = softmax_cross_entropy_forward(logits, np.array([0, 0]))
    >>> round(float(loss), 6)
    0.346574
    >>> softmax_cross_entropy_backward(1.0, cache)
    array([[-0.25,  0.25],
           [ 0.  ,  0.  ]])
    """
    op = "softmax_cross_entropy"
    _check_logits(op, logits)
    require_array(op, "labels", labels)
    xp = get_xp(logits, labels)
    _check_labels(op, xp, labels, logits)
    N = logits.shape[0]
    log_probs = _log_softmax(xp, logits)  # (CE1), (CE2) -> (N, K)
    picked = log_probs[xp.arange(N), labels]  # log_softmax[n, labels[n]] -> (N,)
    loss = xp.asarray(-picked.mean(), dtype=logits.dtype)  # (CE3) -> ()
    return loss, SoftmaxCrossEntropyCache(probs=xp.exp(log_probs), labels=labels)


def softmax_cross_entropy_backward(dloss: Any, cache: SoftmaxCrossEntropyCache) -> Array:
    """Softmax cross-entropy backward pass, equation (CE4).

    Parameters
    ----------
    dloss : float or Array ()
        Gradient of the final objective with respect to the loss (usually 1.0).
    cache : SoftmaxCrossEntropyCache
        From softmax_cross_entropy_forward.

    Returns
    -------
    dlogits : Array (N, K)
        dloss·(softmax − onehot(labels))/N, same dtype as the logits.

    Raises
    ------
    ShapeError, DTypeError
        When dloss is neither a real number nor a 0-d float array.
    """
    probs = cache.probs
    scale = _upstream_scalar("softmax_cross_entropy_backward", dloss, probs)
    xp = get_xp(probs, cache.labels)
    N, K = probs.shape
    onehot = cache.labels.reshape(N, 1) == xp.arange(K).reshape(1, K)  # (N, K) bool
    return (probs - onehot) * (scale / N)  # (CE4)


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy forward alone; see :func:`softmax_cross_entropy_forward`."""
    loss, _ = softmax_cross_entropy_forward(logits, labels)
    return loss


@dataclass(frozen=True, slots=True)
class MseLossCache:
    """What mse_loss_backward needs.

    Fields
    ------
    diff : Array (the shape of pred)
        pred − target: numel elements.
    reduction : str
        "mean", "sum" or "none".
    weight : Array (the shape of pred) or None
        w of (MSE4) (a reference).
    """

    diff: Array
    reduction: str = "mean"
    weight: Array | None = None


def mse_loss_forward(
    pred: Array, target: Array, *, reduction: str = "mean", weight: Array | None = None
) -> tuple[Array, MseLossCache]:
    """Mean squared error forward pass, equation (MSE1), or (MSE4) for another reduction.

    Parameters
    ----------
    pred : Array (any shape)
        Predictions, float32 or float64.
    target : Array (the shape of pred)
        Targets; same dtype as pred.
    reduction : str
        "mean" (PyTorch's default), "sum" or "none".
    weight : Array (the shape of pred) or None
        Per-element weights; the mean becomes Σ w·(pred − target)² / Σ w (MSE4).

    Returns
    -------
    loss : Array
        The mean (or sum) of (pred − target)² over all elements, a 0-d array of pred's
        dtype; for "none" the element-wise squares (the shape of pred).
    cache : MseLossCache
        For mse_loss_backward.

    Raises
    ------
    ShapeError
        When the shapes differ or the arrays are empty.
    DTypeError, BackendError
        Bad or mismatched dtypes, or mixed devices.

    Examples
    --------
    >>> import numpy as np
    >>> loss, cache = mse_loss_forward(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    >>> loss
    array(2.5)
    >>> mse_loss_backward(1.0, cache)
    array([ 1., -2.])
    """
    op = "mse_loss"
    require_array(op, "pred", pred)
    require_array(op, "target", target)
    xp = get_xp(pred, target)
    check_float_dtype(op, pred=pred, target=target)
    if tuple(pred.shape) != tuple(target.shape) or pred.size == 0:
        raise ShapeError(
            f"{op}: pred and target must have the same non-empty shape; expected "
            f"target.shape == pred.shape and at least one element, "
            f"got pred.shape={tuple(pred.shape)}, "
            f"target.shape={tuple(target.shape)}"
        )
    reduction = check_reduction(op, reduction)
    if weight is not None:
        require_array(op, "weight", weight)
        check_float_dtype(op, pred=pred, weight=weight)
        if tuple(weight.shape) != tuple(pred.shape):
            raise ShapeError(
                f"{op}: weight holds one value per element; expected weight.shape == "
                f"pred.shape={tuple(pred.shape)}, got {tuple(weight.shape)}"
            )
    diff = pred - target
    if reduction == "mean" and weight is None:
        loss = xp.asarray((diff * diff).mean(), dtype=pred.dtype)  # (MSE1) -> ()
    else:
        squares = diff * diff if weight is None else weight * (diff * diff)
        loss = reduce_forward(squares, reduction, None if weight is None else weight.sum())
    return loss, MseLossCache(diff=diff, reduction=reduction, weight=weight)  # (MSE4)


def mse_loss_backward(dloss: Any, cache: MseLossCache) -> Array:
    """Mean squared error backward pass, equation (MSE2).

    Parameters
    ----------
    dloss : float or Array
        Gradient of the final objective with respect to the loss (usually 1.0); an array
        of pred's shape for reduction="none".
    cache : MseLossCache
        From mse_loss_forward.

    Returns
    -------
    dpred : Array (the shape of pred)
        dloss·2·(pred − target)/numel for the mean, same dtype as pred; the target's
        gradient is −dpred (MSE6).

    Raises
    ------
    ShapeError, DTypeError
        When dloss is neither a real number nor a float array of the loss's shape.
    """
    diff, weight = cache.diff, cache.weight
    if cache.reduction == "mean" and weight is None:
        scale = _upstream_scalar("mse_loss_backward", dloss, diff)
        return diff * (2 * scale / diff.size)  # (MSE2)
    scale = upstream("mse_loss_backward", dloss, cache.reduction, tuple(diff.shape), diff)
    g = reduce_backward(scale, cache.reduction, None if weight is None else weight.sum(), diff.size)
    weighted = diff if weight is None else weight * diff
    return (weighted * (2 * g)).astype(diff.dtype, copy=False)  # (MSE5)


def mse_loss(
    pred: Array, target: Array, *, reduction: str = "mean", weight: Array | None = None
) -> Array:
    """Mean squared error forward alone; see :func:`mse_loss_forward`."""
    loss, _ = mse_loss_forward(pred, target, reduction=reduction, weight=weight)
    return loss
