"""One library's timings of the conv suite, in a process of its own (``convprop bench``).

``python -m convprop.bench_worker --library convprop|torch --shape NAME ...`` times the four
passes of each named shape of the suite for that library alone, as :func:`convprop.bench._timed`
samples them (a pause, untimed calls, the median of a few timed ones), and prints one JSON line:
``{"library", "results": {name: {"algorithms", "samples": {pass: [ms, ...]}}}, "skipped":
{name: reason}}``. :func:`convprop.bench.run` starts these processes, alternating the
libraries, so that neither library's idle threads (OpenBLAS's, PyTorch's OpenMP team,
convprop's workers) share the process, or the cores, with the other's calls.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from convprop import bench
from convprop.process import retain_freed_memory


def time_library(
    library: str,
    shapes: dict[str, list[int]],
    *,
    algorithm: str = "auto",
    repeats: int = 3,
    warm: float | None = None,
    warmup: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Samples (ms) of every pass of every shape for ``library``; the shapes a named
    ``algorithm`` declines are reported under ``skipped`` with the reason (convprop only)."""
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name, spec in shapes.items():
        x, w, b, dy = bench._inputs(spec, seed)
        chosen: dict[str, str] = {}
        if library == "torch":
            passes = bench._torch_passes(x, w, b, dy, spec)
        else:
            try:
                passes, chosen = bench._convprop_passes(x, w, b, dy, spec, algorithm)
            except NotImplementedError as declined:  # a named algorithm that cannot do it
                skipped[name] = str(declined)
                continue
        samples: dict[str, list[float]] = {}
        for pass_name in bench.PASSES:
            for _ in range(warmup):
                passes[pass_name]()
            samples[pass_name] = [bench._timed(passes[pass_name], warm) for _ in range(repeats)]
        results[name] = {"algorithms": chosen, "samples": samples}
    return {"library": library, "results": results, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=("convprop", "torch"), required=True)
    parser.add_argument("--shape", action="append", required=True)
    parser.add_argument("--suite", default=None)
    parser.add_argument("--algorithm", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=float, default=None, help="seconds of untimed calls")
    parser.add_argument("--settle", type=float, default=bench.SETTLE_SECONDS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    bench.SETTLE_SECONDS = args.settle
    suite = bench.load_suite(args.suite)
    # one allocator setting for both libraries, as convprop's commands run: without it every
    # large output is a fresh mapping whose pages fault in on first touch (PyTorch's lenet1
    # forward took 3.7 ms instead of 0.29)
    retain_freed_memory()
    if args.library == "torch":
        import torch

        torch.set_num_threads(args.threads)
    report = time_library(
        args.library,
        {name: suite[name] for name in args.shape},
        algorithm=args.algorithm,
        repeats=args.repeats,
        warm=args.warm,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by convprop.bench.run
    raise SystemExit(main())
