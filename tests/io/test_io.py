"""Model files and checkpoints: round trips, PyTorch compatibility, atomic writes, errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import convprop.io
from convprop.backend import to_host
from convprop.io import (
    ModelFileError,
    architecture,
    atomic_write,
    build,
    load_checkpoint,
    load_model,
    load_model_metadata,
    save_checkpoint,
    save_model,
)
from convprop.nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Tanh,
)
from convprop.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR

DTYPES = ["float32", "float64"]


# -- helpers ---------------------------------------------------------------------------------
def every_layer_model(dtype: str, seed: int = 0) -> Sequential:
    """Every layer type of convprop.nn, nested containers included; input (N, 2, 6, 6)."""
    rngs = np.random.default_rng(seed).spawn(6)
    return Sequential(
        Conv2d(2, 4, 3, padding=1, rng=rngs[0], dtype=dtype),  # (N, 4, 6, 6)
        BatchNorm2d(4, dtype=dtype),
        ReLU(),
        Residual(
            Sequential(
                Conv2d(4, 4, 3, padding="same", bias=False, rng=rngs[1], dtype=dtype), Tanh()
            )
        ),
        ConvTranspose2d(4, 3, 2, stride=2, rng=rngs[2], dtype=dtype),  # (N, 3, 12, 12)
        LeakyReLU(0.2),
        MaxPool2d(2),  # (N, 3, 6, 6)
        AvgPool2d(2, stride=1),  # (N, 3, 5, 5)
        BatchNorm2d(3, momentum=0.3, affine=False, dtype=dtype),
        Sigmoid(),
        Dropout(0.25, rng=rngs[3]),
        AdaptiveAvgPool2d(2),  # (N, 3, 2, 2)
        Flatten(),
        Linear(12, 5, rng=rngs[4], dtype=dtype),
    )


def batch(shape: tuple[int, ...], dtype: str, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def warm_up(model: Module, x: np.ndarray) -> None:
    """Two training forwards, so that BatchNorm's running statistics are not the defaults."""
    model.train()
    model(x)
    model(x * 0.5 + 1)


def assert_same_state(a: Module, b: Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert state_a[key].dtype == state_b[key].dtype, key
        np.testing.assert_array_equal(to_host(state_a[key]), to_host(state_b[key]), err_msg=key)


def rewrite(
    path: Path,
    *,
    drop: tuple[str, ...] = (),
    tensors: dict[str, Any] | None = None,
    **metadata: str,
) -> None:
    """Rewrite a saved file with some metadata entries replaced or dropped."""
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        header = dict(handle.metadata())
        stored = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    header.update(metadata)
    for key in drop:
        del header[key]
    safetensors.numpy.save_file(stored if tensors is None else tensors, str(path), header)


def model_header(arch: Any, **extra: str) -> dict[str, str]:
    return {
        "format": "convprop-model",
        "version": "1",
        "architecture": json.dumps(arch),
        "user": "{}",
        **extra,
    }


LINEAR_ARCH = {
    "type": "Sequential",
    "children": [{"type": "Linear", "config": {"in_features": 4, "out_features": 3, "bias": True}}],
}


# -- architecture and build ------------------------------------------------------------------
def test_architecture_is_json_and_nests_containers() -> None:
    arch = architecture(every_layer_model("float32"))
    assert json.loads(json.dumps(arch)) == arch
    assert [child["type"] for child in arch["children"]][:4] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Residual",
    ]
    assert arch["children"][3]["body"]["type"] == "Sequential"
    assert arch["children"][3]["body"]["children"][0]["config"]["padding"] == "same"


