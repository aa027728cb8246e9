"""Model files: a model's architecture and weights in one safetensors file.

Its tensors are the model's ``state_dict`` under exactly PyTorch's names ("0.weight",
"0.bias", "3.running_mean", "3.num_batches_tracked"), so ``torch_model.load_state_dict(...)``
accepts them for the same ``torch.nn.Sequential``. Its metadata (str -> str) holds::

    format        "convprop-model"
    version       "1"
    architecture  JSON of architecture(model), from which build() makes the layers again
    user          JSON of the caller's metadata dict

The file is written atomically (``convprop.io.atomic``); on loading, the architecture's
size is checked against the tensors stored before any layer is built.
"""

from __future__ import annotations

from typing import Any

import safetensors.numpy

from convprop.io.architecture import ELEMENT_MARGIN, _check_size, architecture, build
from convprop.io.atomic import PathLike, atomic_write
from convprop.io.file_format import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    VERSION,
    ModelFileError,
    _check_format,
    _check_weights,
    _dumps,
    _host_tensors,
    _json_entry,
    _read,
    _short,
)
from convprop.nn.module import Module

__all__ = ["load_model", "load_model_metadata", "save_model"]


def save_model(path: PathLike, model: Module, *, metadata: dict[str, Any] | None = None) -> None:
    """Write ``model`` (architecture and weights) to the safetensors file ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Conventionally ``*.safetensors``; an existing file is replaced only on success.
    model : Module
        Made of convprop.nn's layers; its arrays may live on any device.
    metadata : dict, optional
        JSON-serialisable data kept with the model (``load_model_metadata`` returns it).

    Raises
    ------
    TypeError
        If the model holds a module that ``architecture`` cannot name, or ``metadata`` is
        not a JSON-serialisable dict.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from convprop.nn import Linear, ReLU, Sequential
    >>> net = Sequential(Linear(4, 3, rng=0), ReLU(), Linear(3, 2, rng=1))
    >>> x = np.ones((1, 4), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "net.safetensors")
    ...     save_model(path, net, metadata={"epochs": 3})
    ...     loaded, info = load_model(path), load_model_metadata(path)
    >>> bool(np.array_equal(loaded(x), net(x))), info
    (True, {'epochs': 3})
    """
    _write_model_file("save_model", path, model, architecture(model), metadata)


def _write_model_file(
    op: str, path: PathLike, model: Module, arch: Any, metadata: dict[str, Any] | None
) -> None:
    """The model file format: the state_dict's tensors, the architecture (or null) and the
    caller's metadata, written atomically."""
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(
            f"{op}: metadata must be a dict; expected a JSON-serialisable dict or None, "
            f"got {type(metadata).__name__}"
        )
    header = {
        "format": MODEL_FORMAT,
        "version": VERSION,
        "architecture": _dumps(op, "the architecture", arch),
        "user": _dumps(op, "metadata", metadata or {}),
    }
    tensors = _host_tensors(model.state_dict())
    atomic_write(path, lambda temporary: safetensors.numpy.save_file(tensors, temporary, header))


def load_model(path: PathLike, *, max_elements: int | None = None) -> Module:
    """Rebuild the model saved by ``save_model`` (or the model in a checkpoint).

    The layers are made from the stored architecture, then take the stored weights with
    their dtype (a float64 file gives a float64 model), on the host. The model is in
    training mode, as a freshly built one; call ``eval()`` for inference.

    Before any layer is built or any tensor read, the architecture is checked against the
    file: its layers may hold at most ``max_elements`` array elements (default: the
    elements of the tensors stored in the file plus ``ELEMENT_MARGIN``), so a small file
    cannot make the loader allocate gigabytes, and it may nest at most ``MAX_DEPTH`` levels.

    Parameters
    ----------
    path : str or os.PathLike
        The model file or checkpoint.
    max_elements : int, optional
        The most elements the architecture's weights and buffers may hold.

    Raises
    ------
    ModelFileError
        Naming ``path``: not a (complete) safetensors file, no convprop metadata, an
        unsupported version, an unknown layer, an architecture too large or too deeply
        nested, or weights whose keys, shapes or dtypes do not fit the architecture.
    FileNotFoundError
        If ``path`` does not exist.
    """
    found: dict[str, Any] = {}

    def check(filename: str, header: dict[str, str], stored: int) -> None:
        found["kind"] = _check_format(filename, header, (MODEL_FORMAT, CHECKPOINT_FORMAT))
        arch = found["arch"] = _json_entry(filename, header, "architecture")
        if arch is None:
            raise ModelFileError(
                f"{filename}: the file holds weights without an architecture (the model's "
                "class was not registered); expected an architecture to build, got none: "
                "build the model in code and call "
                "model.load_state_dict(convprop.io.load_weights(path))"
            )
        limit = stored + ELEMENT_MARGIN if max_elements is None else max_elements
        _check_size(arch, filename, limit)

    filename, _, tensors = _read(path, check=check)
    model = build(found["arch"], source=filename)
    if found["kind"] == CHECKPOINT_FORMAT:
        tensors = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_weights(filename, model, tensors)
    model.load_state_dict(tensors)
    return model


def load_model_metadata(path: PathLike) -> dict[str, Any]:
    """Return the caller's dict saved with the model (``metadata=``; a checkpoint's ``state``).

    Raises
    ------
    ModelFileError
        As ``load_model`` for unreadable files or missing convprop metadata.
    """
    filename, header, _ = _read(path, with_tensors=False)
    kind = _check_format(filename, header, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    user = _json_entry(filename, header, "user" if kind == MODEL_FORMAT else "state")
    if not isinstance(user, dict):
        raise ModelFileError(
            f"{filename}: the saved metadata is not an object; expected a dict, got {_short(user)}"
        )
    return user
