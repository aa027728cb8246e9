"""The architecture of a model as JSON data: describing, sizing and rebuilding it.

``architecture(model)`` names every module by its registered class (``convprop.nn.register``)
and its ``config()``; ``build(arch)`` makes the layers again. Before anything is built,
``architecture_elements`` computes from the JSON alone how many weight and buffer elements
the layers would hold, so that a small file cannot make the loader allocate gigabytes, and
the JSON's nesting depth is bounded (``MAX_DEPTH``). No code named by a file is ever run:
only classes of the registry are built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from convprop.io.file_format import (
    MAX_DEPTH,
    ModelFileError,
    _dumps,
    _json_depth,
    _product,
    _short,
)
from convprop.nn.containers import ModuleDict, ModuleList, Residual, Sequential
from convprop.nn.module import Module
from convprop.nn.registry import name_of, registered_classes

__all__ = ["ELEMENT_MARGIN", "architecture", "architecture_elements", "build", "describe"]


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


ELEMENT_MARGIN = 1 << 20
"""How many elements an architecture may need beyond the tensors its file stores (the
default limit of ``load_model``): 4 MiB of float32, far below an allocation that hurts."""


def _int_tuple(value: Any, dims: int) -> tuple[int, ...] | None:
    """An int (repeated ``dims`` times) or a list of ints as a tuple; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * dims
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    return None


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
