"""Negative log-likelihood and cross-entropy over class scores, with PyTorch's options.

Notation  x (N, C, d1, …) or (C,) for one sample;  i runs over the positions (n, d1, …);
          the coefficients a[i, c] = m_i·w_c·q[i, c] of (CE6) (functional/_class_targets.py)
NLL loss (x holds log-probabilities, e.g. from log_softmax)
  ℓ_i = −Σ_c a[i, c]·x[i, c] = −m_i·w_{t_i}·x[i, t_i]     (q one-hot: ε = 0)           (NLL1)
  L by (RD1)–(RD3), with n = Σ_i m_i·w_{t_i} for the mean: a weighted mean, and the
  ignored positions count for nothing                                                 (NLL2)
  dx[i, c] = −g_i·a[i, c],  g of (RD4)                                                (NLL3)
Cross-entropy (x holds raw scores, logits)
  logp = log_softmax(x) along the class axis (SM3)                                    (CE5)
  ℓ_i = −Σ_c a[i, c]·logp[i, c]   -- for one-hot q without weights, −logp[i, t_i] (CE3) (CE7)
  L by (RD1)–(RD3), with n = Σ_i m_i·w_{t_i} for index targets and the number of
  positions N·d1·… for probability targets (PyTorch's rules)                          (CE8)
  dx[i, c] = g_i·(p[i, c]·Σ_k a[i, k] − a[i, c]),  p = exp(logp)
           -- (SM4) with dlogp = −g·a; one-hot a without weights gives (CE4)          (CE9)
  dtarget[i, c] = −g_i·(1 − ε)·w_c·logp[i, c]   (probability targets only)            (CE10)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import DTypeError, ParameterError
from convprop.functional._class_targets import (
    along_classes,
    check_indices,
    check_scores,
    check_smoothing,
    class_axis,
    coefficients,
    index_mean_denominator,
    is_probability_target,
)
from convprop.functional._loss_reduction import (
    check_reduction,
    reduce_backward,
    reduce_forward,
    upstream,
)
from convprop.functional.softmax_dim import log_softmax_forward


@dataclass(frozen=True, slots=True)
class NllLossCache:
    """What nll_loss_backward needs.

    Fields
    ------
    coefficients : Array (the shape of x)
        a = m·w·onehot(t) (CE6 with ε = 0): x.size elements.
    reduction : str
        "mean", "sum" or "none".
    denominator : int or Array ()
        n of the mean (NLL2).
    loss_shape : tuple[int, ...]
        The shape of ℓ (x's without the class axis).
    """

    coefficients: Array
    reduction: str
    denominator: Any
    loss_shape: tuple[int, ...]


def nll_loss_forward(
    x: Array,
    target: Array,
    *,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> tuple[Array, NllLossCache]:
    """Negative log-likelihood forward pass, equations (NLL1), (NLL2).

    Parameters
    ----------
    x : Array (N, C, d1, …) or (C,)
        Log-probabilities, float32 or float64.
    target : Array (N, d1, …) or ()
        Integer class indices in [0, C), or ``ignore_index``.
    weight : Array (C,) or None
        Per-class weights w_c.
    ignore_index : int
        Targets equal to it contribute nothing (also to the mean's denominator).
    reduction : str
        "mean" (weighted, NLL2), "sum" or "none".

    Returns
    -------
    loss : Array
        () for "mean" and "sum", (N, d1, …) for "none"; x's dtype.
    cache : NllLossCache
        For nll_loss_backward.

    Raises
    ------
    ShapeError, DTypeError, ParameterError
        Bad shapes, dtypes, target values or options (the range check of the target reads
        one value back from the device).

    Examples
    --------
    >>> import numpy as np
    >>> logp = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> loss, cache = nll_loss_forward(logp, np.array([0, 1]), reduction="none")
    >>> loss.round(4)
    array([0.6931, 0.2877])
    >>> nll_loss_backward(np.array([1.0, 2.0]), cache)
    array([[-1., -0.],
           [-0., -2.]])
    """
    op = "nll_loss"
    check_scores(op, "input", x, weight)
    reduction = check_reduction(op, reduction)
    if is_probability_target(op, x, target):
        raise DTypeError(
            f"{op}: target must be class indices; expected an integer array, got "
            f"{target.dtype} (cross_entropy takes class probabilities)"
        )
    check_indices(op, x, target, ignore_index)
    a = coefficients(x, target, probabilities=False, weight=weight,
                     ignore_index=ignore_index, smoothing=0.0)  # fmt: skip
    xp = get_xp(x)
    # (NLL1) reads x only where a ≠ 0: a NaN or Inf among the other classes stays out (0·NaN).
    losses = -(a * xp.where(a != 0, x, 0)).sum(axis=class_axis(x))  # (NLL1)
    denominator = index_mean_denominator(x, target, weight, ignore_index)
    loss = reduce_forward(losses, reduction, denominator)  # (NLL2)
    return loss, NllLossCache(a, reduction, denominator, tuple(losses.shape))


def nll_loss_backward(dloss: Any, cache: NllLossCache) -> Array:
    """Negative log-likelihood backward pass, equation (NLL3).

    Parameters
    ----------
    dloss : float or Array
        Gradient with respect to the loss: a scalar, or ℓ's shape for reduction="none".
    cache : NllLossCache
        From nll_loss_forward.

    Returns
    -------
    dx : Array (the shape of x)
        −g·a: nonzero only at each kept position's target class.
    """
    a = cache.coefficients
    scale = upstream("nll_loss_backward", dloss, cache.reduction, cache.loss_shape, a)
    g = reduce_backward(scale, cache.reduction, cache.denominator, math.prod(cache.loss_shape))
    if cache.reduction == "none" and not isinstance(g, float):
        g = _expand_classes(g, a.ndim)
    return -(a * g)  # (NLL3)


def nll_loss(x: Array, target: Array, **options: Any) -> Array:
    """NLL loss forward alone; see :func:`nll_loss_forward`."""
    loss, _ = nll_loss_forward(x, target, **options)
    return loss


def _expand_classes(g: Array, x_ndim: int) -> Array:
    """Per-position g (x's shape without its class axis) with a class axis of size 1."""
    axis = 1 if x_ndim >= 2 else 0
    return g.reshape((*g.shape[:axis], 1, *g.shape[axis:]))


@dataclass(frozen=True, slots=True)
class CrossEntropyCache:
    """What cross_entropy_backward needs.

    Fields
    ------
    log_probs : Array (the shape of x)
        logp (CE5): x.size elements; p = exp(logp) is recomputed in backward.
    coefficients : Array (the shape of x)
        a (CE6): x.size elements.
    reduction : str
        "mean", "sum" or "none".
    denominator : int or Array ()
        n of the mean (CE8).
    loss_shape : tuple[int, ...]
        The shape of ℓ.
    weight : Array (C,) or None
        w (for CE10).
    smoothing : float
        ε.
    probabilities : bool
        Whether the target held probabilities (only they get a gradient, CE10).
    """

    log_probs: Array
    coefficients: Array
    reduction: str
    denominator: Any
    loss_shape: tuple[int, ...]
    weight: Array | None
    smoothing: float
    probabilities: bool


def cross_entropy_forward(
    x: Array,
    target: Array,
    *,
    weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Array, CrossEntropyCache]:
    """Cross-entropy forward pass, equations (CE5)–(CE8).

    Parameters
    ----------
    x : Array (N, C, d1, …) or (C,)
        Logits, float32 or float64.
    target : Array
        Integer class indices (N, d1, …) or () in [0, C) or ``ignore_index``; or class
        probabilities of x's shape and dtype.
    weight : Array (C,) or None
        Per-class weights w_c.
    ignore_index : int
        Index targets equal to it contribute nothing (not allowed with probabilities).
    reduction : str
        "mean" (CE8), "sum" or "none".
    label_smoothing : float
        ε in [0, 1] (CE6).

    Returns
    -------
    loss : Array
        () for "mean" and "sum", (N, d1, …) for "none"; x's dtype.
    cache : CrossEntropyCache
        For cross_entropy_backward.

    Raises
    ------
    ShapeError, DTypeError, ParameterError
        Bad shapes, dtypes, target values or options.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [1000.0, -1000.0]])
    >>> loss, cache = cross_entropy_forward(x, np.array([0, 0]))
    >>> round(float(loss), 6)
    0.346574
    >>> cross_entropy_backward(1.0, cache)[0]
    array([[-0.25,  0.25],
           [ 0.  ,  0.  ]])
    """
    op = "cross_entropy"
    check_scores(op, "input", x, weight)
    reduction = check_reduction(op, reduction)
    smoothing = check_smoothing(op, label_smoothing)
    probabilities = is_probability_target(op, x, target)
    if probabilities and ignore_index != -100:
        raise ParameterError(
            f"{op}: ignore_index applies to class indices; expected the default -100 with "
            f"class probabilities, got {ignore_index!r}"
        )
    if not probabilities:
        check_indices(op, x, target, ignore_index)
    axis = class_axis(x)
    log_probs, _ = log_softmax_forward(x, axis)  # (CE5)
    a = coefficients(x, target, probabilities=probabilities, weight=weight,
                     ignore_index=ignore_index, smoothing=smoothing)  # fmt: skip
    if not probabilities and smoothing == 0:
        # a class index picks one term: the others are absent, not 0·logp (which is NaN where
        # logp = −∞), as PyTorch's −logp[i, t_i]
        log_probs_read = get_xp(x).where(a != 0, log_probs, 0)
    else:
        log_probs_read = log_probs
    losses = -(a * log_probs_read).sum(axis=axis)  # (CE7)
    if probabilities:
        denominator: Any = x.size // x.shape[axis] if x.shape[axis] else 0  # (CE8)
    else:
        denominator = index_mean_denominator(x, target, weight, ignore_index)  # (CE8)
    loss = reduce_forward(losses, reduction, denominator)
    cache = CrossEntropyCache(
        log_probs, a, reduction, denominator, tuple(losses.shape), weight, smoothing,
        probabilities,
    )  # fmt: skip
    return loss, cache


def cross_entropy_backward(
    dloss: Any, cache: CrossEntropyCache, *, need_dtarget: bool = False
) -> tuple[Array, Array | None]:
    """Cross-entropy backward pass, equations (CE9) and (CE10).

    Parameters
    ----------
    dloss : float or Array
        Gradient with respect to the loss: a scalar, or ℓ's shape for reduction="none".
    cache : CrossEntropyCache
        From cross_entropy_forward.
    need_dtarget : bool
        Also return the gradient of probability targets (CE10).

    Returns
    -------
    dx : Array (the shape of x)
        (CE9).
    dtarget : Array (the shape of x) or None
        (CE10) when asked for and the target held probabilities; else None.
    """
    logp, a = cache.log_probs, cache.coefficients
    scale = upstream("cross_entropy_backward", dloss, cache.reduction, cache.loss_shape, logp)
    g = reduce_backward(scale, cache.reduction, cache.denominator, math.prod(cache.loss_shape))
    if cache.reduction == "none" and not isinstance(g, float):
        g = _expand_classes(g, logp.ndim)
    xp = get_xp(logp)
    axis = class_axis(logp)
    total = a.sum(axis=axis, keepdims=True)  # Σ_k a[i, k]
    dx = (xp.exp(logp) * total - a) * g  # (CE9)
    dtarget = None
    if need_dtarget and cache.probabilities:
        weight = cache.weight
        dlogp_weights = logp if weight is None else logp * along_classes(weight, logp.ndim)
        dtarget = dlogp_weights * (-(1 - cache.smoothing)) * g  # (CE10)
    return dx, dtarget


def cross_entropy(x: Array, target: Array, **options: Any) -> Array:
    """Cross-entropy forward alone; see :func:`cross_entropy_forward`."""
    loss, _ = cross_entropy_forward(x, target, **options)
    return loss
