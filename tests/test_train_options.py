"""fit and ``convprop train`` with gradient clipping, warm-up and augmentation.

Witnesses: a PyTorch loop over the same batches (torch.nn.utils.clip_grad_norm_, LinearLR
then CosineAnnealingLR in SequentialLR) ends with the same weights; an interrupted and
resumed run ends bit for bit as an uninterrupted one; the command line trains on a folder
of PNG images.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
from PIL import Image

import convprop.data
from convprop.cli import main
from convprop.data import ArrayDataset, DataLoader, from_arrays, standard_augmentation
from convprop.errors import ParameterError
from convprop.io import load_model, load_model_metadata
from convprop.nn import Flatten, Linear, Sequential
from convprop.nn.utils import clip_grad_norm_
from convprop.optim import SGD, CosineAnnealingLR, LinearLR, SequentialLR, StepLR
from convprop.train import (
    CHECKPOINT_NAME,
    TrainConfig,
    fit,
    make_optimizer,
    make_scheduler,
    train_step,
)


def blobs(count: int, seed: int) -> ArrayDataset:
    """Three classes of 6x6 float64 images: a bright spot in one of three places, plus noise."""
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(count) % 3
    images = 0.2 * rng.standard_normal((count, 1, 6, 6))
    for n, label in enumerate(labels):
        images[n, 0, 2 * label : 2 * label + 2, 1:4] += 2.0
    return from_arrays(images, labels)


def linear_net(seed: int = 0) -> Sequential:
    return Sequential(Flatten(), Linear(36, 3, rng=seed)).double()


def config(**changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "epochs": 4,
        "batch_size": 8,
        "lr": 0.5,
        "optimizer": "sgd",
        "momentum": 0.9,
        "schedule": "cosine",
        "seed": 2,
        "progress": False,
        "clip_grad_norm": 0.3,
        "warmup_epochs": 2,
        "augment": ["crop", "flip"],
    }
    settings.update(changes)
    return TrainConfig(**settings)


def torch_twin(model: Sequential) -> torch.nn.Module:
    twin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3)).double()
    with torch.no_grad():
        twin[1].weight.copy_(torch.from_numpy(numpy.array(model[1].weight.data)))
        twin[1].bias.copy_(torch.from_numpy(numpy.array(model[1].bias.data)))
    return twin


def test_fit_with_clipping_warmup_and_augmentation_matches_a_torch_loop() -> None:
    train = blobs(30, seed=1)
    settings = config()
    model = linear_net()
    twin = torch_twin(model)
    history = fit(model, train, None, settings)
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.5, momentum=0.9, foreach=False)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, 1 / 3, 1.0, total_iters=2)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], [2])
    augment = standard_augmentation(["crop", "flip"], train.sample_shape)
    loader = DataLoader(train, 8, shuffle=True, seed=2, transform=augment)
    rates, clipped = [], 0
    for epoch in range(1, 5):
        rates.append(optimizer.param_groups[0]["lr"])
        for x, labels in loader.iter_epoch(epoch):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                twin(torch.from_numpy(x)), torch.from_numpy(labels)
            )
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.3)
            clipped += int(norm > 0.3)
            optimizer.step()
        schedule.step()
    assert clipped > 5  # clipping was active in most steps
    for ours, theirs in zip([r["lr"] for r in history], rates, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-12)
    assert [r["lr"] for r in history] == pytest.approx([0.5 / 3, 1.0 / 3, 0.5, 0.25], rel=1e-12)
    numpy.testing.assert_allclose(model[1].weight.data, twin[1].weight.detach().numpy(), rtol=1e-10)
    numpy.testing.assert_allclose(model[1].bias.data, twin[1].bias.detach().numpy(), rtol=1e-10)


def test_each_option_changes_the_run() -> None:
    train = blobs(30, seed=1)
    reference = linear_net()
    fit(reference, train, None, config())
    for change in ({"clip_grad_norm": None}, {"warmup_epochs": 0}, {"augment": ["crop"]}):
        other = linear_net()
        fit(other, train, None, config(**change))
        assert not numpy.array_equal(other[1].weight.data, reference[1].weight.data), change


def test_train_step_clips_between_backward_and_step() -> None:
    train = blobs(8, seed=3)
    x, labels = numpy.array(train.images), numpy.array(train.labels)
    model, manual = linear_net(), linear_net()
    optimizer = SGD(model.parameters(), lr=0.5)
    manual_optimizer = SGD(manual.parameters(), lr=0.5)
    train_step(model, convprop.nn.CrossEntropyLoss(), optimizer, x, labels, clip_grad_norm=0.01)
    loss = convprop.nn.CrossEntropyLoss()(manual(x), labels)
    manual_optimizer.zero_grad()
    loss.backward()
    assert clip_grad_norm_(manual.parameters(), 0.01).item() > 0.01
    manual_optimizer.step()
    numpy.testing.assert_array_equal(model[1].weight.data, manual[1].weight.data)


@pytest.mark.parametrize("schedule", ["none", "step", "cosine"])
def test_resume_with_every_option_ends_bit_for_bit_as_an_uninterrupted_run(
    schedule: str, tmp_path: Path
) -> None:
    train, test = blobs(30, seed=1), blobs(12, seed=4)
    settings = config(epochs=5, schedule=schedule)
    straight = linear_net()
    straight_history = fit(straight, train, test, settings, out_dir=tmp_path / "straight")
    out = tmp_path / "resumed"
    fit(linear_net(), train, test, config(epochs=3, schedule=schedule), out_dir=out)
    resumed = linear_net(seed=9)
    history = fit(resumed, train, test, settings, out_dir=out, resume=True)
    for key, value in straight.state_dict().items():
        assert numpy.array_equal(resumed.state_dict()[key], value), key
    assert [r["lr"] for r in history] == [r["lr"] for r in straight_history]
    saved = load_model_metadata(out / CHECKPOINT_NAME)["config"]
    assert (saved["clip_grad_norm"], saved["warmup_epochs"], saved["augment"]) == (
        0.3,
        2,
        ["crop", "flip"],
    )


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clip_grad_norm": 1.0}, r"clip_grad_norm=0.3 .*got clip_grad_norm=1.0"),
        ({"warmup_epochs": 1}, r"warmup_epochs=2 .*got warmup_epochs=1"),
        ({"augment": ["flip"]}, r"augment=\['crop', 'flip'\] .*got augment=\['flip'\]"),
    ],
)
def test_resume_refuses_other_training_options(
    changes: dict[str, Any], match: str, tmp_path: Path
) -> None:
    fit(linear_net(), blobs(30, 1), None, config(epochs=3), out_dir=tmp_path)
    with pytest.raises(
        ParameterError, match="train: cannot resume with other settings; expected " + match
    ):
        fit(linear_net(), blobs(30, 1), None, config(**changes), out_dir=tmp_path, resume=True)


def test_make_scheduler_puts_the_warmup_before_the_schedule() -> None:
    optimizer = SGD(linear_net().parameters(), lr=1.0)
    plain = make_scheduler(config(warmup_epochs=0, schedule="step", epochs=9), optimizer)
    assert isinstance(plain, StepLR) and plain.step_size == 3  # unchanged without warm-up
    warm_step = make_scheduler(config(warmup_epochs=3, schedule="step", epochs=9), optimizer)
    assert isinstance(warm_step, SequentialLR) and warm_step.milestones == [3]
    first, second = warm_step.schedulers
    assert isinstance(first, LinearLR) and (first.start_factor, first.total_iters) == (0.25, 3)
    assert isinstance(second, StepLR) and second.step_size == 2  # (9 - 3) // 3
    rates = [warm_step.lr_at(t) for t in range(9)]
    assert rates == pytest.approx([0.25, 0.5, 0.75, 1, 1, 0.1, 0.1, 0.01, 0.01])
    warm_cosine = make_scheduler(config(warmup_epochs=1, epochs=5), optimizer)
    assert isinstance(warm_cosine, SequentialLR)
    cosine = warm_cosine.schedulers[1]
    assert isinstance(cosine, CosineAnnealingLR) and cosine.T_max == 4
    warm_only = make_scheduler(config(warmup_epochs=4, schedule="none", epochs=6), optimizer)
    assert isinstance(warm_only, LinearLR)
    assert [warm_only.lr_at(t) for t in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1, 1])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clip_grad_norm": 0.0}, r"clip_grad_norm must be a positive number or None, got 0.0"),
        ({"clip_grad_norm": -1.0}, r"clip_grad_norm must be a positive number"),
        ({"clip_grad_norm": math.nan}, r"clip_grad_norm must be a positive number"),
        ({"clip_grad_norm": math.inf}, r"clip_grad_norm must be a positive number"),
        ({"warmup_epochs": -1}, r"warmup_epochs must be an int >= 0, got -1"),
        ({"warmup_epochs": 1.5}, r"warmup_epochs must be an int >= 0, got 1.5"),
        ({"warmup_epochs": 4}, r"warmup_epochs must be below epochs \(4\), got 4: at least one"),
        (
            {"augment": ["rotate"]},
            r"augment must list each of \['crop', 'flip'\] at most once, "
            r"got \['rotate'\]",
        ),
        ({"augment": ["crop", "crop"]}, r"augment must list each of"),
    ],
)
def test_invalid_options_are_refused_before_anything_is_written(
    changes: dict[str, Any], match: str, tmp_path: Path
) -> None:
    with pytest.raises(ParameterError, match="^train: invalid configuration; " + match):
        fit(linear_net(), blobs(8, 1), None, config(**changes), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_distributed_training_on_one_process_clips_and_augments_as_fit_does() -> None:
    # several processes are tested in test_distributed_mpi.py; one is the same run, bit for bit
    alone, spread = linear_net(), linear_net()
    fit(alone, blobs(20, 1), None, config())
    fit(spread, blobs(20, 1), None, config(), distributed=True)
    for key, value in alone.state_dict().items():
        numpy.testing.assert_array_equal(spread.state_dict()[key], value)


# -- the command line -------------------------------------------------------------------------
def image_folder(root: Path) -> Path:
    """Three classes of 8x8 grey PNGs (a bright row in one of three places), ten each."""
    rng = numpy.random.default_rng(0)
    for label, name in enumerate(["top", "middle", "bottom"]):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (8, 8)).astype(numpy.uint8)
            pixels[1 + 3 * label : 3 + 3 * label] = 230
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_cli_trains_on_an_image_folder_with_every_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = image_folder(tmp_path / "shapes"), tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--epochs", "3", "--batch-size", "8", "--out",
            str(out), "--no-progress", "--no-plots", "--schedule", "cosine", "--warmup-epochs",
            "1", "--clip-grad-norm", "2.5", "--augment", "crop", "--lr", "0.01"]  # fmt: skip
    assert main(argv) == 0
    saved = load_model_metadata(out / "model.safetensors")["config"]
    assert saved["clip_grad_norm"] == 2.5 and saved["warmup_epochs"] == 1
    assert saved["augment"] == ["crop"] and saved["extra"]["input_shape"] == [1, 8, 8]
    assert [r["lr"] for r in saved_history(out)] == pytest.approx([0.005, 0.01, 0.005])
    capsys.readouterr()
    assert main(["eval", str(out / "model.safetensors")]) == 0
    assert "dataset " + str(data.resolve()) + ": 6 test images" in capsys.readouterr().out
    assert isinstance(load_model(out / "model.safetensors"), convprop.nn.Module)
    assert main([*argv, "--resume"]) == 0  # finished: nothing more to train, same settings


def saved_history(out: Path) -> list[dict[str, Any]]:
    history = load_model_metadata(out / "model.safetensors")["history"]
    assert isinstance(history, list)
    return history


def test_cli_augment_alone_means_crop_and_flip(tmp_path: Path) -> None:
    data, out = image_folder(tmp_path / "shapes"), tmp_path / "run"
    argv = ["train", "--dataset", str(data), "--epochs", "1", "--out", str(out),
            "--no-progress", "--no-plots", "--augment"]  # fmt: skip
    assert main(argv) == 0
    config_saved = load_model_metadata(out / "model.safetensors")["config"]
    assert (config_saved["augment"], config_saved["clip_grad_norm"]) == (["crop", "flip"], None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--clip-grad-norm", "0"], "clip_grad_norm must be a positive number or None, got 0.0"),
        (["--warmup-epochs", "3", "--epochs", "3"], "warmup_epochs must be below epochs (3)"),
        (["--warmup-epochs", "-2"], "warmup_epochs must be an int >= 0, got -2"),
        (
            ["--augment", "crop,rotate"],
            "augment must list each of ['crop', 'flip'] at most once, got ['crop', 'rotate']",
        ),
        (["--augment", ""], "augment must list each of ['crop', 'flip'] at most once, got ['']"),
    ],
)
def test_cli_bad_options_fail_before_reading_data(
    options: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse(name: Any) -> Any:
        raise AssertionError(f"the data set {name!r} was read before the options were checked")

    monkeypatch.setattr(convprop.data, "load_dataset", refuse)
    status = main(["train", "--out", str(tmp_path / "run"), "--no-progress", *options])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("convprop: train: invalid configuration; " + message), err
    assert not (tmp_path / "run").exists()


def test_cli_names_an_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = image_folder(tmp_path / "shapes")
    (data / "top" / "broken.png").write_bytes(b"not a png")
    status = main(["train", "--dataset", str(data), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert "load_image_folder: cannot read an image; expected a PNG or JPEG file, got '" in err
    assert "broken.png" in err


def test_make_optimizer_is_unchanged_by_the_options() -> None:
    optimizer = make_optimizer(config(), linear_net())
    assert isinstance(optimizer, SGD) and optimizer.lr == 0.5 and optimizer.initial_lr is None
