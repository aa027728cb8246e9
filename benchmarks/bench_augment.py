"""Fashion-MNIST with and without augmentation and a schedule, in the same number of epochs.

Trains the CLI's default LeNet (Adam, lr 1e-3, batch 64, seed 0) once per run on the full
training set and reports the test accuracy after every epoch:
  plain             no augmentation, constant learning rate (convprop train's defaults);
  schedule          --warmup-epochs 1 --schedule cosine;
  augment+schedule  --augment crop,flip --warmup-epochs 1 --schedule cosine;
  flip+schedule     --augment flip --warmup-epochs 1 --schedule cosine.
Each run equals ``convprop train --dataset fashion-mnist --epochs E [options]``.

    python benchmarks/bench_augment.py --epochs 6
"""

from __future__ import annotations

import argparse
import platform
import time

from convprop.data import load_dataset
from convprop.models import build_model
from convprop.train import TrainConfig, fit

RUNS = {
    "plain": {},
    "schedule": {"warmup_epochs": 1, "schedule": "cosine"},
    "augment+schedule": {"warmup_epochs": 1, "schedule": "cosine", "augment": ["crop", "flip"]},
    "flip+schedule": {"warmup_epochs": 1, "schedule": "cosine", "augment": ["flip"]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    train, test = load_dataset("fashion-mnist")
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"Fashion-MNIST: {len(train)} train / {len(test)} test, lenet, adam lr 1e-3, batch 64")
    header = f"{'run':<18}" + "".join(f"{'ep ' + str(e):>8}" for e in range(1, args.epochs + 1))
    print(header + f"{'seconds':>10}")
    for name in args.runs:
        model = build_model("lenet", num_classes=10, in_channels=1, image_size=28, rng=0)
        config = TrainConfig(
            epochs=args.epochs, batch_size=64, lr=1e-3, optimizer="adam", seed=0,
            progress=False, **RUNS[name],
        )  # fmt: skip
        started = time.perf_counter()
        history = fit(model, train, test, config)
        seconds = time.perf_counter() - started
        accuracies = "".join(f"{record['test_accuracy']:>8.4f}" for record in history)
        print(f"{name:<18}{accuracies}{seconds:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
