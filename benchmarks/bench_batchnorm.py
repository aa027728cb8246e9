"""BatchNorm2d alone: convprop with its kernels, convprop's NumPy code, PyTorch; training
forward and forward+backward, float32, each library in its own process, alternating
rounds, medians.

    python benchmarks/bench_batchnorm.py                  # 2 threads, 5 rounds
    python benchmarks/bench_batchnorm.py --threads 4 --rounds 3

Each worker process runs one (library, shape) pair: warm-up, then the median of its calls;
the table shows the median over the rounds. Numbers: docs/performance.md, "BatchNorm".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

SHAPES = ((32, 32, 28, 28), (128, 16, 32, 32))
LIBRARIES = ("kernels", "numpy", "torch")


def _median_ms(run: Any, repeats: int) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def worker(library: str, shape: tuple[int, ...], threads: int, repeats: int) -> dict[str, float]:
    """Time one library on one shape in this process: {"forward": ms, "forward+backward": ms}."""
    import numpy as np

    rng = np.random.default_rng(0)
    C = shape[1]
    x = rng.normal(size=shape).astype(np.float32)
    dy = rng.normal(size=shape).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, C).astype(np.float32), rng.normal(size=C).astype(np.float32)
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
        tm, tv = torch.from_numpy(mean.copy()), torch.from_numpy(var.copy())
        F = torch.nn.functional

        def forward() -> None:
            with torch.no_grad():
                F.batch_norm(tx, tm, tv, tg, tb, training=True)

        xg = tx.clone().requires_grad_(True)
        gg, bg = tg.clone().requires_grad_(True), tb.clone().requires_grad_(True)

        def both() -> None:
            y = F.batch_norm(xg, tm, tv, gg, bg, training=True)
            torch.autograd.grad(y, (xg, gg, bg), tdy)

    else:
        from contextlib import nullcontext

        from convprop import _native
        from convprop.functional.normalization import batch_norm2d_backward, batch_norm2d_forward

        context = _native.disabled if library == "numpy" else nullcontext

        def forward() -> None:
            with context():
                batch_norm2d_forward(x, gamma, beta, mean, var, training=True)

        def both() -> None:
            with context():
                _, cache = batch_norm2d_forward(x, gamma, beta, mean, var, training=True)
                batch_norm2d_backward(dy, cache)

    return {
        "forward": _median_ms(forward, repeats),
        "forward+backward": _median_ms(both, repeats),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--worker", nargs=2, metavar=("LIBRARY", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        library, shape_text = args.worker
        shape = tuple(int(v) for v in shape_text.split(","))
        print(json.dumps(worker(library, shape, args.threads, args.repeats)))
        return 0
    env = {**os.environ, "CONVPROP_NUM_THREADS": str(args.threads)}
    results: dict[tuple[str, tuple[int, ...]], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for shape in SHAPES:
            for library in LIBRARIES:
                command = [
                    sys.executable, __file__, "--threads", str(args.threads),
                    "--repeats", str(args.repeats), "--worker", library,
                    ",".join(str(v) for v in shape),
                ]  # fmt: skip
                output = subprocess.run(command, env=env, check=True, capture_output=True)
                results.setdefault((library, shape), []).append(json.loads(output.stdout))
    print(f"BatchNorm2d, training mode, float32, {args.threads} threads, median of "
          f"{args.rounds} processes (ms)")  # fmt: skip
    print(f"{'shape':<20}{'pass':<18}" + "".join(f"{name:>10}" for name in LIBRARIES))
    for shape in SHAPES:
        for phase in ("forward", "forward+backward"):
            row = [statistics.median(r[phase] for r in results[(lib, shape)]) for lib in LIBRARIES]
            print(f"{shape!s:<20}{phase:<18}" + "".join(f"{v:>10.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
