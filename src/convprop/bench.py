"""Side-by-side conv2d benchmark: convprop and PyTorch (CPU) in one run.

For each layer shape of the suite (``conv_suite.json``, NCHW float32), each library is timed
alone in processes of its own (:mod:`convprop.bench_worker`), on the same number of threads:
``rounds`` processes per library, alternating (convprop, PyTorch, then PyTorch, convprop, ...),
each taking ``repeats`` samples of every pass after a warm-up. Reported for four passes
(forward, input gradient, weight gradient and forward+backward, all three gradients): the
median over the processes of each process's median, GFLOP/s, the ratio convprop / PyTorch,
the peak memory of a forward+backward step and the algorithm that ``auto`` chose for each
pass. Used by ``convprop bench`` and ``benchmarks/bench_conv.py``.

Why processes: in one process, the idle threads of the library that ran last (OpenBLAS's,
PyTorch's OpenMP team, convprop's workers) still watch for work while the other library runs,
and a user runs one library, not both.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy

from convprop._shapes import conv_geometry
from convprop.functional.conv2d import ALGORITHMS, conv2d_backward, conv2d_forward
from convprop.process import blas_libraries

PASSES = ("forward", "input_grad", "weight_grad", "forward_backward")
SUITE_FILE = Path(__file__).with_name("conv_suite.json")
"""The suite, shipped inside the package (``benchmarks/conv_suite.json`` links to it), so that
``convprop bench`` runs from an installed package as from a checkout."""


@dataclass
class Result:
    """One shape's timings: milliseconds per pass for each library, the median over the
    processes of each process's median."""

    name: str
    shape: list[int]
    algorithms: dict[str, str]
    convprop_ms: dict[str, float]
    torch_ms: dict[str, float] = field(default_factory=dict)
    convprop_peak_mb: float = float("nan")
    torch_peak_mb: float = float("nan")
    gflop: float = 0.0

    def ratio(self, pass_name: str) -> float:
        theirs = self.torch_ms.get(pass_name)
        return self.convprop_ms[pass_name] / theirs if theirs else float("nan")


def load_suite(path: str | Path | None = None) -> dict[str, list[int]]:
    """name -> [N, C, H, W, K, R, S, stride, pad, dilation, groups], from ``path`` or the
    shipped suite; keys starting with ``_`` are comments. ValueError, naming the file, for a
    file that cannot be read, is not JSON, or holds an entry that is not 11 integers."""
    path = Path(path) if path else SUITE_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            suite = json.load(handle)
    except OSError as error:
        raise ValueError(
            f"bench: cannot read the suite {path}; expected a JSON file of layer shapes, "
            f"got {error.strerror or error}"
        ) from None
    except ValueError as error:
        raise ValueError(f"bench: the suite {path} is not valid JSON ({error})") from None
    if not isinstance(suite, dict):
        raise ValueError(
            f"bench: the suite {path}; expected an object of name: shape, "
            f"got {type(suite).__name__}"
        )
    shapes = {name: spec for name, spec in suite.items() if not name.startswith("_")}
    for name, spec in shapes.items():
        fits = isinstance(spec, list) and len(spec) == 11 and all(
            type(v) is int and v >= (0 if i == 8 else 1) for i, v in enumerate(spec)
        )  # fmt: skip
        if not fits:
            raise ValueError(
                f"bench: suite entry {name!r} in {path}; expected [N, C, H, W, K, R, S, stride, "
                f"pad, dilation, groups] (11 integers, pad >= 0, the rest >= 1), got {spec!r}"
            )
    return {name: list(spec) for name, spec in shapes.items()}


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, cores, BLAS and the thread count used, for the top of the report."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:  # pragma: no cover - not Linux
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "numpy": numpy.__version__,
        "blas": "; ".join(
            f"{library['internal_api']} {library['version']} "
            f"({Path(library['filepath']).parent.name}, {library['num_threads']} threads"
            f"{_kernels(library)})"
            for library in blas_libraries()  # NumPy's (convprop._blas calls it too), any other
        ),
        # log2 of the cycles idle OpenBLAS threads spin (convprop.process.configure_process)
        "blas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default"),
    }
    info["gemm_gflops"] = round(matmul_gflops(), 1)
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    return info


def _kernels(library: dict[str, Any]) -> str:
    """ ", Haswell kernels": the kernels a BLAS runs, where it says (OpenBLAS picks them by
    CPU unless OPENBLAS_CORETYPE names them; its AVX2 ones halve float32 products on an
    AVX-512 CPU: docs/performance.md, "Threads and BLAS")."""
    return f", {library['architecture']} kernels" if library.get("architecture") else ""


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """NumPy's float32 matmul rate on this machine (median of ``repeats``), the GEMM peak."""
    a = numpy.random.default_rng(0).standard_normal((size, size), dtype=numpy.float32)
    a @ a
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        seconds.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(seconds) / 1e9


