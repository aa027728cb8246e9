"""Crafted files are refused before they allocate: model files whose architecture is far larger
than their weights, deep nesting, malformed metadata, oversized IDX headers and gzip bombs.

Each case is refused with the library's own error while tracemalloc's peak stays under a few
MiB (NumPy reports its allocations to tracemalloc), never with a wall-clock assertion.
"""

from __future__ import annotations

import gzip
import inspect
import json
import tracemalloc
from pathlib import Path

import numpy
import pytest
import safetensors.numpy

from convprop.data.errors import DataError
from convprop.data.idx import load_mnist_dir, read_idx, write_idx
from convprop.io import (
    ELEMENT_MARGIN,
    MAX_DEPTH,
    ModelFileError,
    architecture,
    architecture_elements,
    build,
    load_checkpoint,
    load_model,
    load_model_metadata,
    load_run_info,
    save_checkpoint,
    save_model,
)
from convprop.nn import Linear, ReLU, Sequential
from convprop.nn.registry import builtin_classes
from convprop.optim import SGD

PEAK_LIMIT = 8 << 20  # bytes: far below any of the allocations these files ask for


def _peak(fn):
    """Run ``fn`` under tracemalloc; return (its exception or None, the peak in bytes)."""
    tracemalloc.start()
    try:
        try:
            fn()
        except Exception as error:
            return error, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _model_file(path: Path, arch_json: str, tensors=None, **extra: str) -> Path:
    header = {"format": "convprop-model", "version": "1", "architecture": arch_json, "user": "{}"}
    header.update(extra)
    safetensors.numpy.save_file(tensors or {}, str(path), header)
    return path


def _layer(name: str, **config) -> str:
    return json.dumps({"type": "Sequential", "children": [{"type": name, "config": config}]})


# -- model files whose architecture is larger than their weights ----------------------------------
HUGE_LAYERS = [
    ("Linear", {"in_features": 20000, "out_features": 20000}, 400_020_000),
    ("BatchNorm2d", {"num_features": 10**9}, 4 * 10**9 + 1),
    ("Conv2d", {"in_channels": 10**5, "out_channels": 10**5, "kernel_size": 3}, 9 * 10**10 + 10**5),
    ("ConvTranspose3d", {"in_channels": 4096, "out_channels": 4096, "kernel_size": 9}, None),
    ("LayerNorm", {"normalized_shape": [10**5, 10**5]}, 2 * 10**10),
    ("GroupNorm", {"num_groups": 1, "num_channels": 10**10}, 2 * 10**10),
]


@pytest.mark.parametrize(
    ("name", "config", "elements"), HUGE_LAYERS, ids=[c[0] for c in HUGE_LAYERS]
)
def test_a_small_file_naming_a_huge_layer_is_refused_before_building(
    tmp_path, name, config, elements
):
    path = _model_file(tmp_path / "m.safetensors", _layer(name, **config))
    assert path.stat().st_size < 400  # the 284-byte file of the report, give or take its layer
    error, peak = _peak(lambda: load_model(path))
    assert isinstance(error, ModelFileError), error
    assert str(error).startswith(f"{path}: the architecture's layers would need ")
    assert "refused before building anything" in str(error)
    if elements is not None:
        assert f"would need {elements:,} " in str(error)
    assert peak < PEAK_LIMIT


def test_the_default_limit_is_the_stored_elements_plus_the_margin(tmp_path):
    stored = {"0.weight": numpy.zeros((10, 1000), numpy.float32)}
    fits = 10_000 + ELEMENT_MARGIN - 1000  # weight 1000 x k and bias k: (1000 + 1) k elements
    k_ok, k_too_big = fits // 1001, fits // 1001 + 1000
    for k, refused in ((k_ok, False), (k_too_big, True)):
        path = _model_file(
            tmp_path / f"m{k}.safetensors",
            _layer("Linear", in_features=1000, out_features=k),
            stored,
        )
        with pytest.raises(ModelFileError) as caught:
            load_model(path)
        # both are refused, but the small one only once built, for its mismatched weights
        assert ("would need" in str(caught.value)) is refused


