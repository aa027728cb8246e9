"""Forward + backward time of the pooling ops (derivations sections 10 and 23), beside PyTorch.

Each row runs the op through convprop.nn.functional on a float32 Tensor that needs its
gradient, then backward with a fixed upstream gradient, and the same with torch (CPU, the
same number of threads); the median of ``--repeats`` runs after one warm-up. Rows marked
"compiled" run convprop's compiled 2-D max-pooling kernel (its threads: CONVPROP_NUM_THREADS,
default the usable CPUs); the others are NumPy code.

    python benchmarks/bench_pooling.py [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy
import torch

import convprop
import convprop.nn.functional as F


def _median_ms(run: Callable[[], None], repeats: int) -> float:
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def _cases() -> list[tuple[str, tuple[int, ...], Any]]:
    """(name, input shape, call(f, x)) with f convprop.nn.functional or torch's."""
    return [
        ("max_pool2d 2x2 (compiled)", (32, 64, 56, 56), lambda f, x: f.max_pool2d(x, 2)),
        ("max_pool2d 3x3 s2 p1 (compiled)", (32, 64, 56, 56),
         lambda f, x: f.max_pool2d(x, 3, 2, 1)),
        ("max_pool2d 3x3 s2 p1 dilation 2", (32, 64, 56, 56),
         lambda f, x: f.max_pool2d(x, 3, 2, 1, 2)),
        ("max_pool1d 3 s2 p1 (compiled, one row)", (64, 64, 1024),
         lambda f, x: f.max_pool1d(x, 3, 2, 1)),
        ("max_pool3d 2", (8, 16, 16, 32, 32), lambda f, x: f.max_pool3d(x, 2)),
        ("avg_pool3d 3 s2 p1", (8, 16, 16, 32, 32), lambda f, x: f.avg_pool3d(x, 3, 2, 1)),
        ("avg_pool2d 3 s2 p1 divisor 4", (32, 64, 56, 56),
         lambda f, x: f.avg_pool2d(x, 3, 2, 1, False, True, 4)),
        ("lp_pool2d p=2 2x2", (32, 64, 56, 56), lambda f, x: f.lp_pool2d(x, 2, 2)),
        ("adaptive_max_pool2d (7, 7)", (32, 64, 56, 56), lambda f, x: f.adaptive_max_pool2d(x, 7)),
        ("adaptive_avg_pool1d 100", (64, 64, 1024), lambda f, x: f.adaptive_avg_pool1d(x, 100)),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = numpy.random.default_rng(0)
    print(f"{'op':40} {'shape':20} {'convprop ms':>12} {'torch ms':>10} {'ratio':>7}")
    for name, shape, call in _cases():
        x_array = rng.normal(size=shape).astype(numpy.float32)

        def run_ours(call: Any = call, x_array: numpy.ndarray = x_array) -> None:
            x = convprop.tensor(x_array, requires_grad=True)
            y = call(F, x)
            y.backward(numpy.ones(y.shape, dtype=numpy.float32))

        def run_torch(call: Any = call, x_array: numpy.ndarray = x_array) -> None:
            x = torch.from_numpy(x_array).requires_grad_(True)
            y = call(torch.nn.functional, x)
            y.backward(torch.ones_like(y))

        mine, torch_ms = _median_ms(run_ours, args.repeats), _median_ms(run_torch, args.repeats)
        print(f"{name:40} {shape!s:20} {mine:12.2f} {torch_ms:10.2f} {mine / torch_ms:7.2f}")


if __name__ == "__main__":
    main()
