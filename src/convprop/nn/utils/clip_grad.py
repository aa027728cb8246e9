"""Gradient clipping: rescale or clamp the parameters' gradients in place (torch.nn.utils).

Notation  g_1 ... g_k the gradients of the k parameters (any shapes, each seen as a vector),
          p the norm type (p > 0, or inf), M = max_norm, v = clip_value
  n_i = ||g_i||_p = (sum_j |g_i[j]|^p)^(1/p),   max_j |g_i[j]| for p = inf          (CLIP1)
  n   = ||(n_1, ..., n_k)||_p                    the total norm                      (CLIP2)
  c   = min(M / (n + 1e-6), 1)                                                      (CLIP3)
  g_i <- c * g_i                                 every gradient, also when c = 1     (CLIP4)
  g_i <- min(max(g_i, -v), v)                    clip_grad_value_, element-wise      (CLIP5)

(CLIP2) is the p-norm of all gradients concatenated into one vector, since
(sum_i n_i^p)^(1/p) = (sum_i sum_j |g_i[j]|^p)^(1/p) (and a max of maxima is the maximum).
These are PyTorch's operations in PyTorch's order: the norms are computed in the gradients'
dtype, the 1e-6 keeps (CLIP3) finite for zero gradients, and the multiplication by c is done
even when c = 1, so that no branch depends on a device value. Gradients of ``None`` (plain
Tensors that received none) are skipped; a Parameter always has one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy

from convprop.autograd.tensor import Tensor
from convprop.backend import Array, get_xp
from convprop.errors import ParameterError

TensorOrTensors = Tensor | Iterable[Tensor]


def _tensor_list(op: str, parameters: Any) -> list[Tensor]:
    """``parameters`` as a list: one Tensor, or an iterable of Tensors (a generator once)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        listed = list(parameters)
    except TypeError:
        raise TypeError(
            f"{op}: parameters must be a Tensor or an iterable of Tensors; expected e.g. "
            f"model.parameters(), got {type(parameters).__name__}"
        ) from None
    for i, item in enumerate(listed):
        if not isinstance(item, Tensor):
            raise TypeError(
                f"{op}: parameters[{i}] is not a Tensor; expected a Parameter or Tensor, "
                f"got {type(item).__name__}"
            )
    return listed


def _real(op: str, name: str, value: Any) -> float:
    """A finite or infinite real number >= 0 (bools, NaN and negatives are refused)."""
    number = float(value) if isinstance(value, numbers.Real) else math.nan
    if isinstance(value, bool) or not number >= 0:
        raise ParameterError(
            f"{op}: {name} must be a number >= 0; expected {name} >= 0, got {value!r}"
        )
    return number


def _norm_type(op: str, norm_type: Any) -> float:
    """p > 0 or inf (``"inf"`` is accepted, as PyTorch's float('inf') of it)."""
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(norm_type, bool) or not p > 0:
        raise ParameterError(
            f"{op}: norm_type must be a positive number or inf; expected p > 0, got {norm_type!r}"
        )
    return p


def _vector_norm(g: Array, p: float) -> Array:
    """||g||_p of all elements of ``g`` as a 0-d array of g's dtype (CLIP1)."""
    xp = get_xp(g)
    if g.size == 0:
        return xp.zeros((), dtype=g.dtype)
    magnitude = xp.abs(g)
    if p == math.inf:
        return magnitude.max()  # (CLIP1) the largest entry
    if p == 1:
        return magnitude.sum()  # (CLIP1)
    if p == 2:
        return xp.sqrt(xp.sum(magnitude * magnitude))  # (CLIP1)
    return xp.sum(magnitude**p) ** (1.0 / p)  # (CLIP1)


def _gradients(tensors: list[Tensor]) -> list[Array]:
    return [t.grad for t in tensors if t.grad is not None]


