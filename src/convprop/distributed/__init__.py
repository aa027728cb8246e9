"""Data-parallel training over MPI: one model per process, one global batch split across them.

Start the processes with a launcher; without one the same script runs as one process::

    mpiexec -n 2 convprop train --dataset fashion-mnist      # the command line
    mpiexec -n 2 python my_training.py                       # fit(..., distributed=True)

The pieces, for a loop of one's own::

    from convprop import distributed
    distributed.init()                        # world size 1 when not launched
    distributed.broadcast_parameters(model)   # every rank starts from rank 0's weights
    loss.backward()
    distributed.allreduce_gradients(model, count=len(labels))   # the global mean (DP3)
    optimizer.step()

MPI comes from the extra ``convprop[mpi]`` (mpi4py and Open MPI, with ``mpiexec``);
nothing here imports it unless the process was launched. See docs/distributed.md.
"""

from convprop.distributed.broadcast import (
    broadcast_buffers,
    broadcast_optimizer_state,
    broadcast_parameters,
)
from convprop.distributed.comm import (
    abort,
    barrier,
    init,
    is_main,
    launched,
    rank,
    world,
    world_size,
)
from convprop.distributed.fusion import (
    DEFAULT_FUSION_BYTES,
    GradientFusion,
    allreduce_gradients,
    plan_buckets,
)
from convprop.distributed.sampler import DistributedSampler, ShardedLoader
from convprop.distributed.sync_batchnorm import (
    SyncBatchNorm,
    convert_sync_batchnorm,
    revert_sync_batchnorm,
)
from convprop.distributed.training import DataParallel

__all__ = [
    "DEFAULT_FUSION_BYTES",
    "DataParallel",
    "DistributedSampler",
    "GradientFusion",
    "ShardedLoader",
    "SyncBatchNorm",
    "abort",
    "allreduce_gradients",
    "barrier",
    "broadcast_buffers",
    "broadcast_optimizer_state",
    "broadcast_parameters",
    "convert_sync_batchnorm",
    "init",
    "is_main",
    "launched",
    "plan_buckets",
    "rank",
    "revert_sync_batchnorm",
    "world",
    "world_size",
]
