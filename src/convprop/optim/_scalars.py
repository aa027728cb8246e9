"""Reading and checking the scalar settings of optimizers and schedules.

Scalars arrive from constructors (Python numbers) and from checkpoints (Python numbers or
0-d arrays, as a safetensors round trip returns them). Each reader accepts both, refuses
anything else with a ``ParameterError`` in the library's message format, and returns a
plain Python ``float``, ``int`` or ``bool``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from convprop.backend import to_host
from convprop.errors import ParameterError

Scalar = float | int | bool
"""A hyperparameter or counter as stored in a flat state dict."""


def _unwrap(value: Any) -> Any:
    """Return the Python scalar held by a 0-d array (a checkpoint value); others unchanged."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and tuple(value.shape) == ():
        return to_host(value).item()
    return value


def as_float(owner: str, name: str, value: Any) -> float:
    """Return ``value`` as a float; refuse bools, strings, arrays with elements and NaN.

    Examples
    --------
    >>> as_float("SGD", "lr", 1)
    1.0
    """
    value = _unwrap(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ParameterError(
            f"{owner}: {name} must be a real number; expected a float, "
            f"got {type(value).__name__} {value!r}"
        )
    return float(value)


def as_int(owner: str, name: str, value: Any) -> int:
    """Return ``value`` as an int; integral floats (PyTorch stores step counts so) are accepted."""
    value = _unwrap(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(
            f"{owner}: {name} must be an integer; expected an int, "
            f"got {type(value).__name__} {value!r}"
        )
    return int(value)


def as_bool(owner: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool; only ``True``/``False`` (or 0-d boolean arrays) are accepted."""
    value = _unwrap(value)
    if not isinstance(value, bool):
        raise ParameterError(
            f"{owner}: {name} must be a bool; expected True or False, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def check_at_least(owner: str, name: str, value: float, minimum: float) -> None:
    """Raise unless ``value >= minimum``."""
    if not value >= minimum:
        raise ParameterError(
            f"{owner}: {name} must be >= {minimum}; expected {name} >= {minimum}, got {value!r}"
        )


def check_unit_interval(owner: str, name: str, value: float) -> None:
    """Raise unless ``0 <= value < 1`` (a decay rate such as Adam's betas)."""
    if not 0.0 <= value < 1.0:
        raise ParameterError(
            f"{owner}: {name} must lie in [0, 1); expected 0 <= {name} < 1, got {value!r}"
        )