def test_build_makes_the_same_architecture() -> None:
    model = every_layer_model("float32")
    rebuilt = build(json.loads(json.dumps(architecture(model))))
    assert architecture(rebuilt) == architecture(model)
    assert [k for k, _ in rebuilt.named_parameters()] == [k for k, _ in model.named_parameters()]


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.integers(1, 3),
    padding=st.one_of(
        st.integers(0, 2), st.just("same"), st.just("valid"), st.just(((0, 1), (2, 0)))
    ),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
)
def test_conv2d_config_survives_json(
    kernel: tuple[int, int], stride: int, padding: Any, dilation: int, groups: int, bias: bool
) -> None:
    layer = Conv2d(2, 4, kernel, stride, padding, dilation, groups, bias, rng=0)
    arch = json.loads(json.dumps(architecture(layer)))
    assert architecture(build(arch)) == architecture(layer)


def test_architecture_refuses_modules_it_cannot_name() -> None:
    class Custom(ReLU):
        pass

    with pytest.raises(TypeError, match=r"architecture: .*Custom cannot be saved by name"):
        architecture(Sequential(Linear(2, 2, rng=0), Custom()))


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ({"type": "Softmax2d", "config": {}}, r"unknown layer type at model; .* got 'Softmax2d'"),
        (
            {"type": "Sequential", "children": [{"type": "Bogus", "config": {}}]},
            r"unknown layer type at model\.0;",
        ),
        ({"type": "Residual", "body": {"type": "Nope", "config": {}}}, r"at model\.body;"),
        ({"config": {}}, r"node model is malformed; expected an object with a 'type'"),
        ({"type": "Sequential", "children": [3]}, r"node model\.0 is malformed"),
        ({"type": "ReLU"}, r"model \(ReLU\) has the wrong fields; expected \['type', 'config'\]"),
        ({"type": "Sequential", "children": {}}, r"children must be a list"),
        ({"type": "ReLU", "config": []}, r"config must be an object"),
        (
            {"type": "Conv2d", "config": {"in_channels": 1, "out_channels": 2, "kernel_size": 0}},
            r"model \(Conv2d\) cannot be built from its config; .*kernel_size must be >= 1",
        ),
        (
            {"type": "Linear", "config": {"in_features": 2, "out_features": 3, "colour": 1}},
            r"model \(Linear\) cannot be built from its config; .*colour",
        ),
        (
            {"type": "Linear", "config": {"in_features": 2, "out_features": 3, "dtype": "int8"}},
            r"model \(Linear\) cannot be built from its config; .*dtype must be float32",
        ),
    ],
)
def test_build_refuses_bad_descriptions(arch: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelFileError, match=r"^my-source: .*" + match):
        build(arch, source="my-source")


# -- model files -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_model_round_trip_every_layer(tmp_path: Path, dtype: str) -> None:
    model = every_layer_model(dtype)
    x = batch((2, 2, 6, 6), dtype)
    warm_up(model, x)
    path = tmp_path / "model.safetensors"
    save_model(path, model, metadata={"accuracy": 0.5, "classes": ["a", "b"]})
    loaded = load_model(path)
    assert architecture(loaded) == architecture(model)
    assert_same_state(model, loaded)
    assert loaded.state_dict()["1.num_batches_tracked"] == 2
    assert all(p.data.dtype == dtype for p in loaded.parameters())
    model.eval()
    loaded.eval()
    y_loaded, y_model = loaded(x), model(x)
    assert y_loaded.dtype == dtype
    np.testing.assert_array_equal(y_loaded, y_model)
    assert load_model_metadata(path) == {"accuracy": 0.5, "classes": ["a", "b"]}


def test_model_file_layout(tmp_path: Path) -> None:
    model = every_layer_model("float32")
    path = tmp_path / "model.safetensors"
    save_model(path, model)
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        header, keys = handle.metadata(), set(handle.keys())
    assert keys == set(model.state_dict())
    assert {"0.weight", "1.running_mean", "3.body.0.weight", "8.num_batches_tracked"} <= keys
    assert "3.body.0.bias" not in keys and "8.weight" not in keys
    assert header["format"] == "convprop-model" and header["version"] == "1"
    assert json.loads(header["architecture"]) == architecture(model)
    assert json.loads(header["user"]) == {}
    assert load_model_metadata(path) == {}


