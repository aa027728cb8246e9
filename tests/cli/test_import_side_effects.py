"""Importing convprop leaves the host process as it found it: its environment unchanged, and
no second BLAS loaded (SciPy's, which starts its own threads, loads on first use). Process
tuning is an explicit call (convprop.process, tested in test_process.py).

Each check runs in a fresh interpreter, where nothing of convprop was imported before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODULES = ("convprop", "convprop.cli", "convprop.bench", "convprop.nn", "convprop.train")

PROBE = f"""
import json, os, sys
before = dict(os.environ)
for name in {MODULES!r}:
    __import__(name)
after = dict(os.environ)
print(json.dumps({{
    "added": sorted(set(after) - set(before)),
    "removed": sorted(set(before) - set(after)),
    "changed": sorted(k for k in before if k in after and before[k] != after[k]),
    "scipy_blas_loaded": "scipy.linalg" in sys.modules,
}}))
"""


def _probe(environment: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, check=True, capture_output=True, text=True
    )
    return dict(json.loads(done.stdout))


def test_importing_convprop_leaves_os_environ_unchanged() -> None:
    """With none of the variables convprop reads or used to set (OpenBLAS's thread timeout,
    the thread counts), and with them set: nothing added, removed or changed."""
    bare = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "CONVPROP_NUM_THREADS", "OMP_NUM_THREADS")
    }
    preset = {**bare, "OPENBLAS_THREAD_TIMEOUT": "25", "CONVPROP_NUM_THREADS": "1"}
    for environment in (bare, preset):
        report = _probe(environment)
        assert report["added"] == [] and report["removed"] == [] and report["changed"] == []


def test_importing_convprop_loads_no_second_blas() -> None:
    assert _probe(dict(os.environ))["scipy_blas_loaded"] is False
