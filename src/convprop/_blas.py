"""Matrix products that add into their output: NumPy's own BLAS, called with β = 1.

``a @ b`` always writes a new array. A sum of products, such as a convolution's weight
gradient taken image by image (I3: dW = Σ_n dY[n] · X_col[n]ᵀ), then costs a stack of N
products and one more pass to add them up. BLAS's gemm does C ← A·B + β·C, so with β = 1
each product adds itself into the sum as it is made: pw1x1's weight gradient (eight products
of 1024 × 196 by 196 × 256) took 0.87 of the stack-and-sum's time.

Which library. NumPy exposes no such call. threadpoolctl lists the BLAS libraries loaded in
the process, each with a ctypes handle; the OpenBLAS among them that NumPy's own
distribution installed (its file list, ``importlib.metadata.files("numpy")``: the wheels
bundle ``numpy.libs/libscipy_openblas*``) is the one NumPy's ``@`` runs on. Its
``cblas_sgemm``/``cblas_dgemm`` (CBLAS's documented signature) are called through that handle,
under the names OpenBLAS builds export (threadpoolctl's affixes: ``scipy_`` before, ``64_``
after in NumPy's wheels), with 64- or 32-bit integers as the library's
``openblas_get_config()`` says (``USE64BITINT``). Where no such library is found (a NumPy
built on another BLAS), or it fails the check made when it is first used, :func:`available`
is False and callers keep to ``@``.

Why not SciPy's wrappers (``scipy.linalg.blas.sgemm`` with ``beta`` and ``overwrite_c``;
measured in docs/performance.md, "Threads and BLAS"): they run on the OpenBLAS that SciPy's
wheels bundle, a second library with a second team of threads beside NumPy's. A convolution's
backward pass alternates the two (``@`` for dx, gemm for dW), and each team's idle threads
spin on the CPUs the other needs.

Rounding. Each product is added into c by BLAS, in BLAS's order of additions: the result
equals NumPy's stack-and-sum within float rounding, not bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import itertools
import os
from typing import Any

import numpy

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # the CBLAS enumerations
_PREFIXES, _SUFFIXES = ("", "scipy_"), ("", "64_", "_64")  # as threadpoolctl tries them
_GEMMS = ("cblas_sgemm", "cblas_dgemm")  # CBLAS's names, single and double precision


@functools.lru_cache(maxsize=1)
def _numpy_files() -> frozenset[str]:
    """The real paths of the BLAS libraries NumPy's distribution installed (may be none)."""
    try:
        files = importlib.metadata.files("numpy") or []
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - unusual installs
        return frozenset()
    return frozenset(os.path.realpath(str(f.locate())) for f in files if "blas" in f.name.lower())


def _numpy_openblas() -> Any | None:
    """threadpoolctl's controller of the OpenBLAS that NumPy's distribution installed and
    this process loaded, or None."""
    import threadpoolctl

    ours = _numpy_files()
    controllers = threadpoolctl.ThreadpoolController().select(internal_api="openblas")
    for controller in controllers.lib_controllers:
        if os.path.realpath(controller.filepath) in ours:
            return controller
    return None


def _function(library: Any, name: str) -> Any | None:
    """A fresh ctypes function object for ``name`` (threadpoolctl's handle keeps the objects
    that attribute access returns; their argument types are left as it set them), or None."""
    try:
        return library[name]
    except AttributeError:
        return None


def _affixes(library: Any) -> tuple[str, str] | None:
    """The (prefix, suffix) around the names this OpenBLAS build exports, found on
    ``openblas_get_config`` (threadpoolctl finds them the same way), or None."""
    for prefix, suffix in itertools.product(_PREFIXES, _SUFFIXES):
        if _function(library, f"{prefix}openblas_get_config{suffix}") is not None:
            return prefix, suffix
    return None


def _bind(function: Any, real: type, integer: type) -> Any:
    enum, ptr = ctypes.c_int, ctypes.c_void_p
    function.argtypes = [
        enum, enum, enum, integer, integer, integer, real, ptr, integer, ptr, integer, real,
        ptr, integer,
    ]  # fmt: skip
    function.restype = None
    return function


@functools.lru_cache(maxsize=1)
def _library() -> dict[Any, Any] | None:
    """{dtype: gemm function} for float32 and float64, or None where none is usable."""
    controller = _numpy_openblas()
    if controller is None:
        return None
    library = controller.dynlib
    affixes = _affixes(library)
    if affixes is None:
        return None
    prefix, suffix = affixes
    config = _function(library, f"{prefix}openblas_get_config{suffix}")
    if config is None:  # pragma: no cover - _affixes found it
        return None
    config.restype = ctypes.c_char_p
    integer = ctypes.c_int64 if b"USE64BITINT" in (config() or b"") else ctypes.c_int32
    single, double = (_function(library, f"{prefix}{name}{suffix}") for name in _GEMMS)
    if single is None or double is None:  # a build without CBLAS
        return None
    functions = {
        numpy.dtype(numpy.float32): _bind(single, ctypes.c_float, integer),
        numpy.dtype(numpy.float64): _bind(double, ctypes.c_double, integer),
    }
    return functions if _passes_check(functions) else None


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
    """True when NumPy's own OpenBLAS was found and passed its check (``native.disabled()``
    turns these calls off with the compiled kernels: ``native.add_products``)."""
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
        True when the sum was added into ``c`` (equal to NumPy's stack-and-sum within float
        rounding: the order of additions is BLAS's). False, with ``c`` untouched, where the
        call cannot be made (no usable BLAS, other array types or layouts, a read-only
        ``c``, or ``c`` sharing memory with ``a`` or ``b``): the caller then adds the
        products itself.

    Raises
    ------
    ValueError
        If the shapes do not fit together, naming all three.
    """
    functions = _library()
    if functions is None or getattr(a, "ndim", 0) != 3 or getattr(b, "ndim", 0) != 3:
        return False
    function = functions.get(getattr(c, "dtype", None))
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
