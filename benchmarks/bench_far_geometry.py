"""Far geometry: time and peak memory of convolutions and poolings whose padding, dilation or
window is far larger than the input (derivations CR1-CR3, PN5).

Each case runs forward and backward: one warm-up call, then the best of ``--repeat`` calls
timed and one call measured with tracemalloc (NumPy reports its buffers to it), with the
compiled kernels and with NumPy alone. A case that fails prints its error.

    python benchmarks/bench_far_geometry.py
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from convprop import _native
from convprop.functional import pool2d, pool3d
from convprop.functional.conv2d import conv2d_backward, conv2d_forward


def _pair(forward: Callable[..., Any], backward: Callable[..., Any], *args: Any, **kwargs: Any
          ) -> Callable[[], None]:  # fmt: skip
    def run() -> None:
        y, cache = forward(*args, **kwargs)
        backward(np.ones_like(y), cache)

    return run


def cases() -> list[tuple[str, Callable[[], None]]]:
    rng = np.random.default_rng(0)
    x2 = rng.standard_normal((2, 3, 1, 1))
    x3 = rng.standard_normal((1, 2, 1, 1, 1))
    found = [
        ("avg_pool2d (2,3,1,1) 3001x3001 pad 1500", _pair(
            pool2d.avg_pool2d_forward, pool2d.avg_pool2d_backward, x2, 3001, stride=1,
            padding=1500)),
        ("max_pool2d (2,3,1,1) 3001x3001 pad 1500", _pair(
            pool2d.max_pool2d_forward, pool2d.max_pool2d_backward, x2, 3001, stride=1,
            padding=1500)),
        ("avg_pool3d (1,2,1,1,1) 301^3 pad 150", _pair(
            pool3d.avg_pool3d_forward, pool3d.avg_pool3d_backward, x3, 301, stride=1,
            padding=150)),
        ("max_pool3d (1,2,1,1,1) 301^3 pad 150", _pair(
            pool3d.max_pool3d_forward, pool3d.max_pool3d_backward, x3, 301, stride=1,
            padding=150)),
    ]  # fmt: skip
    x = rng.standard_normal((1, 1, 8, 8))
    w = rng.standard_normal((1, 1, 3, 3))
    for algorithm in ("auto", "direct", "im2col", "fft", "winograd"):
        for far in (10**4, 10**6):
            found.append((
                f"conv2d 8x8 3x3 dil {far:.0e} pad {far:.0e} {algorithm}",
                _pair(conv2d_forward, conv2d_backward, x, w, padding=far, dilation=far,
                      algorithm=algorithm),
            ))  # fmt: skip
    found.append((
        "conv2d (2,3,8,8) 4x3x3x3 stride 1e7",
        _pair(conv2d_forward, conv2d_backward, rng.standard_normal((2, 3, 8, 8)),
              rng.standard_normal((4, 3, 3, 3)), stride=10**7),
    ))  # fmt: skip
    return found


def measure(run: Callable[[], None], compiled: bool, repeat: int) -> str:
    context = contextlib.nullcontext if compiled else _native.disabled
    try:
        with context():
            run()
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            tracemalloc.start()
            try:
                run()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    except (MemoryError, ValueError, NotImplementedError) as error:
        return f"{type(error).__name__}: {str(error)[:60]}"
    return f"{best * 1e3:9.2f} ms {peak / 1024:10.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, NumPy {np.__version__}")
    print(f"{'case':48s} {'kernels':9s} {'best time':>12s} {'peak':>14s}")
    for name, run in cases():
        for compiled in (True, False):
            kernels = "compiled" if compiled else "numpy"
            print(f"{name:48s} {kernels:9s} {measure(run, compiled, args.repeat)}", flush=True)


if __name__ == "__main__":
    main()
