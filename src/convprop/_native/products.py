"""Stacks of matrix products: the FFT's per-bin complex products (T2)-(T4), compiled, and
the sums of real products that NumPy's BLAS adds in place (im2col's (I3)).

  bin_products:  y[i] = a[i] @ b[i] for complex stacks, each bin i by one thread
  add_products:  c += sum_i a[i] @ b[i]ᵀ, each product added into c by BLAS (β = 1)
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop import _blas
from convprop._native import parallel, turned_off
from convprop._native._compiled import kernels

_COMPLEX = {
    numpy.dtype(numpy.complex64): numpy.dtype(numpy.float32),
    numpy.dtype(numpy.complex128): numpy.dtype(numpy.float64),
}

MIN_PRODUCT_WORK = 2**20
"""Multiply-adds per product below which :func:`add_products` declines: a call through ctypes
costs a few microseconds, and a stack of small products and one sum cost little more."""


def add_products(c: Any, a: Any, b: Any) -> bool:
    """c += Σ_i a[i] · b[i]ᵀ in place, each product added into c by NumPy's BLAS (β = 1;
    ``convprop._blas``). c (M, Nc), a (I, M, L), b (I, Nc, L).

    Returns False, with ``c`` untouched, where the sum is left to the caller: inside
    ``convprop._native.disabled()``, without a usable BLAS, for other arrays or layouts,
    or for products of fewer than :data:`MIN_PRODUCT_WORK` multiply-adds each. Whether BLAS
    takes the arrays is known only by asking it: this is the one kernel that says whether
    it did the work instead of being chosen beforehand.
    """
    if turned_off() or a.ndim != 3 or c.ndim != 2:
        return False
    if c.shape[0] * c.shape[1] * a.shape[2] < MIN_PRODUCT_WORK:
        return False
    return _blas.add_products(c, a, b)


def _stored(m: Any) -> tuple[Any, int]:
    """A stack of matrices (I, r, c) as the kernel reads it: (the C-contiguous array, 0), or
    (its C-contiguous transpose (I, c, r), 1) where ``m`` is a transposed view of one."""
    if m.flags.c_contiguous and m.flags.aligned:
        return m, 0
    turned = m.transpose(0, 2, 1)
    if turned.flags.c_contiguous and turned.flags.aligned:
        return turned, 1
    return numpy.require(m, requirements=("C", "A")), 0  # a copy, aligned


def bin_products(a: Any, b: Any) -> Any:
    """(T2)-(T4)'s products per frequency bin, ``a @ b`` for complex stacks a (I, M, L) and
    b (I, L, Nc) of one dtype, each bin computed whole by one thread. Either may be a
    transposed view (``x.transpose(0, 2, 1)``) of a C-contiguous stack: it is read in
    place. Returns y (I, M, Nc), C-contiguous; NumPy's values to rounding."""
    I, M, L = a.shape
    Nc = b.shape[2]
    if b.shape[:2] != (I, L) or a.dtype != b.dtype or a.dtype not in _COMPLEX:
        raise ValueError(
            f"bin_products: expected complex stacks (I, M, L) and (I, L, Nc) of one dtype; "
            f"got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    real = _COMPLEX[a.dtype]
    y = numpy.empty((I, M, Nc), dtype=a.dtype)
    if y.size == 0 or L == 0:
        y[...] = 0  # an empty sum
        return y
    a_stored, at = _stored(a)
    b_stored, bt = _stored(b)
    dims = (I, M, L, Nc, at, bt)
    work = 4 * I * M * L * Nc  # real multiply-adds
    parallel(kernels.bin_products, I, work, a_stored.view(real), b_stored.view(real),
             y.view(real), dims)  # fmt: skip
    return y
