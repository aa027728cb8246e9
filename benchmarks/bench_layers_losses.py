"""Forward + backward time of the layers and losses of derivations section 25, beside PyTorch.

Each row runs the op through convprop.nn.functional on a float32 Tensor that needs its
gradient, then backward with a fixed upstream gradient, and the same with torch (CPU, the
same number of threads); the median of ``--repeats`` runs after one warm-up.

    python benchmarks/bench_layers_losses.py [--repeats 20] [--threads 2]
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
import convprop.process


def _median_ms(run: Callable[[], None], repeats: int) -> float:
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def _cases(rng: numpy.random.Generator) -> list[tuple[str, tuple[int, ...], Any, Any]]:
    """(name, input shape, convprop call, torch call) on the input x."""
    labels = rng.integers(0, 10, size=(64, 32, 32))
    weight = rng.uniform(0.5, 2, size=10).astype(numpy.float32)
    targets = rng.uniform(0, 1, size=(256, 1000)).astype(numpy.float32)
    tn = torch.nn.functional
    return [
        ("gelu", (32, 64, 56, 56), F.gelu, tn.gelu),
        ("silu", (32, 64, 56, 56), F.silu, tn.silu),
        ("layer_norm (C,H,W)", (32, 64, 28, 28), lambda x: F.layer_norm(x, (64, 28, 28)),
         lambda x: tn.layer_norm(x, (64, 28, 28))),
        ("group_norm G=8", (32, 64, 28, 28), lambda x: F.group_norm(x, 8),
         lambda x: tn.group_norm(x, 8)),
        ("pad reflect 3", (32, 64, 56, 56), lambda x: F.pad(x, (3, 3, 3, 3), "reflect"),
         lambda x: tn.pad(x, (3, 3, 3, 3), "reflect")),
        ("interpolate nearest x2", (32, 64, 28, 28), lambda x: F.interpolate(x, scale_factor=2),
         lambda x: tn.interpolate(x, scale_factor=2)),
        ("interpolate bilinear x2", (32, 64, 28, 28),
         lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
         lambda x: tn.interpolate(x, scale_factor=2, mode="bilinear")),
        ("cross_entropy (N,C,H,W) weighted, smoothing", (64, 10, 32, 32),
         lambda x: F.cross_entropy(x, labels, weight, label_smoothing=0.1),
         lambda x: tn.cross_entropy(x, torch.from_numpy(labels), torch.from_numpy(weight),
                                    label_smoothing=0.1)),
        ("bce_with_logits", (256, 1000), lambda x: F.binary_cross_entropy_with_logits(x, targets),
         lambda x: tn.binary_cross_entropy_with_logits(x, torch.from_numpy(targets))),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    convprop.process.configure_process(restart=True)  # as the command line
    rng = numpy.random.default_rng(0)
    print(f"{'op':46} {'shape':18} {'convprop ms':>12} {'torch ms':>10} {'ratio':>7}")
    for name, shape, ours, theirs in _cases(rng):
        x_array = rng.normal(size=shape).astype(numpy.float32)

        def run_ours(ours: Any = ours, x_array: numpy.ndarray = x_array) -> None:
            x = convprop.tensor(x_array, requires_grad=True)
            y = ours(x)
            y.backward(numpy.ones(y.shape, dtype=numpy.float32) if y.ndim else None)

        def run_torch(theirs: Any = theirs, x_array: numpy.ndarray = x_array) -> None:
            x = torch.from_numpy(x_array).requires_grad_(True)
            y = theirs(x)
            y.backward(torch.ones_like(y))

        mine, torch_ms = _median_ms(run_ours, args.repeats), _median_ms(run_torch, args.repeats)
        print(f"{name:46} {shape!s:18} {mine:12.2f} {torch_ms:10.2f} {mine / torch_ms:7.2f}")


if __name__ == "__main__":
    main()
