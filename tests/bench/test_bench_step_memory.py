"""benchmarks/bench_step_memory.py: the peak of one training step's arrays, per network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from convprop.bench_nets.nets import CASES

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_step_memory.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_step_memory", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_peak_holds_at_least_the_activations_the_backward_reads() -> None:
    batch = 4
    peak = _script().step_peak_bytes("lenet5", batch)
    first = CASES["lenet5"].build(rng=0)[0]  # its output, kept by the next layer's cache
    assert peak >= batch * first.out_channels * 28 * 28 * 4  # (N, 6, 28, 28) float32


def test_the_table_names_each_network_and_its_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--models", "lenet5", "--batch-size", "lenet5=3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "batch", "peak", "MB"]
    name, batch, megabytes = lines[1].split()
    assert (name, batch) == ("lenet5", "3") and float(megabytes) > 0


@pytest.mark.parametrize("value", ["lenet5=0", "lenet5=x", "nonet=4", "lenet5"])
def test_a_bad_batch_size_is_refused_with_its_value(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _script().main(["--batch-size", value])
    assert exit_info.value.code == 2
    expected = f"--batch-size: expected MODEL=N with N >= 1, got '{value}'"
    assert expected in capsys.readouterr().err
