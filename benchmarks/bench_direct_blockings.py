"""The direct sums' register blockings against each other, on the conv suite's layers.

For every layer of ``benchmarks/conv_suite.json`` (and ResNet-20's first-stage 3×3 layer,
16 filters on 32×32 planes at batch 128) the compiled forward sum (DS2) and weight-gradient
sum (DS3) run in each blocking this CPU has ("columns", "filters" with unit column stride,
and with AVX-512 "wide" and "wide16"), the blockings taking turns call by call; the table
gives each one's median in ms and the blocking the kernel itself chooses (marked *). Every
blocking computes the same bits (tests/_native/test_conv2d_direct_compiled.py).

    python benchmarks/bench_direct_blockings.py
    python benchmarks/bench_direct_blockings.py --calls 21 --shape r20s3
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from pathlib import Path

import numpy

from convprop import _native
from convprop._native import _compiled, conv_geometry_tuple, direct
from convprop._shapes import conv_geometry
from convprop.bench import machine_info
from convprop.process import configure_process

SUITE = Path(__file__).resolve().parent / "conv_suite.json"
EXTRA = {
    "r20s1": [128, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1],
    "r20c0": [128, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1],
}
"""ResNet-20's first-stage layers (16 filters, where the "wide16" blocking pays) and its
first layer (27 taps)."""


def _layers() -> dict[str, list[int]]:
    suite = {k: v for k, v in json.loads(SUITE.read_text()).items() if not k.startswith("_")}
    return {**suite, **EXTRA}


def time_blockings(spec: list[int], calls: int) -> dict[str, dict[str, float]]:
    """Median ms of the forward and weight sums per blocking that runs here."""
    N, C, H, W, K, R, S, stride, pad, dil, groups = spec
    geom = conv_geometry("conv2d", (N, C, H, W), (K, C // groups, R, S), None, stride=stride,
                         padding=pad, dilation=dil, groups=groups)  # fmt: skip
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(geom.x_shape).astype(numpy.float32)
    w = rng.standard_normal(geom.w_shape).astype(numpy.float32)
    dy = rng.standard_normal(geom.y_shape).astype(numpy.float32)
    y, dw = numpy.empty(geom.y_shape, numpy.float32), numpy.empty(geom.w_shape, numpy.float32)
    g, rows = conv_geometry_tuple(geom), geom.N * geom.groups * geom.P
    slices = direct.direct_weight_slices(geom, 4)
    wide = ["wide", "wide16"] if _native.wide_blockings_run() else []
    unit = ["filters", *(["wide_filters"] if wide else [])] if geom.stride_w == 1 else []
    forward = ["columns", *unit, *wide]
    kernels = _compiled.kernels

    def run_forward(blocking: str) -> None:
        kernels.direct_forward(x, w, None, y, g, groups, 0, rows, 2, blocking=blocking)

    def run_weight(blocking: str) -> None:
        kernels.direct_weight(dy, x, dw, g, groups, slices, 0, slices, 2, blocking=blocking)

    runs = {
        "forward": {name: functools.partial(run_forward, name) for name in forward},
        "weight": {name: functools.partial(run_weight, name) for name in ["columns", *wide]},
    }
    times: dict[str, dict[str, list[float]]] = {p: {n: [] for n in r} for p, r in runs.items()}
    for run in (f for r in runs.values() for f in r.values()):
        run()  # untimed
    for _ in range(calls):
        for pass_name, by_name in runs.items():
            for name, run in by_name.items():
                start = time.perf_counter()
                run()
                times[pass_name][name].append((time.perf_counter() - start) * 1e3)
    return {p: {n: statistics.median(t) for n, t in r.items()} for p, r in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=11, help="timed calls per blocking (11)")
    parser.add_argument("--shape", action="append", help="a layer of the suite (default: all)")
    args = parser.parse_args(argv)
    configure_process()
    layers = _layers()
    names = args.shape or list(layers)
    unknown = sorted(set(names) - set(layers))
    if unknown:
        parser.error(f"unknown shape {unknown}; expected one of {sorted(layers)}")
    info = machine_info(2)
    print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}; "
          "median ms, 2 threads, float32; * the kernel's own choice")  # fmt: skip
    for name in names:
        spec = layers[name]
        N, C, H, W, K, R, S, stride, pad, dil, groups = spec
        geom = conv_geometry("conv2d", (N, C, H, W), (K, C // groups, R, S), None, stride=stride,
                             padding=pad, dilation=dil, groups=groups)  # fmt: skip
        chosen = {
            "forward": direct.direct_blocking(geom, 4),
            "weight": direct.direct_blocking(geom, 4, weight=True),
        }
        for pass_name, by_name in time_blockings(spec, args.calls).items():
            cells = "  ".join(
                f"{n}{'*' if n == chosen[pass_name] else ''} {ms:.2f}" for n, ms in by_name.items()
            )
            print(f"{name:9s} {pass_name:8s} {cells}")


if __name__ == "__main__":
    main()
