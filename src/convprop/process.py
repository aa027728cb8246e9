"""Process-wide tuning for programs that run convprop: explicit calls, never made on import.

``import convprop`` leaves the host process as it found it (its environment, its allocator,
its BLAS threads). What follows changes the whole process, so a program asks for it: the
``convprop`` command and the benchmark scripts call :func:`configure_process` as they start,
and a program that trains with convprop may call it too.

- :func:`retain_freed_memory`: glibc's malloc keeps freed blocks for reuse, so the large
  temporaries of every step (columns, spectra, gradients) do not page-fault again each step.
- ``OPENBLAS_THREAD_TIMEOUT`` (:data:`BLAS_THREAD_TIMEOUT`): how long OpenBLAS's idle threads
  spin after a product before they sleep. convprop alternates products with its own compiled
  loops, whose threads then share CPUs with spinning BLAS threads (measured in
  docs/performance.md, "Threads and BLAS"). OpenBLAS reads the variable once, as it loads, and
  NumPy loads it as NumPy is imported, before any of convprop runs: it takes effect only in a
  process that starts with it, so :func:`configure_process` starts the process again with it
  (``restart=True``: ``convprop train``, ``eval`` and ``bench`` and the benchmark scripts, for
  which one more start of the interpreter is small beside the run), or a user exports it.
- :func:`limit_blas_threads`: the BLAS libraries' threads set to the library's thread count
  (``backend.num_threads``), through threadpoolctl; :func:`blas_libraries` lists them.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

from convprop.backend import num_threads

BLAS_THREAD_TIMEOUT = "16"
"""log2 of the CPU cycles an idle OpenBLAS thread spins before it sleeps (OpenBLAS: 4 to 30,
default 28, about 0.1 s; 16 is about 25 µs: the products of one pass still follow each
other within it, while a layer of convprop's own kernels after a Linear layer's product no
longer shares its CPUs with spinning BLAS threads, which made LeNet-5's second convolution
1.8 times as slow with 22, about 1.4 ms; docs/performance.md, "Threads and BLAS")."""

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters


def retain_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks for reuse instead of returning them to the OS.

    Every layer allocates large temporaries (columns, spectra, gradients) on each step. By
    default glibc gives blocks above a few MB straight back to the kernel, so the next step
    pays a page fault for every 4 KiB it touches again; on virtual machines that can double
    an op's time. This raises the mmap threshold to 32 MiB and the trim threshold to 1 GiB
    (process-wide; the resident size then stays near its peak). Returns False (and does
    nothing) where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False  # pragma: no cover - other C libraries
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # pragma: no cover - unusual installs
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        and libc.mallopt(_M_TRIM_THRESHOLD, 2**30)
        and libc.mallopt(_M_TOP_PAD, 64 * 2**20)
    )


def blas_libraries() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process, as threadpoolctl finds them: for each, its
    ``internal_api`` (e.g. "openblas"), ``version``, ``num_threads``, ``filepath`` and
    ``architecture`` (the kernels it runs, e.g. "SkylakeX" or "Haswell"; None where the
    library does not say). NumPy's is loaded with NumPy (``convprop._blas`` calls it too);
    SciPy's, once a program imports ``scipy.linalg``.
    """
    import threadpoolctl

    keys = ("internal_api", "version", "num_threads", "filepath", "architecture")
    return [
        {key: library.get(key) for key in keys}
        for library in threadpoolctl.threadpool_info()
        if library.get("user_api") == "blas"
    ]


def limit_blas_threads(threads: int | None = None) -> Any:
    """Set every loaded BLAS library's thread count to ``threads`` (default: the library's
    own count, ``backend.num_threads()``: ``CONVPROP_NUM_THREADS``, else ``OMP_NUM_THREADS``,
    else the usable CPUs).

    Returns threadpoolctl's ``threadpool_limits`` object: the limits hold until its
    ``restore_original_limits()`` is called, or for a ``with`` block::

        with convprop.process.limit_blas_threads(1):
            ...

    Raises
    ------
    ValueError
        If ``threads`` is not a positive integer.
    """
    import threadpoolctl

    count = num_threads() if threads is None else threads
    if type(count) is not int or count < 1:
        raise ValueError(f"limit_blas_threads: threads; expected an integer >= 1, got {count!r}")
    return threadpoolctl.threadpool_limits(limits=count, user_api="blas")


@dataclass(frozen=True)
class ProcessSettings:
    """What :func:`configure_process` found and did.

    Attributes
    ----------
    retains_freed_memory : bool
        glibc's malloc keeps freed blocks (:func:`retain_freed_memory`).
    blas_thread_timeout : str
        ``OPENBLAS_THREAD_TIMEOUT`` as the process started with it (and OpenBLAS read it), or
        "default" when it started without.
    blas_threads : int or None
        The BLAS thread count set by :func:`limit_blas_threads`, or None when left alone.
    """

    retains_freed_memory: bool
    blas_thread_timeout: str
    blas_threads: int | None


def configure_process(*, restart: bool = False) -> ProcessSettings:
    """Tune this process for running convprop. The ``convprop`` command and the benchmark
    scripts call it as they start; nothing calls it on import.

    1. :func:`retain_freed_memory`.
    2. With ``restart=True``, where the environment does not set ``OPENBLAS_THREAD_TIMEOUT``:
       set it to :data:`BLAS_THREAD_TIMEOUT` and start the process again with the same
       command line (``os.execv`` of ``sys.orig_argv``; the new process finds the variable
       set, so it is started again only once), for NumPy's OpenBLAS reads it only as it
       loads. For entry points whose command line can simply be run again, before they have
       done anything else (a console script just after parsing its arguments). Not on
       Windows, and not once MPI is initialised (``mpi4py.MPI`` imported).
    3. With ``CONVPROP_NUM_THREADS`` set, :func:`limit_blas_threads` to that count.

    Returns
    -------
    ProcessSettings
        What was found and done.
    """
    retains = retain_freed_memory()
    if restart and "OPENBLAS_THREAD_TIMEOUT" not in os.environ and _can_start_again():
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = BLAS_THREAD_TIMEOUT
        _start_again()
    blas_threads = None
    if os.environ.get("CONVPROP_NUM_THREADS", "").strip():
        blas_threads = num_threads()
        limit_blas_threads(blas_threads)
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default")
    return ProcessSettings(retains, timeout, blas_threads)


def _can_start_again() -> bool:
    """A POSIX process with a known interpreter and command line, MPI not yet initialised."""
    return (
        os.name == "posix"
        and bool(sys.executable)
        and bool(sys.orig_argv)
        and "mpi4py.MPI" not in sys.modules
    )


def _start_again() -> None:  # pragma: no cover - replaces the process (tested in a subprocess)
    """Replace this process by a new run of its own command line (``sys.orig_argv``: the
    interpreter's options and ``-m``/``-c`` included), with the environment as it is now."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
