"""The whole-network benchmark (convprop.bench_nets, benchmarks/bench_nets.py): the PyTorch
twins compute what convprop computes, the layer timer changes nothing, the worker and the
runner report every field. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convprop
from convprop.bench_nets import CASES, ResNet20, format_report
from convprop.bench_nets.nets import Case
from convprop.bench_nets.profile import CATEGORIES, category, layer_timer
from convprop.bench_nets.runner import _batch_sizes, run_process
from convprop.bench_nets.worker import (
    PASSES,
    Settings,
    batch_inputs,
    convprop_breakdown,
    convprop_passes,
    make_batch,
    run_worker,
    time_calls,
)
from convprop.bench_processes import worker_environment
from convprop.nn import BatchNorm2d, Conv2d, Module

torch = pytest.importorskip("torch")
from convprop.bench_nets.torch_nets import torch_twin  # noqa: E402  (needs torch)
from convprop.bench_nets.worker import torch_passes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _state(model: Any) -> dict[str, np.ndarray]:
    """A state_dict of either library as NumPy arrays (copies)."""
    return {
        key: np.array(value.detach().numpy() if hasattr(value, "detach") else value)
        for key, value in model.state_dict().items()
    }


def test_resnet20_is_he_et_al_cifar_layout() -> None:
    net = ResNet20(rng=0)
    convs = [m for m in net.modules() if isinstance(m, Conv2d)]
    # 1 stem + 9 blocks × 2 + 2 projection shortcuts (stages 2 and 3)
    assert len(convs) == 21
    assert len([m for m in net.modules() if isinstance(m, BatchNorm2d)]) == 21
    assert [c.out_channels for c in convs if c.kernel_size == (1, 1)] == [32, 64]
    assert [c.stride for c in convs if c.stride != (1, 1)] == [(2, 2)] * 4
    assert net(np.zeros((1, 3, 32, 32), dtype=np.float32)).shape == (1, 10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_twin_forward_agrees_float32_train_mode(name: str) -> None:
    case = CASES[name]
    model = case.build(rng=0)
    twin = torch_twin(model)
    if name == "lenet":  # dropout draws differ between the libraries: compare in eval mode
        model.eval()
        twin.eval()
    x, _ = make_batch(case, 4)
    ours = model(x).data
    theirs = twin(torch.from_numpy(x)).detach().numpy()
    assert ours.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


@pytest.mark.parametrize("name", sorted(CASES))
def test_twin_forward_agrees_float64_eval_mode(name: str) -> None:
    case = CASES[name]
    model = case.build(rng=1, dtype="float64")
    twin = torch_twin(model)
    model.eval()
    twin.eval()
    x, _ = make_batch(case, 3, "float64", seed=5)
    with convprop.no_grad():
        ours = model(x).data
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def _train_both(name: str, batch: int, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = convprop_passes(CASES[name], batch, "float64")
    theirs = torch_passes(CASES[name], batch, "float64")
    for _ in range(steps):
        ours["train"]()
        theirs["train"]()
    return _state(ours["model"]), _state(theirs["model"])


def test_resnet20_training_steps_agree_float64() -> None:
    """Two SGD-momentum steps (the second reads the momentum buffer): every weight and every
    BatchNorm statistic of the benchmark's two models stays equal to float64 rounding."""
    ours, theirs = _train_both("resnet20", 4, 2)
    start = _state(ResNet20(rng=0, dtype="float64"))
    assert ours.keys() == theirs.keys() == start.keys()
    moved = 0
    for key, value in ours.items():
        scale = np.abs(theirs[key]).max() + 1e-300
        np.testing.assert_allclose(value, theirs[key], rtol=1e-9, atol=1e-9 * scale, err_msg=key)
        moved += not np.array_equal(value, start[key])
    assert moved == len(ours)  # every weight, bias, statistic and counter was updated


def test_resnet_mini_training_step_agrees_float64() -> None:
    ours, theirs = _train_both("resnet-mini", 3, 1)
    for key, value in ours.items():
        scale = np.abs(theirs[key]).max() + 1e-300
        np.testing.assert_allclose(value, theirs[key], rtol=1e-9, atol=1e-9 * scale, err_msg=key)


def test_twin_refuses_a_layer_without_a_torch_module() -> None:
    class Custom(Module):
        def forward(self, x: Any) -> Any:
            return x

    with pytest.raises(TypeError, match="no PyTorch twin for Custom"):
        torch_twin(convprop.nn.Sequential(Conv2d(1, 2, 3, rng=0), Custom()))


