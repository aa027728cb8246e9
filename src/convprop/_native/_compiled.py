"""The one place that imports the compiled kernels.

:data:`kernels` holds every compiled function by name, :data:`AVAILABLE` says whether the
extension modules of :data:`MODULES` were built and imported. The family modules of
convprop._native call ``kernels.<name>`` and no other compiled code, so that moving the
kernels between extension modules (one per family: ``convprop._native._im2col``,
``_depthwise``, ``_direct``, ``_pool``, ``_winograd``, ``_bias``, ``_layout``, ``_dft``,
``_bins``, ``_elementwise``, ``_adam``, with the same function names and arguments) is an
edit of :data:`MODULES` alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Any

MODULES: tuple[str, ...] = ("convprop._kernels",)
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
