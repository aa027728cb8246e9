"""The reductions of a loss: per-element losses ℓ to the returned value L, and back.

  reduction="none":  L = ℓ                (the shape of ℓ)                            (RD1)
  reduction="sum":   L = Σ ℓ              (a scalar)                                  (RD2)
  reduction="mean":  L = Σ ℓ / n          n = the number of elements of ℓ, or the
                                          op's own denominator (a weight total)       (RD3)
Backward: the gradient of L with respect to each ℓ, g = ∂L/∂ℓ·dL:
  g = dL (an array of ℓ's shape) for "none";  dL for "sum";  dL/n for "mean"          (RD4)
A mean over nothing (n = 0) is NaN, as PyTorch's, without a division warning; its
gradient is 0 (it depends on no input).
"""

from __future__ import annotations

from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import require_array

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op: str, reduction: Any) -> str:
    """Refuse anything but "mean", "sum" and "none"."""
    if reduction not in REDUCTIONS:
        raise ParameterError(
            f"{op}: unknown reduction; expected one of {list(REDUCTIONS)}, got {reduction!r}"
        )
    return str(reduction)


def reduce_forward(losses: Array, reduction: str, denominator: Any = None) -> Array:
    """L from the per-element losses ℓ, equations (RD1)–(RD3).

    ``denominator`` is n of (RD3): an int, a 0-d array (a weight total), or None for the
    number of elements of ``losses``. The result has ``losses``' dtype.
    """
    xp = get_xp(losses)
    if reduction == "none":
        return losses  # (RD1)
    total = losses.sum()  # (RD2)
    if reduction == "sum":
        return xp.asarray(total, dtype=losses.dtype)
    n = losses.size if denominator is None else denominator
    return xp.asarray(_divide(xp, total, n), dtype=losses.dtype)  # (RD3)


def _divide(xp: Any, value: Any, n: Any) -> Any:
    """value / n, NaN for n = 0 (an int n stays a Python number: one rounding, as ``mean``)."""
    if isinstance(n, int):
        return value / n if n else value * float("nan")
    return value / xp.where(n == 0, xp.nan, n)  # 0/NaN is NaN and raises no warning


def upstream(op: str, dloss: Any, reduction: str, shape: tuple[int, ...], like: Array) -> Any:
    """dL as a Python float or an array of ``like``'s dtype: a scalar for "sum"/"mean", an
    array of the per-element shape for "none"."""
    is_number = isinstance(dloss, (int, float)) and not isinstance(dloss, bool)
    if is_number and (reduction != "none" or shape == ()):
        return float(dloss)
    require_array(op, "dloss", dloss)
    get_xp(dloss, like)
    expected = shape if reduction == "none" else ()
    if tuple(dloss.shape) != expected:
        raise ShapeError(
            f"{op}: dloss must have the shape of the loss; expected {expected} for "
            f"reduction={reduction!r}, got {tuple(dloss.shape)}"
        )
    check_float_dtype(op, dloss=dloss)
    return dloss.astype(like.dtype)


def reduce_backward(scale: Any, reduction: str, denominator: Any, size: int) -> Any:
    """g of (RD4) from dL (``scale``): dL, or dL/n for "mean" (n as in reduce_forward).

    A mean over nothing (n = 0) depends on no input: its g is 0, as PyTorch's.
    """
    if reduction != "mean":
        return scale  # (RD4)
    n = size if denominator is None else denominator
    if isinstance(n, int):
        return scale / n if n else scale * 0.0  # (RD4)
    xp = get_xp(n)
    return xp.where(n == 0, 0, scale / xp.where(n == 0, 1, n))  # (RD4)
