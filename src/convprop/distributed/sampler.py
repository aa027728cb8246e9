"""Each rank's share of every global batch: disjoint, complete, reproducible.

Notation  N samples, global batch G, W ranks, rank r;  order_e = the epoch's permutation
  order_e = default_rng(seed + e).permutation(N)        (as convprop.data.DataLoader)
  global batch t:  B_t = order_e[t·G : (t+1)·G], t = 0 .. ⌈N/G⌉ − 1; a last batch of
                   fewer than W samples joins the one before it                          (DP1)
  rank r's part:   B_t,r = B_t[r :: W]   (every W-th sample, starting at the r-th);
                   n_t,r = |B_t,r| = ⌈(|B_t| − r) / W⌉                                  (DP2)

So the parts of one batch are disjoint and their union is the batch: every sample is seen
once per epoch, by one rank. The global batches are those of one process with batch size G
(but for the merged tail), so W ranks with parts of G/W train as one process with G (DP3).
Every rank gets at least one sample per step (G ≥ W and the tail rule), so every rank takes
part in every step's collective calls. The order depends on the seed, the epoch, G and W
alone: a resumed run sees the batches an uninterrupted one would.

When W divides G, rank r's samples over the epoch are ``order_e[r::W]``, the shard of
PyTorch's DistributedSampler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy
from numpy.typing import NDArray

from convprop.backend import Array, to_device
from convprop.data import ArrayDataset, DataLoader
from convprop.data.augment import batch_generator
from convprop.errors import ParameterError


def _check_count(op: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < minimum:
        raise ParameterError(f"{op}: {name} must be an int >= {minimum}; got {value!r}")
    return int(value)


class DistributedSampler:
    """The sample indices rank ``rank`` of ``world_size`` trains on, batch by batch.

    Parameters
    ----------
    num_samples : int
        N >= world_size.
    batch_size : int
        The global batch G >= world_size, split across the ranks.
    rank, world_size : int
        0 <= rank < world_size.
    shuffle : bool
        Permute each epoch (DataLoader's order); otherwise data set order.
    seed : int
        The base seed (epoch e uses seed + e).

    Examples
    --------
    >>> s = DistributedSampler(10, 4, rank=1, world_size=2, shuffle=False)
    >>> [b.tolist() for b in s.global_batches(0)], [b.tolist() for b in s.batches(0)]
    ([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], [[1, 3], [5, 7], [9]])
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        rank: int,
        world_size: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        op = "DistributedSampler"
        self.world_size = _check_count(op, "world_size", world_size, 1)
        self.rank = _check_count(op, "rank", rank, 0)
        if self.rank >= self.world_size:
            raise ParameterError(
                f"{op}: rank must be below the world size; expected 0 <= rank < "
                f"{self.world_size}, got {rank}"
            )
        self.num_samples = _check_count(op, "num_samples", num_samples, 1)
        self.batch_size = _check_count(op, "batch_size", batch_size, 1)
        if self.batch_size < self.world_size or self.num_samples < self.world_size:
            raise ParameterError(
                f"{op}: every rank needs a sample in every batch; expected batch_size and the "
                f"number of samples >= the world size {self.world_size}, got batch_size="
                f"{self.batch_size} and {self.num_samples} samples"
            )
        self.shuffle = bool(shuffle)
        self.seed = _check_count(op, "seed", seed, 0)

    def epoch_order(self, epoch: int) -> NDArray[numpy.int64]:
        """All N indices in the order epoch ``epoch`` visits them (DataLoader's order)."""
        if not self.shuffle:
            return numpy.arange(self.num_samples, dtype=numpy.int64)
        return numpy.random.default_rng(self.seed + epoch).permutation(self.num_samples)

    def global_batches(self, epoch: int) -> list[NDArray[numpy.int64]]:
        """The epoch's global batches B_t (DP1)."""
        order = self.epoch_order(epoch).astype(numpy.int64)
        G = self.batch_size
        starts = list(range(0, self.num_samples, G))
        if len(starts) > 1 and self.num_samples - starts[-1] < self.world_size:
            starts.pop()  # the short tail joins the batch before it (DP1)
        ends = [*starts[1:], self.num_samples]
        return [order[a:b] for a, b in zip(starts, ends, strict=True)]

    def batches(self, epoch: int) -> list[NDArray[numpy.int64]]:
        """This rank's part B_t,r of every global batch of the epoch (DP2)."""
        return [batch[self.rank :: self.world_size] for batch in self.global_batches(epoch)]

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        steps = -(-self.num_samples // self.batch_size)
        tail = self.num_samples - (steps - 1) * self.batch_size
        return steps - 1 if steps > 1 and tail < self.world_size else steps


class ShardedLoader:
    """A DataLoader's interface over this rank's parts of the global batches.

    ``len(loader)`` is the number of steps per epoch (equal on every rank) and
    ``iter_epoch(e)`` yields this rank's ``(x (n_r,C,H,W), y (n_r,))`` for each step.

    With ``transform`` (augmentation), every rank transforms the whole global batch t with
    the generator of batch t (AUG3), as one process would, and keeps its part: the images
    are those of one process with batch G, at the price of transforming G images per rank.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        rank: int,
        world_size: int,
        shuffle: bool = True,
        seed: int = 0,
        device: str = "cpu",
        transform: Callable[[Array, numpy.random.Generator], Array] | None = None,
    ) -> None:
        DataLoader(
            dataset, batch_size, shuffle=shuffle, seed=seed, device=device, transform=transform
        )  # the same checks
        self.dataset = dataset
        self.device = device
        self.transform = transform
        self.sampler = DistributedSampler(
            len(dataset),
            batch_size,
            rank=rank,
            world_size=world_size,
            shuffle=shuffle,
            seed=seed,
        )

    def __len__(self) -> int:
        return len(self.sampler)

    def iter_epoch(self, epoch: int) -> Iterator[tuple[Array, Array]]:
        """This rank's batches of epoch ``epoch``."""
        part = slice(self.sampler.rank, None, self.sampler.world_size)  # (DP2)
        for k, batch in enumerate(self.sampler.global_batches(epoch)):
            if self.transform is None:
                x = numpy.ascontiguousarray(self.dataset.images[batch[part]])  # (n_r, C, H, W)
            else:  # the whole batch's draws, then this rank's part
                whole = numpy.ascontiguousarray(self.dataset.images[batch])  # (|B_t|, C, H, W)
                whole = self.transform(whole, batch_generator(self.sampler.seed, epoch, k))
                x = numpy.ascontiguousarray(whole[part])  # (AUG3), (DP2)
            y = numpy.ascontiguousarray(self.dataset.labels[batch[part]])  # a fresh (n_r,)
            if self.device != "cpu":
                x, y = to_device(x, self.device), to_device(y, self.device)
            yield x, y
