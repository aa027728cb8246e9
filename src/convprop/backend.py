"""The array module: NumPy on the CPU, CuPy on NVIDIA GPUs.

This is the only module that imports CuPy. Every op asks ``get_xp(*arrays)`` for the
module its inputs live in and then calls only ``xp.*``, so one source serves both devices.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any, TypeAlias

import numpy

from convprop.errors import BackendError, DTypeError

Array: TypeAlias = Any
"""A ``numpy.ndarray`` or a ``cupy.ndarray``; shapes are documented where arrays are used."""

SUPPORTED_DTYPES = ("float32", "float64")
_SUPPORTED = frozenset(numpy.dtype(name) for name in SUPPORTED_DTYPES)  # CuPy uses NumPy's dtypes

try:  # CuPy is optional: importing convprop never requires it.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None


def cupy_available() -> bool:
    """Return True when CuPy imports and sees at least one GPU."""
    if _cupy is None:
        return False
    try:
        return int(_cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # pragma: no cover - depends on the machine
        return False


def _module_of(array: Any) -> ModuleType:
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy  # type: ignore[no-any-return]  # pragma: no cover - cupy is untyped
    return numpy


def is_array(value: Any) -> bool:
    """True for a NumPy array or scalar and for a CuPy array; False for anything else
    (lists, numbers, and the tensors of other libraries, which have shapes too)."""
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return True
    return _cupy is not None and isinstance(value, _cupy.ndarray)


def get_xp(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) that all ``arrays`` belong to.

    ``None`` entries are ignored. Mixing NumPy and CuPy arrays is refused rather than
    silently copied between devices.

    Raises
    ------
    BackendError
        If the arrays come from different array modules.

    Examples
    --------
    >>> import numpy as np
    >>> get_xp(np.zeros(2), None).__name__
    'numpy'
    """
    if _cupy is None:  # without CuPy every array is NumPy's: nothing to mix
        return numpy
    modules = {_module_of(a).__name__: _module_of(a) for a in arrays if a is not None}
    if len(modules) > 1:
        raise BackendError(
            "get_xp: arrays from different array modules; expected all numpy or all cupy, "
            f"got {sorted(modules)} (move them with convprop.backend.to_device first)"
        )
    if not modules:
        return numpy
    return next(iter(modules.values()))


def check_float_dtype(op: str, **arrays: Any) -> None:
    """Check that every named array is float32 or float64 and that they all agree.

    Raises
    ------
    DTypeError
        Naming the op, the array and the dtypes that came.
    """
    first = None
    agree = True
    for name, a in arrays.items():
        if a is None:
            continue
        dtype = a.dtype
        if dtype not in _SUPPORTED and dtype.name not in SUPPORTED_DTYPES:  # fast path first
            raise DTypeError(
                f"{op}: {name} has dtype {dtype}; expected float32 or float64, "
                f"got {dtype} ({name}.shape={tuple(a.shape)})"
            )
        if first is None:
            first = dtype
        elif dtype != first:
            agree = False
    if not agree:
        present = {name: a for name, a in arrays.items() if a is not None}
        described = ", ".join(f"{n}: {a.dtype}" for n, a in present.items())
        raise DTypeError(
            f"{op}: arrays must share one dtype; expected all float32 or all float64, "
            f"got {described}"
        )


def to_device(array: Any, device: str) -> Any:
    """Return ``array`` on ``device`` ("cpu" or "cuda"); a no-op when it is already there."""
    if device == "cpu":
        return to_host(array)
    if device == "cuda":
        if _cupy is None:
            raise BackendError("to_device: device 'cuda' needs CuPy; install convprop[gpu]")
        return _cupy.asarray(array)  # pragma: no cover - needs a GPU
    raise ValueError(f"to_device: unknown device; expected 'cpu' or 'cuda', got {device!r}")


def to_host(array: Any) -> numpy.ndarray:
    """Return ``array`` as a NumPy array (copying from the GPU when needed)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)  # type: ignore[no-any-return]  # pragma: no cover - untyped
    return numpy.asarray(array)


def rfft2(xp: ModuleType, a: Any, axes: tuple[int, int]) -> Any:
    """Real 2-D FFT over ``axes``, on all CPU cores for NumPy arrays."""
    if xp is numpy:
        return fft_module(xp).rfft2(a, axes=axes, workers=os.cpu_count())
    return fft_module(xp).rfft2(a, axes=axes)  # pragma: no cover - needs a GPU


def irfft2(xp: ModuleType, a: Any, lengths: tuple[int, int], axes: tuple[int, int]) -> Any:
    """Inverse of :func:`rfft2` with output lengths ``lengths`` along ``axes``."""
    if xp is numpy:
        return fft_module(xp).irfft2(a, s=lengths, axes=axes, workers=os.cpu_count())
    return fft_module(xp).irfft2(a, s=lengths, axes=axes)  # pragma: no cover - needs a GPU


def fft_module(xp: ModuleType) -> ModuleType:
    """Return the FFT module for ``xp``: ``scipy.fft`` (multithreaded) or ``cupyx.scipy.fft``."""
    if xp is numpy:
        import scipy.fft

        return scipy.fft  # type: ignore[no-any-return]  # scipy ships no stubs
    import cupyx.scipy.fft  # pragma: no cover - needs a GPU

    return cupyx.scipy.fft  # type: ignore[no-any-return]  # pragma: no cover - cupy is untyped


def erf(xp: ModuleType, a: Any) -> Any:
    """The error function element-wise, on the device of ``a`` (``scipy.special.erf`` or
    ``cupyx.scipy.special.erf``): NumPy has none, and GELU's exact form needs it."""
    if xp is numpy:
        import scipy.special

        return scipy.special.erf(a)
    import cupyx.scipy.special  # pragma: no cover - needs a GPU

    return cupyx.scipy.special.erf(a)  # pragma: no cover - cupy is untyped


def num_threads() -> int:
    """Threads convprop's compiled kernels split their work over (at least 1): the one thread
    policy of the library. ``CONVPROP_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs
    this process may run on."""
    for name in ("CONVPROP_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return _usable_cpus()


def threads_wait_passive() -> bool:
    """Whether the compiled kernels' idle worker threads sleep as soon as a call ends:
    ``OMP_WAIT_POLICY=passive`` (any case), OpenMP's name for it, read as the kernels load.
    Otherwise (``active`` or unset) a worker watches for the next call for a few milliseconds
    first, most of that time yielding its CPU (convprop._native, src/team.h)."""
    return os.environ.get("OMP_WAIT_POLICY", "").strip().lower() == "passive"


@functools.lru_cache(maxsize=1)  # a system call, asked by every kernel call
def _usable_cpus() -> int:
    """The CPUs this process may run on, read once (and again in a forked child)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_usable_cpus.cache_clear)