def test_model_round_trip_from_device(tmp_path: Path, xp: ModuleType) -> None:
    model = every_layer_model("float32").to("cpu" if xp is np else "cuda").eval()
    path = tmp_path / "model.safetensors"
    save_model(path, model)
    loaded = load_model(path).eval()
    x = batch((2, 2, 6, 6), "float32")
    np.testing.assert_allclose(loaded(x), to_host(model(xp.asarray(x))), rtol=1e-5, atol=1e-6)


def test_model_without_parameters_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "relu.safetensors"
    save_model(path, Sequential(ReLU(), Flatten()))
    assert architecture(load_model(path)) == architecture(Sequential(ReLU(), Flatten()))


def test_metadata_accepts_numpy_scalars(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, Sequential(ReLU()), metadata={"loss": np.float32(0.5), "n": np.int64(3)})
    assert load_model_metadata(path) == {"loss": 0.5, "n": 3}


def test_save_model_refuses_bad_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match=r"save_model: metadata must be a dict; .* got list"):
        save_model(path, Sequential(ReLU()), metadata=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"save_model: metadata must be JSON-serialisable"):
        save_model(path, Sequential(ReLU()), metadata={"x": object()})
    with pytest.raises(TypeError, match=r"save_model: metadata must be JSON-serialisable"):
        save_model(path, Sequential(ReLU()), metadata={"x": np.zeros(3)})
    assert os.listdir(tmp_path) == []


# -- PyTorch reads the weights ---------------------------------------------------------------
def lenet(torch: ModuleType) -> tuple[Sequential, Any]:
    ours = Sequential(
        Conv2d(1, 4, 3, rng=0, dtype="float64"),
        ReLU(),
        MaxPool2d(2),
        Conv2d(4, 6, 3, padding=1, rng=1, dtype="float64"),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(24, 10, rng=2, dtype="float64"),
        ReLU(),
        Linear(10, 3, rng=3, dtype="float64"),
    )
    nn = torch.nn
    theirs = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 10),
        nn.ReLU(),
        nn.Linear(10, 3),
    )
    return ours, theirs


def batchnorm_net(torch: ModuleType) -> tuple[Sequential, Any]:
    ours = Sequential(
        Conv2d(2, 4, 3, padding=1, bias=False, rng=0, dtype="float64"),
        BatchNorm2d(4, dtype="float64"),
        ReLU(),
        AvgPool2d(2),
        ConvTranspose2d(4, 2, 2, stride=2, rng=1, dtype="float64"),
        BatchNorm2d(2, momentum=0.2, affine=False, dtype="float64"),
        Tanh(),
        AdaptiveAvgPool2d(1),
        Flatten(),
        Linear(2, 3, rng=2, dtype="float64"),
    )
    nn = torch.nn
    theirs = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.ConvTranspose2d(4, 2, 2, stride=2),
        nn.BatchNorm2d(2, momentum=0.2, affine=False),
        nn.Tanh(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 3),
    )
    return ours, theirs


@pytest.mark.parametrize(
    ("make", "in_shape"), [(lenet, (3, 1, 10, 10)), (batchnorm_net, (3, 2, 6, 6))]
)
def test_torch_loads_the_weights_strictly(
    tmp_path: Path, make: Callable[[ModuleType], tuple[Sequential, Any]], in_shape: tuple[int, ...]
) -> None:
    torch = pytest.importorskip("torch")
    ours, theirs = make(torch)
    x = batch(in_shape, "float64")
    warm_up(ours, x)
    path = tmp_path / "net.safetensors"
    save_model(path, ours)
    tensors = safetensors.numpy.load_file(str(path))
    assert set(tensors) == set(theirs.state_dict())
    theirs = theirs.double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-12, atol=1e-12)


