"""Input checks shared by every op: arrays, upstream gradients.

Messages follow the library's format: ``<op>: <what is wrong>; expected ..., got ... (shapes)``.
"""

from __future__ import annotations

from typing import Any

from convprop.backend import is_array
from convprop.errors import DTypeError, ShapeError


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
