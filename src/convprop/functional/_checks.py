"""Input checks shared by every op: arrays, upstream gradients.

Messages follow the library's format: ``<op>: <what is wrong>; expected ..., got ... (shapes)``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

from convprop._shapes import check_extent as check_extent  # the ops import it from here
from convprop.backend import is_array
from convprop.errors import DTypeError, ParameterError, ShapeError


def require_array(op: str, name: str, value: Any) -> None:
    """Refuse anything that is not an ndarray (lists, scalars, tensors of other libraries)."""
    if not is_array(value):
        kind = f"{type(value).__module__}.{type(value).__name__}"
        hint = ""
        if kind.startswith("torch."):
            hint = "; call .numpy() on it first"
        elif kind.startswith("convprop.autograd"):
            hint = "; pass tensor.data, or call convprop.nn.functional, which records the op"
        raise DTypeError(
            f"{op}: {name} must be a numpy or cupy array; expected an ndarray, "
            f"got {type(value).__name__}{hint}"
        )


def check_upstream(op: str, dy: Any, expected_shape: tuple[int, ...], dtype: Any) -> None:
    """Check that the upstream gradient is an array of the forward output's shape and dtype."""
    require_array(op, "dy", dy)
    if tuple(dy.shape) != tuple(expected_shape):
        raise ShapeError(
            f"{op}: dy.shape={tuple(dy.shape)} does not match the forward output; expected "
            f"{tuple(expected_shape)}, got {tuple(dy.shape)}"
        )
    if dy.dtype != dtype:
        raise DTypeError(
            f"{op}: dy has dtype {dy.dtype}; expected the forward dtype {dtype}, got {dy.dtype} "
            f"(dy.shape={tuple(dy.shape)})"
        )


@functools.lru_cache(maxsize=1)  # asked by every call of the ops that check their output
def memory_limit() -> int:
    """The machine's physical memory in bytes (2**40 where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 2**40


def check_output_size(
    op: str, shape: tuple[int, ...], itemsize: int, shapes: str | Callable[[], str]
) -> None:
    """Refuse an output that could not fit in memory before allocating it. ``shapes``, what
    the message names, may be a function that writes it (asked only for the message).

    Raises
    ------
    ShapeError
        When ``prod(shape) * itemsize`` exceeds the machine's physical memory.
    """
    need = math.prod(int(s) for s in shape) * int(itemsize)
    limit = memory_limit()
    if need > limit:
        named = shapes if isinstance(shapes, str) else shapes()
        raise ShapeError(
            f"{op}: the output {tuple(shape)} would need {need} bytes; expected at most the "
            f"machine's memory, {limit} bytes, got {need} ({named})"
        )


def check_parameter_size(op: str, shapes: tuple[tuple[int, ...], ...], itemsize: int) -> None:
    """Refuse a layer whose parameters and buffers could not fit in memory, before any exists.

    Raises
    ------
    ParameterError
        When the arrays of ``shapes`` together need more bytes than the machine's memory.
    """
    need = sum(math.prod(int(s) for s in shape) for shape in shapes) * int(itemsize)
    limit = memory_limit()
    if need > limit:
        raise ParameterError(
            f"{op}: the parameters {list(shapes)} would need {need} bytes; expected at most the "
            f"machine's memory, {limit} bytes, got {need}"
        )
