"""What ``convprop.train.fit(..., distributed=True)`` does differently on several ranks.

Per step, every rank runs forward and backward on its part of the global batch (DP1, DP2),
then one fused Allreduce per buffer (DP4) turns every gradient into the mean gradient of
the global batch (DP3) and sums the step's sample count, loss and correct labels; every
rank then takes the same optimizer step. So:

* the parameters stay bit-identical on every rank (each adds the same update);
* a NaN loss on any rank makes the summed loss NaN on every rank, at the same step, so
  every rank stops together (fit's guard) and the last checkpoint is left as it was;
* any other exception on a rank ends the job (MPI_Abort) with a line naming the rank,
  instead of leaving the others waiting in their next collective call.

Rank 0 alone writes files and shows the progress bar (fit's choice); every rank returns
the same history (but for the seconds each measured).

Dropout draws its masks on rank r from ``default_rng((seed, epoch, r, k))`` for the k-th
generator of the model, reseeded each epoch: different masks per rank, and a resumed run
draws what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy

from convprop.autograd import Tensor
from convprop.backend import Array, get_xp
from convprop.data import ArrayDataset
from convprop.distributed.broadcast import (
    broadcast_buffers,
    broadcast_optimizer_state,
    broadcast_parameters,
)
from convprop.distributed.comm import abort, init
from convprop.distributed.fusion import DEFAULT_FUSION_BYTES, GradientFusion
from convprop.distributed.sampler import ShardedLoader
from convprop.nn import Module
from convprop.nn.utils import clip_grad_norm_


class DataParallel:
    """The ranks of one data-parallel training run (world size 1 when not launched).

    Parameters
    ----------
    collective_errors : tuple of exception types
        Errors that every rank raises at the same point (fit's TrainingDivergedError):
        they propagate; any other exception inside ``guard`` ends the job.
    fusion_bytes : int
        The largest fused gradient buffer.
    """

    def __init__(
        self,
        collective_errors: tuple[type[BaseException], ...] = (),
        *,
        fusion_bytes: int = DEFAULT_FUSION_BYTES,
    ) -> None:
        self.comm = init()
        self.rank, self.world_size = self.comm.rank, self.comm.size
        self.is_main = self.rank == 0
        self.collective_errors = collective_errors
        self.fusion_bytes = fusion_bytes
        self.fusion: GradientFusion | None = None

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """End every rank when this one raises anything but a collective error; on success
        wait for every rank, so that rank 0's files exist when the block ends anywhere."""
        try:
            yield
        except self.collective_errors:
            raise
        except BaseException as error:
            if self.world_size > 1:
                abort(error)
            raise
        self.comm.barrier()

    def prepare(self, model: Module, optimizer: Any) -> None:
        """Start every rank from rank 0's weights, buffers and optimizer state."""
        broadcast_parameters(model)
        broadcast_optimizer_state(optimizer)
        self.fusion = GradientFusion(
            optimizer.params, fusion_bytes=self.fusion_bytes, comm=self.comm
        )

    def loader(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        seed: int,
        device: str,
        transform: Callable[[Array, numpy.random.Generator], Array] | None = None,
    ) -> ShardedLoader:
        """This rank's parts of the global batches of ``batch_size`` (DP1, DP2), augmented
        as one process would augment the whole batch when ``transform`` is given."""
        return ShardedLoader(
            dataset,
            batch_size,
            rank=self.rank,
            world_size=self.world_size,
            shuffle=True,
            seed=seed,
            device=device,
            transform=transform,
        )

    def begin_epoch(self, model: Module, seed: int, epoch: int) -> None:
        """Reseed the model's layer generators (Dropout) for this rank and epoch."""
        owners = [
            m
            for m in model.modules()
            if isinstance(getattr(m, "rng", None), numpy.random.Generator)
        ]
        for k, module in enumerate(owners):
            module.rng = numpy.random.default_rng((seed, epoch, self.rank, k))

    def train_step(
        self,
        model: Module,
        loss_fn: Callable[..., Tensor],
        optimizer: Any,
        x: Array,
        labels: Array,
        *,
        clip_grad_norm: float | None = None,
    ) -> tuple[float, float, float]:
        """One step on this rank's part; returns the global batch's (mean loss, correct
        labels, samples), the same on every rank.

        ``clip_grad_norm`` clips the global batch's mean gradient (after the Allreduce), as
        one process clips its batch's: every rank rescales the same gradients alike.
        """
        if self.fusion is None:
            raise RuntimeError("DataParallel.train_step called before prepare")
        logits = model(x)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad()
        loss.backward()  # this rank's gradients (GR1)-(GR3)
        scores = logits.data
        correct = (get_xp(scores).argmax(scores, axis=1) == labels).sum() if scores.ndim == 2 else 0
        n = len(labels)
        total, loss_sum, correct_sum = self.fusion.allreduce(
            n, (float(loss.item()) * n, float(correct))
        )  # (DP3), (DP4)
        if clip_grad_norm is not None:
            clip_grad_norm_(model.parameters(), clip_grad_norm)  # (CLIP1)-(CLIP4)
        optimizer.step()
        return loss_sum / total, correct_sum, total

    def end_epoch(self, model: Module) -> None:
        """Give every rank rank 0's buffers (running statistics), as PyTorch's DDP."""
        broadcast_buffers(model)

    def evaluate(
        self, evaluate: Callable[..., Any], model: Module, dataset: ArrayDataset, **options: Any
    ) -> tuple[float, float]:
        """(mean loss, accuracy) over ``dataset``, each rank evaluating a contiguous share."""
        if self.world_size == 1:
            result = evaluate(model, dataset, **options)
            return float(result.loss), float(result.accuracy)
        N = len(dataset)
        start, stop = self.rank * N // self.world_size, (self.rank + 1) * N // self.world_size
        totals = numpy.zeros(3)
        if stop > start:
            result = evaluate(model, dataset[start:stop], **options)
            n = stop - start
            totals[:] = (result.loss * n, result.accuracy * n, n)
        self.comm.allreduce_sum(totals)
        return float(totals[0] / totals[2]), float(totals[1] / totals[2])
