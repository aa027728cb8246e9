"""Batching: a data set cut into (x, y) batches, shuffled reproducibly per epoch.

Notation  images x (N,C,H,W)  labels y (N,)  batch size B

Epoch e visits the samples in the order ``numpy.random.default_rng(seed + e).permutation(N)``
when shuffling (data set order otherwise), so any epoch can be reproduced on its own, for
example after resuming a run. Each batch is gathered once into fresh contiguous arrays,
passed through ``transform`` when one is given (batch k of epoch e with the generator
``convprop.data.augment.batch_generator(seed, e, k)``, equation AUG3, so that it too can be
reproduced on its own) and, for ``device="cuda"``, moved to the GPU with
``convprop.backend.to_device``: the single host-to-device transfer per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy
from numpy.typing import NDArray

from convprop.backend import Array, cupy_available, to_device
from convprop.data.augment import batch_generator
from convprop.data.dataset import ArrayDataset, require_int
from convprop.data.errors import DataError
from convprop.errors import BackendError, ParameterError

DEVICES = ("cpu", "cuda")


class DataLoader:
    """Batches ``(x (B,C,H,W), y (B,))`` of a data set, optionally shuffled per epoch.

    Parameters
    ----------
    dataset : ArrayDataset
        The samples, on the host.
    batch_size : int
        B >= 1. The last batch is smaller when B does not divide N (unless ``drop_last``).
    shuffle : bool
        Visit the samples of epoch e in the order ``default_rng(seed + e).permutation(N)``;
        otherwise in data set order.
    seed : int
        A non-negative base seed.
    drop_last : bool
        Leave out the final, incomplete batch.
    device : {"cpu", "cuda"}
        Where the batches are delivered (NumPy or CuPy arrays).
    transform : callable, optional
        ``transform(x (B,C,H,W), rng) -> x'`` applied to the images of every batch on the
        host (e.g. ``convprop.data.augment.Compose([RandomCrop(28, 3),
        RandomHorizontalFlip()])``), with ``rng = batch_generator(seed, epoch, k)`` for
        batch k (AUG3).

    Attributes
    ----------
    epoch : int
        The epoch the next plain iteration (``for x, y in loader``) will produce. Each such
        iteration takes this epoch and advances it by one; ``set_epoch`` moves it, and
        ``iter_epoch(e)`` produces epoch e without touching it.

    Raises
    ------
    ParameterError
        For a bad batch size, seed or device name.
    BackendError
        For ``device="cuda"`` without CuPy and a GPU.
    DataError
        If the data set is empty, or ``drop_last`` would leave no batch.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.data.dataset import from_arrays
    >>> ds = from_arrays(np.zeros((5, 2, 2), np.float32), np.arange(5))
    >>> loader = DataLoader(ds, 2)
    >>> len(loader), [y.tolist() for _, y in loader]
    (3, [[0, 1], [2, 3], [4]])
    >>> x, y = next(iter(DataLoader(ds, 2, shuffle=True, seed=7)))
    >>> x.shape, y.dtype
    ((2, 1, 2, 2), dtype('int64'))
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        device: str = "cpu",
        transform: Callable[[Array, numpy.random.Generator], Array] | None = None,
    ) -> None:
        op = "DataLoader"
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(
                f"{op}: dataset must be an ArrayDataset; expected ArrayDataset, "
                f"got {type(dataset).__name__} (use convprop.data.from_arrays)"
            )
        self.batch_size = require_int(op, "batch_size", batch_size, minimum=1)
        self.seed = require_int(op, "seed", seed, minimum=0)
        if device not in DEVICES:
            raise ParameterError(f"{op}: unknown device; expected one of {DEVICES}, got {device!r}")
        if device == "cuda" and not cupy_available():
            raise BackendError(
                f"{op}: device 'cuda' needs CuPy and an NVIDIA GPU; expected both, got neither "
                "usable (install convprop[gpu] or use device='cpu')"
            )
        if len(dataset) == 0:
            raise DataError(
                f"{op}: the data set is empty; expected N >= 1, "
                f"got images.shape={dataset.images.shape}"
            )
        if drop_last and len(dataset) < self.batch_size:
            raise DataError(
                f"{op}: drop_last=True would yield no batch; expected batch_size <= N, "
                f"got batch_size={self.batch_size} and N={len(dataset)}"
            )
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        if transform is not None and not callable(transform):
            raise TypeError(
                f"{op}: transform must be callable; expected transform(x, rng), "
                f"got {type(transform).__name__}"
            )
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch."""
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return -(-len(self.dataset) // self.batch_size)  # ceil(N / B)

    def set_epoch(self, epoch: int) -> None:
        """Make the next plain iteration produce epoch ``epoch`` (e.g. when resuming)."""
        self.epoch = require_int("DataLoader.set_epoch", "epoch", epoch, minimum=0)

    def epoch_order(self, epoch: int) -> NDArray[numpy.int64]:
        """The sample indices (N,) in the order epoch ``epoch`` visits them."""
        epoch = require_int("DataLoader.epoch_order", "epoch", epoch, minimum=0)
        N = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(N, dtype=numpy.int64)
        return numpy.random.default_rng(self.seed + epoch).permutation(N).astype(numpy.int64)

    def iter_epoch(self, epoch: int) -> Iterator[tuple[Array, Array]]:
        """Yield the batches ``(x (B,C,H,W), y (B,) int64)`` of epoch ``epoch``."""
        order = self.epoch_order(epoch)
        for k, start in enumerate(range(0, len(self) * self.batch_size, self.batch_size)):
            index = order[start : start + self.batch_size]
            x = numpy.ascontiguousarray(self.dataset.images[index])  # a fresh (B, C, H, W)
            y = numpy.ascontiguousarray(self.dataset.labels[index])  # a fresh (B,)
            if self.transform is not None:
                x = self.transform(x, batch_generator(self.seed, epoch, k))  # (AUG3)
            if self.device != "cpu":
                x, y = to_device(x, self.device), to_device(y, self.device)
            yield x, y

    def __iter__(self) -> Iterator[tuple[Array, Array]]:
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def __repr__(self) -> str:
        return (
            f"DataLoader(N={len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"device={self.device!r}, epoch={self.epoch})"
        )