def get_total_norm(
    tensors: TensorOrTensors | Iterable[Array],
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """The p-norm of the given arrays taken together as one vector, (CLIP1)-(CLIP2).

    Parameters
    ----------
    tensors : Tensor, array, or iterable of them
        The values whose norm is wanted (e.g. the gradients ``[p.grad for p in ...]``).
    norm_type : float, default 2.0
        p > 0, or ``inf`` (also the string ``"inf"``) for the largest absolute value.
    error_if_nonfinite : bool, default False
        Raise RuntimeError when the norm is NaN or infinite.

    Returns
    -------
    Tensor
        0-d, in the arrays' (promoted) dtype; float32 zero when ``tensors`` is empty.

    Raises
    ------
    ParameterError
        For a norm type that is not a positive number.
    RuntimeError
        With ``error_if_nonfinite`` and a non-finite norm.

    Examples
    --------
    >>> import numpy as np
    >>> get_total_norm([np.array([3.0]), np.array([[4.0]])]).item()
    5.0
    """
    op = "get_total_norm"
    p = _norm_type(op, norm_type)
    items = [tensors] if isinstance(tensors, Tensor) or hasattr(tensors, "shape") else tensors
    arrays = [item.data if isinstance(item, Tensor) else item for item in items]
    return Tensor(_total_norm(op, arrays, p, bool(error_if_nonfinite)))


def _total_norm(op: str, arrays: list[Array], p: float, error_if_nonfinite: bool) -> Array:
    if not arrays:
        return numpy.zeros((), dtype=numpy.float32)  # PyTorch's torch.tensor(0.0)
    xp = get_xp(*arrays)
    # Inf and NaN gradients give an inf or NaN norm silently, as in PyTorch.
    with numpy.errstate(over="ignore", invalid="ignore"):
        norms = [_vector_norm(a, p) for a in arrays]  # (CLIP1) one 0-d array per parameter
        total = xp.asarray(_vector_norm(xp.stack(norms), p))  # (CLIP2) stack promotes dtypes
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"{op}: the total norm of order {p} of the gradients is non-finite, so it cannot "
            f"be clipped; expected a finite norm, got {float(total)} ({len(arrays)} gradients); "
            "pass error_if_nonfinite=False to scale by it anyway"
        )
    return total


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float, total_norm: Any) -> None:
    """Scale every gradient by min(max_norm / (total_norm + 1e-6), 1), in place (CLIP3)-(CLIP4).

    Parameters
    ----------
    parameters : Tensor or iterable of Tensors
        Their ``.grad`` arrays are multiplied in place (``None`` gradients are skipped).
    max_norm : float
        M >= 0.
    total_norm : Tensor or 0-d array
        The norm n of (CLIP2), e.g. from ``get_total_norm``.

    Raises
    ------
    ParameterError
        For a negative or NaN ``max_norm``.
    TypeError
        If ``parameters`` holds something other than Tensors.
    """
    op = "clip_grads_with_norm_"
    grads = _gradients(_tensor_list(op, parameters))
    _scale(grads, _real(op, "max_norm", max_norm), total_norm)


def _scale(grads: list[Array], max_norm: float, total_norm: Any) -> None:
    if not grads:
        return
    total = total_norm.data if isinstance(total_norm, Tensor) else total_norm
    xp = get_xp(total)
    # A Python float next to a 0-d array takes the array's dtype (NumPy 2, as in PyTorch).
    with numpy.errstate(divide="ignore", invalid="ignore"):  # inf * 0 is NaN, as in PyTorch
        coefficient = xp.minimum(max_norm / (total + 1e-6), 1.0)  # (CLIP3)
        for grad in grads:
            grad *= coefficient.astype(grad.dtype)  # (CLIP4) in place, also for c = 1


def clip_grad_norm_(
    parameters: TensorOrTensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Rescale the gradients so that their total norm is at most ``max_norm``, (CLIP1)-(CLIP4).

    Call it between ``loss.backward()`` and ``optimizer.step()``.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensors
        Usually ``model.parameters()``; their ``.grad`` arrays are modified in place.
    max_norm : float
        M >= 0, the largest total norm left after clipping.
    norm_type : float, default 2.0
        p > 0, or ``inf`` (``"inf"``) for the largest absolute entry.
    error_if_nonfinite : bool, default False
        Raise RuntimeError (and leave the gradients unchanged) when the total norm is NaN
        or infinite; by default they are scaled by it anyway (an infinite norm zeroes them,
        a NaN makes them NaN), as in PyTorch.

    Returns
    -------
    Tensor
        0-d: the total norm n of the gradients *before* clipping, in their dtype.

    Raises
    ------
    ParameterError
        For a negative or NaN ``max_norm`` or a norm type that is not a positive number.
    TypeError
        If ``parameters`` holds something other than Tensors.
    RuntimeError
        With ``error_if_nonfinite`` and a non-finite total norm.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> w = Parameter(np.zeros(2))
    >>> w.grad[...] = [3.0, 4.0]
    >>> clip_grad_norm_([w], max_norm=1.0).item()
    5.0
    >>> np.round(w.grad, 6)
    array([0.6, 0.8])
    """
    op = "clip_grad_norm_"
    tensors = _tensor_list(op, parameters)
    max_norm = _real(op, "max_norm", max_norm)
    p = _norm_type(op, norm_type)
    grads = _gradients(tensors)
    total = _total_norm(op, grads, p, bool(error_if_nonfinite))
    _scale(grads, max_norm, total)
    return Tensor(total)


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float) -> None:
    """Clamp every gradient entry into [-clip_value, clip_value], in place (CLIP5).

    Parameters
    ----------
    parameters : Tensor or iterable of Tensors
        Their ``.grad`` arrays are clamped in place (``None`` gradients are skipped).
    clip_value : float
        v >= 0.

    Raises
    ------
    ParameterError
        For a negative or NaN ``clip_value``.
    TypeError
        If ``parameters`` holds something other than Tensors.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> w = Parameter(np.zeros(3))
    >>> w.grad[...] = [-2.0, 0.5, 3.0]
    >>> clip_grad_value_(w, 1.0)
    >>> w.grad
    array([-1. ,  0.5,  1. ])
    """
    op = "clip_grad_value_"
    grads = _gradients(_tensor_list(op, parameters))
    v = _real(op, "clip_value", clip_value)
    for grad in grads:
        xp = get_xp(grad)
        xp.clip(grad, -v, v, out=grad)  # (CLIP5) NaN stays NaN, as in PyTorch's clamp
