"""Data-parallel throughput on Fashion-MNIST, and a paper model of larger clusters.

    python benchmarks/bench_distributed.py [--models lenet lenet5 resnet-mini] [--steps 30]

Trains each net for ``--steps`` timed steps (after 3 untimed ones) of the global batch G
(64, the command line's default for Fashion-MNIST) in three layouts, each a fresh
``mpiexec`` launch with one or two threads per rank:

* 1 rank × 1 thread, 2 ranks × 1 thread (G split 32 + 32), 1 rank × 2 threads;

and prints images per second, the time in Allreduce per step, and the scaling efficiency
(2-rank throughput / (2 × 1-rank throughput)). A 1-rank run at G = 32 gives the compute time
per step as a line in the batch size, T_c(b) = t_0 + t_1·b, from which the ring-Allreduce
model (derivations DP5, DP6) predicts weak scaling (b = 32 per rank) and strong scaling
(G = 64) at 1, 10 and 100 Gbit/s. Data: /usr/share/datasets/fashion-mnist (Debian's
dataset-fashion-mnist); the images of the first steps are read from the training set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETUPS = [  # (ranks, threads per rank, global batch)
    (1, 1, 64),
    (2, 1, 64),
    (1, 2, 64),
    (1, 1, 32),
]
NETWORKS = {  # name: (bandwidth in bit/s, latency per message in s): typical, assumed
    "1 Gbit/s Ethernet": (1e9, 50e-6),
    "10 Gbit/s Ethernet": (10e9, 20e-6),
    "100 Gbit/s InfiniBand": (100e9, 2e-6),
}


def worker(model_name: str, batch: int, steps: int, out: Path) -> None:
    """Run under mpiexec: time ``steps`` training steps; rank 0 writes the figures."""
    import numpy as np

    from convprop import distributed
    from convprop.data import load_dataset
    from convprop.models import build_model
    from convprop.nn import CrossEntropyLoss
    from convprop.optim import Adam

    parallel = distributed.DataParallel()
    train_set, _ = load_dataset("fashion-mnist")
    train_set = train_set[: batch * (steps + 3)]
    C, H, _ = train_set.sample_shape
    model = build_model(model_name, num_classes=10, in_channels=C, image_size=H, rng=0)
    optimizer = Adam(model.parameters(), 1e-3)
    parallel.prepare(model, optimizer)
    loader = parallel.loader(train_set, batch, seed=0, device="cpu")
    loss_fn = CrossEntropyLoss()
    times, reduce_times = [], []
    for step, (x, labels) in enumerate(loader.iter_epoch(0)):
        assert parallel.fusion is not None
        before = parallel.fusion.seconds
        parallel.comm.barrier()  # every rank starts the step together
        started = time.perf_counter()
        parallel.train_step(model, loss_fn, optimizer, x, labels)
        elapsed = time.perf_counter() - started
        if step >= 3:  # warm: allocations, the conv algorithm choice
            times.append(elapsed)
            reduce_times.append(parallel.fusion.seconds - before)
    local = np.array([np.median(times), np.median(reduce_times)])
    slowest = parallel.comm.allgather(local).max(axis=0)  # the step ends with the slowest rank
    if parallel.is_main:
        grad_bytes = sum(int(p.grad.nbytes) for p in model.parameters())
        figures = {
            "step_s": float(slowest[0]),
            "allreduce_s": float(slowest[1]),
            "images_per_s": batch / float(slowest[0]),
            "grad_bytes": grad_bytes,
            "buckets": len(parallel.fusion.buckets) if parallel.fusion else 0,
        }
        out.write_text(json.dumps(figures))


def launch(model: str, ranks: int, threads: int, batch: int, steps: int) -> dict[str, Any]:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec") or "mpiexec"]
    command += ["-n", str(ranks), "--oversubscribe", "--bind-to", "none"]
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        CONVPROP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        OMP_NUM_THREADS=str(threads),
    )
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        args = ["--worker", model, str(batch), str(steps), str(out)]
        done = subprocess.run(
            [*command, sys.executable, __file__, *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"bench_distributed: the run failed:\n{done.stderr[-2000:]}")
        return dict(json.loads(out.read_text()))


def ring_seconds(ranks: int, nbytes: float, bandwidth: float, latency: float) -> float:
    """Ring Allreduce time (DP5): 2(W−1) latencies + 2(W−1)/W · bytes / bandwidth."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes * 8 / bandwidth


