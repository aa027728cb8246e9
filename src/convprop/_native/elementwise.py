"""ReLU (A1)-(A3) and the sum of two arrays of one shape (AR1, AR2), compiled: one pass over
the elements.

Notation  x, y, dy, dx (any shape, all of one)  (activation's derivation block)
  y = max(x, 0)                                                                      (A2)
  dx = dy ⊙ f′(x),  f′(x) = 1 if x > 0 else 0                                        (A1), (A3)
The kernels multiply by f′ rather than select, as NumPy's product with the booleans does:
the same bits, NaN and signed zeros included. The sum (a residual connection's, and the
graph's of two gradients of one tensor, GR2) runs on all cores; its backward writes both
gradients in one pass over dy. Their work (``parallel``) counts every array
they stream: two threads took 0.53-0.70 of one thread's time from 0.8 M elements on
(forward and backward, (32, 32, 28, 28) to (128, 16, 32, 32), float32), where counting x
alone kept layers of up to 2 M elements on one thread.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop._native import parallel, twin
from convprop._native._compiled import kernels


@twin(arrays="x")
def relu_forward(x: Any) -> Any:
    """(A2): y = max(x, 0) element by element, as NumPy's maximum (NaN kept, -0 -> +0)."""
    x = numpy.ascontiguousarray(x).reshape(x.shape)  # ascontiguousarray makes a 0-d array 1-d
    y = numpy.empty_like(x)
    parallel(kernels.relu_forward, x.size, 2 * x.size, x, y)  # work: x and y streamed
    return y


def _contiguous(y: Any) -> bool:
    return bool(y.flags.c_contiguous)


@twin(arrays="y", requires=_contiguous)
def relu_in_place(y: Any) -> Any:
    """(A2) written over y itself (a C-contiguous array the caller owns); returns y."""
    parallel(kernels.relu_forward, y.size, 2 * y.size, y, y)  # y read and written
    return y


@twin(arrays="dy, y")
def relu_backward(dy: Any, y: Any) -> Any:
    """(A1), (A3): dx = dy * (y > 0) with y = max(x, 0), the same bits as NumPy's product with
    the booleans."""
    dy, y = numpy.ascontiguousarray(dy).reshape(dy.shape), numpy.ascontiguousarray(y)
    dx = numpy.empty_like(dy)
    parallel(kernels.relu_backward, dy.size, 3 * dy.size, dy, y, dx)  # dy, y and dx streamed
    return dx


def _one_shape(a: Any, b: Any) -> bool:
    """Arrays of one shape and dtype: no broadcasting, nothing to convert."""
    return bool(a.shape == b.shape and a.dtype == b.dtype)


@twin(arrays="a, b", requires=_one_shape)
def add(a: Any, b: Any) -> Any:
    """(AR1): y = a + b for a and b of one shape and dtype, NumPy's sum."""
    a, b = numpy.ascontiguousarray(a).reshape(a.shape), numpy.ascontiguousarray(b)
    y = numpy.empty_like(a)
    parallel(kernels.add_forward, a.size, 3 * a.size, a, b, y)  # a, b and y streamed
    return y


@twin(arrays="dy")
def add_gradients(dy: Any) -> tuple[Any, Any]:
    """(AR2) where a and b have y's shape and dtype: da and db, two fresh copies of dy."""
    dy = numpy.ascontiguousarray(dy).reshape(dy.shape)
    da, db = numpy.empty_like(dy), numpy.empty_like(dy)
    parallel(kernels.add_backward, dy.size, 3 * dy.size, dy, da, db)  # dy, da and db streamed
    return da, db
