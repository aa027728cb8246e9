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
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy
import safetensors
import safetensors.numpy

from convprop.backend import Array, to_host
from convprop.nn.containers import ModuleDict, ModuleList, Residual, Sequential
from convprop.nn.module import Module
from convprop.nn.registry import name_of, registered_classes

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

MODEL_FORMAT = "convprop-model"
CHECKPOINT_FORMAT = "convprop-checkpoint"
VERSION = "1"

PathLike = str | os.PathLike[str]


class ModelFileError(ValueError):
    """A model file or checkpoint cannot be read, or does not fit the model it is loaded into."""


# -- atomic writes ---------------------------------------------------------------------------
def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write_fn: Callable[[str], None]) -> None:
    """Create or replace the file ``path`` with what ``write_fn`` writes, all or nothing.

    ``write_fn(temporary_path)`` writes the whole file to a new temporary file in the same
    directory (named ``.<stem>.<pid>-<random>.tmp<suffix>``, so writers that infer a format
    from the extension still work); it is then flushed to disk and renamed over ``path``. If
    ``write_fn`` or anything after it fails, the temporary file is removed and the error
    propagates: ``path`` keeps its previous content (or stays absent). A process killed
    mid-write cannot remove its temporary file; the next ``atomic_write`` of the same target
    does (``remove_stale_temporaries``), as does ``check_writable`` for a whole directory.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write_fn : callable
        Called once with the temporary path (a str).

    Examples
    --------
    >>> import os, tempfile
    >>> def write_hello(temporary: str) -> None:
    ...     with open(temporary, "w") as handle:
    ...         _ = handle.write("hello")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = os.path.join(folder, "note.txt")
    ...     atomic_write(target, write_hello)
    ...     with open(target) as handle:
    ...         print(handle.read(), os.listdir(folder))
    hello ['note.txt']
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    remove_stale_temporaries(directory, name)
    stem, suffix = os.path.splitext(name)
    token = f"{os.getpid()}-{secrets.token_hex(6)}"
    temporary = os.path.join(directory, f".{stem}.{token}.tmp{suffix}")
    # O_EXCL: never reuse an existing file; mode 0o666 lets the umask decide, as open() does.
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write_fn(temporary)
        # some writers (safetensors) recreate the file owner-only: restore the umask's mode
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


_TEMPORARY = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>[0-9]+)-[0-9a-f]{12}\.tmp(?P<suffix>.*)$")
"""The names ``atomic_write`` gives its temporary files: ``.<stem>.<pid>-<12 hex>.tmp<suffix>``."""


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    except OSError:  # pragma: no cover - platforms without signal 0
        return True
    return True


def remove_stale_temporaries(directory: PathLike, target: str | None = None) -> list[str]:
    """Remove the temporary files that killed ``atomic_write`` calls left in ``directory``.

    Only names of ``atomic_write``'s own pattern ``.<stem>.<pid>-<12 hex>.tmp<suffix>``
    are considered (of ``target``'s stem and suffix when given), and of those only the ones
    whose writer ``pid`` is no longer running: a write in progress, and every other file,
    is left alone.

    Parameters
    ----------
    directory : str or os.PathLike
        The folder to clean; a missing or unreadable folder is skipped.
    target : str, optional
        A file name in ``directory``: remove only its temporaries.

    Returns
    -------
    list of str
        The paths removed.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> dead = os.path.join(folder, ".model.999999999-0123456789ab.tmp.safetensors")
    >>> open(dead, "wb").close()
    >>> [os.path.basename(p) for p in remove_stale_temporaries(folder)], os.listdir(folder)
    (['.model.999999999-0123456789ab.tmp.safetensors'], [])
    """
    folder = os.fspath(directory)
    wanted = None if target is None else os.path.splitext(target)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None or (wanted is not None and wanted != match.group("stem", "suffix")):
            continue
        if _alive(int(match.group("pid"))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
                removed.append(path)
    return removed


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); platforms that cannot open folders skip it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(descriptor)


# -- architecture ---------------------------------------------------------------------------
_CONTAINERS = {"Sequential": "children", "ModuleList": "children", "ModuleDict": "children"}
"""Containers whose node lists its children instead of a config."""


def architecture(model: Module) -> dict[str, Any]:
    """Describe ``model`` as JSON-serialisable data from which ``build`` makes it again.

    Containers nest: ``{"type": "Sequential", "children": [...]}`` (ModuleList alike,
    ModuleDict with a dict of children) and ``{"type": "Residual", "body": {...}}``; every
    other module is ``{"type": <registered name>, "config": module.config()}``: one of
    convprop.nn's layers, or a class registered with ``convprop.nn.register`` (whose
    constructor then rebuilds its children). Weights are not included.

    Raises
    ------
    TypeError
        If the model contains a module whose class is not registered (it cannot be
        rebuilt from a name), or a config that is not JSON data.

    Examples
    --------
    >>> from convprop.nn import Linear, ReLU, Sequential
    >>> architecture(Sequential(Linear(4, 2, rng=0), ReLU()))  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'Sequential', 'children': [{'type': 'Linear',
      'config': {'in_features': 4, 'out_features': 2, 'bias': True}},
      {'type': 'ReLU', 'config': {}}]}
    """
    name = name_of(model)
    if name is None:
        cls = type(model)
        raise TypeError(
            f"architecture: {cls.__module__}.{cls.__qualname__} cannot be saved by name; "
            f"expected one of convprop.nn's layers or a class registered with "
            f"convprop.nn.register, got {cls.__qualname__} (register it, or save the weights "
            "alone with convprop.io.save_weights)"
        )
    if name in ("Sequential", "ModuleList"):
        # every entry, also a module registered twice (rebuilt as two with the same weights)
        return {"type": name, "children": [architecture(c) for c in model._modules.values()]}
    if name == "ModuleDict":
        children = {key: architecture(child) for key, child in model._modules.items()}
        return {"type": name, "children": children}
    if isinstance(model, Residual) and name == "Residual":
        return {"type": name, "body": architecture(model.body)}
    config = model.config()
    _dumps("architecture", f"the config of {name} {_short(config)}", config)
    return {"type": name, "config": config}


def describe(model: Module) -> dict[str, Any] | None:
    """``architecture(model)``, or None when a module's class is not registered."""
    try:
        return architecture(model)
    except TypeError as error:
        if "cannot be saved by name" in str(error):
            return None
        raise