@pytest.mark.parametrize(
    ("names", "kind"),
    [
        (("conv2d", "Conv2d", "aten::conv2d", "ConvolutionBackward0"), "conv"),
        (("batch_norm", "BatchNorm2d", "aten::batch_norm", "NativeBatchNormBackward0"),
         "batchnorm"),
        (("relu", "ReLU", "aten::relu", "ReluBackward0"), "activation"),
        (("max_pool2d", "AdaptiveAvgPool2d", "MaxPool2DWithIndicesBackward0",
          "MeanBackward1"), "pool"),
        (("linear", "Linear", "aten::linear", "AddmmBackward0", "TBackward0"), "linear"),
        (("cross_entropy", "CrossEntropyLoss", "aten::cross_entropy_loss",
          "NllLossBackward0", "LogSoftmaxBackward0"), "loss"),
        (("add", "aten::add", "autograd::engine::evaluate_function: AddBackward0"), "add"),
        (("reshape", "Flatten", "Dropout", "aten::dropout", "ViewBackward0", "aten::add_"),
         "other"),
        (("Optimizer.step#SGD.step", "Optimizer.zero_grad#SGD.zero_grad"), "optimizer"),
        (("torch::autograd::AccumulateGrad", "aten::ones_like"), "overhead"),
    ],
)  # fmt: skip
def test_category_of_each_op_name(names: tuple[str, ...], kind: str) -> None:
    assert [category(name) for name in names] == [kind] * len(names)


def test_layer_timer_changes_no_result_and_restores_the_library() -> None:
    originals = (Module.__call__, convprop.Tensor.__add__)
    plain = convprop_passes(CASES["resnet-mini"], 4, "float64")
    timed = convprop_passes(CASES["resnet-mini"], 4, "float64")
    plain["train"]()
    with layer_timer() as times:
        timed["train"]()
        seconds = dict(times.seconds)
    assert (Module.__call__, convprop.Tensor.__add__) == originals
    for key, value in _state(plain["model"]).items():
        np.testing.assert_array_equal(_state(timed["model"])[key], value, err_msg=key)
    for kind in ("conv", "batchnorm", "activation", "pool", "linear", "loss", "add"):
        assert seconds[kind] > 0, kind


def test_convprop_breakdown_adds_up_to_the_step() -> None:
    parts = convprop_breakdown(convprop_passes(CASES["resnet-mini"], 2), steps=1)
    assert set(parts) == {*CATEGORIES, "total"}
    assert parts["optimizer"] > 0 and parts["conv"] > 0
    assert sum(parts[kind] for kind in CATEGORIES) == pytest.approx(parts["total"])


def test_worker_reports_every_field() -> None:
    settings = Settings(warm_seconds=0.0, repeats=2, max_seconds=1.0, profile_steps=1)
    result = run_worker("convprop", "lenet5", 8, settings)
    json.dumps(result)  # what the worker prints
    assert (result["library"], result["case"], result["batch"]) == ("convprop", "lenet5", 8)
    assert set(result["ms"]) == set(result["samples"]) == set(PASSES)
    assert all(len(result["samples"][p]) == 2 for p in PASSES)
    assert set(result["breakdown"]) == {*CATEGORIES, "total"}
    assert result["settings"]["repeats"] == 2


def test_random_inputs_reach_the_worker() -> None:
    """--random-inputs: the worker feeds standard normal values even to a model whose data
    set is installed, and says so."""
    from convprop.bench_nets.runner import worker_command

    settings = Settings(warm_seconds=0.0, repeats=1, max_seconds=1.0, profile_steps=0,
                        random_inputs=True)  # fmt: skip
    assert worker_command("convprop", "lenet5", 8, settings)[-1] == "--random-inputs"
    assert "--random-inputs" not in worker_command("convprop", "lenet5", 8, Settings())
    result = run_worker("convprop", "lenet5", 8, settings)
    assert result["inputs"] == "standard normal" and result["settings"]["random_inputs"]


@pytest.mark.parametrize(("sample_ms", "calls_per_sample"), [(8.0, 8), (8.5, 8), (0.5, 1)])
def test_a_short_pass_is_timed_in_samples_of_several_calls(
    monkeypatch: pytest.MonkeyPatch, sample_ms: float, calls_per_sample: int
) -> None:
    """A sample of a pass shorter than sample_ms is as many whole calls as fill it, and
    reports milliseconds per call; a longer pass is timed call by call. On a clock that
    advances 2**-10 s (0.977 ms, exact in binary) per call, so that the counts are exact on
    any machine."""
    from convprop.bench_nets import worker

    STEP = 2.0**-10

    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            return self.now

    clock = Clock()
    monkeypatch.setattr(worker, "time", clock)
    calls: list[float] = []

    def one_millisecond() -> None:
        calls.append(1.0)
        clock.now += STEP

    settings = Settings(warm_seconds=0.0, repeats=3, max_seconds=5.0, sample_ms=sample_ms)
    samples = time_calls(one_millisecond, settings)
    assert samples == [STEP * 1e3] * 3
    assert len(calls) == 2 + 3 * calls_per_sample  # two untimed calls, then the samples