def test_a_genuine_model_file_loads_and_max_elements_can_tighten_the_limit(tmp_path):
    net = Sequential(Linear(30, 20, rng=0), ReLU(), Linear(20, 5, rng=1))
    path = tmp_path / "net.safetensors"
    save_model(path, net)
    loaded = load_model(path)
    x = numpy.ones((2, 30), numpy.float32)
    assert numpy.array_equal(loaded(x).data, net(x).data)
    assert load_model(path, max_elements=735).state_dict().keys() == net.state_dict().keys()
    with pytest.raises(ModelFileError, match=r"would need 725 .*expected at most 724"):
        load_model(path, max_elements=724)
    with pytest.raises(ModelFileError, match=r"^build: the architecture's layers would need"):
        build(architecture(net), max_elements=100)


# every class a file may name: enough constructor arguments to build one
SAMPLES: dict[str, list[dict]] = {
    "Linear": [
        {"in_features": 7, "out_features": 3},
        {"in_features": 7, "out_features": 3, "bias": False},
    ],
    "Conv1d": [{"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2}],
    "Conv2d": [
        {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2]},
        {"in_channels": 4, "out_channels": 8, "kernel_size": 3, "groups": 4, "bias": False},
    ],
    "Conv3d": [{"in_channels": 2, "out_channels": 3, "kernel_size": [1, 2, 3]}],
    "ConvTranspose1d": [{"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2}],
    "ConvTranspose2d": [{"in_channels": 6, "out_channels": 4, "kernel_size": [2, 3], "groups": 2}],
    "ConvTranspose3d": [{"in_channels": 2, "out_channels": 3, "kernel_size": 2, "bias": False}],
    "BatchNorm1d": [{"num_features": 5}, {"num_features": 5, "affine": False}],
    "BatchNorm2d": [{"num_features": 5}, {"num_features": 5, "affine": False}],
    "LayerNorm": [
        {"normalized_shape": [3, 4]},
        {"normalized_shape": 6, "bias": False},
        {"normalized_shape": 6, "elementwise_affine": False},
    ],
    "GroupNorm": [
        {"num_groups": 2, "num_channels": 6},
        {"num_groups": 2, "num_channels": 6, "affine": False},
        {"num_groups": 3, "num_channels": 6, "bias": False},
    ],
    "AdaptiveAvgPool1d": [{"output_size": 2}],
    "AdaptiveAvgPool2d": [{"output_size": 2}],
    "AdaptiveMaxPool2d": [{"output_size": 2}],
    "AvgPool1d": [{"kernel_size": 2}],
    "AvgPool2d": [{"kernel_size": 2}],
    "AvgPool3d": [{"kernel_size": 2}],
    "MaxPool1d": [{"kernel_size": 2}],
    "MaxPool2d": [{"kernel_size": 2}],
    "MaxPool3d": [{"kernel_size": 2}],
    "MaxUnpool2d": [{"kernel_size": 2}],
    "LPPool1d": [{"norm_type": 2, "kernel_size": 2}],
    "LPPool2d": [{"norm_type": 2, "kernel_size": 2}],
    "Upsample": [{"scale_factor": 2}],
    "CrossEntropyLoss": [{}, {"weight": [1.0, 2.0, 3.0]}],
    "NLLLoss": [{"weight": [1.0, 2.0]}],
}
"""Constructor arguments for the classes that need some; the others are built from {}."""

CONTAINERS = {"Sequential", "ModuleList", "ModuleDict", "Residual"}


@pytest.mark.parametrize("name", sorted(set(builtin_classes()) - CONTAINERS))
def test_the_counted_elements_are_those_of_the_built_layer(name):
    """architecture_elements from the config alone equals the built layer's state_dict size,
    for every class a model file may name (a new layer with weights fails here until counted)."""
    cls = builtin_classes()[name]
    required = [
        p
        for p in inspect.signature(cls).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    configs = SAMPLES.get(name, [{}])
    assert required == [] or name in SAMPLES, f"add constructor arguments of {name} to SAMPLES"
    for config in configs:
        layer = cls(**config)
        actual = sum(int(numpy.asarray(v).size) for v in layer.state_dict().values())
        node = {"type": "Sequential", "children": [{"type": name, "config": layer.config()}]}
        assert architecture_elements(node) == actual, (name, config)


def test_containers_add_their_children_and_malformed_nodes_count_nothing():
    linear = {"type": "Linear", "config": {"in_features": 3, "out_features": 2}}
    arch = {
        "type": "ModuleDict",
        "children": {
            "a": {"type": "Residual", "body": linear},
            "b": {"type": "ModuleList", "children": [linear, linear]},
        },
    }
    assert architecture_elements(arch) == 3 * 8
    for bad in (None, [], {"type": "Linear"}, {"type": "Linear", "config": {"in_features": "3"}}):
        assert architecture_elements(bad) == 0


# -- nesting and metadata --------------------------------------------------------------------------
def _nested(depth: int) -> str:
    return '{"type":"Sequential","children":[' * depth + "]}" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH // 2 + 1, 50_000])
def test_deeply_nested_architectures_are_refused(tmp_path, depth):
    path = _model_file(tmp_path / "deep.safetensors", _nested(depth))
    error, peak = _peak(lambda: load_model(path))
    assert isinstance(error, ModelFileError), error
    assert "nested too deeply; expected at most 200 levels of JSON" in str(error)
    assert peak < PEAK_LIMIT + 40 * depth  # the JSON text itself


def test_nesting_within_the_limit_still_builds(tmp_path):
    path = _model_file(tmp_path / "ok.safetensors", _nested(MAX_DEPTH // 2))
    assert isinstance(load_model(path), Sequential)


def test_a_checkpoint_with_deeply_nested_state_is_refused(tmp_path):
    net = Sequential(Linear(3, 2, rng=0))
    optimizer = SGD(net.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, net, optimizer, epoch=1)
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        header = dict(handle.metadata())
    header["state"] = "[" * 60_000 + "]" * 60_000
    safetensors.numpy.save_file(tensors, str(path), header)
    before = net.state_dict()
    with pytest.raises(ModelFileError, match=r"the metadata entry 'state' is nested too deeply"):
        load_checkpoint(path, net, optimizer)
    assert all(numpy.array_equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ModelFileError, match=r"'state' is nested too deeply"):
        load_model_metadata(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"input_shape": 28}, r"input_shape is malformed; expected a list \[C, H, W\].*got 28"),
        ({"input_shape": [1, 28]}, r"input_shape is malformed.*got \[1, 28\]"),
        ({"input_shape": [1, 28, "28"]}, r"input_shape is malformed"),
        ({"input_shape": [1, 10**9, 28]}, r"input_shape is malformed"),
        ({"input_shape": [1, True, 28]}, r"input_shape is malformed"),
        ({"num_classes": -3}, r"num_classes is malformed; expected an int in 1..65536, got -3"),
        ({"num_classes": 2.5}, r"num_classes is malformed"),
        ({"dataset": ["digits"]}, r"dataset is malformed; expected a string"),
        ({"model": 7}, r"model is malformed; expected a string, got 7"),
    ],
)
def test_run_info_fields_are_checked(tmp_path, extra, message):
    path = tmp_path / "m.safetensors"
    save_model(path, Linear(2, 2, rng=0), metadata={"config": {"extra": extra}})
    with pytest.raises(ModelFileError, match=rf"^eval: {path}: the metadata field {message}"):
        load_run_info(path, "eval")


def test_run_info_of_a_plain_model_file_is_empty(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, Linear(2, 2, rng=0), metadata={"config": "not a dict"})
    assert load_run_info(path) == {}


# -- IDX files and gzip bombs ----------------------------------------------------------------------
def _idx_header(code: int, *shape: int) -> bytes:
    return bytes([0, 0, code, len(shape)]) + numpy.asarray(shape, dtype=">u4").tobytes()


def _gzip_bomb(path: Path, header: bytes, inflated_gib: int) -> Path:
    """A gzip file of many members: the IDX header, then 1 MiB of zeros per member (about
    1 KiB compressed each), inflating to ``inflated_gib`` GiB from a few MB."""
    member = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    path.write_bytes(gzip.compress(header, mtime=0) + member * (inflated_gib << 10))
    return path


def test_a_gzip_bomb_whose_header_declares_its_size_is_refused_unread(tmp_path):
    header = _idx_header(0x08, 3 * 1024, 1024, 1024)  # 3 GiB of ubyte, as the stream holds
    path = _gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", header, 3)
    assert path.stat().st_size < 4 << 20
    error, peak = _peak(lambda: read_idx(path))
    assert isinstance(error, DataError), error
    assert "payload too large; expected at most 1073741824 bytes (max_bytes), got a header " in (
        str(error)
    )
    assert peak < PEAK_LIMIT


def test_a_gzip_bomb_behind_a_small_header_stops_at_the_payload_end(tmp_path):
    path = _gzip_bomb(tmp_path / "labels-idx1-ubyte.gz", _idx_header(0x08, 10), 3)
    error, peak = _peak(lambda: read_idx(path))
    assert isinstance(error, DataError), error
    assert "trailing bytes after the payload; expected 10 bytes" in str(error)
    assert "got more than " in str(error)
    assert peak < PEAK_LIMIT


def test_a_header_larger_than_the_file_can_hold_is_refused_unread(tmp_path):
    raw = tmp_path / "x-idx3-ubyte"
    raw.write_bytes(_idx_header(0x08, 1000, 1000, 100) + bytes(100))
    with pytest.raises(DataError, match=r"short payload; expected 100000000 bytes.*got 100 "):
        read_idx(raw)
    packed = tmp_path / "x-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(_idx_header(0x0E, 1000, 1000, 100) + bytes(100), mtime=0))
    error, peak = _peak(lambda: read_idx(packed, max_bytes=1 << 40))
    assert isinstance(error, DataError)
    assert "got a gzip file that inflates to at most" in str(error)
    assert peak < PEAK_LIMIT


def test_max_bytes_is_a_limit_the_caller_sets(tmp_path):
    path = tmp_path / "v-idx1-ubyte.gz"
    write_idx(path, numpy.arange(100, dtype=numpy.uint8))
    assert read_idx(path, max_bytes=100).shape == (100,)
    with pytest.raises(DataError, match=r"payload too large; expected at most 99 bytes"):
        read_idx(path, max_bytes=99)


def test_a_small_data_directory_cannot_load_gigabytes(tmp_path):
    _gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", _idx_header(0x08, 2048, 1024, 1024), 2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", numpy.zeros(2048, numpy.uint8))
    error, peak = _peak(lambda: load_mnist_dir(tmp_path))
    assert isinstance(error, DataError), error
    assert "payload too large" in str(error)
    assert peak < PEAK_LIMIT


def test_the_command_line_names_a_malformed_field_in_one_line(tmp_path, capsys):
    from convprop.cli import main

    path = tmp_path / "m.safetensors"
    save_model(path, Linear(2, 2, rng=0), metadata={"config": {"extra": {"input_shape": 28}}})
    assert main(["predict", str(path), str(tmp_path / "image.png")]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"convprop: predict: {path}: the metadata field input_shape is malformed; expected a "
        "list [C, H, W] of 3 ints in 1..65536, got 28"
    ]
