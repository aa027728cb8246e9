"""Binary cross-entropy, on probabilities and on logits (with ``pos_weight``).

Notation  x, t (any shape, the same): predictions and targets in [0, 1];  w a weight that
broadcasts to x (1 without one);  p = ``pos_weight`` broadcast along the last axis;
σ the sigmoid (A6);  softplus(z) = log(1 + e^z);  g of (RD4) for the reduction
On probabilities x (PyTorch clamps each log at −100, so x = 0 or 1 gives a finite loss)
  ℓ = −w·(t·max(log x, −100) + (1 − t)·max(log(1 − x), −100))                         (BCE1)
  dx = g·w·(x − t) / max(x·(1 − x), 10⁻¹²)   -- ∂ℓ/∂x = w·(−t/x + (1 − t)/(1 − x)),
                                              the denominator kept ≥ 10⁻¹² (PyTorch's) (BCE2)
  dt = −g·w·log(x/(1 − x))                   -- the logit of x                        (BCE3)
On logits x (the sigmoid folded in, stable for any x)
  lw = 1 + (p − 1)·t                         -- the weight of the positive term       (BCE4)
  ℓ = w·((1 − t)·x + lw·softplus(−x)),  softplus(−x) = log(1 + e^(−|x|)) + max(−x, 0)
      -- −log σ(x) = softplus(−x) and −log(1 − σ(x)) = x + softplus(−x)             (BCE5)
  dx = g·w·(lw·σ(x) − p·t)                   -- d softplus(−x)/dx = −(1 − σ(x))       (BCE6)
  dt = g·w·((p − 1)·softplus(−x) − x)                                                 (BCE7)
The reduction (RD1)–(RD3) then averages or sums ℓ over all its elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import require_array
from convprop.functional._loss_reduction import (
    check_reduction,
    reduce_backward,
    reduce_forward,
    upstream,
)
from convprop.functional.activation import sigmoid

LOG_FLOOR = -100.0
"""PyTorch's lower bound of each log in (BCE1)."""

EPSILON = 9.999999960041972e-13
"""PyTorch's lower bound of x·(1 − x) in (BCE2): 10⁻¹² rounded to single precision (its
constant is a float), which moves dx at x = 0 or 1 by 4·10⁻⁹ relative to 10⁻¹²."""


