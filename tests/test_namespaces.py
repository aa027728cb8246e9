"""Public names stay what they say: a submodule never hides a function of the same name.

Importing ``convprop.functional.NAME`` as a module sets the attribute ``NAME`` of the package,
so a module named like one of the package's functions would replace that function.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import convprop
import convprop.functional
import convprop.nn
import convprop.nn.functional


def _import_every_module() -> None:
    for info in pkgutil.walk_packages(convprop.__path__, "convprop."):
        importlib.import_module(info.name)


@pytest.mark.parametrize(
    "package", [convprop, convprop.functional, convprop.nn], ids=lambda p: p.__name__
)
def test_every_public_name_is_what_it_was_after_every_module_is_imported(
    package: ModuleType,
) -> None:
    before = {name: getattr(package, name) for name in package.__all__}
    _import_every_module()
    for name, value in before.items():
        assert getattr(package, name) is value, f"{package.__name__}.{name} was replaced"


def test_the_functions_of_nn_functional_are_functions() -> None:
    _import_every_module()
    for name in ("conv1d", "conv2d", "conv3d", "relu", "softmax", "cross_entropy", "batch_norm"):
        assert callable(getattr(convprop.nn.functional, name)), name
    assert callable(convprop.functional.softmax)


SUBPACKAGES = {"autograd", "data", "functional", "models", "nn", "optim"}


@pytest.mark.parametrize(
    "package", [convprop, convprop.functional, convprop.nn], ids=lambda p: p.__name__
)
def test_no_public_name_is_a_module_unless_it_is_a_subpackage(package: ModuleType) -> None:
    _import_every_module()
    for name in package.__all__:
        if isinstance(getattr(package, name), ModuleType):
            assert name in SUBPACKAGES, f"{package.__name__}.{name} is a module"
