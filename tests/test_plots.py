"""Tests of convprop.plots: each picture is a readable PNG, written atomically; confusion counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import convprop
import convprop.plots as plots
from convprop import Tensor
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.nn import Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Tanh
from convprop.nn.module import _observers
from convprop.plots import (
    confusion_matrix,
    plot_confusion,
    plot_feature_maps,
    plot_filters,
    plot_history,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DTYPES = ["float32", "float64"]


def check_png(path: Path, returned: Path) -> None:
    """``returned`` is ``path``; the file is a non-empty PNG that reads back as (H, W, channels)."""
    assert returned == path
    data = path.read_bytes()
    assert len(data) > len(PNG_SIGNATURE)
    assert data[:8] == PNG_SIGNATURE
    picture = imread(path)
    assert picture.ndim == 3
    assert picture.shape[0] > 10 and picture.shape[1] > 10
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


# -- plot_history ----------------------------------------------------------------------------------
def make_history(dtype: str, epochs: int = 4) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    history: list[dict[str, object]] = []
    for epoch in range(1, epochs + 1):
        history.append(
            {
                "epoch": epoch,
                "train_loss": np.array(2.0 / epoch + rng.random() * 0.1, dtype=dtype)[()],
                "train_accuracy": np.array(1.0 - 0.5 / epoch, dtype=dtype)[()],
                "test_loss": np.array(2.2 / epoch, dtype=dtype)[()],
                "test_accuracy": np.array(0.9 - 0.5 / epoch, dtype=dtype)[()],
            }
        )
    return history


@pytest.mark.parametrize("dtype", DTYPES)
def test_plot_history_writes_png(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "history.png"
    check_png(path, plot_history(make_history(dtype), path))


def test_plot_history_accepts_missing_and_none_test_metrics(tmp_path: Path) -> None:
    history = make_history("float64")
    history[0]["test_loss"] = None
    history[0]["test_accuracy"] = None
    del history[1]["test_loss"], history[1]["test_accuracy"]
    path = tmp_path / "history.png"
    check_png(path, plot_history(history, path))


def test_plot_history_without_accuracy_or_test(tmp_path: Path) -> None:
    history = [{"epoch": 1, "train_loss": 1.5}, {"epoch": 2, "train_loss": 1.1, "test_loss": None}]
    path = tmp_path / "history.png"
    check_png(path, plot_history(history, path))


def test_plot_history_rejects_empty_history(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"plot_history: history is empty"):
        plot_history([], tmp_path / "h.png")


def test_plot_history_rejects_record_without_epoch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"plot_history: record 1 has no 'epoch'"):
        plot_history([{"epoch": 1, "train_loss": 1.0}, {"train_loss": 0.5}], tmp_path / "h.png")


# -- atomic writing --------------------------------------------------------------------------------
def test_plot_overwrites_existing_file_and_creates_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "history.png"
    plot_history(make_history("float64", 2), path)
    first = path.read_bytes()
    check_png(path, plot_history(make_history("float64", 5), path))
    assert path.read_bytes() != first


def test_failed_write_leaves_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "history.png"
    path.write_bytes(b"previous")

    def failing_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(plots.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        plot_history(make_history("float64", 2), path)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.png"]


# -- plot_filters ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_plot_filters_writes_png(tmp_path: Path, dtype: str, channels: int) -> None:
    weight = np.random.default_rng(1).standard_normal((6, channels, 3, 3)).astype(dtype)
    path = tmp_path / "filters.png"
    check_png(path, plot_filters(weight, path))


@pytest.mark.parametrize("reduce", ["mean", "first"])
@pytest.mark.parametrize("diverging", [False, True])
def test_plot_filters_options(tmp_path: Path, reduce: str, diverging: bool) -> None:
    weight = np.random.default_rng(2).standard_normal((10, 3, 5, 5)).astype(np.float32)
    path = tmp_path / "filters.png"
    returned = plot_filters(weight, path, max_filters=4, diverging=diverging, reduce=reduce)  # type: ignore[arg-type]
    check_png(path, returned)


def test_plot_filters_constant_filters_do_not_divide_by_zero(tmp_path: Path) -> None:
    # pytest turns warnings into errors, so a 0/0 in the per-filter normalisation would fail here
    path = tmp_path / "filters.png"
    check_png(path, plot_filters(np.zeros((2, 1, 3, 3), dtype=np.float64), path))
    check_png(path, plot_filters(np.zeros((2, 2, 3, 3)), path, diverging=True))


def test_plot_filters_rejects_non_4d_weight(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"plot_filters: weight must be 4-D.*\(6, 3, 3\)"):
        plot_filters(np.zeros((6, 3, 3)), tmp_path / "f.png")


def test_plot_filters_rejects_bad_max_filters(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"plot_filters: max_filters must be a positive int"):
        plot_filters(np.zeros((6, 1, 3, 3)), tmp_path / "f.png", max_filters=0)


def test_plot_filters_rejects_unknown_reduce(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"plot_filters: unknown reduce.*'max'"):
        plot_filters(np.zeros((6, 2, 3, 3)), tmp_path / "f.png", reduce="max")  # type: ignore[arg-type]


# -- confusion_matrix ------------------------------------------------------------------------------
def naive_confusion(labels: np.ndarray, predictions: np.ndarray, K: int) -> np.ndarray:
    matrix = np.zeros((K, K), dtype=np.int64)
    for true, predicted in zip(labels, predictions, strict=True):
        matrix[true, predicted] += 1
    return matrix


@pytest.mark.parametrize("index_dtype", ["int64", "int32", "uint8"])
def test_confusion_matrix_matches_naive_count(index_dtype: str) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=200).astype(index_dtype)
    predictions = rng.integers(0, 5, size=200).astype(index_dtype)
    matrix = confusion_matrix(labels, predictions, 5)
    assert matrix.dtype == np.int64
    assert matrix.shape == (5, 5)
    np.testing.assert_array_equal(matrix, naive_confusion(labels, predictions, 5))
    assert matrix.sum() == 200


def test_confusion_matrix_rows_are_true_columns_predicted() -> None:
    matrix = confusion_matrix(np.array([2, 2, 0]), np.array([1, 1, 0]), 3)
    assert matrix[2, 1] == 2 and matrix[1, 2] == 0 and matrix[0, 0] == 1


def test_confusion_matrix_empty_input_gives_zeros() -> None:
    empty = np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(confusion_matrix(empty, empty, 3), np.zeros((3, 3)))


def test_confusion_matrix_rejects_out_of_range_label() -> None:
    labels, predictions = np.array([0, -1, 2, 7]), np.array([0, 1, 2, 1])
    with pytest.raises(
        ValueError, match=r"confusion_matrix: labels out of range; expected .*\[0, 3\).*\[-1, 7\]"
    ):
        confusion_matrix(labels, predictions, 3)


def test_confusion_matrix_rejects_out_of_range_prediction() -> None:
    with pytest.raises(ValueError, match=r"confusion_matrix: predictions out of range.*\[3\]"):
        confusion_matrix(np.array([0, 1]), np.array([3, 1]), 3)


def test_confusion_matrix_rejects_mismatched_shapes() -> None:
    with pytest.raises(ShapeError, match=r"confusion_matrix: .*labels.shape=\(3,\), pred"):
        confusion_matrix(np.array([0, 1, 2]), np.array([0, 1]), 3)
    with pytest.raises(ShapeError, match=r"confusion_matrix: .*labels.shape=\(1, 2\)"):
        confusion_matrix(np.array([[0, 1]]), np.array([[0, 1]]), 3)


def test_confusion_matrix_rejects_float_classes() -> None:
    with pytest.raises(DTypeError, match=r"confusion_matrix: predictions must hold integer"):
        confusion_matrix(np.array([0, 1]), np.array([0.0, 1.0]), 3)


def test_confusion_matrix_rejects_bad_num_classes() -> None:
    with pytest.raises(ParameterError, match=r"confusion_matrix: num_classes must be a positive"):
        confusion_matrix(np.array([0]), np.array([0]), 0)


# -- plot_confusion --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_plot_confusion_writes_png(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(4)
    matrix = rng.integers(0, 20, size=(4, 4)).astype(dtype)
    path = tmp_path / "confusion.png"
    check_png(path, plot_confusion(matrix, path, class_names=["a", "b", "c", "d"]))


def test_plot_confusion_fractional_and_empty_matrices(tmp_path: Path) -> None:
    path = tmp_path / "confusion.png"
    rows = np.random.default_rng(5).random((4, 4))
    check_png(path, plot_confusion(rows / rows.sum(axis=1, keepdims=True), path))  # 2-digit text
    check_png(path, plot_confusion(np.zeros((2, 2), dtype=np.int64), path))  # no samples


def test_plot_confusion_many_classes_skips_cell_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "_ANNOTATE_LIMIT", 10)  # the real limit (30) needs a slow figure
    path = tmp_path / "confusion.png"
    check_png(path, plot_confusion(np.eye(11, dtype=np.int64), path))


def test_plot_confusion_rejects_non_square(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"plot_confusion: matrix must be square.*\(3, 4\)"):
        plot_confusion(np.zeros((3, 4)), tmp_path / "c.png")
    with pytest.raises(ShapeError, match=r"plot_confusion: .*K >= 1, got \(0, 0\)"):
        plot_confusion(np.zeros((0, 0)), tmp_path / "c.png")


def test_plot_confusion_rejects_non_numeric(tmp_path: Path) -> None:
    with pytest.raises(DTypeError, match=r"plot_confusion: matrix must be numeric.*bool"):
        plot_confusion(np.eye(3, dtype=bool), tmp_path / "c.png")


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_plot_confusion_rejects_negative_or_nan(tmp_path: Path, bad: float) -> None:
    matrix = np.ones((3, 3))
    matrix[1, 2] = bad
    with pytest.raises(ValueError, match=r"plot_confusion: matrix entries must be finite"):
        plot_confusion(matrix, tmp_path / "c.png")


def test_plot_confusion_rejects_wrong_class_names(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"plot_confusion: .*expected 3 names, got 2"):
        plot_confusion(np.eye(3, dtype=np.int64), tmp_path / "c.png", class_names=["a", "b"])


# -- plot_feature_maps -----------------------------------------------------------------------------
def small_model(channels: int = 1, dtype: str = "float32") -> Sequential:
    return Sequential(
        Conv2d(channels, 4, 3, padding=1, rng=0, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(4, 3, 3, rng=1, dtype=dtype),
        Tanh(),
        Flatten(),
        Linear(3 * 2 * 2, 5, rng=2, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model_dtype", DTYPES)
def test_plot_feature_maps_writes_png(tmp_path: Path, dtype: str, model_dtype: str) -> None:
    model = small_model(dtype=model_dtype)
    image = np.random.default_rng(6).standard_normal((1, 8, 8)).astype(dtype)
    path = tmp_path / "maps.png"
    check_png(path, plot_feature_maps(model, image, path, max_maps=3))


@pytest.mark.parametrize("channels", [2, 3])
def test_plot_feature_maps_colour_and_multichannel_input(tmp_path: Path, channels: int) -> None:
    image = np.random.default_rng(7).random((channels, 8, 8))
    path = tmp_path / "maps.png"
    check_png(path, plot_feature_maps(small_model(channels), image, path))


@pytest.mark.parametrize("training", [True, False])
def test_plot_feature_maps_restores_training_flags_and_records_nothing(
    tmp_path: Path, training: bool
) -> None:
    model = small_model()
    model.train(training)
    outputs: list[object] = []

    def observe(module: Module, args: tuple[object, ...], y: object) -> None:
        outputs.append(y)

    _observers.append(observe)
    try:
        plot_feature_maps(model, np.ones((1, 8, 8), dtype=np.float32), tmp_path / "maps.png")
    finally:
        _observers.remove(observe)
    assert [m.training for m in model.modules()] == [training] * 8
    assert len(outputs) == 7  # each child ran once
    # under no_grad: no output has a node, so no layer's cache is kept in a graph
    assert all(isinstance(y, Tensor) and y.grad_fn is None and not y.requires_grad for y in outputs)


def test_plot_feature_maps_keeps_a_pending_backward_intact(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    model, twin = small_model(), small_model()
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 5)).astype(np.float32)
    x_model = convprop.tensor(x, requires_grad=True)
    x_twin = convprop.tensor(x, requires_grad=True)
    y = model(x_model)
    plot_feature_maps(model, x[0], tmp_path / "maps.png")
    y.backward(dy)
    twin(x_twin).backward(dy)  # the same pass with no plot in between
    assert x_model.grad is not None and x_model.grad.shape == x.shape
    np.testing.assert_array_equal(x_model.grad, x_twin.grad)
    for (name, param), expected in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert param.grad.any(), name
        np.testing.assert_array_equal(param.grad, expected.grad, err_msg=name)


def test_plot_feature_maps_rejects_non_sequential(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"plot_feature_maps: model must be a Sequential.*Conv2d"):
        plot_feature_maps(Conv2d(1, 2, 3), np.ones((1, 5, 5)), tmp_path / "m.png")


def test_plot_feature_maps_rejects_batched_image(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"plot_feature_maps: .*\(C, H, W\).*\(2, 1, 8, 8\)"):
        plot_feature_maps(small_model(), np.ones((2, 1, 8, 8)), tmp_path / "m.png")


def test_plot_feature_maps_rejects_bad_max_maps(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"plot_feature_maps: max_maps must be a positive"):
        plot_feature_maps(small_model(), np.ones((1, 8, 8)), tmp_path / "m.png", max_maps=0)


def test_plot_feature_maps_rejects_model_without_conv(tmp_path: Path) -> None:
    model = Sequential(Flatten(), Linear(4, 2, rng=0))
    with pytest.raises(ValueError, match=r"plot_feature_maps: model has no conv layer"):
        plot_feature_maps(model, np.ones((1, 2, 2)), tmp_path / "m.png")
