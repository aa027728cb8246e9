"""The metadata ``convprop train`` stores with a model, read back with every field checked."""

from __future__ import annotations

import os
from typing import Any

from convprop.io.atomic import PathLike
from convprop.io.file_format import ModelFileError, _short
from convprop.io.model_files import load_model_metadata

__all__ = ["load_run_info"]


_RUN_INFO_LIMIT = 1 << 16
"""The largest size an input_shape entry or num_classes may state."""


def load_run_info(path: PathLike, command: str = "load_run_info") -> dict[str, Any]:
    """What ``convprop train`` stored with a model (``config.extra``), each field checked.

    Returns ``{}`` for a model file saved without it (e.g. by ``save_model``), else a dict
    with any of: ``dataset`` and ``model`` (str), ``input_shape`` (a list [C, H, W] of ints
    in 1..65536) and ``num_classes`` (an int in 1..65536).

    Raises
    ------
    ModelFileError
        Naming ``path`` and the field, when a field has another type or an absurd value,
        or as ``load_model_metadata`` raises.

    Examples
    --------
    >>> import os, tempfile
    >>> from convprop.io import save_model
    >>> from convprop.nn import Linear
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_model(path, Linear(2, 2, rng=0), metadata={"config": {"extra": {
    ...     "dataset": "digits", "input_shape": [1, 8, 8], "num_classes": 10}}})
    >>> load_run_info(path)
    {'dataset': 'digits', 'input_shape': [1, 8, 8], 'num_classes': 10}
    """
    filename = os.fspath(path)
    config = load_model_metadata(path).get("config")
    extra = config.get("extra") if isinstance(config, dict) else None
    if not isinstance(extra, dict):
        return {}
    for key in ("dataset", "model"):
        if key in extra and not isinstance(extra[key], str):
            raise ModelFileError(
                f"{command}: {filename}: the metadata field {key} is malformed; expected a "
                f"string, got {_short(extra[key])}"
            )

    def within(value: Any) -> bool:
        return (
            isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _RUN_INFO_LIMIT
        )

    shape = extra.get("input_shape", [1, 1, 1])
    if not isinstance(shape, list) or len(shape) != 3 or not all(within(s) for s in shape):
        raise ModelFileError(
            f"{command}: {filename}: the metadata field input_shape is malformed; expected "
            f"a list [C, H, W] of 3 ints in 1..{_RUN_INFO_LIMIT}, "
            f"got {_short(extra['input_shape'])}"
        )
    if "num_classes" in extra and not within(extra["num_classes"]):
        raise ModelFileError(
            f"{command}: {filename}: the metadata field num_classes is malformed; expected an "
            f"int in 1..{_RUN_INFO_LIMIT}, got {_short(extra['num_classes'])}"
        )
    return extra
