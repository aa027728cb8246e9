"""Training trajectories: convprop and PyTorch, same weights and batches, agree step for step.

A network built from convprop.nn and the same network built from torch.nn, both in float64, start
from the same weights (convprop's, loaded into PyTorch with ``load_state_dict(strict=True)``) and
train on the same fixed batches. After every step the losses agree to 1e-9 relative; at the end
every parameter and BatchNorm buffer does too. A third network (conv, sigmoid, transposed conv)
learns to reconstruct its input under MSELoss. This witnesses, in one test, the hand-written
gradients of every layer on the path (conv (B1)-(B3), pooling, activations (delta ⊙ f'),
batch norm (BN8)-(BN11), linear, softmax cross-entropy, the residual sum) and the update rules
(SGD1)-(SGD6), (ADAM1)-(ADAM7), (ADAMW3), (LR1), (LR2). PyTorch is an extra witness here; the
per-op references and finite differences live in the op tests.

Dropout is left out: its mask comes from a different generator in each library (its layer test
checks it separately).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from convprop import nn, optim

RTOL = 1e-9
STEPS = 20
BATCH = 8
DISTINCT = 4  # batches seen in turn, so that the loss can fall within STEPS steps
NUM_CLASSES = 10
IMAGE = 12


class TorchResidual(torch.nn.Module):
    """y = x + body(x), with the body under the name convprop's Residual uses ("body")."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# ---------------------------------------------------------------------------------------------
# The networks, built twice: once from convprop.nn, once from torch.nn, layer for layer.
# ---------------------------------------------------------------------------------------------


def plain_cnn() -> tuple[nn.Sequential, torch.nn.Module]:
    """conv → ReLU → max-pool → strided conv → BN → ReLU → flatten → FC → ReLU → FC (12×12 in)."""
    rng = np.random.default_rng(10)
    ours = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=rng, dtype="float64"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        # No bias before BatchNorm: BN cancels it, so its exact gradient is 0 and Adam would
        # normalise rounding noise (about 1e-17) into steps of size lr in either library.
        nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False, rng=rng, dtype="float64"),
        nn.BatchNorm2d(8, dtype="float64"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 3 * 3, 16, rng=rng, dtype="float64"),
        nn.ReLU(),
        nn.Linear(16, NUM_CLASSES, rng=rng, dtype="float64"),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 3 * 3, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, NUM_CLASSES),
    )
    return ours, theirs


