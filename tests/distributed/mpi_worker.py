"""Run by test_distributed_mpi.py under ``mpiexec -n W``: one scenario per launch; every
rank writes what it saw to OUT/<scenario>.rank<r>.json for the test to compare.

    python tests/distributed/mpi_worker.py SCENARIO OUT
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from convprop import distributed, nn
from convprop.data import DataLoader, from_arrays
from convprop.io import load_checkpoint, load_weights
from convprop.models import build_model
from convprop.optim import SGD
from convprop.train import TrainConfig, TrainingDivergedError, fit, train_step

STEPS = 10


def digest(model: nn.Module) -> str:
    """The bits of every parameter and buffer."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def small_net(batchnorm: type[nn.Module]) -> nn.Sequential:
    """Conv → BatchNorm → ReLU → pool → Linear, float64, no dropout; the same on every rank."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=1, dtype="float64"),
        batchnorm(4, dtype="float64"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5, rng=2, dtype="float64"),
    )


def dataset(n: int, seed: int = 0, dtype: type = np.float64) -> Any:
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, 1, 8, 8)).astype(dtype)
    return from_arrays(images, rng.integers(0, 5, n))


def equivalence(out: Path, batch: int) -> dict[str, Any]:
    """W ranks with the global batch split (SyncBatchNorm) against one process with the
    whole batch (BatchNorm2d), 10 SGD-momentum steps, float64."""
    comm = distributed.init()
    data = dataset(3 * batch + 5)
    parallel = distributed.DataParallel()
    model = distributed.convert_sync_batchnorm(small_net(nn.BatchNorm2d))
    if comm.rank == 1:  # another start on rank 1: rank 0's weights must win
        model[0].weight.data[...] = 7.0
    optimizer = SGD(model.parameters(), 0.05, momentum=0.9)
    parallel.prepare(model, optimizer)
    loader = parallel.loader(data, batch, seed=4, device="cpu")
    losses, digests, seen = [], [], []
    epoch = 0
    while len(losses) < STEPS:
        for x, labels in loader.iter_epoch(epoch):
            loss, _, count = parallel.train_step(model, nn.CrossEntropyLoss(), optimizer, x, labels)
            losses.append(loss)
            digests.append(digest(model))
            seen.append(int(count))
            if len(losses) == STEPS:
                break
        epoch += 1
    # the same run on one process, batch = the global batch, plain BatchNorm2d
    reference = small_net(nn.BatchNorm2d)
    ref_optimizer = SGD(reference.parameters(), 0.05, momentum=0.9)
    ref_loader = DataLoader(data, batch, shuffle=True, seed=4)
    ref_losses: list[float] = []
    epoch = 0
    while len(ref_losses) < STEPS:
        for x, labels in ref_loader.iter_epoch(epoch):
            loss_value, _ = train_step(reference, nn.CrossEntropyLoss(), ref_optimizer, x, labels)
            ref_losses.append(float(loss_value))
            if len(ref_losses) == STEPS:
                break
        epoch += 1
    weights = {k: np.asarray(v) for k, v in model.state_dict().items()}
    ref_weights = {k: np.asarray(v) for k, v in reference.state_dict().items()}
    largest = max(
        float(np.max(np.abs(weights[k] - ref_weights[k]) / (1 + np.abs(ref_weights[k]))))
        for k in weights
    )
    shards = [
        [b.tolist() for b in loader.sampler.batches(e)] for e in range(3)
    ]  # this rank's parts
    # rank 1's optimizer state is spoilt, then rank 0's is sent to every rank
    state = optimizer.state_dict()
    if comm.rank == 1:
        state = {k: (v * 0 + 5 if hasattr(v, "shape") else v) for k, v in state.items()}
        optimizer.load_state_dict(state)
    distributed.broadcast_optimizer_state(optimizer)
    optimizer_digest = hashlib.sha256(
        b"".join(
            np.ascontiguousarray(v).tobytes()
            for v in optimizer.state_dict().values()
            if hasattr(v, "shape")
        )
    ).hexdigest()
    # allreduce_gradients in one call: gradients r + 1 weighted by counts r + 1
    for param in model.parameters():
        param.grad[...] = comm.rank + 1.0
    total = distributed.allreduce_gradients(model, count=comm.rank + 1)
    mean_gradient = float(model.parameters()[0].grad.ravel()[0])
    return {
        "losses": losses,
        "reference_losses": ref_losses,
        "digests": digests,
        "counts": seen,
        "largest_weight_difference": largest,
        "shards": shards,
        "optimizer_digest": optimizer_digest,
        "allreduce_total": total,
        "mean_gradient": mean_gradient,
        "num_samples": len(data),
    }


def resume(out: Path) -> dict[str, Any]:
    """fit(distributed=True), 3 epochs straight, against 1 epoch, a stop, and a resume."""
    data, test = dataset(36, seed=1, dtype=np.float32), dataset(10, seed=2, dtype=np.float32)
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, optimizer="sgd", progress=False)

    def run(directory: Path, epochs: int, again: bool) -> tuple[list[Any], str]:
        model = build_model("lenet", num_classes=5, in_channels=1, image_size=8, rng=0)
        config.epochs = epochs
        history = fit(model, data, test, config, out_dir=directory, resume=again, distributed=True)
        return history, digest(model)

    straight, straight_digest = run(out / "straight", 3, False)
    run(out / "stopped", 1, False)
    resumed, resumed_digest = run(out / "stopped", 3, True)
    rank0_written = (out / "straight" / "model.safetensors").exists()
    files = sorted(p.name for p in (out / "straight").iterdir())
    final = load_weights(out / "straight" / "model.safetensors")
    model = build_model("lenet", num_classes=5, in_channels=1, image_size=8, rng=0)
    model.load_state_dict(final)
    return {
        "straight": straight_digest,
        "resumed": resumed_digest,
        "file_matches_model": digest(model) == straight_digest,
        "loss_histories": [
            [r["train_loss"] for r in straight],
            [r["train_loss"] for r in resumed],
        ],
        "test_accuracy": [r["test_accuracy"] for r in straight],
        "files": files,
        "written": rank0_written,
    }


def options(out: Path) -> dict[str, Any]:
    """fit with augmentation and gradient clipping: distributed against one process
    (float64, no dropout, no BatchNorm), and a resumed distributed run against a straight one."""
    data = dataset(32, seed=6)
    config = TrainConfig(
        epochs=2,
        batch_size=8,
        lr=0.1,
        optimizer="sgd",
        progress=False,
        augment=["crop", "flip"],
        clip_grad_norm=0.5,
    )

    def run(directory: Path | None, epochs: int, parallel: bool, again: bool = False) -> Any:
        model = build_model(
            "lenet5", num_classes=5, in_channels=1, image_size=8, rng=0, dtype="float64"
        )
        config.epochs = epochs
        fit(model, data, None, config, out_dir=directory, resume=again, distributed=parallel)
        return model

    alone = run(None, 2, False)  # this rank, as one process
    together = run(out / "options", 2, True)
    run(out / "options-stopped", 1, True)
    resumed = run(out / "options-stopped", 2, True, again=True)
    a, b = alone.state_dict(), together.state_dict()
    largest = max(float(np.max(np.abs(a[k] - b[k]) / (1 + np.abs(a[k])))) for k in a)
    return {
        "largest_difference_to_one_process": largest,
        "resumed_equals_straight": digest(resumed) == digest(together),
        "digest": digest(together),
    }


def nan(out: Path) -> dict[str, Any]:
    """Rank 1's loss becomes NaN at epoch 2, step 3: every rank must stop there."""
    comm = distributed.init()
    data = dataset(32, seed=3, dtype=np.float32)
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, optimizer="sgd", progress=False)
    calls = {"n": 0}
    steps_per_epoch = 4

    def loss_fn(logits: Any, labels: Any) -> Any:
        calls["n"] += 1
        loss = nn.functional.cross_entropy(logits, labels)
        if comm.rank == 1 and calls["n"] == steps_per_epoch + 3:
            return loss * float("nan")
        return loss

    model = build_model("lenet", num_classes=5, in_channels=1, image_size=8, rng=0)
    try:
        fit(model, data, None, config, out_dir=out / "nan", loss_fn=loss_fn, distributed=True)
        message = None
    except TrainingDivergedError as error:
        message = str(error)
    distributed.barrier()
    checkpoint = load_checkpoint(
        out / "nan" / "checkpoint.safetensors",
        build_model("lenet", num_classes=5, in_channels=1, image_size=8, rng=0),
        SGD(model.parameters(), 0.05, momentum=0.9),
    )
    return {"message": message, "checkpoint_epoch": checkpoint["epoch"]}


