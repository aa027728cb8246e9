"""Targets of the classification losses: checks, and the per-class coefficients a.

Scores x (N, C, d1, …) with the classes on axis 1, or (C,) for one unbatched sample (the
classes on axis 0). A target is either integer class indices t (the shape of x without
its class axis; an index equal to ``ignore_index`` counts for nothing) or class
probabilities (the shape of x). Both losses of functional/classification_loss.py are
ℓ_i = −Σ_c a[i, c]·s[i, c] for some scores s, with the coefficients
  a[i, c] = m_i·w_c·q[i, c],   m_i = [t_i ≠ ignore_index] (1 for probabilities),
  w_c the class weight (1 without ``weight``), and
  q[i, c] = (1 − ε)·[c = t_i] + ε/C     for indices, label smoothing ε
  q[i, c] = (1 − ε)·t[i, c] + ε/C        for probabilities                            (CE6)
"""

from __future__ import annotations

from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional._checks import require_array


def class_axis(x: Array) -> int:
    """1 for batched scores (N, C, …), 0 for one sample (C,)."""
    return 1 if x.ndim >= 2 else 0


def along_classes(a: Array, x_ndim: int) -> Array:
    """(C,) shaped to broadcast along the class axis of an x with ``x_ndim`` axes."""
    shape = [1] * x_ndim
    shape[1 if x_ndim >= 2 else 0] = -1
    return a.reshape(shape)


def with_class_axis(t: Array, x_ndim: int) -> Array:
    """Index targets (x's shape without its class axis) with a class axis of size 1."""
    axis = 1 if x_ndim >= 2 else 0
    return t.reshape((*t.shape[:axis], 1, *t.shape[axis:]))


def check_scores(op: str, name: str, x: Any, weight: Any) -> None:
    require_array(op, name, x)
    if weight is not None:
        require_array(op, "weight", weight)
    check_float_dtype(op, **{name: x, "weight": weight})
    if x.ndim == 0:
        raise ShapeError(
            f"{op}: {name} must hold one score per class; expected (C,) or (N, C, …), got a "
            f"0-d array"
        )
    C = x.shape[class_axis(x)]
    if weight is not None and tuple(weight.shape) != (C,):
        raise ShapeError(
            f"{op}: weight must hold one value per class; expected shape (C,)=({C},), got "
            f"{tuple(weight.shape)} ({name}.shape={tuple(x.shape)})"
        )


def is_probability_target(op: str, x: Array, target: Any) -> bool:
    """True for class probabilities (float, x's shape); False for indices (checked later)."""
    require_array(op, "target", target)
    if target.dtype.kind == "f":
        check_float_dtype(op, input=x, target=target)
        if tuple(target.shape) != tuple(x.shape):
            raise ShapeError(
                f"{op}: class probabilities must have the shape of the input; expected "
                f"{tuple(x.shape)}, got {tuple(target.shape)}"
            )
        return True
    return False


def check_indices(op: str, x: Array, target: Array, ignore_index: Any) -> None:
    """Integer targets of x's shape without its class axis, each in [0, C) or ignored."""
    axis = class_axis(x)
    expected = tuple(x.shape[:axis]) + tuple(x.shape[axis + 1 :])
    shapes = f"(input.shape={tuple(x.shape)}, target.shape={tuple(target.shape)})"
    if target.dtype.kind not in "iu":
        raise DTypeError(
            f"{op}: target must be class indices or probabilities; expected an integer or "
            f"float dtype, got {target.dtype} {shapes}"
        )
    if not (isinstance(ignore_index, int) and not isinstance(ignore_index, bool)):
        raise ParameterError(f"{op}: ignore_index must be an int; expected e.g. -100, got "
                             f"{ignore_index!r}")  # fmt: skip
    if tuple(target.shape) != expected:
        raise ShapeError(
            f"{op}: target must hold one class index per position; expected shape {expected}, "
            f"got {tuple(target.shape)} {shapes}"
        )
    C = x.shape[axis]
    xp = get_xp(x, target)
    # Validation only: this reads one bool back from the device (a synchronisation).
    outside = ((target < 0) | (target >= C)) & (target != ignore_index)
    if target.size and bool(xp.any(outside)):
        raise ShapeError(
            f"{op}: target indices must lie in [0, C) for C={C} classes (or equal "
            f"ignore_index={ignore_index}); expected 0 <= target <= {C - 1}, got "
            f"{int(target[outside].ravel()[0])} {shapes}"
        )


def check_smoothing(op: str, label_smoothing: Any) -> float:
    is_real = isinstance(label_smoothing, (int, float)) and not isinstance(label_smoothing, bool)
    if not (is_real and 0.0 <= label_smoothing <= 1.0):
        raise ParameterError(
            f"{op}: label_smoothing moves that share of each target to the uniform "
            f"distribution; expected a number in [0, 1], got {label_smoothing!r}"
        )
    return float(label_smoothing)


def coefficients(
    x: Array,
    target: Array,
    *,
    probabilities: bool,
    weight: Array | None,
    ignore_index: int,
    smoothing: float,
) -> Array:
    """a = m·w·q of (CE6), the shape of x, x's dtype."""
    xp = get_xp(x, target)
    C = x.shape[class_axis(x)]
    if probabilities:
        q = target if smoothing == 0 else target * (1 - smoothing) + smoothing / C  # (CE6)
    else:
        t = with_class_axis(target, x.ndim)  # (N, 1, d…)
        kept = t != ignore_index  # m
        onehot = (t == along_classes(xp.arange(C), x.ndim)) & kept  # [c = t_i]·m_i
        q = onehot.astype(x.dtype)  # (CE6) with ε = 0
        if smoothing:
            q = q * (1 - smoothing) + kept * (smoothing / C)  # (CE6)
    if weight is not None:
        q = q * along_classes(weight, x.ndim)  # w_c
    return q.astype(x.dtype, copy=False)


def index_mean_denominator(x: Array, target: Array, weight: Array | None, ignore_index: int) -> Any:
    """n of (RD3) for index targets: Σ_i m_i·w_{t_i} (an int without weights)."""
    xp = get_xp(x, target)
    kept = target != ignore_index
    if weight is None:
        # reads one number back from the device, next to the validation's
        return int(kept.sum())
    picked = xp.where(kept, target, 0)
    return (weight[picked] * kept).sum()
