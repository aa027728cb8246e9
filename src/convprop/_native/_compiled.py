"""The one place that imports the compiled kernels.

:data:`kernels` holds every compiled function by name, :data:`AVAILABLE` says whether the
extension modules of :data:`MODULES` were built and imported. The family modules of
convprop._native call ``kernels.<name>`` and no other compiled code, so that moving the
kernels between extension modules (one Cython binding per family, built by setup.py from
``_<family>.pyx``) is an edit of :data:`MODULES` alone. ``_runtime`` (what the bindings
share: argument checks, the worker team) is not listed: it holds no kernel; its team's wait
policy is set here, once, from :func:`convprop.backend.threads_wait_passive`.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Any

from convprop.backend import threads_wait_passive

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


def load(names: tuple[str, ...]) -> tuple[SimpleNamespace, bool]:
    """Every function of the modules ``names`` as one namespace, and whether they imported.

    Raises
    ------
    RuntimeError
        When two modules define a function of the same name (a call would not know which).
    """
    try:
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
if AVAILABLE:
    # how the worker team waits between calls: the library's thread policy (backend)
    importlib.import_module("convprop._native._runtime").set_wait_policy(threads_wait_passive())