# -- atomic writes ---------------------------------------------------------------------------
def write_text(text: str) -> Callable[[str], None]:
    def write(temporary: str) -> None:
        Path(temporary).write_text(text)

    return write


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    atomic_write(target, write_text("one"))
    atomic_write(str(target), write_text("two"))
    assert target.read_text() == "two"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_atomic_write_keeps_the_extension_and_respects_umask(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(temporary: str) -> None:
        seen.append(temporary)
        Path(temporary).write_text("x")

    umask = os.umask(0o027)
    try:
        atomic_write(tmp_path / "curve.png", write)
    finally:
        os.umask(umask)
    assert seen[0].endswith(".png") and os.path.dirname(seen[0]) == str(tmp_path)
    assert os.stat(tmp_path / "curve.png").st_mode & 0o777 == 0o640


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old content")

    def half_then_fail(temporary: str) -> None:
        Path(temporary).write_bytes(b"new con")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_atomic_write_failed_rename_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(source: str, destination: str) -> None:
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match="rename refused"):
        atomic_write(tmp_path / "new.txt", write_text("x"))
    assert os.listdir(tmp_path) == []


def test_save_model_failure_keeps_the_previous_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.safetensors"
    first = every_layer_model("float32", seed=1)
    save_model(path, first)
    before = path.read_bytes()

    def write_half(tensors: dict[str, np.ndarray], filename: str, metadata: Any) -> None:
        blob = safetensors.numpy.save(tensors, metadata=metadata)
        Path(filename).write_bytes(blob[: len(blob) // 2])
        raise OSError("no space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", write_half)
    with pytest.raises(OSError, match="no space left"):
        save_model(path, every_layer_model("float32", seed=2))
    with pytest.raises(OSError, match="no space left"):
        save_checkpoint(path, first, SGD(first.parameters(), lr=0.1), epoch=1)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    assert_same_state(load_model(path), first)


# -- unreadable and mismatched files ---------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "net.safetensors"
    save_model(path, Sequential(Linear(4, 3, rng=0), ReLU(), BatchNorm2d(3)))
    return path


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[:-7],  # truncated tensor data
        lambda data: data[:40],  # truncated header
        lambda data: b"",
        lambda data: b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        lambda data: b"not a model at all, just some text that is long enough",
    ],
    ids=["truncated-data", "truncated-header", "empty", "png", "text"],
)
def test_unreadable_files_name_the_path(saved: Path, corrupt: Callable[[bytes], bytes]) -> None:
    saved.write_bytes(corrupt(saved.read_bytes()))
    pattern = r"^" + repr(str(saved))[1:-1] + r": not a readable safetensors file"
    for read in (load_model, load_model_metadata):
        with pytest.raises(ModelFileError, match=pattern):
            read(saved)
    with pytest.raises(ModelFileError, match=pattern):
        load_checkpoint(saved, Sequential(ReLU()), None)


def test_dtype_numpy_cannot_read(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import safetensors.torch

    path = tmp_path / "bf16.safetensors"
    weights = {"0.weight": torch.zeros(3, 4, dtype=torch.bfloat16), "0.bias": torch.zeros(3)}
    safetensors.torch.save_file(weights, str(path), model_header(LINEAR_ARCH))
    with pytest.raises(ModelFileError, match=r"bf16.safetensors: not a readable .*bfloat16"):
        load_model(path)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.safetensors")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"drop": ("format",)}, r"no convprop metadata; expected a 'format' entry"),
        ({"format": "gguf"}, r"wrong file format; expected one of .* got 'gguf'"),
        ({"version": "2"}, r"unsupported convprop-model version; expected '1', got '2'"),
        ({"drop": ("version",)}, r"unsupported convprop-model version; .* got None"),
        ({"drop": ("architecture",)}, r"the metadata lacks 'architecture'"),
        ({"architecture": "{not json"}, r"the metadata entry 'architecture' is not valid JSON"),
        (
            {"architecture": json.dumps({"type": "Conv4d", "config": {}})},
            r"unknown layer type at model; .* got 'Conv4d'",
        ),
    ],
)
def test_bad_metadata_names_the_path(saved: Path, change: dict[str, Any], match: str) -> None:
    rewrite(saved, **change)
    with pytest.raises(ModelFileError, match=r"^" + repr(str(saved))[1:-1] + ": " + match):
        load_model(saved)


