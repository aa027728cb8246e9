"""The training loop: loss falls, history, evaluation, checkpoints, exact resume, NaN guard."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy
import pytest

import convprop.train
from convprop import Tensor
from convprop.data import ArrayDataset, DataLoader, from_arrays
from convprop.errors import ParameterError
from convprop.io import (
    ModelFileError,
    load_checkpoint,
    load_model,
    load_model_metadata,
    load_weights,
)
from convprop.models import lenet5
from convprop.nn import (
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    register,
)
from convprop.nn import functional as F
from convprop.nn.module import _observers
from convprop.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR
from convprop.train import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    TrainConfig,
    TrainingDivergedError,
    evaluate,
    fit,
    make_optimizer,
    make_scheduler,
    train_step,
)

HISTORY_KEYS = {
    "epoch",
    "grad_norms",
    "lr",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "seconds",
}


def bars(count: int, seed: int) -> ArrayDataset:
    """Two classes of 8×8 images: a horizontal bar (label 0) or a vertical bar (label 1)."""
    rng = numpy.random.default_rng(seed)
    labels = numpy.arange(count) % 2
    rng.shuffle(labels)
    images = 0.3 * rng.standard_normal((count, 1, 8, 8))
    row, column = rng.integers(1, 6, size=count), rng.integers(1, 6, size=count)
    for n in range(count):
        if labels[n] == 0:
            images[n, 0, row[n] : row[n] + 2, :] += 1.0
        else:
            images[n, 0, :, column[n] : column[n] + 2] += 1.0
    return from_arrays(images.astype(numpy.float32), labels)


def tiny_net(seed: int = 0) -> Sequential:
    """Conv → ReLU → pool → flatten → dropout → linear: every kind of state fit must restore."""
    generator = numpy.random.default_rng(seed)
    return Sequential(
        Conv2d(1, 4, 3, padding=1, rng=generator),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Dropout(0.3, rng=generator.spawn(1)[0]),
        Linear(4 * 4 * 4, 2, rng=generator),
    )


class FunctionalNet(Module):
    """Conv → ReLU → flatten → linear, written with nn.functional ops on the model's own
    Parameters; a user's class that is not registered."""

    def __init__(self, channels: int = 3, classes: int = 2, seed: int = 0) -> None:
        super().__init__()
        rng = numpy.random.default_rng(seed)
        self.conv_weight = Parameter(0.3 * rng.standard_normal((channels, 1, 3, 3), numpy.float32))
        self.conv_bias = Parameter(numpy.zeros(channels, numpy.float32))
        self.fc_weight = Parameter(
            0.1 * rng.standard_normal((classes, channels * 6 * 6), numpy.float32)
        )
        self.fc_bias = Parameter(numpy.zeros(classes, numpy.float32))

    def forward(self, x: Any) -> Tensor:
        h = F.relu(F.conv2d(x, self.conv_weight, self.conv_bias))  # (N, channels, 6, 6)
        return F.linear(F.flatten(h, 1), self.fc_weight, self.fc_bias)


@register(name="TrainTestFunctionalNet")
class RegisteredNet(FunctionalNet):
    """The same network, registered: its model file names the class and its arguments."""


@pytest.fixture(scope="module")
def train_set() -> ArrayDataset:
    return bars(48, seed=1)


@pytest.fixture(scope="module")
def test_set() -> ArrayDataset:
    return bars(24, seed=2)


def config(**changes: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "epochs": 3,
        "batch_size": 8,
        "lr": 0.05,
        "optimizer": "sgd",
        "momentum": 0.9,
        "schedule": "none",
        "seed": 3,
        "progress": False,
    }
    settings.update(changes)
    return TrainConfig(**settings)


def weights(model: Module) -> dict[str, numpy.ndarray]:
    return {key: numpy.array(value) for key, value in model.state_dict().items()}


def assert_bit_identical(left: Module, right: Module) -> None:
    a, b = weights(left), weights(right)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype
        assert numpy.array_equal(a[key], b[key]), key


def without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


