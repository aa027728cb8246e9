"""The ``convprop`` command line, called in-process through ``convprop.cli.main``.

Training runs use the first 200 training and 100 test digits (``convprop.data.load_dataset``
is replaced for "digits"; the commands import it at call time), so that each run takes about
a second.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest

import convprop.data
import convprop.data.idx
import convprop.model_check
import convprop.train
from convprop.cli import main
from convprop.data import ArrayDataset, DataLoader, write_idx
from convprop.errors import ParameterError
from convprop.functional.loss import softmax
from convprop.io import load_model, load_model_metadata
from convprop.train import evaluate

REAL_LOAD_DATASET = convprop.data.load_dataset
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("history.png", "filters.png", "confusion.png", "feature_maps.png")


def small_load_dataset(name: Any) -> tuple[ArrayDataset, ArrayDataset]:
    train, test = REAL_LOAD_DATASET(name)
    if name == "digits":
        return train[:200], test[:100]
    return train, test


def refuse_load_dataset(name: Any) -> tuple[ArrayDataset, ArrayDataset]:
    raise AssertionError(f"the data set {name!r} was read before the options were checked")


@pytest.fixture
def small_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convprop.data, "load_dataset", small_load_dataset)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LeNet trained for one epoch on the small digits by ``convprop train``."""
    out = tmp_path_factory.mktemp("digits-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(convprop.data, "load_dataset", small_load_dataset)
        status = main(["train", "--epochs", "1", "--out", str(out), "--no-progress", "--no-plots"])
    assert status == 0
    return out / "model.safetensors"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_error_line(err: str, command: str, message: str) -> None:
    """stderr holds exactly one line: ``convprop: <message>...``, where the message starts with
    its op, or ``convprop: <command>: <message>...`` for a message that names none."""
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    if re.match(r"[A-Za-z_][\w.]*: ", message):
        assert err.startswith(f"convprop: {message}"), err
    else:
        assert err.startswith(f"convprop: {command}: {message}"), err


def write_idx_dir(directory: Path, *, side: int, train: int, test: int, classes: int) -> None:
    """An MNIST-style directory: class c is a bright square in corner c of a noisy image."""
    rng = numpy.random.default_rng(0)
    directory.mkdir()
    for prefix, count in (("train", train), ("t10k", test)):
        labels = (numpy.arange(count) % classes).astype(numpy.uint8)
        images = rng.integers(0, 60, size=(count, side, side)).astype(numpy.uint8)
        half = side // 2
        for n, label in enumerate(labels):
            row, column = divmod(int(label), 2)
            images[n, row * half : (row + 1) * half, column * half : (column + 1) * half] = 255
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)


def probabilities_of(out: str) -> tuple[str, int, float, numpy.ndarray]:
    """(source, class, its probability, the 10 listed probabilities) from predict's output."""
    first, *rows = out.splitlines()
    match = re.fullmatch(r"(.+): class (\d+) \(probability ([0-9.]+)\)", first)
    assert match is not None, first
    listed = []
    for label, row in enumerate(rows):
        row_match = re.fullmatch(r"\s+(\d+)\s+([0-9.]+)", row)
        assert row_match is not None and int(row_match.group(1)) == label, row
        listed.append(float(row_match.group(2)))
    return match.group(1), int(match.group(2)), float(match.group(3)), numpy.array(listed)


def model_probabilities(model_file: Path, image: numpy.ndarray) -> numpy.ndarray:
    """The class probabilities (10,) of one (1, H, W) image in [0, 1], computed here."""
    model = load_model(model_file)
    model.eval()
    return softmax(model(image[None].astype(numpy.float32)).data)[0]