def test_file_without_any_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"weight": np.zeros((2, 2), np.float32)}, str(path))
    with pytest.raises(ModelFileError, match=r"plain.safetensors: no convprop metadata"):
        load_model(path)
    with pytest.raises(ModelFileError, match=r"plain.safetensors: no convprop metadata"):
        load_model_metadata(path)


def test_metadata_that_is_not_an_object(saved: Path) -> None:
    rewrite(saved, user="[1, 2]")
    with pytest.raises(ModelFileError, match=r"saved metadata is not an object; .* got \[1, 2\]"):
        load_model_metadata(saved)


def linear_tensors(out_features: int = 3, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    return {"0.weight": np.ones((out_features, 4), dtype), "0.bias": np.ones(out_features, dtype)}


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        (
            linear_tensors(2),
            r"0.(weight|bias) has the wrong shape; expected \(3(, 4)?,?\) from "
            r"the architecture, got \(2(, 4)?,?\)",
        ),
        (
            {"0.weight": np.ones((3, 4), np.float32)},
            r"do not match the architecture; .* missing \['0.bias'\] and unexpected \[\]",
        ),
        (
            {**linear_tensors(), "1.weight": np.ones(2, np.float32)},
            r"missing \[\] and unexpected \['1.weight'\]",
        ),
        (
            {"0.weight": np.ones((3, 4), np.float64), "0.bias": np.ones(3, np.float32)},
            r"must share one float dtype; .* got \['float32', 'float64'\]",
        ),
        (linear_tensors(dtype=np.float16), r"share one float dtype; .* got \['float16'\]"),
        (
            linear_tensors(dtype=np.int32),
            r"0.(weight|bias) has the wrong dtype; expected "
            r"float32, got int32",
        ),
    ],
)
def test_weights_that_do_not_fit(tmp_path: Path, tensors: dict[str, Any], match: str) -> None:
    path = tmp_path / "w.safetensors"
    safetensors.numpy.save_file(tensors, str(path), model_header(LINEAR_ARCH))
    with pytest.raises(ModelFileError, match=r"w.safetensors: .*" + match):
        load_model(path)


def test_integer_buffer_with_another_dtype(tmp_path: Path) -> None:
    model = Sequential(BatchNorm2d(2))
    tensors = {k: np.asarray(v) for k, v in model.state_dict().items()}
    tensors["0.num_batches_tracked"] = np.zeros((), np.int32)
    path = tmp_path / "bn.safetensors"
    safetensors.numpy.save_file(tensors, str(path), model_header(architecture(model)))
    with pytest.raises(
        ModelFileError,
        match=r"num_batches_tracked has the wrong dtype; "
        r"expected int64, got int32",
    ):
        load_model(path)


# -- checkpoints -----------------------------------------------------------------------------
def tiny_model(seed: int) -> Sequential:
    rngs = np.random.default_rng(seed).spawn(3)
    return Sequential(
        Conv2d(1, 2, 3, rng=rngs[0], dtype="float64"),  # (N, 2, 4, 4)
        BatchNorm2d(2, dtype="float64"),
        ReLU(),
        Dropout(0.25, rng=rngs[1]),
        Flatten(),
        Linear(32, 3, rng=rngs[2], dtype="float64"),
    )


OPTIMIZERS: dict[str, Callable[[Module], Any]] = {
    "sgd-momentum": lambda m: SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov": lambda m: SGD(m.parameters(), lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda m: Adam(m.parameters(), lr=0.01),
    "adamw-amsgrad": lambda m: AdamW(m.parameters(), lr=0.01, amsgrad=True),
}
SCHEDULERS: dict[str, Callable[[Any], Any]] = {
    "none": lambda opt: None,
    "step": lambda opt: StepLR(opt, step_size=2, gamma=0.5),
    "cosine": lambda opt: CosineAnnealingLR(opt, T_max=4),
}


