"""Matrix products that add into their output: NumPy's own BLAS, called with beta = 1.

``a @ b`` always writes a new array. A sum of products, such as a convolution's weight
gradient taken image by image (I3: dW = Σ_n dY[n] · X_col[n]ᵀ), then costs a stack of N
products and one more pass to add them up. BLAS's gemm does C ← A·B + β·C, so with β = 1
each product adds itself into the sum as it is made: pw1x1's weight gradient (eight products
of 1024 × 196 by 196 × 256) took 0.87 of the stack-and-sum's time, with the same result
bit for bit.

NumPy exposes no such call. This module finds the OpenBLAS library that NumPy itself loaded
(the one NumPy's wheels bundle, ``numpy.libs/libscipy_openblas*``), so that the products run
on NumPy's own BLAS threads, and calls its ``cblas_sgemm``/``cblas_dgemm`` through ctypes.
Where that library is not found (another build of NumPy, another system), or fails the
check made when it is first used, :func:`available` is False and callers keep to ``@``.

Integer arguments are passed as 64-bit values: the library may take 32- or 64-bit
integers (its symbol says which), and on x86-64 and AArch64 either kind is read correctly
from a 64-bit register or stack slot.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

import numpy

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # the CBLAS enumerations
_SYMBOLS = (  # (single, double) in NumPy's wheels (64-bit and 32-bit integers), then plain
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm"),
    ("cblas_sgemm64_", "cblas_dgemm64_"),
)


def _numpy_blas_path() -> str | None:
    """The OpenBLAS shared library NumPy loaded into this process (Linux), if any."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    bundled = os.path.join(site, "numpy.libs")  # where NumPy's wheels put their libraries
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            paths = {line.split(None, 5)[-1].strip() for line in handle if "openblas" in line}
    except OSError:  # not Linux
        return None
    for path in sorted(paths):
        directory, name = os.path.split(path)
        if directory == bundled and name.startswith("libscipy_openblas"):
            return path
    return None


def _bind(function: Any, real: type) -> Any:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    enum = ctypes.c_int
    function.argtypes = [enum, enum, enum, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64]
    function.restype = None
    return function


@functools.lru_cache(maxsize=1)
def _library() -> dict[Any, Any] | None:
    """{dtype: gemm function} for float32 and float64, or None where none is usable."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:  # the 64-bit argument slots assumed below
        return None
    path = _numpy_blas_path()
    if path is None:
        return None
    try:
        library = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
    except OSError:
        return None
    for single, double in _SYMBOLS:
        if hasattr(library, single) and hasattr(library, double):
            functions = {
                numpy.dtype(numpy.float32): _bind(getattr(library, single), ctypes.c_float),
                numpy.dtype(numpy.float64): _bind(getattr(library, double), ctypes.c_double),
            }
            return functions if _passes_check(functions) else None
    return None


def _passes_check(functions: dict[Any, Any]) -> bool:
    """The library's products, with and without a transposed B and with β = 0 and 1, against
    NumPy's on small integer matrices (exact in either precision)."""
    rng = numpy.random.default_rng(0)
    for dtype, function in functions.items():
        a = rng.integers(-3, 4, (5, 7)).astype(dtype)
        b = rng.integers(-3, 4, (7, 3)).astype(dtype)
        c = rng.integers(-3, 4, (5, 3)).astype(dtype)
        expected = a @ b + c
        got = c.copy()
        _call(function, a, b, got, transpose_b=False, beta=1.0)
        bt = numpy.ascontiguousarray(b.T)
        again = numpy.full_like(c, numpy.nan)
        _call(function, a, bt, again, transpose_b=True, beta=0.0)
        if not (numpy.array_equal(got, expected) and numpy.array_equal(again, a @ b)):
            return False
    return True


def _call(function: Any, a: Any, b: Any, c: Any, *, transpose_b: bool, beta: float) -> None:
    M, L = a.shape
    Nc = b.shape[0] if transpose_b else b.shape[1]
    row = a.itemsize
    function(
        _ROW_MAJOR, _NO_TRANS, _TRANS if transpose_b else _NO_TRANS, M, Nc, L,
        1.0, a.ctypes.data, a.strides[0] // row, b.ctypes.data, b.strides[0] // row,
        beta, c.ctypes.data, c.strides[0] // row,
    )  # fmt: skip


def available() -> bool:
    """True when NumPy's BLAS was found and passed its check (``native.disabled()`` turns
    these calls off with the compiled kernels: ``native.add_products``)."""
    return _library() is not None


def _is_matrix(a: Any, dtype: Any) -> bool:
    """A 2-D float NumPy array of ``dtype`` whose rows are contiguous and evenly spaced."""
    return (
        type(a) is numpy.ndarray
        and a.ndim == 2
        and a.dtype == dtype
        and a.dtype in (numpy.float32, numpy.float64)
        and a.flags.aligned
        and (a.shape[1] <= 1 or a.strides[1] == a.itemsize)
        and a.strides[0] % a.itemsize == 0
        and a.strides[0] >= max(1, a.shape[1]) * a.itemsize
    )


def add_products(c: Any, a: Any, b: Any) -> bool:
    """c += Σ_i a[i] · b[i]ᵀ in place, one gemm per i, each adding into c (β = 1).

    Parameters
    ----------
    c : ndarray (M, Nc), written in place
    a : ndarray (I, M, L)
    b : ndarray (I, Nc, L)

    Returns
    -------
    bool
        False, with ``c`` untouched, where the call cannot be made (no usable BLAS, other
        array types or layouts, a read-only ``c``, or ``c`` sharing memory with ``a`` or
        ``b``): the caller then adds the products itself.
    """
    functions = _library()
    if functions is None or a.ndim != 3 or b.ndim != 3:
        return False
    function = functions.get(c.dtype)
    if function is None or not _is_matrix(c, c.dtype) or not c.flags.writeable:
        return False
    if numpy.may_share_memory(c, a) or numpy.may_share_memory(c, b):
        return False  # gemm would read what it has already written
    M, Nc = c.shape
    if a.shape[:2] != (len(b), M) or b.shape[1:] != (Nc, a.shape[2]):
        raise ValueError(
            f"add_products: expected c (M, Nc), a (I, M, L) and b (I, Nc, L); got c "
            f"{c.shape}, a {a.shape}, b {b.shape}"
        )
    pairs = [(a[i], b[i]) for i in range(len(a))]
    if min(M, Nc, a.shape[2]) == 0 or not all(
        _is_matrix(x, c.dtype) and _is_matrix(y, c.dtype) for x, y in pairs
    ):
        return False
    for x, y in pairs:
        _call(function, x, y, c, transpose_b=True, beta=1.0)
    return True
