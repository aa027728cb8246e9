"""What the benchmarks' worker processes share: their environment and how one is run.

Both ``convprop bench`` (conv layers, :mod:`convprop.bench_worker`) and ``convprop bench
--nets`` (whole networks, :mod:`convprop.bench_nets.worker`) time each library alone in a
fresh interpreter, as a user runs one, and read its report as one JSON line on stdout.
Threads: PyTorch through ``torch.set_num_threads`` in its process (``OMP_NUM_THREADS`` is
removed from the environment: it made PyTorch 2.13's convolutions about 8x slower on the
machine measured), convprop through ``CONVPROP_NUM_THREADS`` and NumPy's OpenBLAS through
``OPENBLAS_NUM_THREADS``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from convprop.process import BLAS_THREAD_TIMEOUT


def worker_environment(threads: int) -> dict[str, str]:
    """The environment of a worker: the thread counts, and convprop importable."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # PyTorch 2.13 ran ~8x slower with it set (bench README)
    env["CONVPROP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    # OpenBLAS's short spin, as convprop's long commands run (convprop.process); read as
    # NumPy loads OpenBLAS, so it is given to the worker's interpreter from its start
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
    source = str(Path(__file__).resolve().parents[1])  # the directory holding convprop
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def run_json_process(command: list[str], threads: int, what: str) -> dict[str, Any]:
    """Run ``command`` in :func:`worker_environment` and read its JSON (the last line of
    stdout); RuntimeError naming ``what`` when it fails or prints none."""
    done = subprocess.run(
        command, env=worker_environment(threads), capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{what} failed; expected JSON on stdout, got exit status {done.returncode}: "
            f"{done.stderr.strip()[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result
