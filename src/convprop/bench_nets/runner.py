"""The whole-network benchmark's driver: separate processes, alternating rounds, medians.

For every network and round, one process runs convprop's passes and another PyTorch's (the
order alternates between rounds); each reports the median of its calls, and the table gives
the median of those per-process medians and the ratio convprop / PyTorch. The workers'
environment and threads: :mod:`convprop.bench_processes`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import asdict, replace
from typing import Any

from convprop.bench_nets.nets import CASES
from convprop.bench_nets.profile import CATEGORIES
from convprop.bench_nets.worker import PASSES, Settings, run_worker
from convprop.bench_processes import run_json_process

LIBRARIES = ("convprop", "torch")
QUICK = Settings(warm_seconds=0.2, repeats=3, max_seconds=1.0, profile_steps=1)
"""``--quick``: one round, a short warm-up, three calls per pass, one profiled step."""


def worker_command(library: str, case: str, batch: int, settings: Settings) -> list[str]:
    """The command line of one worker process."""
    return [
        sys.executable, "-m", "convprop.bench_nets", "--worker", library, "--case", case,
        "--batch", str(batch), "--threads", str(settings.threads),
        "--warm", str(settings.warm_seconds), "--repeats", str(settings.repeats),
        "--max-seconds", str(settings.max_seconds), "--sample-ms", str(settings.sample_ms),
        "--profile-steps", str(settings.profile_steps),
        *(["--random-inputs"] if settings.random_inputs else []),
    ]  # fmt: skip


def run_process(library: str, case: str, batch: int, settings: Settings) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and read its JSON (the last line of stdout)."""
    what = f"bench_nets: the {library} worker for {case}"
    return run_json_process(worker_command(library, case, batch, settings), settings.threads, what)


def _median_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(d[key] for d in dicts) for key in dicts[0]} if dicts else {}


