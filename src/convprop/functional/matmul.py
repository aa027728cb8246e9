"""Matrix product with NumPy's ``@`` rules (batched, broadcasting leading dimensions).

Notation  a (..., I, J)  b (..., J, L)  y (..., I, L); a 1-D a is a row (1, J), a 1-D b a
column (J, 1), and the added axis is dropped from y, as NumPy and PyTorch do.
Forward
  y[..., i, l] = Σ_j a[..., i, j] · b[..., j, l]                                      (MM1)
Backward  (dy has the shape of y)
  da = dy · bᵀ   (summed over the leading axes a was broadcast along, (AR0))           (MM2)
  db = aᵀ · dy   (likewise)                                                           (MM3)
(MM2) and (MM3) are the matrix-product derivative that also gives im2col's (I3), (I4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.arithmetic import unbroadcast


@dataclass(frozen=True, slots=True)
class MatmulCache:
    """What matmul_backward needs.

    Fields
    ------
    a, b : Array
        The operands, 1-D ones already viewed as a row or a column (references).
    a_shape, b_shape : tuple[int, ...]
        The operands' shapes as given.
    y_shape : tuple[int, ...]
        The output's shape as returned.
    y_dtype : dtype
    """

    a: Array
    b: Array
    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    y_dtype: Any


def matmul_forward(a: Array, b: Array) -> tuple[Array, MatmulCache]:
    """y = a @ b, equation (MM1).

    Raises
    ------
    ShapeError
        A 0-d operand, inner sizes that differ, or leading axes that do not broadcast.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 1))
    >>> y, cache = matmul_forward(a, b)
    >>> y.ravel().tolist()
    [3.0, 12.0]
    >>> [g.shape for g in matmul_backward(np.ones((2, 1)), cache)]
    [(2, 3), (3, 1)]
    """
    require_array("matmul", "a", a)
    require_array("matmul", "b", b)
    xp = get_xp(a, b)
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ShapeError(
            f"matmul: the operands do not fit; expected a (..., I, J) and b (..., J, L) with "
            f"the same J, got a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}"
        )
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    try:
        xp.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ShapeError(
            f"matmul: the leading (batch) axes do not broadcast; expected equal sizes or 1, "
            f"got a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}"
        ) from None
    y = a2 @ b2  # (MM1)
    if b.ndim == 1:
        y = y[..., 0]
    if a.ndim == 1:
        y = y[..., 0, :] if b.ndim > 1 else y[..., 0]
    cache = MatmulCache(a2, b2, tuple(a.shape), tuple(b.shape), tuple(y.shape), y.dtype)
    return y, cache


def matmul_backward(dy: Array, cache: MatmulCache) -> tuple[Array, Array]:
    """(da, db) of y = a @ b, equations (MM2) and (MM3)."""
    check_upstream("matmul_backward", dy, cache.y_shape, cache.y_dtype)
    a2, b2 = cache.a, cache.b
    batch = get_xp(dy).broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    dy2 = dy.reshape((*batch, a2.shape[-2], b2.shape[-1]))  # the dropped axes back
    da = unbroadcast(dy2 @ b2.swapaxes(-1, -2), tuple(a2.shape), a2.dtype)  # (MM2)
    db = unbroadcast(a2.swapaxes(-1, -2) @ dy2, tuple(b2.shape), b2.dtype)  # (MM3)
    return da.reshape(cache.a_shape), db.reshape(cache.b_shape)
