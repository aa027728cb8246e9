"""Start every rank from rank 0's state: parameters, buffers and optimizer state.

Data-parallel training keeps one model per rank and relies on every rank applying the same
update to the same weights. It starts from rank 0's: a model initialised from another seed
on another rank, or restored from a different file, is overwritten.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.backend import Array, get_xp, to_host
from convprop.distributed.comm import Communicator, broadcast_json, world
from convprop.nn import Module


def _broadcast_array(comm: Communicator, array: Array, root: int) -> Array:
    """The root's values of ``array`` (same shape and dtype on every rank), on its device."""
    host = numpy.array(to_host(array), order="C")  # a copy; keeps 0-d arrays 0-d
    comm.broadcast(host, root)
    if isinstance(array, numpy.ndarray):
        return host
    return get_xp(array).asarray(host)


def broadcast_parameters(model: Module, root: int = 0) -> None:
    """Overwrite every parameter (in place) and buffer of ``model`` with the root's.

    The Parameter objects stay the same, so an optimizer built over them stays valid.
    Every rank must pass a model of the same architecture.
    """
    comm = world()
    if comm.size == 1:
        return
    for param in model.parameters():
        param.data[...] = _broadcast_array(comm, param.data, root)
    broadcast_buffers(model, root)


def broadcast_buffers(model: Module, root: int = 0) -> None:
    """Overwrite the buffers of ``model`` (BatchNorm's running statistics) with the root's.

    As PyTorch's DistributedDataParallel, which sends rank 0's buffers to the others: with
    local batch statistics each rank's running averages follow its own batches.
    """
    comm = world()
    if comm.size == 1:
        return
    buffers = {name: _broadcast_array(comm, value, root) for name, value in model.named_buffers()}
    if buffers:
        model.load_state_dict(buffers, strict=False)


def broadcast_optimizer_state(optimizer: Any, root: int = 0) -> None:
    """Give every rank the root's optimizer state (``state_dict``: buffers and counters)."""
    comm = world()
    if comm.size == 1:
        return
    state = optimizer.state_dict() if comm.rank == root else {}
    arrays = {
        k: v for k, v in state.items() if hasattr(v, "shape") and not isinstance(v, numpy.generic)
    }
    layout = broadcast_json(
        {
            "scalars": {
                k: v.item() if isinstance(v, numpy.generic) else v
                for k, v in state.items()
                if k not in arrays
            },
            "arrays": [[k, list(v.shape), str(v.dtype)] for k, v in arrays.items()],
        },
        root,
    )
    received: dict[str, Any] = dict(layout["scalars"])
    for key, shape, dtype in layout["arrays"]:
        host = (
            numpy.array(to_host(arrays[key]), order="C")
            if comm.rank == root
            else numpy.empty(shape, dtype=dtype)
        )
        comm.broadcast(host, root)
        received[key] = host
    if comm.rank != root:
        optimizer.load_state_dict(received)