def paper_model(name: str, figures: dict[tuple[int, int, int], dict[str, Any]]) -> list[str]:
    """Weak and strong scaling predicted by DP5/DP6 from the measured compute time."""
    t64 = figures[(1, 1, 64)]["step_s"]
    t32 = figures[(1, 1, 32)]["step_s"]
    per_sample = max((t64 - t32) / 32, 1e-9)
    fixed = max(t32 - 32 * per_sample, 0.0)

    def compute(b: float) -> float:  # T_c(b) = t_0 + t_1·b, one thread
        return fixed + per_sample * b

    nbytes = figures[(1, 1, 64)]["grad_bytes"]
    lines = [
        f"{name}: gradients {nbytes / 2**20:.2f} MiB; T_c(b) = {fixed * 1e3:.2f} ms + "
        f"{per_sample * 1e3:.3f} ms·b (one thread)"
    ]
    for network, (bandwidth, latency) in NETWORKS.items():
        weak = []
        for ranks in (8, 64, 512):
            ring = ring_seconds(ranks, nbytes, bandwidth, latency)
            weak.append(f"W={ranks}: {compute(32) / (compute(32) + ring):.2f}")  # (DP6)
        half = next(
            (
                w
                for w in range(2, 100_000)
                if compute(32) / (compute(32) + ring_seconds(w, nbytes, bandwidth, latency)) < 0.5
            ),
            None,
        )
        speedups = {
            w: compute(64) / (compute(64 / w) + ring_seconds(w, nbytes, bandwidth, latency))
            for w in (1, 2, 4, 8, 16, 32, 64)
        }  # (DP6), at least one sample per rank
        best = max(speedups, key=lambda w: speedups[w])
        lines.append(
            f"  {network}: weak scaling (32/rank) efficiency {', '.join(weak)}; "
            f"below 50 % from W={half if half else '>100000'}; strong scaling (G=64) "
            f"peaks at W={best} ({speedups[best]:.1f}×), speedup at 2/8/64 ranks "
            f"{speedups[2]:.2f}/{speedups[8]:.2f}/{speedups[64]:.2f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lenet", "lenet5", "resnet-mini"])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, batch, steps, out = args.worker
        worker(model, int(batch), int(steps), Path(out))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("data: Fashion-MNIST 28×28, global batch G; Adam; median step of the slowest rank")
    header = f"{'net':<12}{'ranks×threads':>14}{'G':>5}{'images/s':>10}{'step ms':>9}"
    header += f"{'Allreduce ms':>14}{'efficiency':>12}"
    print(header)
    print("-" * len(header))
    models: dict[str, dict[tuple[int, int, int], dict[str, Any]]] = {}
    for model in args.models:
        figures = models.setdefault(model, {})
        for ranks, threads, batch in SETUPS:
            figures[(ranks, threads, batch)] = launch(model, ranks, threads, batch, args.steps)
        one = figures[(1, 1, 64)]["images_per_s"]
        for (ranks, threads, batch), f in figures.items():
            layout = f"{ranks}×{threads}"
            efficiency = f["images_per_s"] / (one * ranks * threads) if batch == 64 else None
            shown = f"{efficiency:.2f}" if efficiency is not None else ""
            print(
                f"{model:<12}{layout:>14}{batch:>5}{f['images_per_s']:>10.0f}"
                f"{f['step_s'] * 1e3:>9.1f}{f['allreduce_s'] * 1e3:>14.3f}{shown:>12}"
            )
    print()
    print("paper model (DP5, DP6): ring Allreduce, no overlap; latencies 50/20/2 µs assumed")
    for model, figures in models.items():
        for line in paper_model(model, figures):
            print(line)


if __name__ == "__main__":
    main()
