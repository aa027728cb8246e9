"""One training epoch of the default LeNet-style net: convprop vs the same net in PyTorch.

Both start from the same weights, see the same batches in the same order (batch size 64,
Adam, lr 1e-3) and use the same number of threads; the script prints seconds per epoch
(data loading included, evaluation excluded) and the ratio convprop / PyTorch. The two
epochs run interleaved, 25 batches at a time, so that the machine's changing load falls
on both alike.

    python benchmarks/bench_train.py                  # Fashion-MNIST, one full epoch each
    python benchmarks/bench_train.py --batches 100    # the first 100 batches only
    python benchmarks/bench_train.py --dataset digits
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy
import torch

from convprop.bench import machine_info
from convprop.data import DataLoader, load_dataset
from convprop.models import lenet
from convprop.nn import CrossEntropyLoss
from convprop.optim import Adam
from convprop.process import configure_process
from convprop.train import train_step


def torch_lenet(model: object, side: int, num_classes: int) -> torch.nn.Sequential:
    """The same architecture in PyTorch, with convprop's initial weights copied in."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * side * side, 128),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.25),
        torch.nn.Linear(128, num_classes),
    )
    state = {k: torch.from_numpy(numpy.array(v)) for k, v in model.state_dict().items()}  # type: ignore[attr-defined]
    net.load_state_dict(state)
    return net


BLOCK = 25
"""Batches each library runs before the other takes its turn."""


def _timed(step: Callable[[Any, Any], None], batches: Iterator[Any], count: int) -> float:
    """Seconds to draw ``count`` batches (data loading included) and train on each."""
    start = time.perf_counter()
    for _ in range(count):
        x, labels = next(batches)
        step(x, labels)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=None, help="stop each epoch early")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    configure_process(restart=True)  # one allocator setting for both libraries (same process)
    torch.set_num_threads(args.threads)
    train_set, _ = load_dataset(args.dataset)
    C, H, _ = train_set.sample_shape
    model = lenet(train_set.num_classes, C, H, rng=0)
    reference = torch_lenet(model, H // 4, train_set.num_classes)
    loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=0)
    total = len(loader) if args.batches is None else min(args.batches, len(loader))

    optimizer, loss_fn = Adam(model.parameters(), 1e-3), CrossEntropyLoss()
    torch_optimizer = torch.optim.Adam(reference.parameters(), 1e-3)

    def ours_step(x: numpy.ndarray, labels: numpy.ndarray) -> None:
        train_step(model, loss_fn, optimizer, x, labels)

    def torch_step(x: numpy.ndarray, labels: numpy.ndarray) -> None:
        torch_optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            reference(torch.from_numpy(x)), torch.from_numpy(labels)
        )
        loss.backward()
        torch_optimizer.step()

    # The two epochs run interleaved, BLOCK batches at a time, so that a change in the
    # machine's load during the run falls on both libraries alike.
    ours = theirs = 0.0
    batches = {"ours": loader.iter_epoch(1), "torch": loader.iter_epoch(1)}
    for first in range(0, total, BLOCK):
        count = min(BLOCK, total - first)
        ours += _timed(ours_step, batches["ours"], count)
        theirs += _timed(torch_step, batches["torch"], count)

    info = machine_info(args.threads)
    print(f"machine: {info['cpu']}, {info['cores']} cores, threads {args.threads}; "
          f"numpy {info['numpy']} ({info['blas']}, OPENBLAS_THREAD_TIMEOUT="
          f"{info['blas_thread_timeout']}); torch {info['torch']}")  # fmt: skip
    print(f"{args.dataset}: {total} batches of {args.batch_size}, default LeNet-style net, Adam")
    print(f"convprop {ours:.1f} s   PyTorch {theirs:.1f} s   ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