def peak_memory_mb(library: str, spec: list[int], algorithm: str = "auto") -> float:
    """Peak resident memory (MB) that one forward+backward step adds, in a fresh process.

    A fresh interpreter per measurement keeps either library's memory pools from hiding
    the step's allocations; the child builds the inputs, notes its resident size, runs one
    step and reports its high-water mark (Linux VmHWM) minus that.
    """
    code = (
        "import sys, json; from convprop.bench import _peak_child; "
        f"_peak_child({library!r}, json.loads(sys.argv[1]), {algorithm!r})"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(spec)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError):
        return float("nan")
    return float(done.stdout.strip().splitlines()[-1])


def _status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"bench: {key} not found in /proc/self/status")  # pragma: no cover


def _peak_child(library: str, spec: list[int], algorithm: str) -> None:
    """Run in a child process by :func:`peak_memory_mb`; prints megabytes.

    The child keeps glibc's default allocator settings: freed blocks go back to the
    kernel, so the step's own allocations show in the high-water mark.
    """
    x, w, b, dy = _inputs(spec)
    if library == "torch":
        import torch

        torch.set_num_threads(2)
        step = _torch_passes(x, w, b, dy, spec)["forward_backward"]
    else:
        step = _convprop_passes(x, w, b, dy, spec, algorithm)[0]["forward_backward"]
    before = _status_kb("VmRSS")
    step()
    print((_status_kb("VmHWM") - before) / 1024)


