"""convprop bench: the side-by-side conv2d benchmark (its command line, not its timings)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from convprop import bench, process
from convprop.cli import main


@pytest.fixture(autouse=True)
def _no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 1.0)


def test_bench_json_reports_every_pass_for_both_libraries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "--shape", "lenet1", "--repeats", "1", "--no-memory", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (result,) = report["results"]
    assert result["name"] == "lenet1" and result["shape"][:4] == [64, 1, 28, 28]
    assert set(result["convprop_ms"]) == set(bench.PASSES) == set(result["torch_ms"])
    assert all(ms > 0 for ms in result["convprop_ms"].values())
    assert set(result["algorithms"]) == {"forward", "input_grad", "weight_grad"}
    assert report["machine"]["threads"] == 2


def test_bench_table_for_one_algorithm_without_torch(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--shape", "dil3x3", "--algorithm", "im2col", "--repeats", "1"]
    assert main([*argv, "--no-torch", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")
    rows = [line for line in out.splitlines() if line.startswith("dil3x3")]
    assert len(rows) == 4 and all(row.rstrip().endswith("im2col") for row in rows[:3])


def test_bench_skips_the_shapes_a_named_algorithm_declines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench", "--shape", "lenet2", "--shape", "dw3x3", "--algorithm", "depthwise"]
    assert main([*argv, "--repeats", "1", "--no-torch", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("dw3x3")]
    assert not [line for line in out.splitlines() if line.startswith("lenet2 ")]
    assert "skipped lenet2: conv2d: algorithm 'depthwise' cannot compute this case" in out


class _Clock:
    """Stands in for the time module: a clock that moves only when a call says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_sample_warms_up_for_the_given_time_then_takes_the_median_of_its_timed_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(bench, "time", clock)
    durations: list[float] = []

    def call() -> None:  # 4 ms per call unless told otherwise
        clock.now += durations.pop(0) if durations else 0.004
        calls.append(clock.now)

    calls: list[float] = []
    assert bench._timed(call, warm=0.0) == pytest.approx(4.0)
    assert len(calls) == 2  # one untimed call, one timed
    calls.clear()
    bench._timed(call, warm=0.02)
    assert len(calls) == 5 + bench.TIMED_CALLS  # 20 ms of 4 ms calls, then the timed ones
    calls.clear()
    monkeypatch.setattr(bench, "TIMED_CALLS", 3)
    durations[:] = [0.004] * 5 + [0.030, 0.001, 0.002]  # the warm-up, then 30, 1 and 2 ms
    assert bench._timed(call, warm=0.02) == pytest.approx(2.0)


