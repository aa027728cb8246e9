"""The one place that imports the compiled kernels.

:data:`kernels` holds every compiled function by name, :data:`AVAILABLE` says whether the
extension modules of :data:`MODULES` were built and imported. The family modules of
convprop._native call ``kernels.<name>`` and no other compiled code, so that moving the
kernels between extension modules (one Cython binding per family, built by setup.py from
``_<family>.pyx``) is an edit of :data:`MODULES` alone. ``_runtime`` (what the bindings
share: argument checks, the OpenMP runner) is not listed: it holds no kernel.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType, SimpleNamespace
from typing import Any

MODULES: tuple[str, ...] = (
    "convprop._native._im2col",
    "convprop._native._depthwise",
    "convprop._native._direct",
    "convprop._native._pool",
    "convprop._native._winograd",
    "convprop._native._bias",
    "convprop._native._layout",
    "convprop._native._dft",
    "convprop._native._bins",
    "convprop._native._elementwise",
    "convprop._native._adam",
    "convprop._native._batchnorm",
)
"""The extension modules that hold the kernels, all built or none (setup.py)."""


def _functions(module: ModuleType) -> dict[str, Any]:
    """The public functions a module defines itself (not the ones it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    }


SPIN_COUNT = "3000"
"""How many times an idle OpenMP thread of GNU libgomp checks for new work before it sleeps
(``GOMP_SPINCOUNT``; about 0.1 ms on the machines measured), asked for as the kernels load.

libgomp's default (300,000 checks, milliseconds of a busy CPU after every parallel call)
keeps both CPUs of a 2-core machine busy between kernels, where NumPy's OpenBLAS threads and
the next kernel need them: on the conv suite it made forward+backward about 2x slower than
the short spin (docs/performance.md, "The compiled kernels"). libgomp reads the variable
once, when it is loaded, which is when the first extension module below is imported; the
variable is set for that moment only and ``os.environ`` is left as it was. A value in the
environment (``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``) is the user's and is kept; a libgomp
loaded earlier by another library keeps its own setting."""


@contextmanager
def _short_openmp_spin() -> Iterator[None]:
    """``GOMP_SPINCOUNT`` = :data:`SPIN_COUNT` while the block runs, unless the environment
    chose a wait policy; the environment as it was afterwards."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]


def load(names: tuple[str, ...]) -> tuple[SimpleNamespace, bool]:
    """Every function of the modules ``names`` as one namespace, and whether they imported.

    Raises
    ------
    RuntimeError
        When two modules define a function of the same name (a call would not know which).
    """
    try:
        with _short_openmp_spin():
            modules = [importlib.import_module(name) for name in names]
    except ImportError:  # the extensions were not built (no C compiler at install time)
        return SimpleNamespace(), False
    found: dict[str, Any] = {}
    for module in modules:
        for name, function in _functions(module).items():
            if name in found:
                raise RuntimeError(
                    f"convprop._native: two compiled modules define {name!r}; expected one "
                    f"function per name, got {found[name].__module__} and {module.__name__}"
                )
            found[name] = function
    return SimpleNamespace(**found), True


# the compiled functions by name (kernels.im2col, ...); empty where AVAILABLE is False
kernels: Any
AVAILABLE: bool
kernels, AVAILABLE = load(MODULES)