def _check(op: str, x: Any, target: Any, weights: dict[str, Any]) -> None:
    require_array(op, "input", x)
    require_array(op, "target", target)
    for name, array in weights.items():
        if array is not None:
            require_array(op, name, array)
    check_float_dtype(op, input=x, target=target, **weights)
    get_xp(x, target, *weights.values())
    if tuple(target.shape) != tuple(x.shape):
        raise ShapeError(
            f"{op}: target must have the shape of the input; expected {tuple(x.shape)}, got "
            f"{tuple(target.shape)}"
        )
    for name, array in weights.items():
        if array is None:
            continue
        if not _broadcasts_to(tuple(array.shape), tuple(x.shape)):
            raise ShapeError(
                f"{op}: {name} must broadcast to the input's shape; expected a shape that "
                f"broadcasts to {tuple(x.shape)}, got {tuple(array.shape)}"
            )


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """NumPy's rule, one way: each trailing size of ``shape`` is 1 or the target's."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target), strict=False))


@dataclass(frozen=True, slots=True)
class BinaryCrossEntropyCache:
    """What the two backward passes need.

    Fields
    ------
    x, target : Array (any shape, the same)
        The forward inputs (references).
    weight : Array (broadcasts to x) or None
        w (a reference).
    pos_weight : Array (broadcasts to x) or None
        p (logits only; a reference).
    reduction : str
        "mean", "sum" or "none".
    """

    x: Array
    target: Array
    weight: Array | None
    pos_weight: Array | None
    reduction: str


def binary_cross_entropy_forward(
    x: Array, target: Array, *, weight: Array | None = None, reduction: str = "mean"
) -> tuple[Array, BinaryCrossEntropyCache]:
    """Binary cross-entropy of probabilities, equation (BCE1), then (RD1)–(RD3).

    Parameters
    ----------
    x : Array (any shape)
        Probabilities in [0, 1], float32 or float64.
    target : Array (the shape of x)
        Targets in [0, 1] (soft targets allowed), x's dtype.
    weight : Array or None
        Broadcasts to x; multiplies each ℓ.
    reduction : str
        "mean", "sum" or "none".

    Returns
    -------
    loss : Array
        () for "mean"/"sum", x's shape for "none"; x's dtype.
    cache : BinaryCrossEntropyCache
        For binary_cross_entropy_backward.

    Raises
    ------
    ShapeError
        Shapes that differ or do not broadcast, or values outside [0, 1] (checked on the
        host: one value read back from the device).
    DTypeError, ParameterError
        Bad dtypes or reduction.

    Examples
    --------
    >>> import numpy as np
    >>> loss, cache = binary_cross_entropy_forward(np.array([0.5, 0.9]), np.array([1.0, 0.0]))
    >>> round(float(loss), 6)
    1.497866
    >>> binary_cross_entropy_backward(1.0, cache)[0]
    array([-1.,  5.])
    """
    op = "binary_cross_entropy"
    _check(op, x, target, {"weight": weight})
    reduction = check_reduction(op, reduction)
    xp = get_xp(x)
    for name, array in (("input", x), ("target", target)):
        # Validation only: this reads one bool back from the device (a synchronisation).
        outside = (array < 0) | (array > 1) if name == "target" else ~((array >= 0) & (array <= 1))
        if array.size and bool(xp.any(outside)):  # a NaN input is refused, as PyTorch does
            raise ShapeError(
                f"{op}: {name} must hold probabilities; expected every value in [0, 1], got "
                f"values from {float(array.min())} to {float(array.max())}"
            )
    log_x = _clamped_log(xp, x)
    log_1mx = _clamped_log(xp, 1 - x)
    losses = -(target * log_x + (1 - target) * log_1mx)  # (BCE1)
    if weight is not None:
        losses = losses * weight  # (BCE1)
    loss = reduce_forward(losses.astype(x.dtype, copy=False), reduction)
    return loss, BinaryCrossEntropyCache(x, target, weight, None, reduction)


def binary_cross_entropy_backward(
    dloss: Any, cache: BinaryCrossEntropyCache, *, need_dtarget: bool = False
) -> tuple[Array, Array | None]:
    """Binary cross-entropy backward pass, equations (BCE2), (BCE3).

    Parameters
    ----------
    dloss : float or Array
        Gradient with respect to the loss: a scalar, or x's shape for reduction="none".
    cache : BinaryCrossEntropyCache
        From binary_cross_entropy_forward.
    need_dtarget : bool
        Also return the target's gradient (BCE3).

    Returns
    -------
    dx : Array (the shape of x)
        (BCE2).
    dtarget : Array (the shape of x) or None
        (BCE3) when asked for.
    """
    x, target = cache.x, cache.target
    xp = get_xp(x)
    g = _g("binary_cross_entropy_backward", dloss, cache)
    scale = g if cache.weight is None else g * cache.weight
    dx = scale * (x - target) / xp.maximum(x * (1 - x), EPSILON)  # (BCE2)
    dtarget = None
    if need_dtarget:
        inside = xp.where((x > 0) & (x < 1), x, 0.5)
        logit = xp.log(inside / (1 - inside))
        logit = xp.where(x <= 0, -xp.inf, xp.where(x >= 1, xp.inf, logit))  # ±inf at 0 and 1
        dtarget = (-scale * logit).astype(x.dtype, copy=False)  # (BCE3)
    return dx.astype(x.dtype, copy=False), dtarget


def _clamped_log(xp: Any, a: Array) -> Array:
    """max(log a, −100) for a in [0, 1], without the warning of log 0 (BCE1)."""
    positive = a > 0
    return xp.where(positive, xp.maximum(xp.log(xp.where(positive, a, 1)), LOG_FLOOR), LOG_FLOOR)


def _g(op: str, dloss: Any, cache: BinaryCrossEntropyCache) -> Any:
    """g of (RD4), shaped to multiply x."""
    scale = upstream(op, dloss, cache.reduction, tuple(cache.x.shape), cache.x)
    return reduce_backward(scale, cache.reduction, None, cache.x.size)


def binary_cross_entropy(x: Array, target: Array, **options: Any) -> Array:
    """Binary cross-entropy forward alone; see :func:`binary_cross_entropy_forward`."""
    loss, _ = binary_cross_entropy_forward(x, target, **options)
    return loss


def _softplus_of_minus(xp: Any, x: Array) -> Array:
    """softplus(−x) = log(1 + e^(−|x|)) + max(−x, 0), without overflow (BCE5)."""
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)


def binary_cross_entropy_with_logits_forward(
    x: Array,
    target: Array,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    reduction: str = "mean",
) -> tuple[Array, BinaryCrossEntropyCache]:
    """Binary cross-entropy of logits, equations (BCE4), (BCE5), then (RD1)–(RD3).

    Parameters
    ----------
    x : Array (any shape)
        Logits, float32 or float64.
    target : Array (the shape of x)
        Targets (usually in [0, 1]), x's dtype.
    weight : Array or None
        Broadcasts to x; multiplies each ℓ.
    pos_weight : Array or None
        Broadcasts to x (one value per class on the last axis): p of (BCE4), the weight
        of the positive term; > 1 raises recall.
    reduction : str
        "mean", "sum" or "none".

    Returns
    -------
    loss : Array
        () for "mean"/"sum", x's shape for "none"; x's dtype.
    cache : BinaryCrossEntropyCache
        For binary_cross_entropy_with_logits_backward.

    Raises
    ------
    ShapeError, DTypeError, ParameterError
        Shapes that differ or do not broadcast, bad dtypes or reduction.

    Examples
    --------
    >>> import numpy as np
    >>> loss, cache = binary_cross_entropy_with_logits_forward(
    ...     np.array([0.0, 1000.0]), np.array([1.0, 0.0]), reduction="none")
    >>> loss.round(6).tolist()
    [0.693147, 1000.0]
    >>> binary_cross_entropy_with_logits_backward(np.array([1.0, 1.0]), cache)[0]
    array([-0.5,  1. ])
    """
    op = "binary_cross_entropy_with_logits"
    _check(op, x, target, {"weight": weight, "pos_weight": pos_weight})
    reduction = check_reduction(op, reduction)
    xp = get_xp(x)
    softplus = _softplus_of_minus(xp, x)
    if pos_weight is None:
        losses = (1 - target) * x + softplus  # (BCE5) with lw = 1
    else:
        lw = 1 + (pos_weight - 1) * target  # (BCE4)
        losses = (1 - target) * x + lw * softplus  # (BCE5)
    if weight is not None:
        losses = losses * weight
    loss = reduce_forward(losses.astype(x.dtype, copy=False), reduction)
    return loss, BinaryCrossEntropyCache(x, target, weight, pos_weight, reduction)


def binary_cross_entropy_with_logits_backward(
    dloss: Any, cache: BinaryCrossEntropyCache, *, need_dtarget: bool = False
) -> tuple[Array, Array | None]:
    """Binary cross-entropy with logits backward pass, equations (BCE6), (BCE7).

    Parameters
    ----------
    dloss : float or Array
        Gradient with respect to the loss: a scalar, or x's shape for reduction="none".
    cache : BinaryCrossEntropyCache
        From binary_cross_entropy_with_logits_forward.
    need_dtarget : bool
        Also return the target's gradient (BCE7).

    Returns
    -------
    dx : Array (the shape of x)
        (BCE6).
    dtarget : Array (the shape of x) or None
        (BCE7) when asked for.
    """
    x, target, p = cache.x, cache.target, cache.pos_weight
    xp = get_xp(x)
    g = _g("binary_cross_entropy_with_logits_backward", dloss, cache)
    scale = g if cache.weight is None else g * cache.weight
    s = sigmoid(x)  # (A6)
    lw = 1 if p is None else 1 + (p - 1) * target  # (BCE4)
    dx = scale * (lw * s - (target if p is None else p * target))  # (BCE6)
    dtarget = None
    if need_dtarget:
        positive_term = 0 if p is None else (p - 1) * _softplus_of_minus(xp, x)
        dtarget = scale * (positive_term - x)  # (BCE7)
        dtarget = xp.broadcast_to(dtarget, x.shape).astype(x.dtype)
    return xp.broadcast_to(dx, x.shape).astype(x.dtype), dtarget


def binary_cross_entropy_with_logits(x: Array, target: Array, **options: Any) -> Array:
    """Binary cross-entropy with logits forward alone; see its ``_forward``."""
    loss, _ = binary_cross_entropy_with_logits_forward(x, target, **options)
    return loss
