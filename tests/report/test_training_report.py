"""The training report and what it draws from: the gradient norms fit records (DIAG1), the
class names, the plots that show a dead channel as dead, and report.html itself."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from convprop.cli import main
from convprop.data import from_arrays
from convprop.data.class_names import class_names
from convprop.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR
from convprop.functional.loss import softmax
from convprop.grad_norms import GradientNorms
from convprop.io import load_model
from convprop.nn import Conv2d, Flatten, Linear, ReLU, Sequential, Sigmoid
from convprop.optim import SGD
from convprop.plots import dead_channels, layer_scale, plot_feature_maps
from convprop.report import parameter_layers, write_report
from convprop.report.charts import Series, line_chart, power_of_ten
from convprop.report.page import flag, gradient_series
from convprop.train import TrainConfig, fit


def blobs(count: int, seed: int, size: int = 6) -> Any:
    """Two classes of images: bright in the top half (0) or in the bottom half (1)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = 0.2 * rng.standard_normal((count, 1, size, size))
    for n in range(count):
        half = slice(0, size // 2) if labels[n] == 0 else slice(size // 2, size)
        images[n, 0, half, :] += 1.0
    return from_arrays(images.astype(np.float32), labels)


def small_net(seed: int = 0, conv_bias: float = 0.0) -> Sequential:
    rng = np.random.default_rng(seed)
    net = Sequential(
        Conv2d(1, 3, 3, padding=1, rng=rng), ReLU(), Flatten(), Linear(108, 2, rng=rng)
    )
    net[0].bias.data[...] = conv_bias
    return net


class RecordingSGD(SGD):
    """SGD that writes down ‖dθ‖₂ of every parameter, in float64, before each step."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr)
        self.norms: list[list[float]] = []

    def step(self) -> None:
        grads = [np.asarray(p.grad, dtype=np.float64) for p in self.params]
        self.norms.append([math.sqrt(float(np.sum(g * g))) for g in grads])
        super().step()


def settings(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = {"epochs": 2, "batch_size": 8, "lr": 0.05, "optimizer": "sgd",
                            "momentum": 0.0, "seed": 1, "progress": False}  # fmt: skip
    base.update(changes)
    return TrainConfig(**base)


# -- DIAG1: the gradient norms in fit's history ------------------------------------------------
def test_fit_records_the_mean_gradient_norm_of_each_parameter_per_epoch_DIAG1() -> None:
    model = small_net()
    optimizer = RecordingSGD(model.parameters(), 0.05)
    history = fit(model, blobs(40, 1), None, settings(), optimizer=optimizer)
    steps = 5  # 40 images in batches of 8
    names = [name for name, _ in model.named_parameters()]
    assert len(optimizer.norms) == 2 * steps
    for epoch, record in enumerate(history):
        recorded = record["grad_norms"]
        assert list(recorded) == names
        by_hand = np.mean(optimizer.norms[epoch * steps : (epoch + 1) * steps], axis=0)
        np.testing.assert_allclose([recorded[n] for n in names], by_hand, rtol=1e-5)


def test_a_dead_relu_layer_has_zero_gradient_norm_and_is_flagged() -> None:
    model = small_net(conv_bias=-100.0)  # the ReLU after the conv is 0 everywhere
    history = fit(model, blobs(16, 2), None, settings(epochs=1))
    norms = history[0]["grad_norms"]
    assert norms["0.weight"] == 0.0 and norms["0.bias"] == 0.0
    assert norms["3.bias"] > 0.0  # the linear layer's bias still learns
    series = {s.name: s for s in gradient_series(history)}
    assert (
        flag(series["0.weight"].values, largest=norms["3.bias"]) == "zero: no gradient reaches it"
    )


def test_deep_sigmoids_make_the_first_layer_gradient_vanish() -> None:
    layers: list[Any] = [Flatten()]
    rng = np.random.default_rng(4)
    width = 36
    for _ in range(12):
        layers += [Linear(width, width, rng=rng), Sigmoid()]
    layers.append(Linear(width, 2, rng=rng))
    model = Sequential(*layers)
    (record,) = fit(model, blobs(16, 3), None, settings(epochs=1))
    norms = record["grad_norms"]
    first, last = norms["1.weight"], norms[f"{len(layers) - 1}.weight"]
    assert first < 1e-3 * last  # each sigmoid multiplies δ by at most 1/4 (A7)
    series = {s.name: s for s in gradient_series([record])}
    assert flag(series["1.weight"].values, largest=max(norms.values())).startswith("vanishing")


def test_gradient_norms_sum_over_steps_and_start_empty() -> None:
    layer = Linear(2, 1, rng=0)
    norms = GradientNorms(layer)
    assert norms.means() == {}
    for value in (3.0, 4.0):
        layer.weight.grad[...] = [[value, 0.0]]
        layer.bias.grad[...] = value
        norms.add()
    assert norms.means() == {"weight": 3.5, "bias": 3.5}


def test_flags() -> None:
    assert flag([1.0, math.inf], 1.0) == "exploding: not finite"
    assert flag([0.01, 5.0], 5.0) == "growing: ×500 since epoch 1"
    assert flag([None, None], 1.0) == "not recorded"
    assert flag([1.0, 0.9], 1.0) == ""


# -- class names ---------------------------------------------------------------------------------
def test_class_names_of_fashion_mnist_by_name_and_by_its_directory() -> None:
    assert class_names("fashion-mnist", 10) == FASHION_MNIST_CLASSES
    assert class_names(str(FASHION_MNIST_DIR), 10) == FASHION_MNIST_CLASSES
    assert class_names("digits", 10) == tuple(str(k) for k in range(10))
    assert class_names("fashion-mnist", 11)[10] == "10"


def test_predict_names_fashion_mnist_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--epochs", "1", "--no-progress", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    image = np.random.default_rng(5).random((8, 8))
    path = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    import convprop.app

    monkeypatch.setattr(
        convprop.app,
        "_model_info",
        lambda *_: {"dataset": "fashion-mnist", "input_shape": [1, 8, 8]},
    )
    capsys.readouterr()
    assert main(["predict", str(out / "model.safetensors"), str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = load_model(out / "model.safetensors")
    model.eval()
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    best = int(np.argmax(softmax(model(pixels[None, None]).data)[0]))
    assert re.fullmatch(rf".+: class {best} {re.escape(FASHION_MNIST_CLASSES[best])} "
                        r"\(probability [0-9.]+\)", lines[0])  # fmt: skip
    for label, line in enumerate(lines[1:]):
        assert line.endswith(f"  {FASHION_MNIST_CLASSES[label]}"), line


# -- plots: a dead channel looks dead ----------------------------------------------------------
def test_feature_maps_share_one_scale_per_layer_so_a_dead_channel_is_dark(tmp_path: Path) -> None:
    model = Sequential(Conv2d(1, 4, 3, padding=1, rng=0), ReLU())
    model[0].weight.data[2] = 0.0
    model[0].bias.data[...] = 0.5
    model[0].bias.data[2] = -1.0  # channel 2: -1 before the ReLU, 0 after it
    image = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    after_relu = model(image[None]).data[0]
    assert dead_channels(after_relu) == [2]
    cmap, low, high, _ = layer_scale(after_relu)
    # one scale from 0: the dead channel takes the colour of the scale's bottom, not the middle
    # that a per-channel min/max would give a constant channel
    assert (cmap, low, high) == ("viridis", 0.0, float(after_relu.max()))
    before_relu = model[0](image[None]).data[0]
    cmap, low, high, _ = layer_scale(before_relu)
    assert cmap == "RdBu_r" and low == -high == -float(np.abs(before_relu).max())
    check = plot_feature_maps(model, image, tmp_path / "maps.png")
    assert imread(check).shape[0] > 10


# -- report.html -------------------------------------------------------------------------------
def fake_history() -> list[dict[str, Any]]:
    return [
        {"epoch": e, "train_loss": 1.0 / e, "test_loss": 1.2 / e, "train_accuracy": 0.5 + 0.1 * e,
         "test_accuracy": 0.45 + 0.1 * e, "grad_norms": {"0.weight": 0.3 * e, "0.bias": 1e-6}}
        for e in (1, 2, 3)
    ]  # fmt: skip


def test_report_is_self_contained_with_every_number_and_the_class_names(tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((5, 1, 28, 28)).astype(np.float32)
    labels = np.array([9, 0, 3, 5, 7])
    result = SimpleNamespace(labels=labels, predictions=np.array([7, 0, 3, 9, 5]))
    test_set = SimpleNamespace(images=images)
    names = class_names("fashion-mnist", 10)
    path = write_report(tmp_path, fake_history(), result, test_set, names, title="t")
    html = path.read_text(encoding="utf-8")
    assert path.name == "report.html" and "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html and "<script" not in html
    for record in fake_history():
        for key in ("train_loss", "test_accuracy"):
            assert f'data-epoch="{record["epoch"]}" data-value="{record[key]!r}"' in html
        value = record["grad_norms"]["0.weight"]
        assert (
            f'data-parameter="0.weight" data-epoch="{record["epoch"]}" data-value="{value!r}"'
            in html
        )
    wrong = re.findall(r'data-index="(\d+)" data-true="(\d+)" data-predicted="(\d+)"', html)
    assert wrong == [("0", "9", "7"), ("3", "5", "9"), ("4", "7", "5")]
    assert "true <strong>Ankle boot</strong><br>predicted <strong>Sneaker</strong>" in html
    assert html.count("data:image/png;base64,") == 3  # no plots in tmp_path: only the three
    assert "vanishing" in html  # 0.bias: 1e-6 against 0.9


def test_the_report_names_each_parameters_layer() -> None:
    assert parameter_layers(small_net()) == {
        "0.weight": "Conv2d", "0.bias": "Conv2d", "3.weight": "Linear", "3.bias": "Linear"
    }  # fmt: skip


def test_charts_draw_every_finite_point_and_skip_the_rest() -> None:
    svg = line_chart(
        [Series("a", [1, 2, 3], [0.1, None, 10.0]), Series("b", [1, 2, 3], [0.0, 1.0, math.nan])],
        chart_id="c", title="t", y_label="y", log_y=True,
    )  # fmt: skip
    points = re.findall(r'data-series="(\w)" data-epoch="(\d)" data-value="([^"]+)"', svg)
    assert points == [("a", "1", "0.1"), ("a", "3", "10.0"), ("b", "2", "1.0")]
    assert power_of_ten(-3) == "10⁻³" and power_of_ten(1) == "10"
    assert "nothing recorded" in line_chart([Series("a", [1], [None])], chart_id="e", title="t",
                                            y_label="y")  # fmt: skip


def test_cli_train_writes_the_report_and_no_plots_skips_it(tmp_path: Path) -> None:
    argv = ["train", "--epochs", "1", "--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "with")]) == 0
    html = (tmp_path / "with" / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 4  # filters, maps, confusion, images
    assert 'data-parameter="0.weight"' in html
    assert main([*argv, str(tmp_path / "without"), "--no-plots"]) == 0
    assert not (tmp_path / "without" / "report.html").exists()
