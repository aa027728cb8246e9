"""What recording the gradient norms (DIAG1) costs ``fit``: the time of GradientNorms.add()
against the time of the training step it follows, for the shipped models.

For each model it runs training steps on random data of the shape the CLI trains it on and
prints the median step time, the median add() time and their ratio.

    python benchmarks/bench_grad_norms.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy

from convprop.grad_norms import GradientNorms
from convprop.models import build_model
from convprop.nn import CrossEntropyLoss
from convprop.optim import Adam
from convprop.train import train_step

CASES = (  # model, image size, batch size: the CLI's defaults for digits and Fashion-MNIST
    ("lenet", 8, 32),
    ("lenet5", 28, 64),
    ("resnet-mini", 28, 64),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    rng = numpy.random.default_rng(0)
    print(f"{'model':<12}{'input':>12}{'step ms':>10}{'add() ms':>10}{'ratio':>9}")
    for name, size, batch in CASES:
        model = build_model(name, num_classes=10, in_channels=1, image_size=size, rng=0)
        model.train()
        optimizer, loss_fn = Adam(model.parameters(), 1e-3), CrossEntropyLoss()
        norms = GradientNorms(model)
        x = rng.standard_normal((batch, 1, size, size)).astype(numpy.float32)
        labels = rng.integers(0, 10, size=batch)
        steps, adds = [], []
        for _ in range(args.steps):
            started = time.perf_counter()
            train_step(model, loss_fn, optimizer, x, labels)
            between = time.perf_counter()
            norms.add()
            steps.append(between - started)
            adds.append(time.perf_counter() - between)
        step, add = statistics.median(steps) * 1e3, statistics.median(adds) * 1e3
        shape = f"{batch}x1x{size}x{size}"
        print(f"{name:<12}{shape:>12}{step:>10.2f}{add:>10.3f}{add / step:>9.2%}")


if __name__ == "__main__":
    main()