def residual_cnn() -> tuple[nn.Sequential, torch.nn.Module]:
    """conv → tanh → avg-pool → residual(conv-BN-leaky-conv) → ReLU → adaptive pool → FC.

    The convolutions name their algorithm, so that the trajectory runs through winograd, fft
    and direct as well as the automatic choice of the plain network.
    """
    rng = np.random.default_rng(11)
    f64: dict[str, Any] = {"rng": rng, "dtype": "float64"}
    ours = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, algorithm="winograd", **f64),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Residual(
            nn.Sequential(
                nn.Conv2d(4, 4, 3, padding=1, bias=False, algorithm="fft", **f64),
                nn.BatchNorm2d(4, dtype="float64"),
                nn.LeakyReLU(0.1),
                nn.Conv2d(4, 4, 3, padding=1, algorithm="direct", **f64),
            )
        ),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, NUM_CLASSES, **f64),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        TorchResidual(
            torch.nn.Sequential(
                torch.nn.Conv2d(4, 4, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(4),
                torch.nn.LeakyReLU(0.1),
                torch.nn.Conv2d(4, 4, 3, padding=1),
            )
        ),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 2 * 2, NUM_CLASSES),
    )
    return ours, theirs


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """PyTorch on one thread: these tiny networks run ~100× slower with two threads on two cores
    shared with another test worker. The previous setting is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def autoencoder() -> tuple[nn.Sequential, torch.nn.Module]:
    """strided conv → sigmoid → transposed conv back to 12×12, trained on MSE to its input."""
    rng = np.random.default_rng(12)
    ours = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1, rng=rng, dtype="float64"),
        nn.Sigmoid(),
        nn.ConvTranspose2d(
            4, 1, 3, stride=2, padding=1, output_padding=1, rng=rng, dtype="float64"
        ),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
        torch.nn.Sigmoid(),
        torch.nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1),
    )
    return ours, theirs


def twin(build: Callable[[], tuple[nn.Sequential, torch.nn.Module]]) -> tuple[Any, Any]:
    """Both networks in float64, PyTorch's holding copies of convprop's initial weights."""
    ours, theirs = build()
    theirs = theirs.double()
    state = {name: torch.from_numpy(np.array(value)) for name, value in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)
    return ours, theirs


def batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """STEPS batches of 1×12×12 images with labels 0..9: DISTINCT fixed batches, cycled."""
    rng = np.random.default_rng(2024)
    distinct = [
        (
            rng.standard_normal((BATCH, 1, IMAGE, IMAGE)),
            rng.integers(0, NUM_CLASSES, size=BATCH),
        )
        for _ in range(DISTINCT)
    ]
    return [distinct[step % DISTINCT] for step in range(STEPS)]


# ---------------------------------------------------------------------------------------------
# The optimizers, configured identically in both libraries.
# ---------------------------------------------------------------------------------------------


def sgd_nesterov(ours: list[nn.Parameter], theirs: Any) -> tuple[Any, Any, None, None]:
    kwargs = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
    return optim.SGD(ours, **kwargs), torch.optim.SGD(theirs, foreach=False, **kwargs), None, None


def adam(ours: list[nn.Parameter], theirs: Any) -> tuple[Any, Any, None, None]:
    kwargs: dict[str, Any] = {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 1e-3}
    return optim.Adam(ours, **kwargs), torch.optim.Adam(theirs, foreach=False, **kwargs), None, None


def adamw_cosine(ours: list[nn.Parameter], theirs: Any) -> tuple[Any, Any, Any, Any]:
    kwargs: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.05}
    ours_opt = optim.AdamW(ours, **kwargs)
    theirs_opt = torch.optim.AdamW(theirs, foreach=False, **kwargs)
    # T_max = 2 with a step every 5 steps: the rate falls to eta_min and rises again.
    return (
        ours_opt,
        theirs_opt,
        optim.CosineAnnealingLR(ours_opt, T_max=2, eta_min=1e-3),
        torch.optim.lr_scheduler.CosineAnnealingLR(theirs_opt, T_max=2, eta_min=1e-3),
    )


def sgd_step_lr(ours: list[nn.Parameter], theirs: Any) -> tuple[Any, Any, Any, Any]:
    kwargs = {"lr": 0.1, "momentum": 0.5, "dampening": 0.1, "weight_decay": 1e-4}
    ours_opt = optim.SGD(ours, **kwargs)
    theirs_opt = torch.optim.SGD(theirs, foreach=False, **kwargs)
    return (
        ours_opt,
        theirs_opt,
        optim.StepLR(ours_opt, step_size=2, gamma=0.5),
        torch.optim.lr_scheduler.StepLR(theirs_opt, step_size=2, gamma=0.5),
    )


SCHEDULE_EVERY = 5


def run_both(
    build: Callable[[], tuple[nn.Sequential, torch.nn.Module]],
    make_optimizers: Callable[[list[nn.Parameter], Any], tuple[Any, Any, Any, Any]],
) -> tuple[nn.Sequential, torch.nn.Module, list[float], list[float], list[float]]:
    """Train both twins on the same batches; return them, both loss lists and the rates used."""
    ours, theirs = twin(build)
    ours_opt, theirs_opt, ours_sched, theirs_sched = make_optimizers(
        ours.parameters(), theirs.parameters()
    )
    reconstruct = build is autoencoder
    ours_loss_fn: Any = nn.MSELoss() if reconstruct else nn.CrossEntropyLoss()
    theirs_loss_fn: Any = torch.nn.MSELoss() if reconstruct else torch.nn.CrossEntropyLoss()
    ours_losses: list[float] = []
    theirs_losses: list[float] = []
    rates: list[float] = []
    for step, (x, labels) in enumerate(batches(), start=1):
        target = x if reconstruct else labels
        rates.append(ours_opt.lr)
        ours_opt.zero_grad()
        loss = ours_loss_fn(ours(x), target)
        loss.backward()
        ours_opt.step()
        ours_losses.append(float(loss))

        theirs_opt.zero_grad()
        torch_loss = theirs_loss_fn(theirs(torch.from_numpy(x)), torch.from_numpy(target))
        torch_loss.backward()
        theirs_opt.step()
        theirs_losses.append(torch_loss.item())

        if ours_sched is not None and step % SCHEDULE_EVERY == 0:
            ours_sched.step()
            theirs_sched.step()
    return ours, theirs, ours_losses, theirs_losses, rates


OPTIMIZERS = {
    "sgd-nesterov-wd": sgd_nesterov,
    "adam-l2": adam,
    "adamw-cosine": adamw_cosine,
    "sgd-dampening-steplr": sgd_step_lr,
}
NETWORKS = {"plain": plain_cnn, "residual": residual_cnn, "autoencoder": autoencoder}
CASES = [
    pytest.param(build, make_optimizers, id=f"{net}-{opt}")
    for net, build in NETWORKS.items()
    for opt, make_optimizers in OPTIMIZERS.items()
]


@pytest.mark.parametrize(("build", "make_optimizers"), CASES)
def test_loss_trajectory_matches_torch_step_for_step(
    build: Callable[[], tuple[nn.Sequential, torch.nn.Module]],
    make_optimizers: Callable[[list[nn.Parameter], Any], tuple[Any, Any, Any, Any]],
) -> None:
    ours, theirs, ours_losses, theirs_losses, _ = run_both(build, make_optimizers)
    for step, (mine, reference) in enumerate(zip(ours_losses, theirs_losses, strict=True)):
        assert mine == pytest.approx(reference, rel=RTOL, abs=0), f"loss differs at step {step}"
    # The run really trained (the last pass over the batches beats the first), so the
    # agreement is not that of two networks standing still.
    assert sum(ours_losses[-DISTINCT:]) < sum(ours_losses[:DISTINCT])
    reference_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        expected = reference_state[name].detach().numpy()
        assert value.dtype == expected.dtype, name
        np.testing.assert_allclose(value, expected, rtol=RTOL, atol=0, err_msg=name)


def test_schedules_change_the_rate_during_the_trajectory() -> None:
    """The scheduled run uses the rates of (LR2) per block of 5 steps: the schedule is exercised."""
    *_, rates = run_both(plain_cnn, adamw_cosine)
    midpoint = 1e-3 + (0.02 - 1e-3) / 2
    expected = [0.02] * 5 + [midpoint] * 5 + [1e-3] * 5 + [midpoint] * 5
    assert rates == pytest.approx(expected, rel=1e-12)