def fail(out: Path, how: str) -> dict[str, Any]:
    """Rank 1 raises (or is killed) in the middle of epoch 1; the job must end."""
    comm = distributed.init()
    data = dataset(64, seed=5, dtype=np.float32)
    config = TrainConfig(epochs=50, batch_size=8, lr=0.05, optimizer="sgd", progress=False)
    calls = {"n": 0}

    def loss_fn(logits: Any, labels: Any) -> Any:
        calls["n"] += 1
        if comm.rank == 1 and calls["n"] == 3:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("injected failure in the loss")
        return nn.functional.cross_entropy(logits, labels)

    model = build_model("lenet", num_classes=5, in_channels=1, image_size=8, rng=0)
    fit(model, data, None, config, loss_fn=loss_fn, distributed=True)
    return {"finished": True}  # never reached: the job ends first


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    comm = distributed.init()
    if scenario.startswith("equivalence"):
        result = equivalence(out, int(scenario.split(":")[1]))
    elif scenario == "resume":
        result = resume(out)
    elif scenario == "options":
        result = options(out)
    elif scenario == "nan":
        result = nan(out)
    else:
        result = fail(out, scenario)
    result["world_size"] = comm.size
    name = scenario.replace(":", "-")
    (out / f"{name}.rank{comm.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
