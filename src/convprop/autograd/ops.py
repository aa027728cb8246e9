"""The Tensor operators and methods: each runs a pair of convprop.functional and records it.

No derivative is written here: every ``backward`` below only calls the pair's hand-written
``NAME_backward`` (equations AR, MM, RS, TR, IX, CAT, ST, SUM, MEAN of docs/derivations.md).
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from convprop.autograd.tensor import Tensor, as_array, record
from convprop.errors import ParameterError
from convprop.functional import arithmetic, join, reduction, view
from convprop.functional import matmul as matmul_pair


def _operands(a: Any, b: Any) -> tuple[Any, Any]:
    """Arrays for a binary op: a Python number takes the dtype of the other operand."""
    like = a.data if isinstance(a, Tensor) else b.data
    return as_array(a, like), as_array(b, like)


def _binary(name: str, labels: str, pair: Any, a: Any, b: Any) -> Tensor:
    forward, backward = pair
    a_array, b_array = _operands(a, b)
    y, cache = forward(a_array, b_array)
    return record(name, labels, y, cache, (a, b), lambda dy, c, needs: backward(dy, c))


def add(a: Any, b: Any) -> Tensor:
    """a + b with broadcasting (AR1, AR2); where nothing is broadcast (a residual sum) the
    backward hands dy on to both operands instead of two copies (GR2)."""
    pair = (arithmetic.add_forward, arithmetic.add_backward_passed_on)
    return _binary("add", "AR2", pair, a, b)


def sub(a: Any, b: Any) -> Tensor:
    """a − b with broadcasting (AR3, AR4)."""
    pair = (arithmetic.sub_forward, arithmetic.sub_backward)
    return _binary("sub", "AR4", pair, a, b)


def mul(a: Any, b: Any) -> Tensor:
    """a ⊙ b with broadcasting (AR5, AR6)."""
    pair = (arithmetic.mul_forward, arithmetic.mul_backward)
    return _binary("mul", "AR6", pair, a, b)


def div(a: Any, b: Any) -> Tensor:
    """a / b with broadcasting (AR7, AR8)."""
    pair = (arithmetic.div_forward, arithmetic.div_backward)
    return _binary("div", "AR8", pair, a, b)


def neg(a: Tensor) -> Tensor:
    """−a (AR9, AR10)."""
    y, cache = arithmetic.neg_forward(a.data)
    return record("neg", "AR10", y, cache, (a,), lambda dy, c, n: (arithmetic.neg_backward(dy, c),))


def matmul(a: Any, b: Any) -> Tensor:
    """a @ b (MM1–MM3)."""
    return _binary(
        "matmul", "MM2, MM3", (matmul_pair.matmul_forward, matmul_pair.matmul_backward), a, b
    )


def _unary_view(
    name: str, labels: str, x: Tensor, forward: Any, backward: Any, *args: Any
) -> Tensor:
    y, cache = forward(x.data, *args)
    return record(name, labels, y, cache, (x,), lambda dy, c, n: (backward(dy, c),))


def getitem(x: Tensor, index: Any) -> Tensor:
    """x[index] (IX1, IX2); Tensors inside the index are read as their arrays."""
    if isinstance(index, tuple):
        index = tuple(part.data if isinstance(part, Tensor) else part for part in index)
    elif isinstance(index, Tensor):
        index = index.data
    return _unary_view("getitem", "IX2", x, view.getitem_forward, view.getitem_backward, index)


def _shape_argument(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """x viewed as ``shape`` (RS1, RS2); ``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
    target = _shape_argument(shape)
    return _unary_view("reshape", "RS2", x, view.reshape_forward, view.reshape_backward, target)


def _dim(op: str, dim: Any, ndim: int) -> int:
    size = builtins.max(ndim, 1)
    if not isinstance(dim, int) or isinstance(dim, bool) or not -size <= dim < size:
        raise ParameterError(
            f"{op}: dim out of range; expected an int in [{-size}, {size - 1}], got {dim!r}"
        )
    return dim % size


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Axes start_dim … end_dim merged into one (a reshape: RS1, RS2), as ``torch.flatten``."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    if start > end:
        raise ParameterError(
            f"flatten: start_dim must not come after end_dim; expected start_dim <= end_dim, "
            f"got {start_dim} and {end_dim} (shape={x.shape})"
        )
    merged = math.prod(x.shape[start : end + 1])
    return reshape(x, *x.shape[:start], merged, *x.shape[end + 1 :])


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """A new axis of size 1 at ``dim`` (a reshape)."""
    axis = _dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, *x.shape[:axis], 1, *x.shape[axis:])


def squeeze(x: Tensor, dim: int | None = None) -> Tensor:
    """Drop axes of size 1 (all, or ``dim`` if it has size 1) (a reshape)."""
    if dim is None:
        return reshape(x, *(n for n in x.shape if n != 1))
    axis = _dim("squeeze", dim, x.ndim)
    if x.ndim == 0 or x.shape[axis] != 1:
        return x
    return reshape(x, *x.shape[:axis], *x.shape[axis + 1 :])


def permute(x: Tensor, *dims: Any) -> Tensor:
    """Axes reordered (TR1, TR2)."""
    axes = _shape_argument(dims)
    return _unary_view("permute", "TR2", x, view.permute_forward, view.permute_backward, axes)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Two axes swapped (TR1, TR2)."""
    axes = list(range(x.ndim))
    first, second = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    axes[first], axes[second] = axes[second], axes[first]
    return permute(x, *axes)


def sum(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Σ over ``dim`` (SUM1, SUM2)."""
    y, cache = reduction.sum_forward(x.data, dim, keepdim)
    return record("sum", "SUM2", y, cache, (x,), lambda dy, c, n: (reduction.sum_backward(dy, c),))


def mean(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (MEAN1, MEAN2)."""
    y, cache = reduction.mean_forward(x.data, dim, keepdim)
    backward = reduction.mean_backward
    return record("mean", "MEAN2", y, cache, (x,), lambda dy, c, n: (backward(dy, c),))


def cat(tensors: Any, dim: int = 0) -> Tensor:
    """Concatenate along an existing axis (CAT1, CAT2), as ``torch.cat``.

    Examples
    --------
    >>> import numpy as np, convprop
    >>> a = convprop.tensor(np.ones((1, 2)), requires_grad=True)
    >>> convprop.cat([a, a * 3.0], dim=0).sum().backward()
    >>> a.grad
    array([[4., 4.]])
    """
    tensors = list(tensors)
    y, cache = join.cat_forward([as_array(t) for t in tensors], dim)
    return record(
        "cat", "CAT2", y, cache, tuple(tensors), lambda dy, c, n: join.cat_backward(dy, c)
    )


def stack(tensors: Any, dim: int = 0) -> Tensor:
    """Stack along a new axis (ST1, ST2), as ``torch.stack``."""
    tensors = list(tensors)
    y, cache = join.stack_forward([as_array(t) for t in tensors], dim)
    backward = join.stack_backward
    return record("stack", "ST2", y, cache, tuple(tensors), lambda dy, c, n: backward(dy, c))