MAX_DEPTH = 200
"""The deepest JSON nesting a file's metadata entry may have (an architecture of Sequentials
takes two levels per module level, so about 100 nested containers)."""

ELEMENT_MARGIN = 1 << 20
"""How many elements an architecture may need beyond the tensors its file stores (the
default limit of ``load_model``): 4 MiB of float32, far below an allocation that hurts."""


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


def _int_tuple(value: Any, dims: int) -> tuple[int, ...] | None:
    """An int (repeated ``dims`` times) or a list of ints as a tuple; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * dims
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    return None


def _product(values: tuple[int, ...]) -> int:
    result = 1
    for value in values:
        result *= max(int(value), 0)
    return result


def _layer_elements(name: str, arguments: dict[str, Any]) -> int:
    """The elements of the state_dict that convprop.nn's layer ``name`` makes from its
    constructor ``arguments`` (defaults applied), computed from the config alone; 0 for
    layers without parameters or buffers, and for values the constructor will refuse."""
    a = arguments
    if name == "Linear":
        shape = _int_tuple([a["in_features"], a["out_features"]], 2)
        if shape is None:
            return 0
        return _product(shape) + (max(shape[1], 0) if a["bias"] else 0)
    if name in _CONV_DIMS:
        dims, transposed = _CONV_DIMS[name]
        channels = _int_tuple([a["in_channels"], a["out_channels"]], 2)
        kernel = _int_tuple(a["kernel_size"], dims)
        groups = a["groups"]
        if channels is None or kernel is None or not isinstance(groups, int) or groups < 1:
            return 0
        c_in, c_out = (max(c, 0) for c in channels)
        fan = c_out * (c_in // groups) if not transposed else c_in * (c_out // groups)
        return fan * _product(kernel) + (c_out if a["bias"] else 0)
    if name in ("BatchNorm1d", "BatchNorm2d"):
        size = _int_tuple(a["num_features"], 1)
        count = 0 if size is None else _product(size)
        return count * (4 if a["affine"] else 2) + 1  # weight, bias, running mean/var; steps
    if name == "LayerNorm":
        shape = _int_tuple(a["normalized_shape"], 1)
        affine = bool(a["elementwise_affine"])
        return 0 if shape is None else _product(shape) * (int(affine) + int(affine and a["bias"]))
    if name == "GroupNorm":
        size = _int_tuple(a["num_channels"], 1)
        affine = bool(a["affine"])
        return 0 if size is None else _product(size) * (int(affine) + int(affine and a["bias"]))
    if name.endswith("Loss"):  # class weights given in the config itself become buffers
        return sum(_json_leaves(a.get(key)) for key in ("weight", "pos_weight"))
    return 0


def _json_leaves(value: Any) -> int:
    """The number of scalars in nested lists (0 for None)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif item is not None:
            count += 1
    return count


_CONV_DIMS = {
    "Conv1d": (1, False),
    "Conv2d": (2, False),
    "Conv3d": (3, False),
    "ConvTranspose1d": (1, True),
    "ConvTranspose2d": (2, True),
    "ConvTranspose3d": (3, True),
}
"""Spatial dimensions and transposition of the convolution layers, by name."""


