"""Training checkpoints: everything needed to resume a run, in one safetensors file.

Tensors "model.<key>" (the model's state dict) and "optimizer.<key>" (the optimizer's array
entries); the metadata holds the format "convprop-checkpoint", the version, the
architecture, the epoch, the optimizer's scalar entries, the scheduler's state, the
random-generator states of layers that draw random numbers (Dropout) and the caller's
``state`` dict, each as JSON. ``check_writable`` refuses an unusable run directory before
training starts; ``load_checkpoint`` checks everything before it changes anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy
import safetensors.numpy

from convprop.io.architecture import describe
from convprop.io.atomic import PathLike, atomic_write, remove_stale_temporaries
from convprop.io.file_format import (
    CHECKPOINT_FORMAT,
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

__all__ = ["check_writable", "load_checkpoint", "save_checkpoint"]


def check_writable(directory: PathLike, model: Module) -> None:
    """Raise now if checkpoints of ``model`` could not be written into ``directory``.

    Creates the directory, removes the temporary files that killed writers left in it
    (``remove_stale_temporaries``), writes and removes a probe file, and builds the metadata
    a checkpoint of this model would hold (so a config that is not JSON fails here).

    Raises
    ------
    OSError
        When the directory cannot be created or written (the message names it).
    TypeError
        When the model's architecture config is not JSON data.
    """
    folder = os.fspath(directory)
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(folder)
        atomic_write(os.path.join(folder, ".write-check"), lambda t: open(t, "wb").close())
        os.unlink(os.path.join(folder, ".write-check"))
    except OSError as error:
        raise OSError(
            error.errno,
            f"train: cannot write checkpoints into {folder}; expected a writable directory, "
            f"got {error.strerror or error}",
        ) from error
    _dumps("train", "the architecture", describe(model))


def _named_modules(module: Module, prefix: str = "model") -> Iterator[tuple[str, Module]]:
    yield prefix, module
    for name, child in module._modules.items():
        yield from _named_modules(child, f"{prefix}.{name}")


def _generators(model: Module) -> dict[str, numpy.random.Generator]:
    """The random generators owned by layers (Dropout's masks), by module position."""
    found = {name: getattr(module, "rng", None) for name, module in _named_modules(model)}
    return {name: rng for name, rng in found.items() if isinstance(rng, numpy.random.Generator)}


def save_checkpoint(
    path: PathLike,
    model: Module,
    optimizer: Any,
    *,
    scheduler: Any = None,
    epoch: int,
    state: dict[str, Any] | None = None,
) -> None:
    """Write everything needed to resume training to one safetensors file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file; an existing one is replaced only on success.
    model : Module
        Its weights and buffers become tensors "model.<key>".
    optimizer : convprop.optim.Optimizer
        Array entries of ``optimizer.state_dict()`` become tensors "optimizer.<key>";
        scalar entries go to the metadata.
    scheduler : learning-rate schedule, optional
        ``scheduler.state_dict()`` goes to the metadata.
    epoch : int
        The number of completed epochs, returned by ``load_checkpoint``.
    state : dict, optional
        JSON-serialisable data to resume with (history, RNG states, configuration).

    Notes
    -----
    The states of the layers' own generators (Dropout's ``rng``) are saved too, so that a
    resumed run draws the same masks as an uninterrupted one.

    Raises
    ------
    TypeError
        If ``epoch`` is not an int, ``state`` is not a JSON-serialisable dict, or a
        scheduler or optimizer entry cannot be stored.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, (int, numpy.integer)):
        raise TypeError(f"save_checkpoint: epoch must be an int; expected e.g. 3, got {epoch!r}")
    if state is not None and not isinstance(state, dict):
        raise TypeError(
            f"save_checkpoint: state must be a dict; expected a JSON-serialisable dict or "
            f"None, got {type(state).__name__}"
        )
    optimizer_state = optimizer.state_dict()
    arrays = {
        k: v
        for k, v in optimizer_state.items()
        if hasattr(v, "shape") and not isinstance(v, numpy.generic)
    }
    scalars = {k: v for k, v in optimizer_state.items() if k not in arrays}
    rng = {name: gen.bit_generator.state for name, gen in _generators(model).items()}
    header = {
        "format": CHECKPOINT_FORMAT,
        "version": VERSION,
        "architecture": _dumps("save_checkpoint", "the architecture", describe(model)),
        "epoch": str(int(epoch)),
        "optimizer": _dumps(
            "save_checkpoint",
            "the optimizer state",
            {"type": type(optimizer).__name__, "scalars": scalars},
        ),
        "scheduler": _dumps(
            "save_checkpoint",
            "the scheduler state",
            None
            if scheduler is None
            else {"type": type(scheduler).__name__, "state": scheduler.state_dict()},
        ),
        "rng": _dumps("save_checkpoint", "the layers' generator states", rng),
        "state": _dumps("save_checkpoint", "state", state or {}),
    }
    tensors = _host_tensors(model.state_dict(), "model.")
    tensors.update(_host_tensors(arrays, "optimizer."))
    atomic_write(path, lambda temporary: safetensors.numpy.save_file(tensors, temporary, header))


def _differences(saved: Any, current: Any, where: str) -> list[str]:
    """Where two architecture descriptions differ, as readable paths."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in [*saved, *(k for k in current if k not in saved)]:
            if key not in current or key not in saved:
                side = "checkpoint" if key in saved else "model"
                found.append(f"{where}.{key} is only in the {side}")
            else:
                found += _differences(saved[key], current[key], f"{where}.{key}")
        return found
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        found = []
        for index, (saved_item, current_item) in enumerate(zip(saved, current, strict=True)):
            found += _differences(saved_item, current_item, f"{where}[{index}]")
        return found
    if saved != current:
        return [f"{where}: checkpoint has {_short(saved)}, model has {_short(current)}"]
    return []


def load_checkpoint(
    path: PathLike, model: Module, optimizer: Any, scheduler: Any = None
) -> dict[str, Any]:
    """Restore model, optimizer and scheduler in place from ``save_checkpoint``'s file.

    Everything is checked before anything changes; if the optimizer or the scheduler then
    refuses its state, the model (and optimizer) are put back as they were.

    Returns
    -------
    dict
        ``{"epoch": int, "state": dict}``: the completed epochs and the saved ``state``.

    Raises
    ------
    ModelFileError
        Naming ``path``: an unreadable file or not a checkpoint; an architecture that
        differs from the model's (the differing entries are listed); another optimizer
        or scheduler class; a scheduler passed when none was saved; weights that do not fit;
        or an optimizer or scheduler that refuses the saved state.
    """
    current_arch = json.loads(_dumps("load_checkpoint", "the architecture", describe(model)))

    def check(filename: str, header: dict[str, str], stored: int) -> None:
        """Format and architecture, from the header alone (before any tensor is read)."""
        _check_format(filename, header, (CHECKPOINT_FORMAT,))
        saved_arch = _json_entry(filename, header, "architecture")
        # without an architecture on either side the weights' names and shapes are the check
        both = saved_arch is not None and current_arch is not None
        differences = _differences(saved_arch, current_arch, "model") if both else []
        if differences:
            raise ModelFileError(
                f"{filename}: the checkpoint's architecture differs from the model's; "
                f"expected the same layers and configs, got {len(differences)} "
                "difference(s): " + "; ".join(differences[:5])
            )

    filename, header, tensors = _read(path, check=check)
    unknown = sorted(k for k in tensors if not k.startswith(("model.", "optimizer.")))
    if unknown:
        raise ModelFileError(
            f"{filename}: unexpected tensors; expected names 'model.<key>' or "
            f"'optimizer.<key>', got {unknown}"
        )
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_weights(filename, model, weights)
    saved_optimizer = _json_entry(filename, header, "optimizer")
    _check_owner(filename, "optimizer", saved_optimizer, optimizer)
    optimizer_state = dict(saved_optimizer["scalars"])
    optimizer_state.update(
        {k[len("optimizer.") :]: v for k, v in tensors.items() if k.startswith("optimizer.")}
    )
    saved_scheduler = _json_entry(filename, header, "scheduler")
    if scheduler is not None:
        _check_owner(filename, "scheduler", saved_scheduler, scheduler)
    rng = _json_entry(filename, header, "rng")
    epoch, user = _json_entry(filename, header, "epoch"), _json_entry(filename, header, "state")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(user, dict):
        raise ModelFileError(
            f"{filename}: malformed epoch or state; expected an int and an object, got "
            f"{_short(epoch)} and {_short(user)}"
        )
    _restore(
        filename, model, weights, (optimizer, optimizer_state), (scheduler, saved_scheduler), rng
    )
    return {"epoch": epoch, "state": user}


def _check_owner(filename: str, role: str, saved: Any, owner: Any) -> None:
    """The saved optimizer/scheduler entry must exist and come from the same class."""
    field = "scalars" if role == "optimizer" else "state"
    if saved is None:
        raise ModelFileError(
            f"{filename}: no {role} state was saved; expected a {type(owner).__name__} "
            f"state, got none (pass {role}=None)"
        )
    if not isinstance(saved, dict) or not isinstance(saved.get(field), dict):
        raise ModelFileError(
            f"{filename}: the {role} entry is malformed; expected an object with 'type' and "
            f"'{field}', got {_short(saved)}"
        )
    if saved.get("type") != type(owner).__name__:
        raise ModelFileError(
            f"{filename}: the checkpoint holds another {role}; expected "
            f"{type(owner).__name__}, got {saved.get('type')!r}"
        )


def _restore(
    filename: str,
    model: Module,
    weights: dict[str, numpy.ndarray],
    optimizer: tuple[Any, dict[str, Any]],
    scheduler: tuple[Any, Any],
    rng: Any,
) -> None:
    """Load the states (model, optimizer, scheduler, generators); on a refusal undo and raise."""
    # load_state_dict assigns fresh arrays, so the old state dict stays valid as a backup.
    model_backup, optimizer_backup = model.state_dict(), optimizer[0].state_dict()
    scheduler_backup = None if scheduler[0] is None else scheduler[0].state_dict()
    generators = _generators(model)
    rng_backup = {name: generator.bit_generator.state for name, generator in generators.items()}
    model.load_state_dict(weights)
    role = "optimizer"
    try:
        optimizer[0].load_state_dict(optimizer[1])
        role = "scheduler"
        if scheduler[0] is not None:
            scheduler[0].load_state_dict(scheduler[1]["state"])
        role = "random generators of the layers"
        for name, generator in generators.items():
            if isinstance(rng, dict) and name in rng:
                generator.bit_generator.state = rng[name]
    except (TypeError, ValueError, KeyError) as error:
        model.load_state_dict(model_backup)
        optimizer[0].load_state_dict(optimizer_backup)
        if scheduler[0] is not None:
            scheduler[0].load_state_dict(scheduler_backup)
        for name, generator in generators.items():
            generator.bit_generator.state = rng_backup[name]
        raise ModelFileError(
            f"{filename}: the {role} refused the saved state; expected a state from the same "
            f"{role} settings, got an error ({error})"
        ) from error
