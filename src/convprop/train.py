"""The training loop: batches → forward → loss → backward → step → metrics.

Every step is explicit::

    logits = model(x)                         # each op records its pair in the graph
    loss = loss_fn(logits, labels)            # a 0-d Tensor
    optimizer.zero_grad()
    loss.backward()                           # the recorded backwards, in reverse order
    optimizer.step()                          # w <- w - lr * dE/dw (or momentum / Adam)

``fit`` adds epochs, evaluation on the test split, a tqdm progress bar, a history of
metrics, atomic per-epoch checkpoints with optimizer state, exact resume, and a guard that
stops on a NaN/Inf loss with a clear message, leaving the last good checkpoint intact.

Resuming takes the state from the checkpoint (weights, optimizer buffers and counters, the
completed epochs, the dropout generators, the history) and the plan from the configuration:
``epochs`` and ``lr`` may change (to train longer, or to restart lower after a divergence;
the schedule is rebuilt for them at the checkpoint's position), while the settings that
shape the run itself (batch size, optimizer, momentum, weight decay, schedule, seed,
gradient clipping, warm-up, augmentation) must match the checkpoint's. With an unchanged
configuration, a resumed run ends with exactly the weights of an uninterrupted one: the
augmentation of batch k of epoch e draws from a generator keyed by (seed, e, k) (AUG3).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy
from tqdm import tqdm

from convprop.autograd import Tensor, no_grad
from convprop.backend import Array, get_xp, to_host
from convprop.data import ArrayDataset, DataLoader
from convprop.data.augment import AUGMENTATIONS, standard_augmentation
from convprop.errors import ParameterError
from convprop.grad_norms import GradientNorms
from convprop.io import (
    check_writable,
    describe,
    load_checkpoint,
    load_model_metadata,
    save_checkpoint,
    save_model,
    save_weights,
)
from convprop.nn import CrossEntropyLoss, Module
from convprop.nn.utils import clip_grad_norm_
from convprop.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
    StepLR,
)

log = logging.getLogger("convprop.train")

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine")
CHECKPOINT_NAME = "checkpoint.safetensors"
MODEL_NAME = "model.safetensors"
RUN_SETTINGS = (
    "batch_size",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "seed",
    "clip_grad_norm",
    "warmup_epochs",
    "augment",
)
"""Settings that must not change on resume: they shape the run that the checkpoint is part of."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class TrainConfig:
    """Hyperparameters of a training run (all JSON-serialisable)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    eval_batch_size: int = 500
    clip_grad_norm: float | None = None
    """Largest total 2-norm of the gradients before each step (CLIP1-CLIP4); None: no clipping."""
    warmup_epochs: int = 0
    """Epochs of linear warm-up (LR3) before the schedule (LR9, LR10); 0: none."""
    augment: list[str] = field(default_factory=list)
    """Augmentation of the training batches: any of "crop", "flip" (AUG1, AUG2); []: none."""
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        problems += self._training_problems()
        if problems:
            raise ParameterError("train: invalid configuration; " + "; ".join(problems))

    def _training_problems(self) -> list[str]:
        """What is wrong with clip_grad_norm, warmup_epochs and augment."""
        problems = []
        clip = self.clip_grad_norm
        if clip is not None and (isinstance(clip, bool) or not 0 < clip < math.inf):
            problems.append(f"clip_grad_norm must be a positive number or None, got {clip}")
        warmup = self.warmup_epochs
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            problems.append(f"warmup_epochs must be an int >= 0, got {warmup!r}")
        elif warmup >= max(self.epochs, 1):
            problems.append(
                f"warmup_epochs must be below epochs ({self.epochs}), got {warmup}: at least "
                "one epoch follows the warm-up"
            )
        augment = list(self.augment)
        if any(a not in AUGMENTATIONS for a in augment) or len(set(augment)) != len(augment):
            problems.append(
                f"augment must list each of {list(AUGMENTATIONS)} at most once, got {augment}"
            )
        return problems


def make_optimizer(config: TrainConfig, model: Module) -> SGD | Adam | AdamW:
    """The optimizer named by the configuration, over the model's parameters."""
    params = model.parameters()
    if config.optimizer == "sgd":
        return SGD(params, config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(params, config.lr, weight_decay=config.weight_decay)
    return AdamW(params, config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: Any) -> LRScheduler | None:
    """The learning-rate schedule named by the configuration (stepped once per epoch).

    Its base rate is ``optimizer.lr`` (``config.lr`` for a fresh optimizer). With
    ``warmup_epochs`` K > 0, epochs 0 .. K-1 train at lr * (t + 1) / (K + 1) (LinearLR, LR3)
    and the schedule proper starts from lr at epoch K over the remaining epochs - K
    (SequentialLR, LR9-LR10); "none" then keeps lr.
    """
    K = config.warmup_epochs
    main: LRScheduler | None = None
    if config.schedule == "step":
        main = StepLR(optimizer, step_size=max(1, (config.epochs - K) // 3), gamma=0.1)
    elif config.schedule == "cosine":
        main = CosineAnnealingLR(optimizer, T_max=max(1, config.epochs - K))
    if K == 0:
        return main
    warmup = LinearLR(optimizer, start_factor=1 / (K + 1), end_factor=1.0, total_iters=K)
    if main is None:
        return warmup  # (LR3) stays at lr from epoch K on
    return SequentialLR(optimizer, [warmup, main], milestones=[K])


def _changed_settings(saved: Any, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(name, saved value, new value) for each run setting that differs from the checkpoint's."""
    if not isinstance(saved, dict):
        return []  # a checkpoint written without a configuration: nothing to compare
    names = [n for n in RUN_SETTINGS if n != "momentum" or config.optimizer == "sgd"]
    current = asdict(config)
    return [(n, saved[n], current[n]) for n in names if n in saved and saved[n] != current[n]]


def _resume(
    path: Path, model: Module, optimizer: Any, config: TrainConfig
) -> tuple[int, list[Any]]:
    """Restore the model and optimizer from ``path``; return (completed epochs, history).

    The optimizer's rate is set back to ``config.lr``: the caller builds the schedule
    from it and moves the schedule to the completed epochs.
    """
    changed = _changed_settings(load_model_metadata(path).get("config"), config)
    if changed:
        raise ParameterError(
            "train: cannot resume with other settings; expected "
            + ", ".join(f"{name}={old!r}" for name, old, _ in changed)
            + f" as in {path}, got "
            + ", ".join(f"{name}={new!r}" for name, _, new in changed)
            + " (only epochs and lr may change on resume; start a new run in another "
            "directory to change the others)"
        )
    # The scheduler is rebuilt from the configuration (below), so it is not restored here.
    restored = load_checkpoint(path, model, optimizer)
    optimizer.lr = config.lr
    log.info("resumed from %s after epoch %d", path, restored["epoch"])
    return int(restored["epoch"]), list(restored["state"].get("history", []))


@dataclass
class Evaluation:
    """Loss, accuracy and per-sample predictions of a model on a dataset."""

    loss: float
    accuracy: float
    predictions: numpy.ndarray
    labels: numpy.ndarray


def evaluate(
    model: Module,
    dataset: ArrayDataset,
    *,
    batch_size: int = 500,
    device: str = "cpu",
    loss_fn: Callable[..., Tensor] | None = None,
) -> Evaluation:
    """Mean loss (cross-entropy unless ``loss_fn`` is given), accuracy and predictions in
    eval mode; the training flag is restored."""
    was_training = model.training
    model.eval()
    loss_fn = CrossEntropyLoss() if loss_fn is None else loss_fn
    total_loss = 0.0
    predictions = []
    try:
        with no_grad():  # forward only: nothing recorded, no cache kept
            for x, labels in DataLoader(dataset, batch_size, shuffle=False, device=device):
                logits = model(x).data
                loss = loss_fn(logits, labels)
                total_loss += float(loss.item()) * len(labels)
                predictions.append(to_host(get_xp(logits).argmax(logits, axis=1)))
    finally:
        model.train(was_training)
    predicted = numpy.concatenate(predictions) if predictions else numpy.zeros(0, numpy.int64)
    truth = to_host(dataset.labels)
    accuracy = float((predicted == truth).mean()) if len(truth) else float("nan")
    return Evaluation(total_loss / max(len(truth), 1), accuracy, predicted, truth)


def train_step(
    model: Module,
    loss_fn: Callable[..., Tensor],
    optimizer: Any,
    x: Array,
    labels: Array,
    *,
    clip_grad_norm: float | None = None,
) -> tuple[Array, Array]:
    """One gradient-descent step; returns the (device) loss and the number of correct labels.

    ``loss_fn(logits, labels)`` is any loss returning a 0-d Tensor (CrossEntropyLoss, or a
    function of convprop.nn.functional ops). With ``clip_grad_norm`` the gradients are
    rescaled to that total 2-norm at most between backward and step (CLIP1-CLIP4).
    """
    logits = model(x)
    loss = loss_fn(logits, labels)
    optimizer.zero_grad()
    loss.backward()  # the recorded nodes' backwards in reverse order (GR1)-(GR3)
    if clip_grad_norm is not None:
        clip_grad_norm_(model.parameters(), clip_grad_norm)  # (CLIP1)-(CLIP4)
    optimizer.step()
    scores = logits.data
    correct = (get_xp(scores).argmax(scores, axis=1) == labels).sum() if scores.ndim == 2 else 0
    return loss.data, correct


PROGRESS_INTERVAL = 5.0
"""Seconds between progress updates when stderr is a file or pipe (a log), not a terminal."""


def progress_interval(stream: Any) -> float:
    """tqdm's ``mininterval``: 0.1 s on a terminal, PROGRESS_INTERVAL for a log."""
    try:
        interactive = bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        interactive = False
    return 0.1 if interactive else PROGRESS_INTERVAL


def _describe(record: dict[str, Any], epochs: int) -> str:
    """One human-readable line per epoch for the log."""
    line = (
        f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.4f}, "
        f"accuracy {record['train_accuracy']:.4f}"
    )
    if record["test_loss"] is not None:
        line += f"; test loss {record['test_loss']:.4f}, accuracy {record['test_accuracy']:.4f}"
    return line + f"; lr {record['lr']:.3g}; {record['seconds']:.1f} s"


def fit(
    model: Module,
    train_set: ArrayDataset,
    test_set: ArrayDataset | None,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    loss_fn: Callable[..., Tensor] | None = None,
    optimizer: Any = None,
    distributed: bool = False,
) -> list[dict[str, Any]]:
    """Train ``model`` and return the history: one dict of metrics per epoch.

    Parameters
    ----------
    model : Module
        Any Module producing logits (N, classes): convprop's layers, a registered class
        of the user's, or an unregistered one (whose files then hold the weights alone).
    train_set, test_set : ArrayDataset
        Images (N, C, H, W) and integer labels (N,); test_set may be None.
    config : TrainConfig
    out_dir : path or None
        Where ``checkpoint.safetensors`` (each epoch, atomically) and ``model.safetensors``
        (at the end) go; None writes nothing.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors``: with the same config the run ends
        with exactly the weights of an uninterrupted run. ``config.epochs`` and
        ``config.lr`` may differ from the checkpoint's (the schedule follows them from the
        next epoch on); the other settings of ``RUN_SETTINGS`` may not.
    loss_fn : callable, optional
        ``loss_fn(logits, labels) -> 0-d Tensor``; CrossEntropyLoss by default. Also used
        for the test loss.
    optimizer : convprop.optim optimizer, optional
        Used instead of the one ``config`` names (its ``lr`` is then the schedule's base).
    distributed : bool
        Data-parallel over the processes started by ``mpiexec -n W`` (convprop.distributed;
        one process when not launched): ``config.batch_size`` is the global batch, split
        across the ranks (DP1, DP2), and the gradients are its mean (DP3). Every rank
        starts from rank 0's weights and can resume from ``out_dir``'s checkpoint; rank 0
        alone writes files and shows the progress bar. A rank that raises ends the job.

    Raises
    ------
    ParameterError
        For an invalid configuration (before anything is written), or on resume with run
        settings other than the checkpoint's.
    OSError
        Before the first step, when ``out_dir`` cannot be created or written.
    TypeError
        Before the first step, when the model's state cannot be stored (an architecture
        argument that is not JSON data, for a registered class).
    FileNotFoundError
        On resume without ``out_dir`` or without a checkpoint in it.
    TrainingDivergedError
        When the loss becomes NaN or infinite; the message names the epoch, the step and
        the last good checkpoint, which is left unchanged.
    """
    if not distributed:
        return _fit(model, train_set, test_set, config, out_dir, resume, loss_fn, optimizer, None)
    from convprop.distributed.training import DataParallel

    parallel = DataParallel((TrainingDivergedError,))
    with parallel.guard():
        return _fit(
            model, train_set, test_set, config, out_dir, resume, loss_fn, optimizer, parallel
        )


def _fit(
    model: Module,
    train_set: ArrayDataset,
    test_set: ArrayDataset | None,
    config: TrainConfig,
    out_dir: str | Path | None,
    resume: bool,
    loss_fn: Callable[..., Tensor] | None,
    optimizer: Any,
    parallel: Any,
) -> list[dict[str, Any]]:
    """fit's loop; ``parallel`` is a convprop.distributed.DataParallel or None."""
    main = parallel is None or parallel.is_main  # the rank that writes and shows progress
    config.validate()
    if optimizer is None:
        optimizer = make_optimizer(config, model)
    loss_fn = CrossEntropyLoss() if loss_fn is None else loss_fn
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and main:
        check_writable(out, model)  # never find out after an epoch of work
    history: list[dict[str, Any]] = []
    completed = 0
    if resume:
        if out is None:
            raise FileNotFoundError(
                "train: cannot resume without out_dir; expected the directory holding "
                f"{CHECKPOINT_NAME}, got None"
            )
        if not (out / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(
                f"train: cannot resume; expected a checkpoint at {out / CHECKPOINT_NAME}, "
                "found none"
            )
        completed, history = _resume(out / CHECKPOINT_NAME, model, optimizer, config)
        if completed >= config.epochs and main:
            log.warning(
                "train: nothing to train; the run in %s has completed %d epochs of the %d "
                "asked (pass --epochs with more than %d to train longer)",
                out,
                completed,
                config.epochs,
                completed,
            )
    scheduler = make_scheduler(config, optimizer)
    if scheduler is not None and completed:
        # one scheduler step per completed epoch, as in an uninterrupted run
        scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": completed})
    augment = (
        standard_augmentation(config.augment, train_set.sample_shape) if config.augment else None
    )
    if parallel is None:
        loader: Any = DataLoader(
            train_set,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            device=config.device,
            transform=augment,  # batch k of epoch e draws from (seed, e, k): (AUG3)
        )
    else:
        parallel.prepare(model, optimizer)  # every rank from rank 0's state
        loader = parallel.loader(
            train_set,
            config.batch_size,
            seed=config.seed,
            device=config.device,
            transform=augment,  # the whole batch's draws (AUG3), then this rank's part
        )  # (DP1), (DP2)
    model.train()
    for epoch in range(completed + 1, config.epochs + 1):
        started = time.perf_counter()
        if parallel is not None:
            parallel.begin_epoch(model, config.seed, epoch)
        total_loss, total_correct, seen = 0.0, 0, 0
        norms = GradientNorms(model)  # (DIAG1), per epoch
        bar = tqdm(
            loader.iter_epoch(epoch),
            total=len(loader),
            disable=not (config.progress and main),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            leave=True,
            mininterval=progress_interval(sys.stderr),
        )
        try:
            for step, (x, labels) in enumerate(bar, start=1):
                # Overflow on the way to a NaN is reported once, by the guard below.
                with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    if parallel is None:
                        loss, correct = train_step(
                            model,
                            loss_fn,
                            optimizer,
                            x,
                            labels,
                            clip_grad_norm=config.clip_grad_norm,
                        )
                        count = len(labels)
                    else:  # the global batch's loss: a NaN on any rank stops all at this step
                        loss, correct, count = parallel.train_step(
                            model,
                            loss_fn,
                            optimizer,
                            x,
                            labels,
                            clip_grad_norm=config.clip_grad_norm,
                        )
                loss_value = float(loss)  # one host sync per step: the loss guard needs it
                if not math.isfinite(loss_value):
                    raise TrainingDivergedError(_diverged(loss_value, epoch, step, optimizer, out))
                total_loss += loss_value * count
                total_correct += int(correct)
                seen += int(count)
                # shown at the bar's next update (every mininterval), not one line per step
                bar.set_postfix(
                    loss=f"{total_loss / seen:.4f}",
                    acc=f"{total_correct / seen:.3f}",
                    refresh=False,
                )
                norms.add()  # this step's gradients: one dot product per parameter
        finally:
            bar.close()
        record: dict[str, Any] = {
            "epoch": epoch,
            "lr": float(optimizer.lr),
            "train_loss": total_loss / max(seen, 1),
            "train_accuracy": total_correct / max(seen, 1),
            "test_loss": None,
            "test_accuracy": None,
            "grad_norms": norms.means(),  # (DIAG1)
        }
        if scheduler is not None:
            scheduler.step()
        if parallel is not None:
            parallel.end_epoch(model)  # rank 0's running statistics everywhere
        if test_set is not None and parallel is not None:
            record["test_loss"], record["test_accuracy"] = parallel.evaluate(
                evaluate,
                model,
                test_set,
                batch_size=config.eval_batch_size,
                device=config.device,
                loss_fn=loss_fn,
            )
        elif test_set is not None:
            result = evaluate(
                model,
                test_set,
                batch_size=config.eval_batch_size,
                device=config.device,
                loss_fn=loss_fn,
            )
            record["test_loss"], record["test_accuracy"] = result.loss, result.accuracy
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if main:
            log.info("%s", _describe(record, config.epochs))
        if out is not None and main:
            out.mkdir(parents=True, exist_ok=True)
            state = {
                "history": history,
                "config": asdict(config),
            }
            save_checkpoint(
                out / CHECKPOINT_NAME,
                model,
                optimizer,
                scheduler=scheduler,
                epoch=epoch,
                state=state,
            )
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
        metadata = {"history": history, "config": asdict(config)}
        if describe(model) is not None:
            save_model(out / MODEL_NAME, model, metadata=metadata)
        else:
            save_weights(out / MODEL_NAME, model, metadata=metadata)
            log.info(
                "%s holds the weights only: %s is not a registered class (see "
                "convprop.nn.register); load it with model.load_state_dict("
                "convprop.io.load_weights(path))",
                out / MODEL_NAME,
                type(model).__name__,
            )
    return history


def _diverged(loss: float, epoch: int, step: int, optimizer: Any, out: Path | None) -> str:
    """The message of TrainingDivergedError: where it happened and what is left to resume."""
    where = f"train: the loss became {loss} at epoch {epoch}, step {step} (lr={optimizer.lr})"
    # every finished epoch of this run (or of the run it resumed) wrote the checkpoint; in
    # epoch 1 a file there is left from an earlier run, not a good state of this one
    if out is not None and epoch > 1:
        return (
            f"{where}; the last good checkpoint is {out / CHECKPOINT_NAME} (epoch {epoch - 1}), "
            "unchanged: resume from it with a lower learning rate"
        )
    return (
        f"{where}; no epoch of this run finished, so there is no good checkpoint: start again "
        "with a lower learning rate"
    )
