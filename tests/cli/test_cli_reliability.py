"""The command line as a new user meets it: what it says about wrong input, before working.

predict states the input convention and warns about inverted, tiny and squashed images;
eval compares the data set's image shape with the model first; train checks --out before
reading data, never replaces a run without --overwrite, says when a resumed run has nothing
left to do, and keeps its progress to a few lines in a log; every error is one line
``convprop: <op>: ...``, MemoryError included.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import pytest
from PIL import Image

import convprop.data
import convprop.explain
import convprop.io
import convprop.train
from convprop.app_checks import check_eval_shape, image_warnings
from convprop.cli import error_line, main
from convprop.data import ArrayDataset, write_idx
from convprop.errors import ShapeError
from convprop.models import build_model

REAL_LOAD_DATASET = convprop.data.load_dataset


def small_load_dataset(name: Any) -> tuple[ArrayDataset, ArrayDataset]:
    train, test = REAL_LOAD_DATASET(name)
    return (train[:200], test[:100]) if name == "digits" else (train, test)


def refuse_load_dataset(name: Any) -> tuple[ArrayDataset, ArrayDataset]:
    raise AssertionError(f"the data set {name!r} was read before --out was checked")


@pytest.fixture
def small_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convprop.data, "load_dataset", small_load_dataset)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(convprop.data, "load_dataset", small_load_dataset)
        assert (
            main(["train", "--epochs", "1", "--out", str(out), "--no-progress", "--no-plots"]) == 0
        )
    return out / "model.safetensors"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings logged since the last call (they go to stderr through logging)."""
    found = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    caplog.clear()
    return found


def one_line(err: str, start: str) -> None:
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(start), err


def write_png(path: Path, pixels: numpy.ndarray) -> Path:
    """(H, W) or (H, W, 3) values in [0, 1] as an 8-bit PNG."""
    mode = "L" if pixels.ndim == 2 else "RGB"
    Image.fromarray(numpy.round(pixels * 255).astype(numpy.uint8), mode).save(path)
    return path


def a_digit() -> numpy.ndarray:
    """A test digit (8, 8), white on black, as the digits model was trained on."""
    image = REAL_LOAD_DATASET("digits")[1][0][0][0]
    assert image.mean() < 0.5
    return numpy.asarray(image)