def test_bench_json_records_the_warm_up(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--shape", "dw3x3", "--repeats", "1", "--no-torch", "--no-memory"]
    assert main([*argv, "--warm-ms", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["machine"]["warm_ms"] == 0
    assert main(argv) == 0
    assert "and 20 ms of untimed calls" in capsys.readouterr().out


def test_the_suite_ships_inside_the_package_and_benchmarks_links_to_it() -> None:
    """`convprop bench` must find its suite in an installed package, not only in a checkout."""
    root = Path(__file__).resolve().parents[2]
    assert bench.SUITE_FILE.parent == Path(bench.__file__).parent
    config = (root / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on 3.10
    package_data = config.split("[tool.setuptools.package-data]", 1)[1].split("[", 2)
    assert f'"{bench.SUITE_FILE.name}"' in package_data[1]  # convprop = [..., here]
    linked = root / "benchmarks" / "conv_suite.json"
    assert linked.read_bytes() == bench.SUITE_FILE.read_bytes()
    assert list(bench.load_suite()) == [
        "lenet1", "lenet2", "res3x3", "res3x3s2", "pw1x1", "alex11", "big9x9", "dw3x3", "dil3x3",
        "r20s2", "r20s3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "bench: cannot read the suite"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "expected an object of name: shape, got list"),
        ('{"a": [1, 1, 8, 8, 1, 3, 3, 1, 1, 1]}', "suite entry 'a' in"),
        ('{"a": [1, 1, 8, 8, 1, 3, 3, 1, -1, 1, 1]}', "(11 integers, pad >= 0, the rest >= 1)"),
        ('{"a": [1, 1, 8, 8, 1, 3, 3, 1.5, 1, 1, 1]}', "got [1, 1, 8, 8, 1, 3, 3, 1.5, 1, 1, 1]"),
    ],
)
def test_a_bad_suite_file_is_a_one_line_error_naming_it(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite.json"
    if content is not None:
        suite.write_text(content, encoding="utf-8")
    assert main(["bench", "--suite", str(suite), "--no-torch", "--no-memory"]) == 1
    err = capsys.readouterr().err
    assert message in err and str(suite) in err and len(err.strip().splitlines()) == 1


def test_a_suite_file_of_ones_own_is_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "mine.json"
    suite.write_text('{"_doc": "one tiny layer", "tiny": [2, 3, 9, 9, 4, 3, 3, 2, 1, 1, 1]}')
    argv = ["bench", "--suite", str(suite), "--repeats", "1", "--no-torch", "--no-memory"]
    assert main([*argv, "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["name"] == "tiny" and result["shape"] == [2, 3, 9, 9, 4, 3, 3, 2, 1, 1, 1]


def test_without_pytorch_bench_says_how_to_get_it_or_go_without(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert main(["bench", "--shape", "dw3x3", "--repeats", "1", "--no-memory"]) == 1
    err = capsys.readouterr().err
    assert "bench: PyTorch is not installed" in err and "--no-torch" in err
    assert len(err.strip().splitlines()) == 1


def test_peak_memory_is_measured_in_a_child_process() -> None:
    megabytes = bench.peak_memory_mb("convprop", [2, 1, 8, 8, 2, 3, 3, 1, 1, 1, 1])
    assert megabytes >= 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shape", "nope"], "bench: unknown shape; expected names from"),
        (["--repeats", "0"], "bench: --repeats must be >= 1"),
        (["--rounds", "0"], "bench: --rounds must be >= 1"),
        (["--threads", "0"], "bench: --threads must be >= 1"),
        (["--warm-ms", "-1"], "bench: --warm-ms must be within [0, 10000]"),
        (["--warm-ms", "nan"], "bench: --warm-ms must be within [0, 10000]"),
        (
            ["--shape", "lenet2", "--algorithm", "winograd"],
            "bench: algorithm 'winograd' computes none of the shapes",
        ),
    ],
)
def test_bench_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--no-torch", "--no-memory", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_machine_info_names_each_loaded_blas_and_its_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report's BLAS is what threadpoolctl finds loaded (NumPy's OpenBLAS at least), with
    its version and thread count; the OpenBLAS spin setting as the environment holds it."""
    monkeypatch.setattr(bench, "matmul_gflops", lambda: 0.0)
    info = bench.machine_info(2)
    assert "openblas" in info["blas"] and "numpy" in info["blas"] and " threads" in info["blas"]
    architectures = [lib["architecture"] for lib in process.blas_libraries() if lib["architecture"]]
    assert all(f", {name} kernels)" in info["blas"] for name in architectures)
    assert info["blas_thread_timeout"] == os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default")


def _fake_worker(calls: list[str]) -> Any:
    """Stands in for a worker process: samples that say which library and round made them."""

    def worker(library: str, names: list[str], **options: Any) -> dict[str, Any]:
        calls.append(library)
        base = 10.0 if library == "convprop" else 20.0
        count = calls.count(library)  # 1, 2, 3: this library's round
        samples = {p: [base + count, base + count + 0.5, 100.0] for p in bench.PASSES}
        chosen = {"forward": "direct"} if library == "convprop" else {}
        results = {name: {"algorithms": chosen, "samples": samples} for name in names}
        return {"library": library, "results": results, "skipped": {}}

    return worker


def test_each_library_runs_in_processes_of_its_own_alternating_and_medians_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Round 1 convprop then PyTorch, round 2 the other way round, ...; per pass the median
    over the processes of each process's median sample (one slow sample in every process
    moves nothing)."""
    calls: list[str] = []
    monkeypatch.setattr(bench, "_worker", _fake_worker(calls))
    shapes = bench.load_suite()
    results, skipped = bench.bench_shapes(["lenet1"], shapes, rounds=3, memory=False)
    assert calls == ["convprop", "torch", "torch", "convprop", "convprop", "torch"]
    (result,) = results
    assert skipped == {} and result.algorithms == {"forward": "direct"}
    assert result.convprop_ms == {p: 12.5 for p in bench.PASSES}  # medians 11.5, 12.5, 13.5
    assert result.torch_ms == {p: 22.5 for p in bench.PASSES}
    assert result.ratio("forward") == pytest.approx(12.5 / 22.5)


def test_the_worker_times_one_library_and_reports_declined_shapes() -> None:
    from convprop.bench_worker import time_library

    tiny = {"tiny": [2, 3, 9, 9, 4, 3, 3, 2, 1, 1, 1], "dw": [1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 4]}
    report = time_library("convprop", tiny, algorithm="depthwise", repeats=2, warm=0.0)
    assert report["library"] == "convprop" and list(report["results"]) == ["dw"]
    assert "cannot compute this case" in report["skipped"]["tiny"]
    samples = report["results"]["dw"]["samples"]
    assert set(samples) == set(bench.PASSES) and all(len(v) == 2 for v in samples.values())
    assert report["results"]["dw"]["algorithms"]["forward"] == "depthwise"
