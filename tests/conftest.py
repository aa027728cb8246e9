"""Shared fixtures: the array module (``xp``) every backend-parity test runs on."""

from __future__ import annotations

from types import ModuleType

import numpy
import pytest

from convprop.backend import cupy_available

_CUPY = pytest.param(
    "cupy",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(
            not cupy_available(), reason="CuPy with a visible NVIDIA GPU is not available"
        ),
    ],
    id="cupy",
)


@pytest.fixture(params=[pytest.param("numpy", id="numpy"), _CUPY])
def xp(request: pytest.FixtureRequest) -> ModuleType:
    """The array module under test: numpy always, cupy where a GPU is present.

    Inputs are still drawn on the host from fixed seeds; tests move them with
    ``xp.asarray`` and bring results back with ``convprop.backend.to_host``.
    """
    if request.param == "numpy":
        return numpy
    import cupy  # pragma: no cover - needs a GPU

    return cupy  # type: ignore[no-any-return]  # pragma: no cover