def train_steps(
    model: Module, optimizer: Any, scheduler: Any, data: np.random.Generator, steps: int
) -> None:
    """Steps of MSE regression on random data; d(loss)/dy = 2 (y - t) / y.size by hand."""
    model.train()
    for _ in range(steps):
        x = data.standard_normal((4, 1, 6, 6))
        target = data.standard_normal((4, 3))
        optimizer.zero_grad()
        y = model(x)
        y.backward(2 * (y.data - target) / y.data.size)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


@pytest.mark.parametrize("scheduler_name", list(SCHEDULERS))
@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
def test_resumed_training_equals_uninterrupted(
    tmp_path: Path, optimizer_name: str, scheduler_name: str
) -> None:
    make_optimizer, make_scheduler = OPTIMIZERS[optimizer_name], SCHEDULERS[scheduler_name]
    model = tiny_model(0)
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer)
    data = np.random.default_rng(7)
    train_steps(model, optimizer, scheduler, data, 3)
    path = tmp_path / "checkpoint.safetensors"
    history = {"loss": [1.5, 1.25, 1.0], "data_rng": data.bit_generator.state}
    save_checkpoint(path, model, optimizer, scheduler=scheduler, epoch=3, state=history)
    train_steps(model, optimizer, scheduler, data, 3)

    resumed = tiny_model(1)  # other initial weights and dropout generator
    resumed_optimizer = make_optimizer(resumed)
    resumed_scheduler = make_scheduler(resumed_optimizer)
    info = load_checkpoint(path, resumed, resumed_optimizer, resumed_scheduler)
    assert info["epoch"] == 3 and info["state"]["loss"] == [1.5, 1.25, 1.0]
    resumed_data = np.random.default_rng()
    resumed_data.bit_generator.state = info["state"]["data_rng"]
    train_steps(resumed, resumed_optimizer, resumed_scheduler, resumed_data, 3)

    assert_same_state(model, resumed)
    assert resumed_optimizer.lr == optimizer.lr
    assert sorted(resumed_optimizer.state_dict()) == sorted(optimizer.state_dict())


def test_checkpoint_layout_and_load_model(tmp_path: Path) -> None:
    model = tiny_model(0)
    optimizer = Adam(model.parameters(), lr=0.01)
    train_steps(model, optimizer, None, np.random.default_rng(0), 1)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, model, optimizer, epoch=1, state={"note": "x"})
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        header, keys = handle.metadata(), set(handle.keys())
    assert keys == {f"model.{k}" for k in model.state_dict()} | {
        f"optimizer.state.{i}.{name}" for i in range(6) for name in ("exp_avg", "exp_avg_sq")
    }
    assert header["format"] == "convprop-checkpoint" and json.loads(header["epoch"]) == 1
    assert json.loads(header["optimizer"])["scalars"]["step"] == 1
    assert json.loads(header["scheduler"]) is None
    assert_same_state(load_model(path), model)
    assert load_model_metadata(path) == {"note": "x"}


def test_checkpoint_before_the_first_step(tmp_path: Path) -> None:
    model = tiny_model(0)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, SGD(model.parameters(), lr=0.1, momentum=0.9), epoch=0)
    fresh = tiny_model(2)
    fresh_optimizer = SGD(fresh.parameters(), lr=0.5)
    assert load_checkpoint(path, fresh, fresh_optimizer) == {"epoch": 0, "state": {}}
    assert fresh_optimizer.lr == 0.1 and fresh_optimizer.momentum == 0.9
    assert_same_state(fresh, model)