def _inputs(spec: list[int], seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Random float32 x, w, b and dy for a suite shape."""
    N, C, H, W, K, R, S, stride, pad, dil, groups = spec
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W), dtype=numpy.float32)
    w = rng.standard_normal((K, C // groups, R, S), dtype=numpy.float32)
    b = rng.standard_normal(K, dtype=numpy.float32)
    geom = conv_geometry("bench", x.shape, w.shape, b.shape, stride=stride, padding=pad,
                         dilation=dil, groups=groups)  # fmt: skip
    dy = rng.standard_normal(geom.y_shape, dtype=numpy.float32)
    return x, w, b, dy


def _convprop_passes(x: Any, w: Any, b: Any, dy: Any, spec: list[int], algorithm: str
                     ) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:  # fmt: skip
    stride, pad, dil, groups = spec[7:11]
    keywords = {"stride": stride, "padding": pad, "dilation": dil, "groups": groups}
    _, cache = conv2d_forward(x, w, b, algorithm=algorithm, **keywords)
    geom = cache.geom
    forward_algo, data_algo, weight_algo = cache.algorithms

    def forward_backward() -> object:
        _, step_cache = conv2d_forward(x, w, b, algorithm=algorithm, **keywords)
        return conv2d_backward(dy, step_cache)

    passes: dict[str, Callable[[], object]] = {
        "forward": lambda: conv2d_forward(x, w, b, algorithm=algorithm, **keywords),
        "input_grad": lambda: ALGORITHMS[data_algo].backward_data(dy, w, geom),
        "weight_grad": lambda: ALGORITHMS[weight_algo].backward_weight(dy, x, geom, None),
        "forward_backward": forward_backward,
    }
    chosen = {"forward": forward_algo, "input_grad": data_algo, "weight_grad": weight_algo}
    return passes, chosen


def _torch_passes(x: Any, w: Any, b: Any, dy: Any, spec: list[int]
                  ) -> dict[str, Callable[[], object]]:  # fmt: skip
    import torch
    import torch.nn.functional as functional
    import torch.nn.grad

    stride, pad, dil, groups = spec[7:11]
    tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
    keywords = {"stride": stride, "padding": pad, "dilation": dil, "groups": groups}

    def forward() -> object:
        with torch.no_grad():
            return functional.conv2d(tx, tw, tb, **keywords)

    def forward_backward() -> object:
        gx, gw, gb = (t.detach().requires_grad_() for t in (tx, tw, tb))
        y = functional.conv2d(gx, gw, gb, **keywords)
        return torch.autograd.grad(y, (gx, gw, gb), tdy)

    return {
        "forward": forward,
        # torch.nn.grad ships without type annotations
        "input_grad": lambda: torch.nn.grad.conv2d_input(  # type: ignore[no-untyped-call]
            tx.shape, tw, tdy, **keywords
        ),
        "weight_grad": lambda: torch.nn.grad.conv2d_weight(  # type: ignore[no-untyped-call]
            tx, tw.shape, tdy, **keywords
        ),
        "forward_backward": forward_backward,
    }


SETTLE_SECONDS = 0.25
"""Pause before each sample: the worker threads of the pass before (OpenBLAS's, PyTorch's
OpenMP team, convprop's) watch for work for a while after a call; each sample starts after
they have gone to sleep, as a layer does after an idle moment."""

WARM_SECONDS = 0.02
"""After the pause, each library runs its own untimed calls for this long before the timed
ones. On the machines measured, every library's first calls after an idle pause run slowly,
and recover over about 10-20 ms of work: lenet1's forward took 2.6, 2.0, 1.6 ... 1.3 ms call by
call after a pause, against 1.0-1.1 in a loop. A single untimed call (``warm=0``) then
compares the libraries at different points of that recovery: PyTorch's first call after a
pause takes about 10 ms, convprop's 2-3 ms. Warming both for the same time compares them
as a training loop runs them, one call after another."""

TIMED_CALLS = 3
"""Timed calls per sample after the warm-up; the sample is their median."""


def _timed(fn: Callable[[], object], warm: float | None = None) -> float:
    """One sample in ms: settle, untimed calls for ``warm`` seconds (default WARM_SECONDS; at
    least one call), then the median of TIMED_CALLS timed calls (one where ``warm`` is 0)."""
    warm = WARM_SECONDS if warm is None else warm
    time.sleep(SETTLE_SECONDS)
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < warm:
        fn()
    samples = []
    for _ in range(TIMED_CALLS if warm > 0 else 1):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _median_of_medians(reports: list[dict[str, Any]], name: str) -> dict[str, float]:
    """Per pass: the median over the processes of each process's median sample."""
    return {
        p: statistics.median(
            statistics.median(report["results"][name]["samples"][p]) for report in reports
        )
        for p in PASSES
    }


def _worker(library: str, names: list[str], *, algorithm: str, repeats: int, threads: int,
            suite: str | None, warm: float | None) -> dict[str, Any]:  # fmt: skip
    """One process of :mod:`convprop.bench_worker`: ``library``'s samples of ``names``."""
    from convprop.bench_processes import run_json_process

    command = [sys.executable, "-m", "convprop.bench_worker", "--library", library,
               "--algorithm", algorithm, "--repeats", str(repeats), "--threads", str(threads),
               "--settle", repr(SETTLE_SECONDS)]  # fmt: skip
    command += [f"--shape={name}" for name in names]
    command += ["--suite", str(suite)] if suite else []
    command += ["--warm", repr(warm)] if warm is not None else []
    return run_json_process(command, threads, f"bench: the {library} worker")


def bench_shapes(names: list[str], shapes: dict[str, list[int]], *, algorithm: str = "auto",
                 repeats: int = 3, rounds: int = 3, threads: int = 2, with_torch: bool = True,
                 suite: str | None = None, memory: bool = True, warm: float | None = None,
                 progress: bool = False) -> tuple[list[Result], dict[str, str]]:  # fmt: skip
    """Time the shapes ``names``: ``rounds`` processes per library, alternating, each taking
    ``repeats`` samples per pass (``warm``: seconds of untimed calls before each sample, default
    WARM_SECONDS; 0: one call, one timed). Returns the results and the shapes a named
    algorithm declined, with the reasons."""
    libraries = ("convprop", "torch") if with_torch else ("convprop",)
    reports: dict[str, list[dict[str, Any]]] = {library: [] for library in libraries}
    skipped: dict[str, str] = {}
    for round_index in range(rounds):
        for library in libraries if round_index % 2 == 0 else libraries[::-1]:
            todo = [name for name in names if name not in skipped]
            if not todo:
                break
            report = _worker(library, todo, algorithm=algorithm, repeats=repeats,
                             threads=threads, suite=suite, warm=warm)  # fmt: skip
            skipped.update(report["skipped"])
            reports[library].append(report)
            if progress and report["results"]:
                print(f"bench: round {round_index + 1}/{rounds} {library} done",
                      file=sys.stderr, flush=True)  # fmt: skip
    results = []
    for name in names:
        if name in skipped:
            continue
        spec = shapes[name]
        N, C, K, R, S = spec[0], spec[1], spec[4], spec[5], spec[6]
        P, Q = conv_geometry("bench", (N, C, spec[2], spec[3]), (K, C // spec[10], R, S), (K,),
                             stride=spec[7], padding=spec[8], dilation=spec[9],
                             groups=spec[10]).y_shape[2:]  # fmt: skip
        ours = [report for report in reports["convprop"] if name in report["results"]]
        theirs = [report for report in reports.get("torch", []) if name in report["results"]]
        result = Result(
            name=name, shape=spec, algorithms=ours[0]["results"][name]["algorithms"],
            convprop_ms=_median_of_medians(ours, name),
            torch_ms=_median_of_medians(theirs, name) if theirs else {},
            gflop=2.0 * N * K * (C // spec[10]) * R * S * P * Q / 1e9,
        )  # fmt: skip
        if memory:
            result.convprop_peak_mb = peak_memory_mb("convprop", spec, algorithm)
            if with_torch:
                result.torch_peak_mb = peak_memory_mb("torch", spec)
        results.append(result)
    return results, skipped


def format_table(results: list[Result], info: dict[str, Any]) -> str:
    """The human-readable report: machine, then one row per shape and a geometric mean."""
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores; threads {info['threads']}; "
        f"numpy {info['numpy']} ({info['blas']}, OPENBLAS_THREAD_TIMEOUT="
        f"{info['blas_thread_timeout']}, 2048² float32 matmul "
        f"{info['gemm_gflops']} GFLOP/s); torch {info['torch']}; float32; each library in "
        f"{info.get('rounds', 1)} processes of its own, alternating, the median of the "
        f"processes' medians of {info.get('repeats', 1)} samples; each sample "
        f"{SETTLE_SECONDS} s after a pause and {info.get('warm_ms', WARM_SECONDS * 1e3):g} ms "
        f"of untimed calls",
        f"{'shape':<10}{'pass':<18}{'convprop ms':>12}{'torch ms':>10}{'ratio':>7}"
        f"{'GFLOP/s':>9}  algorithm",
    ]
    for result in results:
        for pass_name in PASSES:
            ms = result.convprop_ms[pass_name]
            flops = result.gflop * (3 if pass_name == "forward_backward" else 1)
            algo = result.algorithms.get(pass_name, "/".join(result.algorithms.values()))
            lines.append(
                f"{result.name:<10}{pass_name:<18}{ms:>12.2f}"
                f"{result.torch_ms.get(pass_name, float('nan')):>10.2f}"
                f"{result.ratio(pass_name):>7.2f}{flops / ms * 1e3:>9.1f}  {algo}"
            )
        if not numpy.isnan(result.convprop_peak_mb):
            theirs = result.torch_peak_mb
            lines.append(
                f"{'':<10}{'peak memory MB':<18}{result.convprop_peak_mb:>12.1f}{theirs:>10.1f}"
                f"{result.convprop_peak_mb / theirs if theirs else float('nan'):>7.2f}"
            )
    for pass_name in ("forward", "forward_backward"):
        ratios = [r.ratio(pass_name) for r in results if r.torch_ms]
        if ratios:
            geo = float(numpy.exp(numpy.mean(numpy.log(ratios))))
            lines.append(f"geometric mean ratio, {pass_name}: {geo:.2f} (worst {max(ratios):.2f})")
    for name, reason in info.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)


def run(names: list[str] | None = None, *, algorithm: str = "auto", repeats: int = 3,
        rounds: int = 3, threads: int = 2, with_torch: bool = True, suite: str | None = None,
        memory: bool = True, warm: float | None = None, progress: bool = False
        ) -> tuple[list[Result], dict[str, Any]]:  # fmt: skip
    """Benchmark the named shapes (default: all) and return the results and machine info;
    the options as in :func:`bench_shapes`."""
    shapes = load_suite(suite)  # a bad suite file is reported before anything runs
    if with_torch:
        try:
            import torch
        except ImportError:
            raise RuntimeError(
                "bench: PyTorch is not installed; expected torch==2.13.0 (pip install "
                "'convprop[test]') to compare against, or --no-torch to time convprop alone"
            ) from None
        torch.set_num_threads(threads)  # for machine_info's report
    unknown = sorted(set(names or []) - set(shapes))
    if unknown:
        raise ValueError(
            f"bench: unknown shape; expected names from {sorted(shapes)}, got {unknown}"
        )
    chosen = names or list(shapes)
    results, skipped = bench_shapes(
        chosen, shapes, algorithm=algorithm, repeats=repeats, rounds=rounds, threads=threads,
        with_torch=with_torch, suite=suite, memory=memory, warm=warm, progress=progress,
    )  # fmt: skip
    if not results:
        raise ValueError(
            f"bench: algorithm {algorithm!r} computes none of the shapes; expected at least one "
            f"it accepts, got {sorted(skipped)} ({'; '.join(skipped.values())})"
        )  # fmt: skip
    info = machine_info(threads)
    info["warm_ms"] = round(1e3 * (WARM_SECONDS if warm is None else warm), 3)
    info["rounds"], info["repeats"] = rounds, repeats
    info["skipped"] = skipped
    return results, info


def to_json(results: list[Result], info: dict[str, Any]) -> str:
    return json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=1)