def test_a_batch_is_real_images_of_the_case_data_set() -> None:
    """A case naming an installed data set of its sample shape is fed that set's images and
    labels, drawn by the seed (the same batch in both libraries' processes)."""
    from convprop.data import load_dataset

    case = Case("digits-net", CASES["lenet"].build, (1, 8, 8), 16, dataset="digits")
    x, labels = make_batch(case, 16, seed=3)
    train, _ = load_dataset("digits")
    chosen = np.random.default_rng(3).choice(len(train.labels), size=16, replace=False)
    np.testing.assert_array_equal(x, train.images[chosen])
    np.testing.assert_array_equal(labels, train.labels[chosen])
    assert x.dtype == np.float32 and batch_inputs(case) == "digits images"
    again, _ = make_batch(case, 16, seed=3)
    np.testing.assert_array_equal(again, x)


@pytest.mark.parametrize("dataset", [None, "/no/such/data-set", "digits"])
def test_a_batch_without_its_data_set_is_standard_normal(dataset: str | None) -> None:
    """No data set named, one not installed, or one of another sample shape (digits are
    8×8): standard normal values and random labels, and the report says so."""
    case = Case("net", CASES["lenet"].build, (1, 28, 28), 8, dataset=dataset)
    x, labels = make_batch(case, 8, "float64", seed=1)
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(x, rng.standard_normal((8, 1, 28, 28)))
    assert labels.shape == (8,) and batch_inputs(case) == "standard normal"


def test_worker_environment_sets_threads_and_drops_omp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    env = worker_environment(3)
    assert "OMP_NUM_THREADS" not in env
    assert env["CONVPROP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["OPENBLAS_THREAD_TIMEOUT"] == "16"  # convprop.process's short spin
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")
    assert worker_environment(3)["OPENBLAS_THREAD_TIMEOUT"] == "28"  # the user's value kept


def test_a_failing_worker_is_one_error_with_its_output() -> None:
    with pytest.raises(RuntimeError, match="the convprop worker for no-such-net failed"):
        run_process("convprop", "no-such-net", 2, Settings())


def test_batch_size_option() -> None:
    assert _batch_sizes(["resnet20=16"], ["lenet", "resnet20"]) == {"lenet": 64, "resnet20": 16}
    with pytest.raises(SystemExit, match="MODEL=N"):
        _batch_sizes(["resnet20=0"], ["resnet20"])


def test_quick_run_end_to_end() -> None:
    """The script as a user runs it: both workers, the JSON report and the table."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_nets.py"), "--quick", "--models",
         "lenet5", "--json", "--quiet"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    result = report["cases"]["lenet5"]
    assert result["batch"] == 64 and result["sample_shape"] == [1, 28, 28]
    assert result["inputs"] in ("fashion-mnist images", "standard normal")
    for library in ("convprop", "torch"):
        assert set(result["ms"][library]) == set(PASSES)
        assert all(len(v) == 1 for v in result["process_ms"][library].values())  # one round
        assert set(result["breakdown"][library]) == {*CATEGORIES, "total"}
    assert result["ratio"]["train"] == pytest.approx(
        result["ms"]["convprop"]["train"] / result["ms"]["torch"]["train"]
    )
    assert report["settings"]["rounds"] == 1 and report["machine"]["threads"] == 2
    table = format_report(report)
    assert "lenet5       train step      64" in table
    assert f"inputs: lenet5 {result['inputs']}" in table
    assert "lenet5       PyTorch" in table


@pytest.mark.parametrize("option", ["--rounds", "--threads", "--repeats"])
def test_counts_below_one_are_refused(option: str) -> None:
    from convprop.bench_nets import main

    with pytest.raises(SystemExit, match=f"{option} must be >= 1"):
        main([option, "0"])


def test_convprop_bench_nets_runs_the_network_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    """``convprop bench --nets`` hands its threads and --json to the network benchmark."""
    from convprop import cli
    from convprop.bench_nets import runner

    seen: list[list[str]] = []
    monkeypatch.setattr(runner, "main", lambda argv: seen.append(list(argv)) or 0)
    assert cli.main(["bench", "--nets", "--threads", "1", "--json"]) == 0
    assert seen == [["--threads", "1", "--json"]]