def test_checkpoint_float32_into_float64_model(tmp_path: Path) -> None:
    model = Sequential(Linear(3, 2, rng=0))
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.5)
    model(np.ones((1, 3), np.float32)).backward(np.full((1, 2), 0.5, np.float32))
    optimizer.step()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, optimizer, epoch=2)
    target = Sequential(Linear(3, 2, rng=1, dtype="float64"))
    target_optimizer = SGD(target.parameters(), lr=0.1, momentum=0.5)
    load_checkpoint(path, target, target_optimizer)
    assert target.parameters()[0].data.dtype == np.float32
    assert target_optimizer.state_dict()["state.0.momentum_buffer"].dtype == np.float32


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, Sequential, Any]:
    model = tiny_model(0)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = StepLR(optimizer, step_size=1)
    train_steps(model, optimizer, scheduler, np.random.default_rng(0), 2)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, optimizer, scheduler=scheduler, epoch=2)
    return path, model, optimizer


def fresh_copy(seed: int = 5) -> tuple[Sequential, SGD, StepLR]:
    model = tiny_model(seed)
    optimizer = SGD(model.parameters(), lr=0.3, momentum=0.5)
    return model, optimizer, StepLR(optimizer, step_size=3)


def test_checkpoint_architecture_mismatch_lists_the_differences(
    checkpoint: tuple[Path, Sequential, Any],
) -> None:
    path = checkpoint[0]
    wider = Sequential(
        Conv2d(1, 3, 3, rng=0),
        BatchNorm2d(3),
        LeakyReLU(),
        Dropout(0.25),
        Flatten(),
        Linear(48, 3, rng=0),
    )
    with pytest.raises(
        ModelFileError,
        match=(
            r"c.safetensors: the checkpoint's architecture differs from the model's; .* got 5 "
            r"difference\(s\): model.children\[0\].config.out_channels: checkpoint has 2, model "
            r"has 3; model.children\[1\].config.num_features: .*; model.children\[2\].type: "
            r"checkpoint has 'ReLU', model has 'LeakyReLU'; model.children\[2\].config."
            r"negative_slope is only in the model; model.children\[5\].config.in_features"
        ),
    ):
        load_checkpoint(path, wider, SGD(wider.parameters(), lr=0.1))
    shorter = Sequential(Linear(36, 3, rng=0))
    with pytest.raises(
        ModelFileError,
        match=r"1 difference\(s\): model.children: checkpoint "
        r"has \[.*, model has \[",
    ):
        load_checkpoint(path, shorter, SGD(shorter.parameters(), lr=0.1))


def test_checkpoint_other_optimizer_or_scheduler(checkpoint: tuple[Path, Sequential, Any]) -> None:
    path = checkpoint[0]
    model, optimizer, _ = fresh_copy()
    with pytest.raises(ModelFileError, match=r"holds another optimizer; expected Adam, got 'SGD'"):
        load_checkpoint(path, model, Adam(model.parameters()))
    with pytest.raises(ModelFileError, match=r"holds another scheduler; expected Cosine"):
        load_checkpoint(path, model, optimizer, CosineAnnealingLR(optimizer, T_max=3))
    assert load_checkpoint(path, model, optimizer)["epoch"] == 2  # the scheduler may be skipped
    unscheduled = tiny_model(0)
    plain = SGD(unscheduled.parameters(), lr=0.1)
    path_plain = path.with_name("plain.safetensors")
    save_checkpoint(path_plain, unscheduled, plain, epoch=0)
    with pytest.raises(ModelFileError, match=r"no scheduler state was saved; expected a StepLR"):
        load_checkpoint(path_plain, model, optimizer, StepLR(optimizer, step_size=2))


def test_load_checkpoint_needs_a_checkpoint(saved: Path) -> None:
    model = Sequential(Linear(4, 3, rng=0), ReLU(), BatchNorm2d(3))
    with pytest.raises(
        ModelFileError,
        match=r"wrong file format; expected one of \['convprop-"
        r"checkpoint'\], got 'convprop-model'",
    ):
        load_checkpoint(saved, model, SGD(model.parameters(), lr=0.1))


