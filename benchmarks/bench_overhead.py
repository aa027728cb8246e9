"""The per-call cost of convprop's layers against PyTorch's, on inputs too small to matter.

Each layer is called on one tiny image (1×8×4×4, or 1×128 for Linear), in inference (no
graph) and in training (the call records its node), so that the time is the library's own
work per call: argument checks, the geometry, the algorithm's choice, the dispatch to the
kernel, the Tensor and its node. NumPy's ``maximum`` on the same array is printed as the
floor of one array operation. Each library runs alone in its own process, the processes
alternating (``--rounds``), each process reporting the median of many calls; the table shows
the median of the rounds and the ratio convprop / PyTorch, in microseconds.

    python benchmarks/bench_overhead.py
    python benchmarks/bench_overhead.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy

CALLS = 2000
"""Timed calls per layer and mode in a process (after 200 untimed ones)."""

LAYERS = ("conv2d 3x3", "max_pool2d 2", "relu", "linear", "flatten", "batch_norm2d")


def _median_us(call: Callable[[], object]) -> float:
    for _ in range(200):
        call()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _convprop() -> dict[str, float]:
    from convprop import nn
    from convprop.autograd import Tensor, no_grad
    from convprop.process import retain_freed_memory

    retain_freed_memory()
    x = Tensor(numpy.random.default_rng(0).standard_normal((1, 8, 4, 4)).astype("float32"))
    flat = Tensor(numpy.random.default_rng(1).standard_normal((1, 128)).astype("float32"))
    modules: dict[str, tuple[Any, Any]] = {
        "conv2d 3x3": (nn.Conv2d(8, 8, 3, padding=1, rng=0), x),
        "max_pool2d 2": (nn.MaxPool2d(2), x),
        "relu": (nn.ReLU(), x),
        "linear": (nn.Linear(128, 10, rng=0), flat),
        "flatten": (nn.Flatten(), x),
        "batch_norm2d": (nn.BatchNorm2d(8), x),
    }
    result = {"numpy maximum": _median_us(lambda: numpy.maximum(x.data, 0))}
    for name, (module, data) in modules.items():
        module.train()
        result[f"{name} train"] = _median_us(lambda m=module, d=data: m(d))
        module.eval()
        with no_grad():
            result[f"{name} eval"] = _median_us(lambda m=module, d=data: m(d))
    return result


def _torch() -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    x = torch.randn(1, 8, 4, 4)
    flat = torch.randn(1, 128)
    modules: dict[str, tuple[Any, Any]] = {
        "conv2d 3x3": (torch.nn.Conv2d(8, 8, 3, padding=1), x),
        "max_pool2d 2": (torch.nn.MaxPool2d(2), x),
        "relu": (torch.nn.ReLU(), x),
        "linear": (torch.nn.Linear(128, 10), flat),
        "flatten": (torch.nn.Flatten(), x),
        "batch_norm2d": (torch.nn.BatchNorm2d(8), x),
    }
    result = {"numpy maximum": _median_us(lambda: numpy.maximum(x.numpy(), 0))}
    for name, (module, data) in modules.items():
        module.train()
        grad = data.detach().requires_grad_(True)  # so that the call records its node
        result[f"{name} train"] = _median_us(lambda m=module, d=grad: m(d))
        module.eval()
        with torch.no_grad():
            result[f"{name} eval"] = _median_us(lambda m=module, d=data: m(d))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per library (3)")
    parser.add_argument("--worker", choices=("convprop", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_convprop() if args.worker == "convprop" else _torch()))
        return
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    from convprop.bench_processes import run_json_process

    runs: dict[str, list[dict[str, float]]] = {"convprop": [], "torch": []}
    for round_ in range(args.rounds):
        order = ("convprop", "torch") if round_ % 2 == 0 else ("torch", "convprop")
        for library in order:
            command = [sys.executable, __file__, "--worker", library]
            runs[library].append(run_json_process(command, 1, f"the {library} worker"))
    print(f"per call, µs, one thread, median of {args.rounds} processes x {CALLS} calls")
    print(f"{'call':24s} {'convprop':>9s} {'PyTorch':>9s} {'ratio':>6s}")
    for key in runs["convprop"][0]:
        ours = statistics.median(run[key] for run in runs["convprop"])
        theirs = statistics.median(run[key] for run in runs["torch"])
        print(f"{key:24s} {ours:9.1f} {theirs:9.1f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
