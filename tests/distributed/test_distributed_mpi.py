"""Data-parallel training under ``mpiexec -n 2`` and ``-n 3`` (Open MPI from convprop[mpi]).

Each test launches tests/distributed/mpi_worker.py (or the command line) with subprocess and reads
what every rank wrote. The processes run one thread each and may outnumber the cores
(--oversubscribe); CI runs as root, which Open MPI refuses unless told (the environment
below). Skipped only when no mpiexec or no mpi4py is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from convprop.io import load_model, load_model_metadata

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mpi_worker.py"


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # convprop[mpi]'s, in the environment
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = [
    pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec: install convprop[mpi]"),
    pytest.mark.skipif(
        importlib.util.find_spec("mpi4py") is None, reason="no mpi4py: install convprop[mpi]"
    ),
    pytest.mark.xdist_group("mpi"),  # one launch at a time: the ranks share 2 cores
]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        CONVPROP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def launch(
    ranks: int, *arguments: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert MPIEXEC is not None
    command = [MPIEXEC, "-n", str(ranks), "--oversubscribe", sys.executable, *arguments]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=_environment(), cwd=cwd
    )


def run_worker(ranks: int, scenario: str, out: Path) -> list[dict[str, Any]]:
    done = launch(ranks, str(WORKER), scenario, str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    name = scenario.replace(":", "-")
    return [json.loads((out / f"{name}.rank{r}.json").read_text()) for r in range(ranks)]


@pytest.mark.parametrize(("ranks", "batch"), [(2, 8), (3, 8)])
def test_W_ranks_train_as_one_process_with_the_global_batch(
    tmp_path: Path, ranks: int, batch: int
) -> None:
    """DP1-DP3 with SyncBatchNorm (SBN1-SBN7): W ranks × batch/W ≡ 1 rank × batch, 10 steps,
    float64; with 3 ranks the parts are 3, 3 and 2 (the mean weighs them by their sizes)."""
    results = run_worker(ranks, f"equivalence:{batch}", tmp_path)
    assert all(r["world_size"] == ranks for r in results)
    first = results[0]
    np.testing.assert_allclose(first["losses"], first["reference_losses"], rtol=1e-10, atol=0)
    assert first["largest_weight_difference"] < 1e-10
    assert first["counts"][:3] == [batch] * 3
    # parameters and buffers bit-identical on every rank after every step
    for other in results[1:]:
        assert other["digests"] == first["digests"]
        assert other["losses"] == first["losses"]
        assert other["optimizer_digest"] == first["optimizer_digest"]  # rank 0's state
    # allreduce_gradients(model, count): Σ n_r·g_r / Σ n_r with g_r = n_r = r + 1
    counts = range(1, ranks + 1)
    for result in results:
        assert result["allreduce_total"] == sum(counts)
        assert result["mean_gradient"] == pytest.approx(sum(n * n for n in counts) / sum(counts))
    # each epoch's parts are disjoint and cover the data set
    for epoch in range(3):
        parts = [[i for batch_part in r["shards"][epoch] for i in batch_part] for r in results]
        flat = [i for part in parts for i in part]
        assert sorted(flat) == list(range(first["num_samples"]))
        per_step = [[len(p) for p in r["shards"][epoch]] for r in results]
        assert all(min(sizes) >= 1 for sizes in per_step)


def test_resume_after_a_stop_gives_the_uninterrupted_weights(tmp_path: Path) -> None:
    results = run_worker(2, "resume", tmp_path)
    for result in results:
        assert result["resumed"] == result["straight"]  # bit for bit, dropout included
        assert result["loss_histories"][0] == result["loss_histories"][1]
        assert result["file_matches_model"]
    assert results[0]["straight"] == results[1]["straight"]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert results[0]["files"] == ["checkpoint.safetensors", "model.safetensors"]


def test_augmentation_and_clipping_train_as_one_process_and_resume_exactly(
    tmp_path: Path,
) -> None:
    """--augment transforms the whole global batch with its generator (AUG3) on every rank;
    --clip-grad-norm clips the global mean gradient (CLIP1-CLIP4): one process's run."""
    results = run_worker(2, "options", tmp_path)
    for result in results:
        assert result["largest_difference_to_one_process"] < 1e-10
        assert result["resumed_equals_straight"]
    assert results[0]["digest"] == results[1]["digest"]


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    results = run_worker(2, "nan", tmp_path)
    messages = [r["message"] for r in results]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "epoch 2, step 3" in messages[0]
    assert "last good checkpoint" in messages[0]
    assert all(r["checkpoint_epoch"] == 1 for r in results)


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_whole_job_naming_the_rank(tmp_path: Path, how: str) -> None:
    # 50 epochs would take minutes: the job must end within seconds (no hang)
    done = launch(2, str(WORKER), how, str(tmp_path), timeout=30)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    if how == "raise":
        assert "rank 1 of 2: RuntimeError: injected failure in the loss" in output
    else:
        assert "rank 1" in output and "signal 9" in output
    assert not list(tmp_path.glob("*.json"))


def test_the_command_line_trains_data_parallel_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["-m", "convprop.cli", "train", "--dataset", "digits", "--batch-size", "30"]
    first = launch(2, *common, "--epochs", "1", "--out", str(out), "--no-plots", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("final: train loss") == 1  # rank 0 reports, alone
    assert first.stderr.count("epoch 1/1") >= 1  # rank 0's progress bar
    assert {p.name for p in out.iterdir()} == {"checkpoint.safetensors", "model.safetensors"}
    again = launch(2, *common, "--epochs", "2", "--out", str(out), "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("final: train loss") == 1
    history = load_model_metadata(out / "model.safetensors")["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    assert (out / "history.png").exists()  # the plots, by rank 0
    load_model(out / "model.safetensors")  # a plain model file