def snapshot(model: Module, optimizer: Any, scheduler: Any) -> tuple[Any, ...]:
    dropout_state = model[3].rng.bit_generator.state
    return (
        {k: v.copy() for k, v in model.state_dict().items()},
        optimizer.state_dict(),
        scheduler.state_dict(),
        dropout_state,
    )


def assert_unchanged(before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    for old, new in zip(before[:2], after[:2], strict=True):
        assert sorted(old) == sorted(new)
        for key in old:
            np.testing.assert_array_equal(old[key], new[key], err_msg=key)
    assert before[2:] == after[2:]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"optimizer": json.dumps({"type": "SGD", "scalars": {"lr": -1.0}})},
            r"the optimizer refused the saved state; .*missing keys",
        ),
        (
            {"scheduler": json.dumps({"type": "StepLR", "state": {"last_epoch": 1}})},
            r"the scheduler refused the saved state; .*wrong keys",
        ),
        (
            {"rng": json.dumps({"model.3": {"bit_generator": "Nonsense"}})},
            r"the random generators of the layers refused the saved state",
        ),
        (
            {"optimizer": "[]"},
            r"the optimizer entry is malformed; expected an object with "
            r"'type' and 'scalars'",
        ),
        ({"epoch": "2.5"}, r"malformed epoch or state; expected an int and an object, got 2.5"),
        ({"state": "3"}, r"malformed epoch or state; .* got 2 and 3"),
        ({"drop": ("rng",)}, r"the metadata lacks 'rng'"),
    ],
)
def test_checkpoint_refusals_change_nothing(
    checkpoint: tuple[Path, Sequential, Any], change: dict[str, Any], match: str
) -> None:
    path = checkpoint[0]
    rewrite(path, **change)
    model, optimizer, scheduler = fresh_copy()
    train_steps(model, optimizer, scheduler, np.random.default_rng(1), 1)
    before = snapshot(model, optimizer, scheduler)
    with pytest.raises(ModelFileError, match=r"c.safetensors: " + match):
        load_checkpoint(path, model, optimizer, scheduler)
    assert_unchanged(before, snapshot(model, optimizer, scheduler))


def test_checkpoint_with_foreign_tensors(checkpoint: tuple[Path, Sequential, Any]) -> None:
    path = checkpoint[0]
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    rewrite(path, tensors={**tensors, "extra.x": np.zeros(2)})
    with pytest.raises(ModelFileError, match=r"unexpected tensors; .* got \['extra.x'\]"):
        load_checkpoint(path, *fresh_copy())
    del tensors["model.0.bias"]
    rewrite(path, tensors=tensors)
    with pytest.raises(ModelFileError, match=r"missing \['0.bias'\]"):
        load_checkpoint(path, *fresh_copy())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epoch": True}, r"save_checkpoint: epoch must be an int; expected e.g. 3, got True"),
        ({"epoch": 1.0}, r"epoch must be an int; .* got 1.0"),
        ({"epoch": 1, "state": [1]}, r"state must be a dict; .* got list"),
        ({"epoch": 1, "state": {"f": len}}, r"save_checkpoint: state must be JSON-serialisable"),
    ],
)
def test_save_checkpoint_refuses_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    model = Sequential(Linear(2, 2, rng=0))
    with pytest.raises(TypeError, match=match):
        save_checkpoint(
            tmp_path / "c.safetensors", model, SGD(model.parameters(), lr=0.1), **kwargs
        )
    assert os.listdir(tmp_path) == []


def test_module_does_not_use_pickle() -> None:
    sources = sorted(Path(convprop.io.__file__).parent.glob("*.py"))
    assert len(sources) > 1  # the package's modules, not only its __init__
    for path in sources:
        source = path.read_text()
        assert "pickle" not in source and "np.load(" not in source, path.name
