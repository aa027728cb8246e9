"""Model files for any model: registered classes, new containers, weights alone, PyTorch files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import convprop
import convprop.nn.functional as F
from convprop import nn
from convprop.io import (
    ModelFileError,
    architecture,
    build,
    check_writable,
    describe,
    load_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
    save_model,
    save_weights,
)
from convprop.optim import SGD


@nn.register
class TinyBlock(nn.Module):
    """A user's block, registered: its constructor arguments become the architecture's config."""

    def __init__(self, channels: int, scale: float = 1.0, *, rng: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, rng=rng, dtype="float64")
        self.extra = nn.ModuleList([nn.ReLU(), nn.Identity()])
        self.heads = nn.ModuleDict({"out": nn.Linear(channels * 16, 2, rng=rng, dtype="float64")})
        self.scale = scale

    def forward(self, x: convprop.Tensor) -> convprop.Tensor:
        y = self.extra[0](self.conv(x)) * self.scale + x
        return self.heads["out"](y.flatten(1))


class Unregistered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2, rng=0, dtype="float64")

    def forward(self, x: convprop.Tensor) -> convprop.Tensor:
        return self.fc(x)


def test_register_records_the_constructor_arguments_as_config() -> None:
    block = TinyBlock(2, scale=0.5)
    assert block.config() == {"channels": 2, "scale": 0.5, "rng": 0}
    assert architecture(block) == {"type": "TinyBlock", "config": block.config()}


def test_a_registered_class_saves_and_loads_whole(tmp_path: Path) -> None:
    model = nn.Sequential(TinyBlock(2, scale=0.5, rng=3), nn.ReLU())
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    path = tmp_path / "model.safetensors"
    save_model(path, model)
    loaded = load_model(path)
    assert isinstance(loaded[0], TinyBlock) and loaded[0].scale == 0.5
    np.testing.assert_array_equal(loaded(x).data, model(x).data)


def test_module_list_and_module_dict_round_trip_through_the_architecture() -> None:
    model = nn.ModuleDict({"a": nn.ModuleList([nn.Linear(2, 2, rng=0), nn.Tanh()])})
    arch = json.loads(json.dumps(architecture(model)))
    assert arch["type"] == "ModuleDict" and arch["children"]["a"]["type"] == "ModuleList"
    rebuilt = build(arch)
    assert architecture(rebuilt) == architecture(model)
    assert list(rebuilt.state_dict()) == ["a.0.weight", "a.0.bias"]


def test_an_unregistered_class_is_refused_by_save_model_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Unregistered cannot be saved by name.*save_weights"):
        save_model(tmp_path / "m.safetensors", Unregistered())
    assert describe(Unregistered()) is None


def test_weights_alone_load_into_a_model_built_in_code(tmp_path: Path) -> None:
    model, fresh = Unregistered(), Unregistered()
    fresh.fc.weight.data = fresh.fc.weight.data + 1.0
    path = tmp_path / "w.safetensors"
    save_weights(path, model, metadata={"note": 1})
    fresh.load_state_dict(load_weights(path))
    np.testing.assert_array_equal(fresh.fc.weight.data, model.fc.weight.data)
    with pytest.raises(ModelFileError, match=r"weights without an architecture.*load_weights"):
        load_model(path)


def test_a_checkpoint_of_an_unregistered_model_resumes(tmp_path: Path) -> None:
    model = Unregistered()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = np.random.default_rng(1).standard_normal((4, 3))
    F.mse_loss(model(x), np.zeros((4, 2))).backward()
    optimizer.step()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, optimizer, epoch=1)
    other = Unregistered()
    other_optimizer = SGD(other.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(path, other, other_optimizer)["epoch"] == 1
    np.testing.assert_array_equal(other.fc.weight.data, model.fc.weight.data)
    assert load_weights(path).keys() == model.state_dict().keys()


def test_register_refuses_a_taken_name_a_layer_name_and_a_non_module() -> None:
    with pytest.raises(ValueError, match=r"'Conv2d' is a convprop.nn layer"):
        nn.register(type("Conv2d", (nn.Module,), {}))
    with pytest.raises(TypeError, match=r"register: expected a subclass of convprop.nn.Module"):
        nn.register(int)
    other = type("TinyBlock", (nn.Module,), {"__qualname__": "elsewhere.TinyBlock"})
    with pytest.raises(ValueError, match=r"the name 'TinyBlock' is taken"):
        nn.register(other)


def test_a_config_that_is_not_json_is_refused_when_saving(tmp_path: Path) -> None:
    @nn.register(name="HoldsAnArray")
    class HoldsAnArray(nn.Module):
        def __init__(self, table: object) -> None:
            super().__init__()

    with pytest.raises(TypeError, match=r"must be JSON-serialisable"):
        save_model(tmp_path / "m.safetensors", HoldsAnArray(np.zeros(2)))
    with pytest.raises(TypeError, match=r"must be JSON-serialisable"):
        check_writable(tmp_path / "run", HoldsAnArray(np.zeros(2)))


def test_check_writable_names_a_directory_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OSError, match=r"cannot write checkpoints into .*file/run"):
        check_writable(tmp_path / "file" / "run", Unregistered())
    check_writable(tmp_path / "ok", Unregistered())
    assert list((tmp_path / "ok").iterdir()) == []


def test_weights_go_to_pytorch_and_come_back(tmp_path: Path) -> None:
    ours = nn.Sequential(
        nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3)
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 3)
    )
    path = tmp_path / "to_torch.safetensors"
    save_weights(path, ours)
    theirs.load_state_dict(safetensors.torch.load_file(str(path)))
    x = np.random.default_rng(2).standard_normal((2, 1, 4, 4)).astype(np.float32)
    ours.eval(), theirs.eval()
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-5, atol=1e-6)

    back = tmp_path / "from_torch.safetensors"
    torch.nn.init.normal_(theirs[0].weight)
    safetensors.torch.save_file(theirs.state_dict(), str(back))
    ours.load_state_dict(load_weights(back))
    np.testing.assert_array_equal(ours[0].weight.data, theirs[0].weight.detach().numpy())


def test_load_weights_refuses_a_file_of_another_convprop_format(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    safetensors.numpy.save_file({"a": np.zeros(1)}, str(path), {"format": "other"})
    with pytest.raises(ModelFileError, match=r"wrong file format"):
        load_weights(path)
