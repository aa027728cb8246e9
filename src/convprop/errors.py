"""The exceptions convprop raises for bad input.

Every message follows one format, so that a user can fix the call from the message alone::

    <op>: <what is wrong>; expected <rule or value>, got <value> (<full shapes>)
"""

from __future__ import annotations


class ShapeError(ValueError):
    """An array has the wrong rank or size, or shapes do not fit together."""


class ParameterError(ValueError):
    """A hyperparameter (stride, padding, dilation, groups, algorithm, ...) is invalid."""


class DTypeError(TypeError):
    """An array has an unsupported dtype, or arrays that must share a dtype do not."""


class BackendError(TypeError):
    """Arrays from different array modules (NumPy and CuPy) were mixed in one call."""
