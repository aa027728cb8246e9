"""One training epoch of a shipped model: convprop vs the same net in PyTorch.

Both start from the same weights (and BatchNorm buffers), see the same batches in the same
order (batch size 64, Adam, lr 1e-3) and use the same number of threads. Each library
trains in a process of its own (as a user runs one: one library's idle threads never share
the CPUs with the other's), the two libraries' processes alternating, the order swapped
each round; the script prints each process's seconds per epoch (data loading included,
evaluation excluded), the medians and their ratio convprop / PyTorch.

    python benchmarks/bench_train.py                  # Fashion-MNIST, one full epoch, 3 rounds
    python benchmarks/bench_train.py --batches 100    # the first 100 batches only
    python benchmarks/bench_train.py --model resnet-mini  # BatchNorm and residual adds
    python benchmarks/bench_train.py --dataset digits --rounds 1
    python benchmarks/bench_train.py --batches 300 --random-inputs  # the data's effect
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy
import torch

from convprop.bench import machine_info
from convprop.bench_nets.torch_nets import torch_twin
from convprop.bench_processes import run_json_process
from convprop.data import DataLoader, load_dataset
from convprop.models import MODELS, build_model
from convprop.nn import CrossEntropyLoss
from convprop.optim import Adam
from convprop.process import configure_process
from convprop.train import train_step


def _timed(step: Callable[[Any, Any], None], batches: Iterator[Any], count: int) -> float:
    """Seconds to draw ``count`` batches (data loading included) and train on each."""
    start = time.perf_counter()
    for _ in range(count):
        x, labels = next(batches)
        step(x, labels)
    return time.perf_counter() - start


RANDOM_BATCHES = 16
"""``--random-inputs``: standard normal batches drawn before the epoch, fed in turn."""


def _random_inputs(batches: Iterator[Any], shape: tuple[int, ...]) -> Iterator[Any]:
    """The loader's batches with standard normal values (float32, seeded) for the images;
    the labels, and the loading, as they were."""
    rng = numpy.random.default_rng(0)
    pool = [rng.standard_normal(shape, dtype=numpy.float32) for _ in range(RANDOM_BATCHES)]
    for index, (x, labels) in enumerate(batches):
        yield pool[index % RANDOM_BATCHES][: len(x)], labels


def run_worker(
    library: str, model_name: str, dataset: str, batch_size: int, batches: int | None,
    random_inputs: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One epoch of ``library`` ("convprop" or "torch") training the shipped model
    ``model_name`` in this process: its seconds and the batches it trained on. With
    ``random_inputs``, on standard normal values of the images' shape (the labels kept)."""
    train_set, _ = load_dataset(dataset)
    C, H, _ = train_set.sample_shape
    model = build_model(
        model_name, num_classes=train_set.num_classes, in_channels=C, image_size=H, rng=0
    )
    loader = DataLoader(train_set, batch_size, shuffle=True, seed=0)
    total = len(loader) if batches is None else min(batches, len(loader))
    if library == "torch":
        reference = torch_twin(model)  # the same layers, weights and buffers
        reference.train()
        torch_optimizer = torch.optim.Adam(reference.parameters(), 1e-3)

        def step(x: numpy.ndarray, labels: numpy.ndarray) -> None:
            torch_optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                reference(torch.from_numpy(x)), torch.from_numpy(labels)
            )
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            torch_optimizer.step()

    else:
        optimizer, loss_fn = Adam(model.parameters(), 1e-3), CrossEntropyLoss()

        def step(x: numpy.ndarray, labels: numpy.ndarray) -> None:
            train_step(model, loss_fn, optimizer, x, labels)

    epoch = loader.iter_epoch(1)
    if random_inputs:
        epoch = _random_inputs(epoch, (batch_size, *train_set.sample_shape))
    seconds = _timed(step, epoch, total)
    return {"library": library, "seconds": seconds, "batches": total}


def _worker_command(library: str, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", library,
               "--model", args.model, "--dataset", args.dataset,
               "--batch-size", str(args.batch_size)]  # fmt: skip
    command += ["--random-inputs"] if args.random_inputs else []
    return command + ([] if args.batches is None else ["--batches", str(args.batches)])


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet",
                        help="the shipped model to train (lenet)")  # fmt: skip
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=None, help="stop each epoch early")
    parser.add_argument(
        "--random-inputs", action="store_true", help="standard normal values, not the images"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=_positive, default=3, help="processes per library (3)")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    return parser


LIBRARIES = ("convprop", "torch")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.worker is not None:  # one library's epoch, in the environment the parent set
        configure_process()
        if args.worker == "torch":
            torch.set_num_threads(args.threads)
        result = run_worker(args.worker, args.model, args.dataset, args.batch_size, args.batches,
                            args.random_inputs)  # fmt: skip
        print(json.dumps(result))
        return
    seconds: dict[str, list[float]] = {library: [] for library in LIBRARIES}
    total = 0
    for round_index in range(args.rounds):
        order = LIBRARIES if round_index % 2 == 0 else LIBRARIES[::-1]
        for library in order:
            result = run_json_process(_worker_command(library, args), args.threads,
                                      f"bench_train: the {library} worker")  # fmt: skip
            seconds[library].append(float(result["seconds"]))
            total = int(result["batches"])
    info = machine_info(args.threads)
    print(f"machine: {info['cpu']}, {info['cores']} cores, threads {args.threads}; "
          f"numpy {info['numpy']} ({info['blas']}); torch {info['torch']}; each library in "
          f"{args.rounds} processes of its own, alternating")  # fmt: skip
    inputs = "standard normal values, labels of " if args.random_inputs else ""
    print(f"{inputs}{args.dataset}: {total} batches of {args.batch_size}, {args.model}, Adam")
    for library in LIBRARIES:
        runs = ", ".join(f"{value:.1f}" for value in seconds[library])
        print(f"{library:9s} {runs} s")
    ours, theirs = (statistics.median(seconds[library]) for library in LIBRARIES)
    print(f"convprop {ours:.1f} s   PyTorch {theirs:.1f} s   ratio {ours / theirs:.2f} (medians)")


if __name__ == "__main__":
    main()
