"""Element-wise arithmetic with broadcasting: a + b, a − b, a ⊙ b, a / b, −a.

Notation  a, b arrays whose shapes broadcast (NumPy's rule) to the shape of y
Broadcasting copies each element of a to every position of y that it is paired with, so
it is a linear map; its adjoint adds those copies back up:
  unbroadcast(g, shape) = g summed over the axes that broadcasting added or stretched,
                          reshaped to ``shape``                                      (AR0)
Forward and backward (dy has the shape of y; u(g, a) is short for unbroadcast(g, a.shape))
  y = a + b                                                                            (AR1)
  da = u(dy, a),  db = u(dy, b)                                                        (AR2)
  y = a − b                                                                            (AR3)
  da = u(dy, a),  db = −u(dy, b)                                                       (AR4)
  y = a ⊙ b                                                                            (AR5)
  da = u(dy ⊙ b, a),  db = u(dy ⊙ a, b)                                                (AR6)
  y = a / b                                                                            (AR7)
  da = u(dy / b, a),  db = −u(dy ⊙ a / b², b)                                          (AR8)
  y = −a                                                                               (AR9)
  da = −dy                                                                             (AR10)

(AR6) is the product rule; (AR8) follows from ∂(a/b)/∂b = −a/b². Gradients come back in the
dtype of their input, also where NumPy promoted y (float32 + float64 gives float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop import _native
from convprop._native import elementwise
from convprop.backend import Array, get_xp
from convprop.errors import ShapeError
from convprop.functional._checks import check_upstream, require_array


def _broadcast_shape(op: str, a: Array, b: Array) -> tuple[int, ...]:
    require_array(op, "a", a)
    require_array(op, "b", b)
    xp = get_xp(a, b)
    if a.shape == b.shape:  # nothing to broadcast (a residual sum): no shape arithmetic
        return tuple(a.shape)
    try:
        return tuple(int(v) for v in xp.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise ShapeError(
            f"{op}: the shapes do not broadcast; expected equal sizes or 1 in each trailing "
            f"dimension, got a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}"
        ) from None


def unbroadcast(g: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """Sum ``g`` back to ``shape``: the adjoint of broadcasting ``shape`` to ``g.shape`` (AR0).

    Parameters
    ----------
    g : Array
        A gradient of the broadcast shape.
    shape : tuple of int
        The shape the operand had before broadcasting.
    dtype : dtype
        The operand's dtype; the result is cast to it.

    Returns
    -------
    Array of ``shape`` and ``dtype``, a fresh array.

    Examples
    --------
    >>> import numpy as np
    >>> unbroadcast(np.ones((2, 3)), (3,), np.float64)
    array([2., 2., 2.])
    >>> unbroadcast(np.ones((2, 3)), (2, 1), np.float64)
    array([[3.],
           [3.]])
    """
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, size in enumerate(shape) if size == 1 and g.shape[extra + i] != 1
    )
    summed = g.sum(axis=axes) if axes else g  # (AR0)
    return get_xp(g).array(summed.reshape(shape), dtype=dtype, copy=True)


@dataclass(frozen=True, slots=True)
class AddCache:
    """What add_backward and sub_backward need (shapes only: no array is kept).

    Fields
    ------
    a_shape, b_shape : tuple[int, ...]
        The operands' shapes.
    a_dtype, b_dtype : dtype
        The operands' dtypes.
    y_shape : tuple[int, ...]
        The broadcast shape.
    y_dtype : dtype
    """

    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    a_dtype: Any
    b_dtype: Any
    y_shape: tuple[int, ...]
    y_dtype: Any


def _add_cache(a: Array, b: Array, y: Array) -> AddCache:
    return AddCache(tuple(a.shape), tuple(b.shape), a.dtype, b.dtype, tuple(y.shape), y.dtype)


def add_forward(a: Array, b: Array) -> tuple[Array, AddCache]:
    """y = a + b with broadcasting, equation (AR1).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = add_forward(np.zeros((2, 3)), np.arange(3.0))
    >>> add_backward(np.ones((2, 3)), cache)[1]
    array([2., 2., 2.])
    """
    _broadcast_shape("add", a, b)
    y = add_arrays(a, b)  # (AR1)
    return y, _add_cache(a, b, y)


@_native.accelerated(elementwise.add)
def add_arrays(a: Array, b: Array) -> Array:
    """(AR1) y = a + b with broadcasting, no cache: also the graph's sum of two gradients of
    one tensor (GR2). Compiled, on all cores, where a and b have one shape and dtype."""
    return a + b  # (AR1)


def add_backward(dy: Array, cache: AddCache) -> tuple[Array, Array]:
    """(da, db) of y = a + b, equation (AR2)."""
    check_upstream("add_backward", dy, cache.y_shape, cache.y_dtype)
    if _nothing_broadcast(cache):  # both gradients are dy, copied in one pass
        return _same_gradients(dy)  # (AR2)
    da = unbroadcast(dy, cache.a_shape, cache.a_dtype)  # (AR2)
    db = unbroadcast(dy, cache.b_shape, cache.b_dtype)  # (AR2)
    return da, db


def add_backward_passed_on(dy: Array, cache: AddCache) -> tuple[Array, Array]:
    """(da, db) of y = a + b for the recorded graph: (AR2) without the copies.

    Where a, b and y have one shape and dtype, (AR0) is the identity and both gradients
    *are* dy: this returns dy itself twice, the same array, where :func:`add_backward`
    returns two fresh copies (the op contract). The graph may do so because it never writes
    into a gradient a node may still read (docs/derivations.md, section 20): its sums (GR2)
    are new arrays, a leaf's ``.grad`` is its own array, the gradient given to
    ``backward()`` is copied, and no backward writes into the dy it receives. PyTorch's
    autograd hands the gradient of a sum on in the same way. Otherwise the gradients are
    :func:`add_backward`'s.
    """
    if _nothing_broadcast(cache):
        check_upstream("add_backward", dy, cache.y_shape, cache.y_dtype)
        return dy, dy  # (AR2), (GR2): read by both branches, written by neither
    return add_backward(dy, cache)


def _nothing_broadcast(cache: AddCache) -> bool:
    """a, b and y of one shape and dtype (a residual connection's sum): (AR0) is the
    identity, and both gradients are dy."""
    return cache.a_shape == cache.b_shape == cache.y_shape and (
        cache.a_dtype == cache.b_dtype == cache.y_dtype
    )


@_native.accelerated(elementwise.add_gradients)
def _same_gradients(dy: Array) -> tuple[Array, Array]:
    """(AR2) where nothing was broadcast: da = dy and db = dy, two fresh arrays."""
    xp = get_xp(dy)
    return xp.array(dy, copy=True), xp.array(dy, copy=True)  # (AR2)


def sub_forward(a: Array, b: Array) -> tuple[Array, AddCache]:
    """y = a − b with broadcasting, equation (AR3)."""
    _broadcast_shape("sub", a, b)
    y = a - b  # (AR3)
    return y, _add_cache(a, b, y)


def sub_backward(dy: Array, cache: AddCache) -> tuple[Array, Array]:
    """(da, db) of y = a − b, equation (AR4)."""
    check_upstream("sub_backward", dy, cache.y_shape, cache.y_dtype)
    da = unbroadcast(dy, cache.a_shape, cache.a_dtype)  # (AR4)
    db = -unbroadcast(dy, cache.b_shape, cache.b_dtype)  # (AR4)
    return da, db


@dataclass(frozen=True, slots=True)
class MulCache:
    """What mul_backward and div_backward need.

    Fields
    ------
    a, b : Array
        The operands (references, as given): a.size + b.size elements.
    y_shape : tuple[int, ...]
    y_dtype : dtype
    """

    a: Array
    b: Array
    y_shape: tuple[int, ...]
    y_dtype: Any


def mul_forward(a: Array, b: Array) -> tuple[Array, MulCache]:
    """y = a ⊙ b (element-wise) with broadcasting, equation (AR5).

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = mul_forward(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> mul_backward(np.array([1.0, -1.0]), cache)
    (array([ 3., -4.]), array([ 1., -2.]))
    """
    _broadcast_shape("mul", a, b)
    y = a * b  # (AR5)
    return y, MulCache(a, b, tuple(y.shape), y.dtype)


def mul_backward(dy: Array, cache: MulCache) -> tuple[Array, Array]:
    """(da, db) of y = a ⊙ b, equation (AR6): the product rule."""
    check_upstream("mul_backward", dy, cache.y_shape, cache.y_dtype)
    a, b = cache.a, cache.b
    da = unbroadcast(dy * b, tuple(a.shape), a.dtype)  # (AR6)
    db = unbroadcast(dy * a, tuple(b.shape), b.dtype)  # (AR6)
    return da, db


def div_forward(a: Array, b: Array) -> tuple[Array, MulCache]:
    """y = a / b (element-wise) with broadcasting, equation (AR7)."""
    _broadcast_shape("div", a, b)
    y = a / b  # (AR7)
    return y, MulCache(a, b, tuple(y.shape), y.dtype)


def div_backward(dy: Array, cache: MulCache) -> tuple[Array, Array]:
    """(da, db) of y = a / b, equation (AR8)."""
    check_upstream("div_backward", dy, cache.y_shape, cache.y_dtype)
    a, b = cache.a, cache.b
    da = unbroadcast(dy / b, tuple(a.shape), a.dtype)  # (AR8)
    db = unbroadcast(-(dy * a) / (b * b), tuple(b.shape), b.dtype)  # (AR8)
    return da, db


@dataclass(frozen=True, slots=True)
class NegCache:
    """What neg_backward needs: the shape and dtype of a (no array is kept)."""

    shape: tuple[int, ...]
    dtype: Any


def neg_forward(a: Array) -> tuple[Array, NegCache]:
    """y = −a, equation (AR9)."""
    require_array("neg", "a", a)
    return -a, NegCache(tuple(a.shape), a.dtype)  # (AR9)


def neg_backward(dy: Array, cache: NegCache) -> Array:
    """da = −dy, equation (AR10)."""
    check_upstream("neg_backward", dy, cache.shape, cache.dtype)
    return -dy  # (AR10)
