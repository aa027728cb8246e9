"""Model files and training checkpoints: safetensors weights plus JSON metadata.

A model file is one safetensors file. Its tensors are the model's ``state_dict`` under
exactly PyTorch's names ("0.weight", "0.bias", "3.running_mean", "3.num_batches_tracked"),
so ``torch_model.load_state_dict(...)`` accepts them for the same ``torch.nn.Sequential``.
Its metadata (str -> str) holds::

    format        "convprop-model"
    version       "1"
    architecture  JSON of architecture(model), from which build() makes the layers again
    user          JSON of the caller's metadata dict

A checkpoint is also one safetensors file: tensors "model.<key>" (the model's state dict)
and "optimizer.<key>" (the optimizer's array entries); the metadata holds the format
"convprop-checkpoint", the version, the architecture, the epoch, the optimizer's scalar
entries, the scheduler's state, the random-generator states of layers that draw random
numbers (Dropout) and the caller's ``state`` dict, each as JSON.

Files are read with safetensors alone (no code runs on loading), and written atomically:
a temporary file in the same directory, flushed to disk, then renamed over the target.

One concept per module, each importing only the ones above it in this list:

    atomic       atomic_write, remove_stale_temporaries: whole files or none, no litter
    file_format  the container: format names, version, ModelFileError, checked reading
    architecture architecture, describe, build, architecture_elements: the JSON of a model
    model_files  save_model, load_model, load_model_metadata
    weights      save_weights, load_weights: any model's state_dict, PyTorch's files
    checkpoints  save_checkpoint, load_checkpoint, check_writable
    run_info     load_run_info: what ``convprop train`` stored with a model
"""

from __future__ import annotations

from convprop.io.architecture import ELEMENT_MARGIN as ELEMENT_MARGIN
from convprop.io.architecture import (
    architecture,
    architecture_elements,
    build,
    describe,
)
from convprop.io.atomic import PathLike as PathLike
from convprop.io.atomic import atomic_write, remove_stale_temporaries
from convprop.io.checkpoints import check_writable, load_checkpoint, save_checkpoint
from convprop.io.file_format import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from convprop.io.file_format import MAX_DEPTH as MAX_DEPTH
from convprop.io.file_format import MODEL_FORMAT as MODEL_FORMAT
from convprop.io.file_format import VERSION as VERSION
from convprop.io.file_format import ModelFileError
from convprop.io.model_files import load_model, load_model_metadata, save_model
from convprop.io.run_info import load_run_info
from convprop.io.weights import load_weights, save_weights

# the constants above (MAX_DEPTH, ELEMENT_MARGIN, the format names) are importable too
__all__ = [
    "ModelFileError",
    "architecture",
    "architecture_elements",
    "atomic_write",
    "build",
    "check_writable",
    "describe",
    "load_checkpoint",
    "load_model",
    "load_model_metadata",
    "load_run_info",
    "load_weights",
    "remove_stale_temporaries",
    "save_checkpoint",
    "save_model",
    "save_weights",
]
