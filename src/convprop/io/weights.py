"""Weights files: the ``state_dict`` of any model, registered or not, and PyTorch's files.

``save_weights`` writes a model file whose architecture is stored when every module can be
named and left out otherwise; ``load_weights`` reads the state_dict of a model file, of a
checkpoint, or of a safetensors file written by PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.io.architecture import describe
from convprop.io.atomic import PathLike
from convprop.io.file_format import CHECKPOINT_FORMAT, MODEL_FORMAT, _check_format, _read
from convprop.io.model_files import _write_model_file
from convprop.nn.module import Module

__all__ = ["load_weights", "save_weights"]


def save_weights(path: PathLike, model: Module, *, metadata: dict[str, Any] | None = None) -> None:
    """Write the weights of any model (its ``state_dict``) to ``path``, atomically.

    The file is a model file whose architecture is stored when the model can be named
    (``describe``) and left out otherwise; ``load_weights`` reads it back for
    ``model.load_state_dict``. Its tensors are named as PyTorch's state_dict, so
    ``torch_model.load_state_dict(safetensors.torch.load_file(path))`` reads it too.

    Examples
    --------
    >>> import os, tempfile
    >>> from convprop.nn import Linear, Module
    >>> class Net(Module):  # not registered
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = Linear(3, 2, rng=0)
    >>> net, copy = Net(), Net()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "net.safetensors")
    ...     save_weights(path, net)
    ...     _ = copy.load_state_dict(load_weights(path))
    >>> bool((copy.fc.weight.data == net.fc.weight.data).all())
    True
    """
    _write_model_file("save_weights", path, model, describe(model), metadata)


def load_weights(path: PathLike) -> dict[str, numpy.ndarray]:
    """The state_dict stored in a model file or a checkpoint (NumPy arrays by PyTorch name).

    A safetensors file without convprop's metadata (e.g. written by
    ``safetensors.torch.save_file(torch_model.state_dict(), path)``) is read as it is.

    Raises
    ------
    ModelFileError
        For an unreadable file, or convprop metadata of another format or version.
    """
    filename, header, tensors = _read(path)
    if "format" not in header:
        return tensors
    kind = _check_format(filename, header, (MODEL_FORMAT, CHECKPOINT_FORMAT))
    if kind == CHECKPOINT_FORMAT:
        return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    return tensors