# -- predict ----------------------------------------------------------------------------------
def test_predict_help_states_the_input_convention(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--help"])
    assert stop.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "white (bright) strokes on a black background" in help_text
    assert "resized to its input size (digits 8x8, fashion-mnist 28x28" in help_text
    assert "--invert" in help_text


def test_predict_a_white_on_black_digit_says_nothing_more(
    digits_model: Path, tmp_path: Path, capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_png(tmp_path / "digit.png", a_digit())
    status, stdout, _ = run(["predict", str(digits_model), str(path)], capsys)
    assert status == 0 and stdout.startswith(f"{path}: class ")
    assert warnings_of(caplog) == []


def test_predict_warns_about_an_inverted_image_and_invert_fixes_it(
    digits_model: Path, tmp_path: Path, capsys: Any, caplog: pytest.LogCaptureFixture
) -> None:
    digit = a_digit()
    plain = write_png(tmp_path / "plain.png", digit)
    inverted = write_png(tmp_path / "inverted.png", 1.0 - digit)
    assert run(["predict", str(digits_model), str(inverted)], capsys)[0] == 0
    (warning,) = warnings_of(caplog)
    assert warning.startswith(
        "convprop: predict: warning: the image looks inverted; its mean brightness is "
        f"{1 - digit.mean():.2f} (light background), the training images' 0.31 (dark "
    )
    assert "(light background)" in warning and "pass --invert" in warning
    status, fixed, _ = run(["predict", str(digits_model), str(inverted), "--invert"], capsys)
    assert status == 0 and warnings_of(caplog) == []
    _, expected, _ = run(["predict", str(digits_model), str(plain)], capsys)
    assert fixed.split(": ", 1)[1].split(" (")[0] == expected.split(": ", 1)[1].split(" (")[0]


@pytest.mark.parametrize(
    ("pixels", "warning"),
    [
        (numpy.zeros((1, 1)), "the image is 1x1, enlarged to the model's 8x8"),
        (numpy.zeros((8, 40, 3)), "the image is 8x40, squashed to the model's 8x8"),
        (numpy.zeros((30, 6)), "the image is 30x6, squashed to the model's 8x8"),
    ],
    ids=["1x1", "squashed-rgb", "tall"],
)
def test_predict_warns_about_a_tiny_or_squashed_image(
    pixels: numpy.ndarray,
    warning: str,
    digits_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_png(tmp_path / "odd.png", pixels)
    status, stdout, _ = run(["predict", str(digits_model), str(path)], capsys)
    assert status == 0 and stdout.startswith(f"{path}: class ")
    (found,) = warnings_of(caplog)
    assert found.startswith(f"convprop: predict: warning: {warning}"), found


def test_image_warnings_need_the_training_brightness_to_call_an_image_inverted() -> None:
    assert image_warnings((8, 8), (1, 8, 8), 0.9, None) == []
    assert image_warnings((8, 8), (1, 8, 8), 0.9, 0.8) == []  # trained on light images
    assert len(image_warnings((8, 8), (1, 8, 8), 0.1, 0.8)) == 1  # dark image for a light set
    assert image_warnings((4, 4), (1, 8, 8), 0.2, 0.3) == []  # half the size: still fine
    assert image_warnings((280, 400), (1, 28, 28), 0.2, 0.3) == []  # aspect within 1.5x


# -- eval -------------------------------------------------------------------------------------
def write_idx_dir(directory: Path, *, side: int) -> Path:
    rng = numpy.random.default_rng(0)
    directory.mkdir()
    for prefix, count in (("train", 8), ("t10k", 4)):
        images = rng.integers(0, 255, size=(count, side, side)).astype(numpy.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", numpy.arange(count, dtype=numpy.uint8))
    return directory


def test_eval_on_a_data_set_of_other_image_shapes_names_both_shapes(
    digits_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    data = write_idx_dir(tmp_path / "big", side=12)
    monkeypatch.setattr(convprop.train, "evaluate", refuse_load_dataset)  # never reached
    status, stdout, err = run(["eval", str(digits_model), "--dataset", str(data)], capsys)
    assert (status, stdout) == (1, "")
    one_line(
        err,
        "convprop: eval: the data set's images do not fit the model; expected (1, 8, 8) as "
        f"the images it was trained on (digits) in {digits_model}, got (1, 12, 12) from the "
        f"data set {data}",
    )
    assert "linear" not in err


def test_eval_of_a_model_without_metadata_checks_its_first_layer(tmp_path: Path) -> None:
    model = build_model("lenet", num_classes=10, in_channels=3, image_size=8, rng=0)
    with pytest.raises(ShapeError, match=r"expected \(3,\) as its first layer's input channels"):
        check_eval_shape({}, (1, 8, 8), model, "digits", "bare.safetensors")
    check_eval_shape({}, (3, 8, 8), model, "rgb", "bare.safetensors")  # fits: no error


# -- train: --out, run directories, resume ----------------------------------------------------
@pytest.mark.parametrize("under", ["file", "file/run"])
def test_an_out_that_cannot_be_a_directory_fails_before_the_data_is_read(
    under: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setattr(convprop.data, "load_dataset", refuse_load_dataset)
    out = tmp_path / under
    status, stdout, err = run(["train", "--out", str(out), "--no-progress"], capsys)
    assert (status, stdout) == (1, "")
    one_line(err, f"convprop: train: cannot write the run into {out}; expected a directory")
    assert "[Errno" not in err


def test_fit_reports_an_unwritable_out_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_digits: None, capsys: Any
) -> None:
    def unwritable(directory: Any, model: Any) -> None:  # as check_writable raises it
        raise OSError(13, f"train: cannot write checkpoints into {directory}; expected a "
                      "writable directory, got Permission denied")  # fmt: skip

    monkeypatch.setattr(convprop.train, "check_writable", unwritable)
    status, _, err = run(["train", "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    assert status == 1
    one_line(err, f"convprop: train: cannot write checkpoints into {tmp_path / 'run'};")
    assert "[Errno 13]" not in err


def test_an_existing_run_is_kept_unless_overwrite_or_resume(
    tmp_path: Path, small_digits: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-plots"]) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    status, _, err = run([*argv, "--seed", "1"], capsys)
    assert status == 1
    one_line(err, f"convprop: train: {out} holds a run already (checkpoint.safetensors, model")
    assert "pass --resume to continue it, --overwrite to replace it" in err
    assert (out / "model.safetensors").read_bytes() == before
    assert not (out / "history.png").exists()
    status, _, err = run([*argv, "--resume", "--overwrite"], capsys)
    assert status == 1
    one_line(err, "convprop: train: --resume and --overwrite contradict each other")
    assert main([*argv, "--seed", "1", "--no-plots", "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != before  # replaced, from another seed


def test_overwrite_removes_the_old_checkpoint_before_training(
    tmp_path: Path, small_digits: None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-plots"]) == 0

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # killed before the new run's first checkpoint

    monkeypatch.setattr(convprop.train, "fit", stopped)
    assert main([*argv, "--overwrite"]) == 130
    assert not (out / "checkpoint.safetensors").exists()  # no --resume of the replaced run
    assert not (out / "model.safetensors").exists()


def test_resuming_a_finished_run_says_so(
    tmp_path: Path, small_digits: None, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", "lenet5", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*argv, "--no-plots"]) == 0
    assert warnings_of(caplog) == []
    assert main([*argv, "--no-plots", "--resume"]) == 0
    assert [
        (
            f"train: nothing to train; the run in {out} has completed 1 epochs of the 1 asked "
            "(pass --epochs with more than 1 to train longer)"
        )
    ] == warnings_of(caplog)


# -- progress ---------------------------------------------------------------------------------
def test_progress_in_a_log_does_not_update_once_per_step(
    tmp_path: Path, small_digits: None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # stderr is captured here, not a terminal; no interval passes within these epochs
    monkeypatch.setattr(convprop.train, "PROGRESS_INTERVAL", 1e9)
    argv = ["train", "--model", "lenet5", "--epochs", "2", "--batch-size", "8", "--no-plots"]
    status, _, err = run([*argv, "--out", str(tmp_path / "run")], capsys)
    assert status == 0
    for epoch in (1, 2):  # 25 steps each: the bar's first and last display alone
        assert err.count(f"\repoch {epoch}/2:") == 2, err
    assert "25/25" in err


class Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_keeps_the_live_bar_on_a_terminal() -> None:
    assert convprop.train.progress_interval(Stream(True)) == 0.1
    assert convprop.train.progress_interval(Stream(False)) == convprop.train.PROGRESS_INTERVAL
    assert convprop.train.PROGRESS_INTERVAL >= 2
    assert convprop.train.progress_interval(object()) == convprop.train.PROGRESS_INTERVAL


# -- one error prefix -------------------------------------------------------------------------
def test_a_library_error_is_printed_with_its_op_once(
    digits_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["predict", str(digits_model)], capsys)
    assert status == 1
    assert err == ("convprop: predict: nothing to classify; expected an image file or --idx FILE\n")


def test_a_message_without_an_op_gets_the_subcommand() -> None:
    assert error_line("eval", "/x/m.safetensors: not a readable safetensors file") == (
        "convprop: eval: /x/m.safetensors: not a readable safetensors file"
    )
    assert error_line("eval", "load_model: bad") == "convprop: load_model: bad"


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["predict", "model.safetensors", "--index", "x"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "convprop: predict: argument --index: invalid int value: 'x' "
        "(see convprop predict --help)\n"
    )


def test_the_console_prints_a_usage_error_as_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convprop.cli", "train", "--optimizer", "lbfgs"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("convprop: train: argument --optimizer: invalid choice: ")
    assert done.stderr.count("\n") == 1


def test_memory_error_names_what_was_being_built(
    digits_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    numpy_message = (
        "Unable to allocate 1.49 GiB for an array with shape (20000, 20000) and data type float32"
    )

    def too_large(path: Any) -> None:
        raise MemoryError(numpy_message)

    monkeypatch.setattr(convprop.io, "load_model", too_large)
    status, _, err = run(["eval", str(digits_model)], capsys)
    assert status == 1
    assert err == (
        f"convprop: eval: out of memory while building the model of {digits_model}; expected "
        f"sizes that fit in this machine's memory, got: {numpy_message}\n"
    )


def test_memory_error_without_detail_is_one_line_too(
    tmp_path: Path, small_digits: None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    def empty(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(convprop.train, "fit", empty)
    status, _, err = run(["train", "--out", str(tmp_path / "run"), "--no-progress"], capsys)
    assert status == 1
    one_line(err, "convprop: train: out of memory while training lenet with batches of 32; ")
    assert err.endswith("got: no detail given\n")
    monkeypatch.setattr(convprop.explain, "explain_command", empty)  # outside any stage
    status, _, err = run(["explain", "conv"], capsys)
    assert status == 1
    one_line(err, "convprop: explain: out of memory; expected sizes that fit in this machine")
