"""Peak memory of one 2-D convolution layer, forward and forward + backward, beside PyTorch.

Each case runs in its own process: it allocates x, w and dy (float32, random), resets the
process's high-water mark (``/proc/self/clear_refs``), notes its resident size, runs the
pass, and reports the high-water mark (``VmHWM``) minus that baseline: the memory the pass
itself needed, its outputs included (y; and dx, dw for forward + backward, with y alive).
convprop runs ``conv2d_forward`` / ``conv2d_backward`` with the named algorithm; PyTorch
``torch.nn.functional.conv2d`` and autograd (CPU, the same threads).

    python benchmarks/bench_conv_memory.py [--shape wino|fft|all] [--batch N]
                                           [--impls auto,winograd,fft,im2col,torch]
                                           [--unbounded]

``--unbounded`` lifts convprop's workspace budget (conv2d_workspace) out of reach: every
layer then runs whole, as before the budget bounded Winograd and the FFT.

Linux only (``/proc/self/status``). Each case takes seconds to minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SHAPES = {
    # name: (x shape, w shape, padding)
    "wino": ((64, 256, 128, 128), (256, 256, 3, 3), 1),
    "fft": ((16, 64, 128, 128), (64, 64, 9, 9), 4),
}

MiB = 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"bench_conv_memory: no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset VmHWM to the current resident size and return that size (bytes)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_kib("VmRSS") * 1024


def _peak() -> int:
    return _status_kib("VmHWM") * 1024


def run_case(
    shape: str, batch: int, impl: str, backward: bool, unbounded: bool
) -> dict[str, float]:
    """One case in this process: the peak above the baseline (bytes) and the seconds."""
    import numpy

    if unbounded:
        from convprop.functional import conv2d_workspace

        conv2d_workspace.WORKSPACE_BYTES = conv2d_workspace.WORKSPACE_MIN_BYTES = 2**62

    x_shape, w_shape, padding = SHAPES[shape]
    x_shape = (batch, *x_shape[1:])
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=numpy.float32)
    w = rng.standard_normal(w_shape, dtype=numpy.float32) * 0.05
    P = x_shape[2] + 2 * padding - w_shape[2] + 1
    dy = rng.standard_normal((batch, w_shape[0], P, P), dtype=numpy.float32)
    if impl == "torch":
        import torch

        xt = torch.from_numpy(x).requires_grad_(backward)
        wt = torch.from_numpy(w).requires_grad_(backward)
        dyt = torch.from_numpy(dy)
        torch.nn.functional.conv2d(xt[:1, :, :8, :8].detach(), wt.detach(), padding=padding)
        baseline = _reset_peak()
        started = time.perf_counter()
        y = torch.nn.functional.conv2d(xt, wt, padding=padding)
        if backward:
            y.backward(dyt)
    else:
        from convprop.functional.conv2d import conv2d_backward, conv2d_forward

        baseline = _reset_peak()
        started = time.perf_counter()
        y, cache = conv2d_forward(x, w, padding=padding, algorithm=impl)
        if backward:
            gradients = conv2d_backward(dy, cache)  # dx, dw, db: alive at the peak
            del gradients
            algorithms = cache.algorithms
        else:
            algorithms = cache.algorithms[:1]
    seconds = time.perf_counter() - started
    peak = _peak() - baseline
    chosen = "" if impl == "torch" else "/".join(algorithms)
    return {"peak": peak, "seconds": seconds, "chosen": chosen}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="all", choices=[*SHAPES, "all"])
    parser.add_argument("--batch", type=int, default=None, help="N (default: the shape's)")
    parser.add_argument("--impls", default="torch,auto,winograd,fft,im2col")
    parser.add_argument("--passes", default="fwd,fwd+bwd")
    parser.add_argument("--unbounded", action="store_true", help="no workspace budget")
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)  # shape batch impl pass
    args = parser.parse_args()
    if args.case:
        shape, batch, impl, pass_name = args.case
        result = run_case(shape, int(batch), impl, pass_name == "fwd+bwd", args.unbounded)
        print(json.dumps(result))
        return
    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    print("| shape | pass | algorithm | peak MiB | / PyTorch | s |")
    print("|---|---|---|---:|---:|---:|")
    for shape in shapes:
        x_shape, w_shape, padding = SHAPES[shape]
        batch = args.batch or x_shape[0]
        label = f"x({batch},{','.join(map(str, x_shape[1:]))}) w{w_shape} pad {padding}"
        for pass_name in args.passes.split(","):
            reference = None
            for impl in args.impls.split(","):
                command = [sys.executable, __file__, "--case", shape, str(batch), impl, pass_name]
                command += ["--unbounded"] if args.unbounded else []
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    print(f"| {label} | {pass_name} | {impl} | failed: {tail[0]} | | |")
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                peak = result["peak"] / MiB
                if impl == "torch":
                    reference = peak
                ratio = f"{peak / reference:.2f}" if reference else ""
                name = impl if not result["chosen"] else f"{impl} ({result['chosen']})"
                print(
                    f"| {label} | {pass_name} | {name} | {peak:.0f} | {ratio} |"
                    f" {result['seconds']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
