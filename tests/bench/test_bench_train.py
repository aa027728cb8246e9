"""benchmarks/bench_train.py: each library's epoch in a process of its own, alternating; the
report names every process's time and the ratio of the medians. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convprop.bench_processes import worker_environment

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


def _run(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], env=worker_environment(1),
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("library", ["convprop", "torch"])
def test_a_worker_trains_its_library_alone_and_reports_json(library: str) -> None:
    report = json.loads(_run("--worker", library, "--dataset", "digits", "--batches", "2")
                        .splitlines()[-1])  # fmt: skip
    assert report["library"] == library and report["batches"] == 2
    assert report["seconds"] > 0


@pytest.mark.parametrize("library", ["convprop", "torch"])
def test_a_worker_trains_any_shipped_model(library: str) -> None:
    """resnet-mini (BatchNorm, residual adds): PyTorch's twin built from convprop's model."""
    report = json.loads(_run("--worker", library, "--model", "resnet-mini", "--dataset",
                             "digits", "--batches", "2").splitlines()[-1])  # fmt: skip
    assert report["library"] == library and report["batches"] == 2


def test_random_inputs_replace_the_images_and_keep_the_labels() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    batches = [(np.ones((4, 1, 8, 8), np.float32), np.arange(4)) for _ in range(3)]
    batches.append((np.ones((2, 1, 8, 8), np.float32), np.arange(2)))  # a short last batch
    fed = list(module._random_inputs(iter(batches), (4, 1, 8, 8)))
    assert [x.shape for x, _ in fed] == [(4, 1, 8, 8)] * 3 + [(2, 1, 8, 8)]
    assert all(x.dtype == np.float32 and not np.any(x == 1.0) for x, _ in fed)
    assert not np.array_equal(fed[0][0], fed[1][0])
    kept = [np.array_equal(labels, b[1]) for (_, labels), b in zip(fed, batches, strict=True)]
    assert all(kept)
    lines = _run("--dataset", "digits", "--batches", "2", "--rounds", "1",
                 "--random-inputs").splitlines()  # fmt: skip
    assert lines[1].startswith("standard normal values, labels of digits: 2 batches of 64")


def test_the_report_alternates_processes_and_gives_the_ratio_of_medians() -> None:
    lines = _run("--dataset", "digits", "--batches", "2", "--rounds", "2").splitlines()
    assert "processes of its own, alternating" in lines[0]
    assert lines[1].startswith("digits: 2 batches of 64, lenet, Adam")
    times = {line.split()[0]: line.split()[1:-1] for line in lines[2:4]}
    assert set(times) == {"convprop", "torch"} and all(len(t) == 2 for t in times.values())
    assert "ratio" in lines[-1] and "(medians)" in lines[-1]


def test_rounds_must_be_positive() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "0"], env=worker_environment(1),
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--rounds: expected a positive number, got 0" in done.stderr