def run(
    cases: list[str],
    batches: dict[str, int],
    settings: Settings,
    rounds: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Every case, ``rounds`` times, each library in its own process; medians and ratios."""
    load_before = os.getloadavg()[0]  # other processes' load makes every figure noisier
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        case: {library: [] for library in LIBRARIES} for case in cases
    }
    for round_index in range(rounds):
        order = LIBRARIES if round_index % 2 == 0 else LIBRARIES[::-1]
        for case in cases:
            for library in order:
                result = run_process(library, case, batches[case], settings)
                runs[case][library].append(result)
                if progress:
                    times = ", ".join(f"{p} {result['ms'][p]:.1f}" for p in PASSES)
                    print(f"round {round_index + 1}/{rounds} {case} {library}: {times} ms",
                          file=sys.stderr, flush=True)  # fmt: skip
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "rounds": rounds},
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cases": {},
    }
    for case in cases:
        per_process = {
            library: {p: [r["ms"][p] for r in runs[case][library]] for p in PASSES}
            for library in LIBRARIES
        }
        ms = {
            library: {p: statistics.median(values) for p, values in passes.items()}
            for library, passes in per_process.items()
        }
        fastest = {  # the fastest single call: the machine's noise only ever adds time
            library: {p: min(min(r["samples"][p]) for r in runs[case][library]) for p in PASSES}
            for library in LIBRARIES
        }
        report["cases"][case] = {
            "batch": batches[case],
            "sample_shape": list(CASES[case].sample_shape),
            "inputs": runs[case]["convprop"][0]["inputs"],
            "ms": ms,
            "process_ms": per_process,
            "ratio": {p: ms["convprop"][p] / ms["torch"][p] for p in PASSES},
            "fastest_ms": fastest,
            "fastest_ratio": {p: fastest["convprop"][p] / fastest["torch"][p] for p in PASSES},
            "breakdown": {
                library: _median_dicts([r["breakdown"] for r in runs[case][library]])
                for library in LIBRARIES
            },
        }
    return report


PASS_LABELS = {"train": "train step", "infer_1": "inference", "infer_batch": "inference"}
LIBRARY_LABELS = {"convprop": "convprop", "torch": "PyTorch"}


def format_report(report: dict[str, Any]) -> str:
    """The table, then the training step by layer type.

    A row: model, pass, batch, convprop's and PyTorch's ms (medians of the per-process
    medians), their ratio, and the ratio of the two libraries' fastest single calls.
    """
    settings = report["settings"]
    machine = report.get("machine", {})
    lines = [
        f"machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; numpy "
        f"{machine.get('numpy', '?')} ({machine.get('blas', '?')}); torch "
        f"{machine.get('torch', '?')}; threads {settings['threads']}; float32; each library "
        f"in its own process, {settings['rounds']} rounds alternating, medians of per-process "
        f"medians ({settings['warm_seconds']:g} s warm-up, up to {settings['repeats']} samples "
        f"of at least {settings.get('sample_ms', 0):g} ms or one call); "
        f"1-minute load average before and after {report.get('load_average', '?')}",
        "inputs: " + "; ".join(f"{case} {r['inputs']}" for case, r in report["cases"].items()),
        f"{'model':<13}{'pass':<12}{'batch':>6}{'convprop ms':>13}{'PyTorch ms':>12}{'ratio':>7}"
        f"{'fastest':>9}",
    ]
    for case, result in report["cases"].items():
        for name in PASSES:
            batch = 1 if name == "infer_1" else result["batch"]
            lines.append(
                f"{case:<13}{PASS_LABELS[name]:<12}{batch:>6}"
                f"{result['ms']['convprop'][name]:>13.2f}{result['ms']['torch'][name]:>12.2f}"
                f"{result['ratio'][name]:>7.2f}{result['fastest_ratio'][name]:>9.2f}"
            )
    lines += ["", "training step by layer type, ms (share of the profiled step); PyTorch's "
              "from torch.profiler, its cost in PyTorch's overhead"]  # fmt: skip
    lines.append(f"{'model':<13}{'library':<10}" + "".join(f"{k:>11}" for k in CATEGORIES)
                 + f"{'total':>9}")  # fmt: skip
    for case, result in report["cases"].items():
        for library in LIBRARIES:
            parts = result["breakdown"][library]
            if not parts:
                continue
            total = parts["total"]
            cells = "".join(
                f"{parts[k]:>6.1f}{f'({100 * parts[k] / total:.0f})':>5}" for k in CATEGORIES
            )
            lines.append(f"{case:<13}{LIBRARY_LABELS[library]:<10}{cells}{total:>9.1f}")
    return "\n".join(lines)


def _batch_sizes(pairs: list[str], cases: list[str]) -> dict[str, int]:
    batches = {case: CASES[case].batch for case in cases}
    for pair in pairs:
        name, _, size = pair.partition("=")
        if name not in CASES or not size.isdigit() or int(size) < 1:
            raise SystemExit(
                f"bench_nets: --batch-size takes MODEL=N; expected a model of {sorted(CASES)} "
                f"and N >= 1, got {pair!r}"
            )
        batches[name] = int(size)
    return batches


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="bench_nets",
        description="Whole networks, convprop vs PyTorch: training step and inference, each "
        "library in its own process.",
    )
    cli.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES),
                     help="networks to time (default: all)")  # fmt: skip
    cli.add_argument("--batch-size", action="append", default=[], metavar="MODEL=N",
                     help="training batch of a model (lenet 64, lenet5 64, resnet-mini 32, "
                     "resnet20 128)")  # fmt: skip
    cli.add_argument("--rounds", type=int, default=5, help="processes per library (5)")
    cli.add_argument("--threads", type=int, default=2, help="threads of each library (2)")
    cli.add_argument("--repeats", type=int, default=7, help="timed samples per pass (7)")
    cli.add_argument("--warm", type=float, default=1.0, help="seconds of warm-up per pass (1)")
    cli.add_argument("--max-seconds", type=float, default=6.0,
                     help="fewer samples (at least 3) past this many seconds (6)")  # fmt: skip
    cli.add_argument("--sample-ms", type=float, default=20.0,
                     help="a short pass's sample: calls filling this many ms (20)")  # fmt: skip
    cli.add_argument("--profile-steps", type=int, default=3,
                     help="steps timed by layer type per process (3; 0: none)")  # fmt: skip
    cli.add_argument("--random-inputs", action="store_true",
                     help="standard normal inputs for every model (default: Fashion-MNIST "
                     "images for the shipped models, where installed)")  # fmt: skip
    cli.add_argument("--quick", action="store_true", help="1 round, short warm-up, 3 calls")
    cli.add_argument("--json", action="store_true", help="print the report as JSON")
    cli.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    cli.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    cli.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    cli.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    return cli


def main(argv: list[str] | None = None) -> int:
    """``python -m convprop.bench_nets`` and ``benchmarks/bench_nets.py``."""
    args = parser().parse_args(argv)
    for option in ("rounds", "threads", "repeats"):
        if getattr(args, option) < 1:
            raise SystemExit(
                f"bench_nets: --{option} must be >= 1; expected a positive count, got "
                f"{getattr(args, option)}"
            )
    settings = Settings(
        warm_seconds=args.warm, repeats=args.repeats, max_seconds=args.max_seconds,
        profile_steps=args.profile_steps, threads=args.threads, sample_ms=args.sample_ms,
        random_inputs=args.random_inputs,
    )  # fmt: skip
    if args.worker:
        if args.case is None:
            raise SystemExit("bench_nets: --worker needs --case; expected a model, got none")
        batch = args.batch or CASES[args.case].batch
        print(json.dumps(run_worker(args.worker, args.case, batch, settings)))
        return 0
    rounds = args.rounds
    if args.quick:
        settings, rounds = replace(QUICK, threads=args.threads, random_inputs=args.random_inputs), 1
    batches = _batch_sizes(args.batch_size, args.models)
    try:
        report = run(args.models, batches, settings, rounds, progress=not args.quiet)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    from convprop.bench import machine_info

    report["machine"] = machine_info(args.threads)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0