def architecture_elements(arch: Any) -> int:
    """How many array elements (weights and buffers) the layers of ``arch`` would hold.

    Computed from the JSON description alone, before anything is built: convprop.nn's
    layers with parameters or buffers (Linear, Conv*d, ConvTranspose*d, BatchNorm*d,
    LayerNorm, GroupNorm; the losses' class weights) by their shapes, the containers by
    their children, everything else (activations, pooling, classes registered by the user)
    as 0. A malformed node counts 0 (``build`` names it).

    Examples
    --------
    >>> architecture_elements({"type": "Linear", "config": {"in_features": 20000,
    ...                                                      "out_features": 20000}})
    400020000
    """
    from convprop.nn.registry import builtin_classes

    builtins = builtin_classes()
    total, stack = 0, [arch]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        name = node.get("type")
        if name in _CONTAINERS or name == "Residual":
            children = node.get("children", node.get("body"))
            if isinstance(children, Mapping):
                stack.extend(children.values() if name == "ModuleDict" else [children])
            elif isinstance(children, list):
                stack.extend(children)
            continue
        cls, config = builtins.get(str(name)), node.get("config")
        if cls is None or not isinstance(config, Mapping):
            continue
        try:
            bound = inspect.signature(cls).bind(**config)
        except TypeError:
            continue  # the constructor refuses it; build says so
        bound.apply_defaults()
        total += _layer_elements(str(name), dict(bound.arguments))
    return total


def _check_size(arch: Any, source: str, max_elements: int | None) -> None:
    """Refuse an architecture nested too deeply or needing more than ``max_elements``."""
    depth = _json_depth(arch)
    if depth > MAX_DEPTH:
        raise ModelFileError(
            f"{source}: the architecture is nested too deeply; expected at most {MAX_DEPTH} "
            f"levels of JSON, got more than {MAX_DEPTH}"
        )
    if max_elements is None:
        return
    needed = architecture_elements(arch)
    if needed > max_elements:
        raise ModelFileError(
            f"{source}: the architecture's layers would need {needed:,} weight and buffer "
            f"elements ({4 * needed / 2**30:.1f} GiB as float32); expected at most "
            f"{max_elements:,} (the tensors stored in the file plus a margin), got an "
            "architecture larger than its weights; refused before building anything"
        )


def build(
    arch: Mapping[str, Any], *, source: str = "build", max_elements: int | None = None
) -> Module:
    """Make the layers described by ``arch`` (from ``architecture``), freshly initialised.

    Parameters
    ----------
    arch : dict
        The description; every layer's ``config`` is passed to its constructor.
    source : str
        Named at the start of error messages (``load_model`` passes the file's path).
    max_elements : int, optional
        Refuse, before building any layer, an architecture whose layers would hold more
        array elements than this (``architecture_elements``); no limit when None.

    Raises
    ------
    ModelFileError
        On an unknown layer type, a malformed node or a config its constructor refuses,
        naming the layer's position (``model.3.body``) and type; on an architecture nested
        deeper than ``MAX_DEPTH`` or larger than ``max_elements``.

    Examples
    --------
    >>> build({"type": "Sequential", "children": [{"type": "ReLU", "config": {}}]})
    Sequential(
      (0): ReLU()
    )
    """
    _check_size(arch, source, max_elements)
    return _build(arch, source, "model", registered_classes())


def _build(node: Any, source: str, where: str, registry: dict[str, type[Module]]) -> Module:
    if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
        raise ModelFileError(
            f"{source}: the architecture node {where} is malformed; expected an object with a "
            f"'type' string, got {_short(node)}"
        )
    name = node["type"]
    cls = registry.get(name)
    if cls is None:
        raise ModelFileError(
            f"{source}: unknown layer type at {where}; expected one of {sorted(registry)}, "
            f"got {name!r}"
        )
    field = _CONTAINERS.get(name, "body" if cls is Residual else "config")
    if set(node) != {"type", field}:
        raise ModelFileError(
            f"{source}: the architecture node {where} ({name}) has the wrong fields; expected "
            f"['type', '{field}'], got {sorted(node)}"
        )
    value = node[field]
    if name == "ModuleDict":
        if not isinstance(value, Mapping):
            raise ModelFileError(
                f"{source}: {where} (ModuleDict) children must be an object; expected "
                f"{{...}}, got {_short(value)}"
            )
        return ModuleDict(
            {str(k): _build(c, source, f"{where}.{k}", registry) for k, c in value.items()}
        )
    if field == "children":
        if not isinstance(value, list):
            raise ModelFileError(
                f"{source}: {where} ({name}) children must be a list; expected [...], "
                f"got {_short(value)}"
            )
        children = [_build(c, source, f"{where}.{i}", registry) for i, c in enumerate(value)]
        return Sequential(*children) if name == "Sequential" else ModuleList(children)
    if cls is Residual:
        return Residual(_build(value, source, f"{where}.body", registry))
    if not isinstance(value, Mapping):
        raise ModelFileError(
            f"{source}: {where} ({name}) config must be an object; expected {{...}}, "
            f"got {_short(value)}"
        )
    try:
        return cls(**value)
    except (TypeError, ValueError) as error:
        raise ModelFileError(
            f"{source}: {where} ({name}) cannot be built from its config; expected "
            f"{name}'s constructor arguments, got {dict(value)!r} ({error})"
        ) from error


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- reading and checking files --------------------------------------------------------------
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


# -- model files -----------------------------------------------------------------------------
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


# -- checkpoints -----------------------------------------------------------------------------
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


# -- the metadata convprop train stores --------------------------------------------------------
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