class Interrupt:
    """Replace DataLoader.iter_epoch so that epoch ``epoch`` stops with Ctrl-C after ``after``
    batches, as a user pressing Ctrl-C in the middle of that epoch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, epoch: int, after: int = 2) -> None:
        original = DataLoader.iter_epoch

        def iter_epoch(loader: DataLoader, number: int) -> Any:
            for index, batch in enumerate(original(loader, number)):
                if number == epoch and index == after:
                    raise KeyboardInterrupt
                yield batch

        monkeypatch.setattr(DataLoader, "iter_epoch", iter_epoch)


# -- the smoke test ---------------------------------------------------------------------------
def test_fit_loss_falls_on_separable_bars() -> None:
    model = lenet5(num_classes=2, image_size=8, rng=0)
    settings = config(epochs=5, optimizer="adam", lr=1e-2, schedule="cosine")
    history = fit(model, bars(96, seed=1), bars(48, seed=2), settings)
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    assert history[-1]["train_loss"] < 0.25 * history[0]["train_loss"]
    assert history[-1]["test_loss"] < history[0]["test_loss"]
    assert history[-1]["test_accuracy"] >= 0.9


def test_history_records_every_metric_per_epoch(
    train_set: ArrayDataset, test_set: ArrayDataset
) -> None:
    history = fit(tiny_net(), train_set, test_set, config(epochs=2, schedule="step"))
    assert len(history) == 2
    for number, record in enumerate(history, start=1):
        assert set(record) == HISTORY_KEYS
        assert record["epoch"] == number
        for key in HISTORY_KEYS - {"epoch", "grad_norms"}:
            assert isinstance(record[key], float) and math.isfinite(record[key]), key
        names = [name for name, _ in tiny_net().named_parameters()]
        assert list(record["grad_norms"]) == names  # (DIAG1), one per parameter
        assert all(value > 0.0 and math.isfinite(value) for value in record["grad_norms"].values())
        assert 0.0 <= record["train_accuracy"] <= 1.0
        assert 0.0 <= record["test_accuracy"] <= 1.0
        assert record["seconds"] >= 0.0
    # StepLR with epochs // 3 = 0 -> step_size 1: the second epoch runs at lr * 0.1
    assert history[0]["lr"] == 0.05
    assert history[1]["lr"] == pytest.approx(0.005)


def test_history_without_test_set_has_no_test_metrics(train_set: ArrayDataset) -> None:
    (record,) = fit(tiny_net(), train_set, None, config(epochs=1))
    assert set(record) == HISTORY_KEYS
    assert record["test_loss"] is None and record["test_accuracy"] is None


# -- one step and evaluation ------------------------------------------------------------------
def test_train_step_returns_loss_and_correct_count_and_lowers_the_batch_loss(
    train_set: ArrayDataset,
) -> None:
    model = tiny_net()
    model.eval()  # no dropout: the loss is a function of the weights alone
    x, labels = numpy.array(train_set.images[:16]), numpy.array(train_set.labels[:16])
    logits = model(x).data
    loss_fn = CrossEntropyLoss()
    optimizer = SGD(model.parameters(), 0.05)
    loss, correct = train_step(model, loss_fn, optimizer, x, labels)
    assert isinstance(loss, numpy.ndarray) and loss.shape == ()  # the array, not a Tensor
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = numpy.mean(
        numpy.log(numpy.exp(shifted).sum(axis=1)) - shifted[numpy.arange(16), labels]
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert int(correct) == int((logits.argmax(axis=1) == labels).sum())
    after, _ = train_step(model, loss_fn, optimizer, x, labels)
    assert float(after) < float(loss)


def test_fit_uses_a_custom_loss_for_training_and_for_the_test_set(
    train_set: ArrayDataset, test_set: ArrayDataset
) -> None:
    reference = tiny_net()
    expected = fit(reference, train_set, test_set, config(epochs=2))
    calls: list[int] = []

    def shifted_cross_entropy(logits: Any, labels: Any) -> Tensor:
        calls.append(len(labels))
        return F.cross_entropy(logits, labels) + 1.0  # the same gradients, the value moved by 1

    model = tiny_net()
    history = fit(model, train_set, test_set, config(epochs=2), loss_fn=shifted_cross_entropy)
    assert calls == [8] * 6 + [24] + [8] * 6 + [24]  # each step, then the test set, per epoch
    assert_bit_identical(model, reference)
    for record, original in zip(history, expected, strict=True):
        assert record["train_loss"] == pytest.approx(original["train_loss"] + 1.0, rel=1e-6)
        assert record["test_loss"] == pytest.approx(original["test_loss"] + 1.0, rel=1e-6)
        assert record["train_accuracy"] == original["train_accuracy"]
        assert record["test_accuracy"] == original["test_accuracy"]


def test_fit_with_a_cross_entropy_lambda_equals_the_default_loss(train_set: ArrayDataset) -> None:
    reference = tiny_net()
    expected = fit(reference, train_set, None, config(epochs=2))
    model = tiny_net()
    history = fit(
        model,
        train_set,
        None,
        config(epochs=2),
        loss_fn=lambda logits, labels: F.cross_entropy(logits, labels),
    )
    assert without_seconds(history) == without_seconds(expected)
    assert_bit_identical(model, reference)


def test_fit_steps_a_passed_optimizer_instead_of_the_configured_one(
    train_set: ArrayDataset, test_set: ArrayDataset
) -> None:
    reference = tiny_net()
    expected = fit(reference, train_set, test_set, config(epochs=2, lr=0.02))
    model = tiny_net()
    optimizer = SGD(model.parameters(), 0.02, momentum=0.9)
    history = fit(model, train_set, test_set, config(epochs=2, lr=0.05), optimizer=optimizer)
    assert [record["lr"] for record in history] == [0.02, 0.02]  # the passed one's rate
    assert without_seconds(history) == without_seconds(expected)
    assert_bit_identical(model, reference)


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_training_flag(
    training: bool, train_set: ArrayDataset, test_set: ArrayDataset
) -> None:
    model = tiny_net()
    model.train(training)
    outputs: list[Any] = []

    def observe(module: Module, args: tuple[Any, ...], y: Any) -> None:
        outputs.append(y)

    _observers.append(observe)
    try:
        evaluate(model, test_set, batch_size=5)
    finally:
        _observers.remove(observe)
    assert all(module.training is training for module in model.modules())
    # forward only: nothing is recorded, so no graph keeps a layer's cache
    assert len(outputs) == 5 * 8  # 5 batches: the network, its 6 layers and the loss
    assert all(isinstance(y, Tensor) and y.grad_fn is None for y in outputs)
    assert not any(param.grad.any() for param in model.parameters())


def test_evaluate_returns_predictions_labels_loss_and_accuracy(test_set: ArrayDataset) -> None:
    model = tiny_net()
    result = evaluate(model, test_set, batch_size=5)  # 24 = 4 * 5 + 4: a short last batch
    model.eval()
    logits = model(numpy.array(test_set.images)).data.astype(numpy.float64)
    labels = numpy.array(test_set.labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    losses = numpy.log(numpy.exp(shifted).sum(axis=1)) - shifted[numpy.arange(len(labels)), labels]
    assert result.predictions.shape == (24,)
    assert numpy.issubdtype(result.predictions.dtype, numpy.integer)
    assert numpy.array_equal(result.predictions, logits.argmax(axis=1))
    assert numpy.array_equal(result.labels, labels)
    assert result.accuracy == pytest.approx(float((result.predictions == labels).mean()))
    assert result.loss == pytest.approx(float(losses.mean()), rel=1e-5)
    again = evaluate(model, test_set, batch_size=24)  # eval mode: no dropout, same answer
    assert numpy.array_equal(again.predictions, result.predictions)


# -- files ------------------------------------------------------------------------------------
def test_fit_writes_a_checkpoint_every_epoch_and_the_model_at_the_end(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    train_set: ArrayDataset,
    test_set: ArrayDataset,
) -> None:
    written: list[tuple[int, bool]] = []
    original = convprop.train.save_checkpoint

    def recording(path: Path, *args: Any, epoch: int, **kwargs: Any) -> None:
        original(path, *args, epoch=epoch, **kwargs)
        written.append((epoch, (tmp_path / MODEL_NAME).exists()))

    monkeypatch.setattr(convprop.train, "save_checkpoint", recording)
    model = tiny_net()
    history = fit(model, train_set, test_set, config(epochs=2), out_dir=tmp_path)
    assert written == [(1, False), (2, False)]  # the model file only comes at the end
    restored = load_checkpoint(
        tmp_path / CHECKPOINT_NAME, tiny_net(seed=9), make_optimizer(config(), tiny_net(seed=9))
    )
    assert restored["epoch"] == 2
    assert without_seconds(restored["state"]["history"]) == without_seconds(history)
    saved = load_model(tmp_path / MODEL_NAME)
    assert_bit_identical(saved, model)  # type: ignore[arg-type]
    metadata = load_model_metadata(tmp_path / MODEL_NAME)
    assert metadata["config"]["epochs"] == 2
    assert without_seconds(metadata["history"]) == without_seconds(history)
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers == [CHECKPOINT_NAME, MODEL_NAME]  # no temporary files left behind


def test_fit_without_out_dir_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_set: ArrayDataset
) -> None:
    monkeypatch.chdir(tmp_path)
    fit(tiny_net(), train_set, None, config(epochs=1))
    assert list(tmp_path.iterdir()) == []


def test_fit_refuses_an_unwritable_out_dir_before_the_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, train_set: ArrayDataset
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"a file, not a directory")
    out = blocker / "sub"
    steps: list[int] = []
    real_step = convprop.train.train_step

    def counting(*args: Any) -> tuple[Any, Any]:
        steps.append(1)
        return real_step(*args)

    monkeypatch.setattr(convprop.train, "train_step", counting)
    model = tiny_net()
    untouched = weights(model)
    with pytest.raises(
        OSError,
        match=rf"train: cannot write checkpoints into {re.escape(str(out))}; expected a "
        r"writable directory, got ",
    ):
        fit(model, train_set, None, config(epochs=1), out_dir=out)
    assert steps == []  # no epoch ran
    assert all(numpy.array_equal(weights(model)[k], v) for k, v in untouched.items())
    assert blocker.read_bytes() == b"a file, not a directory"
    assert list(tmp_path.iterdir()) == [blocker]


def test_fit_of_an_unregistered_module_writes_weights_only_and_resumes_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    train_set: ArrayDataset,
    test_set: ArrayDataset,
) -> None:
    settings = config(epochs=2, optimizer="adam", lr=0.01)
    straight = FunctionalNet()
    straight_history = fit(straight, train_set, test_set, settings, out_dir=tmp_path / "straight")
    model_file = tmp_path / "straight" / MODEL_NAME
    assert sorted(path.name for path in (tmp_path / "straight").iterdir()) == [
        CHECKPOINT_NAME,
        MODEL_NAME,
    ]
    # the file holds the weights: the architecture is the user's code
    with pytest.raises(ModelFileError, match=r"weights without an architecture"):
        load_model(model_file)
    state = load_weights(model_file)
    assert sorted(state) == ["conv_bias", "conv_weight", "fc_bias", "fc_weight"]
    rebuilt = FunctionalNet(seed=7)
    rebuilt.load_state_dict(state)  # strict: the names are the module's own
    assert_bit_identical(rebuilt, straight)
    x = numpy.array(test_set.images)
    numpy.testing.assert_array_equal(rebuilt(x).data, straight(x).data)

    # stopped during epoch 2 of 2, then resumed by a new instance (another seed)
    out = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        Interrupt(patch, epoch=2)
        with pytest.raises(KeyboardInterrupt):
            fit(FunctionalNet(), train_set, test_set, settings, out_dir=out)
    probe = FunctionalNet()
    assert (
        load_checkpoint(out / CHECKPOINT_NAME, probe, make_optimizer(settings, probe))["epoch"] == 1
    )
    assert not (out / MODEL_NAME).exists()
    resumed = FunctionalNet(seed=5)
    resumed_history = fit(resumed, train_set, test_set, settings, out_dir=out, resume=True)
    assert_bit_identical(resumed, straight)
    assert without_seconds(resumed_history) == without_seconds(straight_history)


def test_fit_of_a_registered_module_saves_a_model_file_that_rebuilds_it(
    tmp_path: Path, train_set: ArrayDataset
) -> None:
    model = RegisteredNet(channels=2, seed=4)  # not the defaults: the file must record them
    fit(model, train_set, None, config(epochs=1), out_dir=tmp_path)
    loaded = load_model(tmp_path / MODEL_NAME)
    assert type(loaded) is RegisteredNet
    assert loaded.config() == {"channels": 2, "classes": 2, "seed": 4}
    assert_bit_identical(loaded, model)
    x = numpy.array(train_set.images[:8])
    numpy.testing.assert_array_equal(loaded(x).data, model(x).data)


# -- exact resume -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("optimizer", "schedule"), [("sgd", "cosine"), ("adam", "step"), ("adamw", "none")]
)
def test_resume_after_ctrl_c_ends_with_the_weights_of_an_uninterrupted_run(
    optimizer: str,
    schedule: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    train_set: ArrayDataset,
    test_set: ArrayDataset,
) -> None:
    settings = config(optimizer=optimizer, schedule=schedule, lr=0.01, weight_decay=1e-3)
    straight = tiny_net()
    straight_history = fit(straight, train_set, test_set, settings, out_dir=tmp_path / "straight")

    out = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        Interrupt(patch, epoch=2)
        with pytest.raises(KeyboardInterrupt):
            fit(tiny_net(), train_set, test_set, settings, out_dir=out)
    assert (
        load_checkpoint(out / CHECKPOINT_NAME, tiny_net(), make_optimizer(settings, tiny_net()))[
            "epoch"
        ]
        == 1
    )
    assert not (out / MODEL_NAME).exists()

    # a new process: the model is rebuilt (here from another seed) and everything else is read
    resumed = tiny_net(seed=5)
    resumed_history = fit(resumed, train_set, test_set, settings, out_dir=out, resume=True)
    assert_bit_identical(resumed, straight)
    assert_bit_identical(load_model(out / MODEL_NAME), straight)  # type: ignore[arg-type]
    assert without_seconds(resumed_history) == without_seconds(straight_history)


@pytest.mark.parametrize("schedule", ["none", "cosine"])
def test_resume_to_more_epochs_continues_as_an_uninterrupted_run(
    schedule: str, tmp_path: Path, train_set: ArrayDataset, test_set: ArrayDataset
) -> None:
    # The schedule's settings come from the configuration given on resume and its position
    # from the checkpoint; the cosine's first epoch runs at the base rate whatever T_max is,
    # so "1 epoch, then resume to 3" equals "3 epochs".
    settings = config(optimizer="adam", lr=0.01, schedule=schedule)
    straight = tiny_net()
    fit(straight, train_set, test_set, settings, out_dir=tmp_path / "straight")
    out = tmp_path / "extended"
    fit(
        tiny_net(),
        train_set,
        test_set,
        config(optimizer="adam", lr=0.01, epochs=1, schedule=schedule),
        out_dir=out,
    )
    resumed = tiny_net(seed=5)
    history = fit(resumed, train_set, test_set, settings, out_dir=out, resume=True)
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert_bit_identical(resumed, straight)


def test_resume_after_the_last_epoch_trains_no_further(
    tmp_path: Path, train_set: ArrayDataset
) -> None:
    model = tiny_net()
    history = fit(model, train_set, None, config(epochs=1), out_dir=tmp_path)
    again = tiny_net(seed=5)
    assert fit(again, train_set, None, config(epochs=1), out_dir=tmp_path, resume=True) == history
    assert_bit_identical(again, model)


def test_resume_with_a_lower_lr_uses_it_from_the_next_epoch(
    tmp_path: Path, train_set: ArrayDataset
) -> None:
    fit(tiny_net(), train_set, None, config(epochs=1, lr=0.05), out_dir=tmp_path)
    history = fit(tiny_net(), train_set, None, config(lr=0.01), out_dir=tmp_path, resume=True)
    assert [record["lr"] for record in history] == [0.05, 0.01, 0.01]


def test_resume_with_a_lower_lr_rescales_the_schedule(
    tmp_path: Path, train_set: ArrayDataset
) -> None:
    fit(tiny_net(), train_set, None, config(epochs=1, lr=0.04, schedule="cosine"), out_dir=tmp_path)
    settings = config(epochs=2, lr=0.02, schedule="cosine")
    history = fit(tiny_net(), train_set, None, settings, out_dir=tmp_path, resume=True)
    # epoch 2 runs at lr_at(1) of a cosine from 0.02 over T_max = 2 epochs (LR2)
    assert history[1]["lr"] == pytest.approx(0.02 * (1 + math.cos(math.pi / 2)) / 2)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch_size": 16}, r"batch_size=8 .*got batch_size=16"),
        ({"seed": 4}, r"seed=3 .*got seed=4"),
        ({"optimizer": "adam"}, r"optimizer='sgd' .*got optimizer='adam'"),
        ({"momentum": 0.5}, r"momentum=0.9 .*got momentum=0.5"),
        ({"weight_decay": 0.1}, r"weight_decay=0.0 .*got weight_decay=0.1"),
        ({"schedule": "cosine"}, r"schedule='none' .*got schedule='cosine'"),
    ],
)
def test_resume_refuses_settings_that_change_the_run(
    changes: dict[str, Any], match: str, tmp_path: Path, train_set: ArrayDataset
) -> None:
    fit(tiny_net(), train_set, None, config(epochs=1), out_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    model = tiny_net(seed=5)
    untouched = weights(model)
    with pytest.raises(
        ParameterError, match="train: cannot resume with other settings; expected " + match
    ):
        fit(model, train_set, None, config(**changes), out_dir=tmp_path, resume=True)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert all(numpy.array_equal(weights(model)[k], v) for k, v in untouched.items())


def test_resume_ignores_momentum_of_adam(tmp_path: Path, train_set: ArrayDataset) -> None:
    fit(tiny_net(), train_set, None, config(epochs=1, optimizer="adam"), out_dir=tmp_path)
    settings = config(epochs=2, optimizer="adam", momentum=0.1)  # not used by Adam
    assert len(fit(tiny_net(), train_set, None, settings, out_dir=tmp_path, resume=True)) == 2


def test_resume_without_a_checkpoint_names_the_missing_file(
    tmp_path: Path, train_set: ArrayDataset
) -> None:
    expected = f"train: cannot resume; expected a checkpoint at {tmp_path / CHECKPOINT_NAME}"
    with pytest.raises(FileNotFoundError, match=f"^{expected}, found none"):
        fit(tiny_net(), train_set, None, config(), out_dir=tmp_path, resume=True)


def test_resume_without_out_dir_says_where_checkpoints_go(train_set: ArrayDataset) -> None:
    with pytest.raises(FileNotFoundError, match="train: cannot resume without out_dir; expected"):
        fit(tiny_net(), train_set, None, config(), resume=True)


# -- the NaN guard ----------------------------------------------------------------------------
def test_nan_in_epoch_two_stops_and_keeps_the_epoch_one_checkpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    train_set: ArrayDataset,
) -> None:
    steps_per_epoch = 48 // 8
    calls = {"count": 0}
    real_step = convprop.train.train_step

    def poisoned(*args: Any, **options: Any) -> tuple[Any, Any]:
        loss, correct = real_step(*args, **options)
        calls["count"] += 1
        if calls["count"] == steps_per_epoch + 3:  # epoch 2, step 3
            return numpy.float32("nan"), correct
        return loss, correct

    snapshots: list[bytes] = []
    real_save = convprop.train.save_checkpoint

    def snapshot(path: Path, *args: Any, **kwargs: Any) -> None:
        real_save(path, *args, **kwargs)
        snapshots.append(Path(path).read_bytes())

    monkeypatch.setattr(convprop.train, "train_step", poisoned)
    monkeypatch.setattr(convprop.train, "save_checkpoint", snapshot)
    checkpoint = tmp_path / CHECKPOINT_NAME
    pattern = (
        r"^train: the loss became nan at epoch 2, step 3 \(lr=0\.05\); the last good "
        rf"checkpoint is {checkpoint} \(epoch 1\), unchanged: resume from it with a lower "
        r"learning rate$"
    )
    with pytest.raises(TrainingDivergedError, match=pattern):
        fit(tiny_net(), train_set, None, config(), out_dir=tmp_path)
    assert len(snapshots) == 1
    assert checkpoint.read_bytes() == snapshots[0]
    assert not (tmp_path / MODEL_NAME).exists()
    model = tiny_net(seed=5)
    restored = load_checkpoint(checkpoint, model, make_optimizer(config(), model))
    assert restored["epoch"] == 1
    assert all(numpy.isfinite(value).all() for value in weights(model).values())


@pytest.mark.parametrize("earlier_run", [False, True])
def test_huge_lr_diverges_in_epoch_one_with_no_good_checkpoint(
    earlier_run: bool, tmp_path: Path, train_set: ArrayDataset
) -> None:
    if earlier_run:  # a checkpoint left in the directory by another run is not this run's
        fit(tiny_net(), train_set, None, config(epochs=1), out_dir=tmp_path)
    with pytest.raises(
        TrainingDivergedError,
        match=r"^train: the loss became (nan|inf) at epoch 1, step \d+ \(lr=1e\+30\); no epoch "
        r"of this run finished, so there is no good checkpoint: start again with a lower "
        r"learning rate$",
    ):
        fit(tiny_net(), train_set, None, config(lr=1e30, momentum=0.0), out_dir=tmp_path)
    assert (tmp_path / CHECKPOINT_NAME).exists() is earlier_run


# -- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"epochs": 0}, r"epochs must be >= 1, got 0"),
        ({"epochs": -3}, r"epochs must be >= 1, got -3"),
        ({"batch_size": 0}, r"batch_size must be >= 1, got 0"),
        ({"lr": 0.0}, r"lr must be a positive number, got 0\.0"),
        ({"lr": -0.1}, r"lr must be a positive number, got -0\.1"),
        ({"lr": float("nan")}, r"lr must be a positive number, got nan"),
        ({"lr": float("inf")}, r"lr must be a positive number, got inf"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['sgd', 'adam', 'adamw'\], "),
        ({"schedule": "linear"}, r"schedule must be one of \['none', 'step', 'cosine'\], "),
        ({"device": "tpu"}, r"device must be 'cpu' or 'cuda', got 'tpu'"),
    ],
)
def test_invalid_configuration_is_refused_before_anything_is_written(
    changes: dict[str, Any], match: str, tmp_path: Path, train_set: ArrayDataset
) -> None:
    with pytest.raises(ParameterError, match="^train: invalid configuration; " + match):
        fit(tiny_net(), train_set, None, config(**changes), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_problem_of_a_configuration_is_listed() -> None:
    with pytest.raises(ParameterError, match=r"epochs must be >= 1, got 0; lr must be"):
        config(epochs=0, lr=-1.0).validate()


def test_make_optimizer_and_make_scheduler_follow_the_configuration() -> None:
    model = tiny_net()
    sgd = make_optimizer(config(optimizer="sgd"), model)
    assert isinstance(sgd, SGD) and sgd.momentum == 0.9
    assert type(make_optimizer(config(optimizer="adam"), model)) is Adam
    assert type(make_optimizer(config(optimizer="adamw"), model)) is AdamW
    assert make_scheduler(config(schedule="none"), sgd) is None
    step = make_scheduler(config(schedule="step", epochs=9), sgd)
    assert isinstance(step, StepLR) and step.step_size == 3
    cosine = make_scheduler(config(schedule="cosine", epochs=9), sgd)
    assert isinstance(cosine, CosineAnnealingLR) and cosine.T_max == 9