# -- help -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command", [[], ["train"], ["eval"], ["predict"], ["gradcheck"], ["explain"]]
)
def test_help_of_the_program_and_every_subcommand_exits_zero(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: convprop {' '.join(command)}".rstrip())
    if not command:
        for name in ("train", "eval", "predict", "gradcheck", "explain"):
            assert re.search(rf"^    {name} ", out, flags=re.MULTILINE), name


def test_console_module_runs_with_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convprop.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: convprop")
    for name in ("train", "eval", "predict", "gradcheck", "explain"):
        assert re.search(rf"^    {name} ", done.stdout, flags=re.MULTILINE), name


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


# -- train ------------------------------------------------------------------------------------
def test_train_digits_writes_model_checkpoint_and_four_plots(
    tmp_path: Path, small_digits: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    status, stdout, err = run(
        ["train", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--no-progress"],
        capsys,
    )
    assert (status, stdout, err) == (0, "", "")
    for name in ("model.safetensors", "checkpoint.safetensors"):
        assert (out / name).stat().st_size > 0
    for name in PLOTS:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name
    metadata = load_model_metadata(out / "model.safetensors")
    assert metadata["config"]["epochs"] == 1
    assert metadata["config"]["extra"] == {
        "dataset": "digits",
        "model": "lenet",
        "input_shape": [1, 8, 8],
        "num_classes": 10,
        "mean_brightness": round(float(small_load_dataset("digits")[0].images.mean()), 4),
    }
    assert len(metadata["history"]) == 1


def test_train_on_an_idx_directory_and_eval_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_dir(tmp_path / "corners", side=12, train=48, test=16, classes=4)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--dataset", "corners", "--model", "lenet5", "--epochs", "2"]
    status, _, err = run([*argv, "--batch-size", "8", "--no-progress", "--no-plots"], capsys)
    assert (status, err) == (0, "")
    model_file = tmp_path / "runs" / "corners" / "model.safetensors"  # the default --out
    extra = load_model_metadata(model_file)["config"]["extra"]
    assert extra == {
        "dataset": str(tmp_path / "corners"),
        "model": "lenet5",
        "input_shape": [1, 12, 12],
        "num_classes": 4,
        "mean_brightness": round(float(REAL_LOAD_DATASET("corners")[0].images.mean()), 4),
    }
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    status, stdout, err = run(["eval", str(model_file)], capsys)
    assert (status, err) == (0, "")
    assert stdout.startswith(f"dataset {tmp_path / 'corners'}: 16 test images, loss ")


def test_train_resumes_after_ctrl_c_to_the_weights_of_an_uninterrupted_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_digits: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["train", "--model", "lenet5", "--epochs", "2", "--no-progress", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0

    original = DataLoader.iter_epoch

    def ctrl_c_in_epoch_two(loader: DataLoader, epoch: int) -> Iterator[Any]:
        for index, batch in enumerate(original(loader, epoch)):
            if epoch == 2 and index == 3:
                raise KeyboardInterrupt
            yield batch

    with monkeypatch.context() as patch:
        patch.setattr(DataLoader, "iter_epoch", ctrl_c_in_epoch_two)
        capsys.readouterr()
        status, _, err = run([*argv, "--out", str(tmp_path / "resumed")], capsys)
    assert (status, err) == (130, "convprop: train: interrupted\n")
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    assert main([*argv, "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    straight = load_model(tmp_path / "straight" / "model.safetensors").state_dict()
    resumed = load_model(tmp_path / "resumed" / "model.safetensors").state_dict()
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert numpy.array_equal(straight[key], resumed[key]), key


# -- eval -------------------------------------------------------------------------------------
def test_eval_prints_the_accuracy_of_the_saved_model(
    digits_model: Path, small_digits: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stdout, err = run(["eval", str(digits_model)], capsys)
    assert (status, err) == (0, "")
    _, test = small_load_dataset("digits")
    expected = evaluate(load_model(digits_model), test)
    assert stdout == (
        f"dataset digits: 100 test images, loss {expected.loss:.4f}, "
        f"accuracy {expected.accuracy:.4f}\n"
    )


def test_eval_of_a_model_file_without_a_dataset_asks_for_one(
    tmp_path: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from convprop.io import save_model

    bare = tmp_path / "bare.safetensors"
    save_model(bare, load_model(digits_model))
    status, stdout, err = run(["eval", str(bare)], capsys)
    assert (status, stdout) == (1, "")
    assert_one_error_line(err, "eval", f"eval: the model file {bare} does not name its dataset")


# -- predict ----------------------------------------------------------------------------------
def test_predict_an_image_file(
    tmp_path: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    _, test = REAL_LOAD_DATASET("digits")
    pixels = numpy.round(numpy.asarray(test.images[0, 0]) * 255).astype(numpy.uint8)  # (8, 8)
    path = tmp_path / "digit.png"
    Image.fromarray(pixels, mode="L").save(path)
    status, stdout, err = run(["predict", str(digits_model), str(path)], capsys)
    assert (status, err) == (0, "")
    source, best, probability, listed = probabilities_of(stdout)
    assert source == str(path)
    assert listed.shape == (10,)
    assert abs(listed.sum() - 1.0) < 1e-3  # ten values rounded to 4 decimals
    expected = model_probabilities(digits_model, pixels[None] / 255.0)
    assert best == int(expected.argmax())
    assert probability == pytest.approx(float(expected[best]), abs=5e-5)
    assert numpy.allclose(listed, expected, atol=5e-5)


def test_predict_resizes_and_converts_a_colour_image(
    tmp_path: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    rng = numpy.random.default_rng(0)
    path = tmp_path / "colour.png"
    Image.fromarray(rng.integers(0, 256, size=(20, 30, 3), dtype=numpy.uint8)).save(path)
    status, stdout, err = run(["predict", str(digits_model), str(path)], capsys)
    assert (status, err) == (0, "")
    _, _, _, listed = probabilities_of(stdout)
    assert listed.shape == (10,) and abs(listed.sum() - 1.0) < 1e-3


@pytest.fixture
def idx_images(tmp_path: Path) -> tuple[Path, numpy.ndarray]:
    """An IDX file of five 8×8 digits as bytes."""
    _, test = REAL_LOAD_DATASET("digits")
    images = numpy.round(numpy.asarray(test.images[:5, 0]) * 255).astype(numpy.uint8)
    path = tmp_path / "five-idx3-ubyte"
    write_idx(path, images)
    return path, images


def test_predict_an_idx_entry(
    digits_model: Path, idx_images: tuple[Path, numpy.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, images = idx_images
    status, stdout, err = run(
        ["predict", str(digits_model), "--idx", str(path), "--index", "3"], capsys
    )
    assert (status, err) == (0, "")
    source, best, _, listed = probabilities_of(stdout)
    assert source == f"{path}[3]"
    assert abs(listed.sum() - 1.0) < 1e-3
    expected = model_probabilities(digits_model, images[3][None] / 255.0)
    assert best == int(expected.argmax())
    assert numpy.allclose(listed, expected, atol=5e-5)


@pytest.mark.parametrize("index", ["5", "-1"])
def test_predict_with_an_index_out_of_range_says_so_in_one_line(
    index: str,
    digits_model: Path,
    idx_images: tuple[Path, numpy.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, _ = idx_images
    argv = ["predict", str(digits_model), "--idx", str(path), "--index", index]
    status, stdout, err = run(argv, capsys)
    assert (status, stdout) == (1, "")
    assert_one_error_line(
        err,
        "predict",
        f"predict: --index out of range; expected 0 <= index < 5, got {index} ({path} holds "
        "(5, 8, 8))",
    )


def test_predict_an_idx_entry_of_another_size_is_refused(
    tmp_path: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big-idx3-ubyte"
    write_idx(path, numpy.zeros((2, 28, 28), numpy.uint8))
    status, _, err = run(["predict", str(digits_model), "--idx", str(path)], capsys)
    assert status == 1
    assert_one_error_line(
        err, "predict", "predict: the IDX entry has shape (28, 28); expected (8, 8) for this model"
    )


def test_predict_needs_something_to_classify(
    digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["predict", str(digits_model)], capsys)
    assert status == 1
    assert_one_error_line(err, "predict", "predict: nothing to classify; expected an image file")


def test_predict_an_unreadable_image_says_so(
    tmp_path: Path, digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "not-an-image.png"
    path.write_text("hello")
    status, _, err = run(["predict", str(digits_model), str(path)], capsys)
    assert status == 1
    assert_one_error_line(err, "predict", f"predict: cannot read the image {path}: ")


# -- gradcheck and explain --------------------------------------------------------------------
def test_gradcheck_prints_a_table_and_all_nine_gradients_agree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, stdout, err = run(["gradcheck"], capsys)
    assert (status, err) == (0, "")
    header, rule, *rows, summary = stdout.splitlines()
    assert header.split() == ["parameter", "shape", "analytic", "numeric", "rel.", "error", "ok"]
    assert set(rule) == {"-"}
    names = [row.split()[0] for row in rows]
    assert names == [
        "input",
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "10.weight",
        "10.bias",
    ]
    assert all(row.endswith("  yes") for row in rows)
    assert summary == "9 of 9 gradients agree with finite differences"


def test_gradcheck_exits_one_when_a_gradient_disagrees(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(convprop.model_check, "TOLERANCE", -1.0)  # nothing can pass
    status, stdout, _ = run(["gradcheck", "--model", "lenet5"], capsys)
    assert status == 1
    assert stdout.splitlines()[-1] == "0 of 11 gradients agree with finite differences"
    assert stdout.count("  NO\n") == 11


@pytest.mark.parametrize("option", ["--batch-size", "--image-size"])
def test_gradcheck_refuses_empty_inputs(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["gradcheck", option, "0"], capsys)
    assert status == 1
    assert_one_error_line(
        err, "gradcheck", f"gradcheck: {option} must be >= 1; expected a positive count, got 0"
    )


def test_explain_conv_shows_the_flipped_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    status, stdout, err = run(["explain", "conv"], capsys)
    assert (status, err) == (0, "")
    columns = {}
    for name in "abcde":
        match = re.search(rf"^   dO/d{name} = \[([^\]]*)\]$", stdout, flags=re.MULTILINE)
        assert match is not None, name
        columns[name] = [float(value) for value in match.group(1).split()]
    assert columns["b"] == [0, 100, 10, 0, 0, 0]  # the kernel [10, 100] flipped and shifted
    for shift, name in enumerate("abcde"):
        expected = [0.0] * 6
        expected[shift : shift + 2] = [100.0, 10.0]
        assert columns[name] == expected
    assert "O = [100. 210. 320. 430. 540.  50.]" in stdout
    assert "checked against loops over np.pad(dy) and rot90(w): equal" in stdout
    assert "-> 6x28x28" in stdout or "y (6, 28, 28)" in stdout


def test_explain_knows_only_its_topics(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["explain", "pooling"])
    assert stop.value.code == 2
    assert "invalid choice: 'pooling'" in capsys.readouterr().err


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "-1"], "train: invalid configuration; epochs must be >= 1, got -1"),
        (["--epochs", "0"], "train: invalid configuration; epochs must be >= 1, got 0"),
        (["--batch-size", "0"], "train: invalid configuration; batch_size must be >= 1, got 0"),
        (["--lr", "0"], "train: invalid configuration; lr must be a positive number, got 0.0"),
        (["--lr", "nan"], "train: invalid configuration; lr must be a positive number, got nan"),
        (
            ["--model", "vgg"],
            "train: unknown model; expected one of ['lenet', 'lenet5', 'resnet-mini'], got 'vgg'",
        ),
    ],
)
def test_bad_train_options_fail_before_reading_data(
    options: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(convprop.data, "load_dataset", refuse_load_dataset)
    status, stdout, err = run(["train", "--out", str(tmp_path / "run"), *options], capsys)
    assert (status, stdout) == (1, "")
    assert_one_error_line(err, "train", message)
    assert not (tmp_path / "run").exists()


def test_unknown_dataset_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["train", "--dataset", "cifar", "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(
        err,
        "train",
        "load_dataset: unknown data set; expected one of 'digits', 'fashion-mnist' or a "
        "directory of MNIST-format IDX files or of image folders, got 'cifar' (no such "
        "directory)",
    )


def test_nonexistent_dataset_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    status, _, err = run(["train", "--dataset", str(missing), "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(err, "train", "load_dataset: unknown data set; ")
    assert f"got '{missing}' (no such directory)" in err


def test_dataset_directory_without_idx_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    argv = ["train", "--dataset", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]
    status, _, err = run(argv, capsys)
    assert status == 1
    assert_one_error_line(err, "train", "load_dataset: the directory is empty; expected ")
    (tmp_path / "empty" / "readme.txt").write_text("not a data set")
    status, _, err = run(argv, capsys)
    assert status == 1
    assert_one_error_line(err, "train", "load_mnist_dir: missing IDX file; expected one of ")


def test_fashion_mnist_not_installed_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(convprop.data.idx, "FASHION_MNIST_DIR", tmp_path / "absent")
    status, _, err = run(["train", "--dataset", "fashion-mnist", "--out", str(tmp_path)], capsys)
    assert status == 1
    assert_one_error_line(err, "train", "load_fashion_mnist: Fashion-MNIST not found; ")
    assert "apt-get install dataset-fashion-mnist" in err


def test_resume_without_a_checkpoint(
    tmp_path: Path, small_digits: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fresh"
    status, _, err = run(["train", "--resume", "--out", str(out), "--no-progress"], capsys)
    assert status == 1
    assert_one_error_line(
        err,
        "train",
        f"train: cannot resume; expected a checkpoint at {out / 'checkpoint.safetensors'}",
    )


@pytest.mark.parametrize("command", [["eval"], ["predict", "--idx", "x"]])
def test_missing_model_file(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.safetensors"
    status, _, err = run([command[0], str(missing), *command[1:]], capsys)
    assert status == 1
    assert_one_error_line(
        err,
        command[0],
        f"{command[0]}: no such model file; expected a model.safetensors written by convprop "
        f"train, got '{missing}'",
    )


def test_a_file_that_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("not a model")
    status, _, err = run(["eval", str(path)], capsys)
    assert status == 1
    assert_one_error_line(err, "eval", f"{path}: not a readable safetensors file")


def test_verbose_shows_the_traceback_instead(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="epochs must be >= 1"):
        main(["-v", "train", "--epochs", "-1", "--out", str(tmp_path)])


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(convprop.train, "fit", interrupted)
    monkeypatch.setattr(convprop.data, "load_dataset", small_load_dataset)
    argv = ["train", "--no-progress", "--out", str(tmp_path / "run")]
    assert run(argv, capsys)[::2] == (130, "convprop: train: interrupted\n")


class ClosedPipe(io.TextIOBase):
    """A stdout whose reader has gone, as in ``convprop explain conv | head -1``."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


def test_a_closed_output_pipe_ends_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["explain", "conv"]) == 1
    assert capsys.readouterr().err == ""


def test_the_console_prints_one_line_for_a_bad_option(tmp_path: Path) -> None:
    # a real process, so that log messages would show up on stderr too
    done = subprocess.run(
        [sys.executable, "-m", "convprop.cli", "train", "--epochs", "-1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == ("convprop: train: invalid configuration; epochs must be >= 1, got -1\n")
