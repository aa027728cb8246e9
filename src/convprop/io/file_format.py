"""The safetensors container convprop writes, and the checks every reader makes.

A model file and a checkpoint are each one safetensors file: tensors by name, and a
metadata table (str -> str) whose entries ``format`` and ``version`` name the kind of file,
the others holding JSON. Files are read with safetensors alone (no code runs on loading);
the header is checked before any tensor is read, each JSON entry's nesting depth is bounded
(``MAX_DEPTH``), and stored weights must match the model's keys, shapes and dtypes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy
import safetensors

from convprop.backend import Array, to_host
from convprop.io.atomic import PathLike
from convprop.nn.module import Module

__all__ = ["CHECKPOINT_FORMAT", "MAX_DEPTH", "MODEL_FORMAT", "VERSION", "ModelFileError"]

MODEL_FORMAT = "convprop-model"
CHECKPOINT_FORMAT = "convprop-checkpoint"
VERSION = "1"


class ModelFileError(ValueError):
    """A model file or checkpoint cannot be read, or does not fit the model it is loaded into."""


MAX_DEPTH = 200
"""The deepest JSON nesting a file's metadata entry may have (an architecture of Sequentials
takes two levels per module level, so about 100 nested containers)."""


def _json_depth(value: Any) -> int:
    """The nesting depth of JSON data (0 for a scalar), counted without recursion; stops
    counting once past ``MAX_DEPTH``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _product(values: tuple[int, ...]) -> int:
    result = 1
    for value in values:
        result *= max(int(value), 0)
    return result


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read(
    path: PathLike,
    *,
    with_tensors: bool = True,
    check: Callable[[str, dict[str, str], int], None] | None = None,
) -> tuple[str, dict[str, str], dict[str, numpy.ndarray]]:
    """Return (path as str, metadata, tensors) of a safetensors file (no tensors if not asked).

    ``check(path, metadata, stored_elements)`` runs on the header alone, before any tensor
    is read (``stored_elements``: the number of elements the file's tensors hold).
    """
    filename = os.fspath(path)
    try:
        with safetensors.safe_open(filename, framework="numpy") as handle:
            header = handle.metadata() or {}
            keys = handle.keys() if with_tensors or check is not None else []
            if check is not None:
                stored = sum(_product(tuple(handle.get_slice(k).get_shape())) for k in keys)
                check(filename, header, stored)
            tensors = {key: handle.get_tensor(key) for key in keys} if with_tensors else {}
    except (safetensors.SafetensorError, ValueError, TypeError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(
            f"{filename}: not a readable safetensors file; expected a file written by "
            f"convprop.io, got an error reading it ({error})"
        ) from error
    return filename, header, tensors


def _check_format(filename: str, header: dict[str, str], formats: tuple[str, ...]) -> str:
    if "format" not in header:
        raise ModelFileError(
            f"{filename}: no convprop metadata; expected a 'format' entry in {list(formats)}, "
            f"got the metadata keys {sorted(header)}"
        )
    if header["format"] not in formats:
        raise ModelFileError(
            f"{filename}: wrong file format; expected one of {list(formats)}, "
            f"got {header['format']!r}"
        )
    if header.get("version") != VERSION:
        raise ModelFileError(
            f"{filename}: unsupported {header['format']} version; expected {VERSION!r}, "
            f"got {header.get('version')!r}"
        )
    return header["format"]


def _json_entry(filename: str, header: dict[str, str], key: str) -> Any:
    if key not in header:
        raise ModelFileError(
            f"{filename}: the metadata lacks {key!r}; expected it next to 'format', "
            f"got the keys {sorted(header)}"
        )
    try:
        value = json.loads(header[key])
    except json.JSONDecodeError as error:
        raise ModelFileError(
            f"{filename}: the metadata entry {key!r} is not valid JSON; expected JSON text, "
            f"got {_short(header[key])} ({error})"
        ) from error
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = _json_depth(value)
    if depth > MAX_DEPTH:
        raise ModelFileError(
            f"{filename}: the metadata entry {key!r} is nested too deeply; expected at most "
            f"{MAX_DEPTH} levels of JSON, got more than {MAX_DEPTH}"
        )
    return value


def _check_weights(filename: str, model: Module, tensors: Mapping[str, numpy.ndarray]) -> None:
    """Raise unless ``tensors`` has the model's keys, shapes and one float dtype."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ModelFileError(
            f"{filename}: the weights do not match the architecture; expected the keys "
            f"{sorted(own)}, got missing {missing} and unexpected {unexpected}"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ModelFileError(
                f"{filename}: {key} has the wrong shape; expected {tuple(own[key].shape)} "
                f"from the architecture, got {tuple(value.shape)}"
            )
        is_float = value.dtype.kind == "f"
        if is_float != (own[key].dtype.kind == "f") or (
            not is_float and value.dtype != own[key].dtype
        ):
            raise ModelFileError(
                f"{filename}: {key} has the wrong dtype; expected {own[key].dtype}, got "
                f"{value.dtype} ({key}.shape={tuple(value.shape)})"
            )
    float_dtypes = sorted({str(v.dtype) for v in tensors.values() if v.dtype.kind == "f"})
    if len(float_dtypes) > 1 or not set(float_dtypes) <= {"float32", "float64"}:
        raise ModelFileError(
            f"{filename}: the weights must share one float dtype; expected float32 or "
            f"float64 throughout, got {float_dtypes}"
        )


def _host_tensors(state: Mapping[str, Array], prefix: str = "") -> dict[str, numpy.ndarray]:
    """Arrays moved to the host and made contiguous, as safetensors requires."""
    return {prefix + key: numpy.asarray(to_host(value), order="C") for key, value in state.items()}


def _dumps(where: str, name: str, value: Any) -> str:
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{where}: {name} must be JSON-serialisable; expected dicts, lists, str, numbers, "
            f"bools and None, got {_short(value)} ({error})"
        ) from error


def _json_default(value: Any) -> Any:
    """NumPy scalars and 0-d arrays become Python numbers; anything else is refused."""
    if isinstance(value, numpy.generic) or (isinstance(value, numpy.ndarray) and value.ndim == 0):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
