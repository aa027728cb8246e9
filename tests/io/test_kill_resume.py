"""A training run killed with SIGKILL at random moments (also inside checkpoint writes) and
resumed each time ends with the weights of an uninterrupted run, bit for bit, and leaves no
stray files: the temporary file of an interrupted write is removed by the next run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest

from convprop.data.digits import DIGITS_FILE
from convprop.data.idx import write_idx
from convprop.io import atomic_write, check_writable, load_weights, remove_stale_temporaries
from convprop.nn import Linear

EPOCHS = 3
KILLS = 5


def _digits_dir(folder: Path) -> Path:
    """400 training and 100 test digits as an MNIST-style IDX directory (a run of a few s)."""
    data = numpy.load(DIGITS_FILE)
    images = (data["images"].astype(numpy.uint16) * 15).astype(numpy.uint8)
    labels = data["labels"].astype(numpy.uint8)
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:400])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:400])
    write_idx(folder / "t10k-images-idx3-ubyte", images[400:500])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[400:500])
    return folder


def _command(data: Path, out: Path, resume: bool) -> list[str]:
    args = [sys.executable, "-m", "convprop.cli", "train", "--dataset", str(data)]
    args += ["--epochs", str(EPOCHS), "--batch-size", "16", "--seed", "3", "--out", str(out)]
    return args + ["--no-progress", "--no-plots"] + (["--resume"] if resume else [])


def _run(data: Path, out: Path) -> None:
    resume = (out / "checkpoint.safetensors").exists()
    done = subprocess.run(_command(data, out, resume), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_weights(tmp_path):
    data = _digits_dir(tmp_path / "data")
    reference = tmp_path / "reference"
    started = time.monotonic()
    _run(data, reference)
    duration = time.monotonic() - started
    expected = load_weights(reference / "model.safetensors")

    out, rng = tmp_path / "killed", random.Random(19)
    for _ in range(KILLS):
        resume = (out / "checkpoint.safetensors").exists()
        process = subprocess.Popen(
            _command(data, out, resume), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.2, duration))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    _run(data, out)  # resume (or start) and finish

    assert sorted(os.listdir(out)) == sorted(os.listdir(reference))
    weights = load_weights(out / "model.safetensors")
    assert weights.keys() == expected.keys()
    for key, value in expected.items():
        assert value.dtype == weights[key].dtype
        assert value.tobytes() == weights[key].tobytes(), key


def _killed_writer(target: Path) -> Path:
    """Start a process that writes ``target`` with atomic_write, SIGKILL it mid-write, and
    return the temporary file it left."""
    code = (
        "import sys, time\n"
        "from convprop.io import atomic_write\n"
        "def write(temporary):\n"
        "    with open(temporary, 'wb') as handle:\n"
        "        handle.write(b'partial')\n"
        "    print(temporary, flush=True)\n"
        "    time.sleep(60)\n"
        f"atomic_write({str(target)!r}, write)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    temporary = Path(process.stdout.readline().strip())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert temporary.is_file()
    return temporary


def test_a_write_killed_midway_keeps_the_old_file_and_the_next_write_removes_its_temporary(
    tmp_path,
):
    target = tmp_path / "checkpoint.safetensors"
    target.write_bytes(b"old")
    temporary = _killed_writer(target)
    assert temporary.name.startswith(".checkpoint.") and temporary.name.endswith(".tmp.safetensors")
    assert target.read_bytes() == b"old"  # the old file, never a third state
    unrelated = [tmp_path / ".checkpoint.notes.tmp.safetensors", tmp_path / "other.tmp"]
    for path in unrelated:
        path.write_bytes(b"keep")

    atomic_write(target, lambda t: Path(t).write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint.safetensors", *(p.name for p in unrelated)]
    )


def test_the_run_directory_check_sweeps_every_dead_writers_temporary(tmp_path):
    temporaries = [_killed_writer(tmp_path / name) for name in ("model.safetensors", "log.txt")]
    live = tmp_path / f".history.{os.getpid()}-0123456789ab.tmp.json"  # a write in progress
    live.write_bytes(b"")
    check_writable(tmp_path, Linear(2, 2, rng=0))
    assert not any(path.exists() for path in temporaries)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def test_only_the_named_targets_temporaries_are_removed(tmp_path):
    dead = 2**22 + 12345  # above Linux's default pid_max of 4194304: no such process
    mine = tmp_path / f".a.{dead}-0123456789ab.tmp.bin"
    other = tmp_path / f".b.{dead}-0123456789ab.tmp.bin"
    for path in (mine, other):
        path.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path, "a.bin") == [str(mine)]
    assert other.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []
