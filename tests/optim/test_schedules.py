"""LinearLR (LR3), OneCycleLR (LR4-LR6), ReduceLROnPlateau (LR7-LR8), SequentialLR (LR9-LR10).

Witnesses: the naive references of tests/reference_training.py, and PyTorch's schedulers
stepped side by side over many steps (rates, and OneCycleLR's momentum); state-dict round
trips through JSON (as checkpoints store them) resume exactly.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as torch_lr

import reference_training as ref
from convprop.errors import ParameterError
from convprop.nn import Parameter
from convprop.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LinearLR,
    OneCycleLR,
    Optimizer,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

RTOL = 1e-12


def optimizers(lr: float, kind: str = "sgd") -> tuple[Optimizer, torch.optim.Optimizer]:
    """A convprop optimizer and its PyTorch twin over one parameter each."""
    twin = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    twin.grad = torch.zeros(2, dtype=torch.float64)
    if kind == "sgd":
        ours: Optimizer = SGD([Parameter(np.zeros(2))], lr=lr, momentum=0.9)
        theirs: torch.optim.Optimizer = torch.optim.SGD([twin], lr=lr, momentum=0.9)
    elif kind == "adam":
        ours, theirs = Adam([Parameter(np.zeros(2))], lr=lr), torch.optim.Adam([twin], lr=lr)
    else:
        ours, theirs = AdamW([Parameter(np.zeros(2))], lr=lr), torch.optim.AdamW([twin], lr=lr)
    return ours, theirs


def torch_rate(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def close(a: float, b: float, scale: float) -> bool:
    """Equal to RTOL relative, or RTOL of the schedule's scale near zero (torch recurses)."""
    return abs(a - b) <= RTOL * max(abs(b), scale)


def step_both(ours: Any, theirs: Any, torch_optimizer: torch.optim.Optimizer) -> None:
    torch_optimizer.step()  # PyTorch warns when a scheduler steps before its optimizer
    ours.step()
    theirs.step()


# ---------------------------------------------------------------------------------------------
# LinearLR (LR3)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start_factor", [1.0 / 3, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("end_factor", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("total_iters", [1, 4, 7])
def test_linear_lr_matches_reference_lr3_and_torch(
    start_factor: float, end_factor: float, total_iters: int
) -> None:
    opt, torch_opt = optimizers(0.3)
    ours = LinearLR(opt, start_factor, end_factor, total_iters)
    theirs = torch_lr.LinearLR(torch_opt, start_factor, end_factor, total_iters)
    for t in range(3 * total_iters + 5):
        rate = ours.get_last_lr()[0]
        assert rate == opt.lr
        want = ref.linear_lr(0.3, start_factor, end_factor, total_iters, t)
        assert close(rate, want, 0.3)
        assert close(rate, torch_rate(torch_opt), 0.3), t
        step_both(ours, theirs, torch_opt)


def test_linear_lr_defaults_are_torchs() -> None:
    opt, torch_opt = optimizers(0.1)
    ours, theirs = LinearLR(opt), torch_lr.LinearLR(torch_opt)
    assert (ours.start_factor, ours.end_factor, ours.total_iters) == (
        theirs.start_factor,
        theirs.end_factor,
        theirs.total_iters,
    )


# ---------------------------------------------------------------------------------------------
# OneCycleLR (LR4-LR6)
# ---------------------------------------------------------------------------------------------
ONE_CYCLE_CASES = [
    {"max_lr": 1.0, "total_steps": 100},
    {"max_lr": 0.5, "total_steps": 37, "anneal_strategy": "linear"},
    {"max_lr": 0.5, "total_steps": 37, "three_phase": True},
    {"max_lr": 0.5, "total_steps": 40, "three_phase": True, "anneal_strategy": "linear"},
    {"max_lr": 2.0, "epochs": 3, "steps_per_epoch": 7, "pct_start": 0.5},
    {"max_lr": 0.1, "total_steps": 10, "pct_start": 0.0},
    {"max_lr": 0.1, "total_steps": 9, "pct_start": 0.05},
    {"max_lr": 0.1, "total_steps": 12, "pct_start": 0.9, "three_phase": True},
    {"max_lr": 0.1, "total_steps": 20, "div_factor": 10.0, "final_div_factor": 100.0},
    {"max_lr": 0.1, "total_steps": 20, "base_momentum": 0.5, "max_momentum": 0.99},
    {"max_lr": 0.1, "total_steps": 20, "base_momentum": 0.95, "max_momentum": 0.8},
    {"max_lr": 0.1, "total_steps": 20, "cycle_momentum": False},
    {"max_lr": 0.1, "total_steps": 1},
]


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("case", ONE_CYCLE_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_one_cycle_matches_reference_lr4_to_lr6_and_torch_bit_for_bit(
    case: dict[str, Any], kind: str
) -> None:
    opt, torch_opt = optimizers(0.01, kind)
    ours, theirs = OneCycleLR(opt, **case), torch_lr.OneCycleLR(torch_opt, **case)
    total = ours.total_steps
    assert total == theirs.total_steps
    settings = {
        key: case[key]
        for key in ("pct_start", "div_factor", "final_div_factor", "three_phase")
        if key in case
    }
    settings["anneal"] = case.get("anneal_strategy", "cos")
    settings["low"] = case.get("base_momentum", 0.85)
    settings["high"] = case.get("max_momentum", 0.95)
    settings["pct"] = settings.pop("pct_start", 0.3)
    settings["div"] = settings.pop("div_factor", 25.0)
    settings["final_div"] = settings.pop("final_div_factor", 1e4)
    for t in range(total + 1):
        rate = ours.get_last_lr()[0]
        assert rate == torch_rate(torch_opt), t  # the same operations: equal to the last bit
        assert opt.lr == max(rate, 0.0)
        want_rate, want_momentum = ref.one_cycle(t, max_lr=case["max_lr"], total=total, **settings)
        assert rate == pytest.approx(want_rate, rel=1e-12, abs=1e-15)
        group = torch_opt.param_groups[0]
        momentum = opt.beta1 if kind != "sgd" else opt.momentum  # type: ignore[attr-defined]
        torch_momentum = group["betas"][0] if kind != "sgd" else group["momentum"]
        assert momentum == torch_momentum
        if case.get("cycle_momentum", True):
            assert momentum == pytest.approx(want_momentum, rel=1e-12)
        if t < total:
            step_both(ours, theirs, torch_opt)
    with pytest.raises(ParameterError, match=rf"OneCycleLR: tried to step {total + 1} times; "):
        ours.step()
    with pytest.raises(ValueError, match=rf"Tried to step {total + 1} times"):
        theirs.step()
    assert ours.last_epoch == total  # the refused step changed nothing


def test_one_cycle_drives_sgd_like_torch() -> None:
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(4), rng.standard_normal((12, 4))
    param = Parameter(w0.copy())
    twin = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = SGD([param], lr=0.1, momentum=0.9, nesterov=True)
    torch_opt = torch.optim.SGD([twin], lr=0.1, momentum=0.9, nesterov=True, foreach=False)
    ours = OneCycleLR(opt, max_lr=0.5, total_steps=12)
    theirs = torch_lr.OneCycleLR(torch_opt, max_lr=0.5, total_steps=12)
    for g in grads:
        param.grad[...] = g
        twin.grad = torch.from_numpy(g.copy())
        opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()
    np.testing.assert_allclose(param.data, twin.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize(
    "case", [{"total_steps": 10, "pct_start": 0.1}, {"total_steps": 10, "pct_start": 1.0}]
)
def test_one_cycle_refuses_a_phase_torch_divides_by_zero_in(case: dict[str, Any]) -> None:
    opt, torch_opt = optimizers(0.01)
    with pytest.raises(ParameterError, match=r"OneCycleLR: a phase of the cycle has no length"):
        OneCycleLR(opt, 0.1, **case)
    with pytest.raises(ZeroDivisionError):
        theirs = torch_lr.OneCycleLR(torch_opt, 0.1, **case)
        for _ in range(10):
            torch_opt.step()
            theirs.step()


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau (LR7-LR8)
# ---------------------------------------------------------------------------------------------
PLATEAU_CASES = [
    {},
    {"patience": 0},
    {"patience": 2, "factor": 0.5, "cooldown": 2},
    {"mode": "max", "patience": 1, "factor": 0.5},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.5, "patience": 1},
    {"threshold_mode": "abs", "threshold": 1.0, "patience": 1, "min_lr": 0.01},
    {"patience": 1, "factor": 0.9, "eps": 0.02},
    {"patience": 1, "threshold": 1.0},
    {"patience": 1, "factor": 0.0},
]


@pytest.mark.parametrize("case", PLATEAU_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_plateau_matches_reference_lr7_lr8_and_torch(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(len(case))
    metrics = [float(m) for m in rng.integers(-3, 6, size=80)]  # ties and plateaus
    metrics[10] = math.nan  # never an improvement
    metrics[40:52] = [2.0] * 12
    opt, torch_opt = optimizers(0.2)
    ours = ReduceLROnPlateau(opt, **case)
    theirs = torch_lr.ReduceLROnPlateau(torch_opt, **case)
    assert opt.lr == 0.2 and ours.get_last_lr() == [0.2]  # nothing changes at construction
    want = ref.plateau_rates(metrics, 0.2, **case)
    for t, metric in enumerate(metrics):
        ours.step(metric if t % 2 else np.float64(metric))
        theirs.step(metric)
        assert opt.lr == torch_rate(torch_opt) == want[t] == ours.get_last_lr()[0], t
        assert (ours.best, ours.num_bad_epochs, ours.cooldown_counter) == (
            theirs.best,
            theirs.num_bad_epochs,
            theirs.cooldown_counter,
        )
    assert ours.last_epoch == theirs.last_epoch == len(metrics)
    if "eps" in case:
        assert opt.lr == 0.2  # 0.2 - 0.2 * 0.9 < eps: every reduction was skipped
    else:
        assert opt.lr < 0.2  # the sequences did lower the rate


# ---------------------------------------------------------------------------------------------
# SequentialLR (LR9-LR10)
# ---------------------------------------------------------------------------------------------
def build_linear_cosine(module: Any, opt: Any) -> tuple[list[Any], list[int]]:
    return [module.LinearLR(opt, 0.1, total_iters=3), module.CosineAnnealingLR(opt, 10)], [3]


def build_linear_step(module: Any, opt: Any) -> tuple[list[Any], list[int]]:
    return [module.LinearLR(opt, 0.25, total_iters=4), module.StepLR(opt, 3, 0.5)], [6]


def build_three(module: Any, opt: Any) -> tuple[list[Any], list[int]]:
    return [
        module.StepLR(opt, 2, 0.5),
        module.LinearLR(opt, 0.5, 0.1, total_iters=5),
        module.CosineAnnealingLR(opt, 7, 0.001),
    ], [5, 12]


def build_zero_and_equal(module: Any, opt: Any) -> tuple[list[Any], list[int]]:
    return [
        module.LinearLR(opt, 0.2, total_iters=2),
        module.StepLR(opt, 4, 0.1),
        module.CosineAnnealingLR(opt, 5),
    ], [0, 0]


def build_equal(module: Any, opt: Any) -> tuple[list[Any], list[int]]:
    return [
        module.LinearLR(opt, 0.2, total_iters=2),
        module.StepLR(opt, 4, 0.1),
        module.CosineAnnealingLR(opt, 5),
    ], [4, 4]


class Ours:
    LinearLR, StepLR, CosineAnnealingLR = LinearLR, StepLR, CosineAnnealingLR


SEQUENCES = [build_linear_cosine, build_linear_step, build_three, build_zero_and_equal, build_equal]


@pytest.mark.parametrize("build", SEQUENCES, ids=lambda b: b.__name__)
def test_sequential_matches_reference_lr9_lr10_and_torch(
    build: Callable[[Any, Any], tuple[list[Any], list[int]]],
) -> None:
    opt, torch_opt = optimizers(0.4)
    schedulers, milestones = build(Ours, opt)
    ours = SequentialLR(opt, schedulers, milestones)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its construction steps the first schedule early
        torch_schedulers, _ = build(torch_lr, torch_opt)
        theirs = torch_lr.SequentialLR(torch_opt, torch_schedulers, milestones)
    fresh = [type(s)(SGD([Parameter(np.zeros(1))], lr=0.4), **s._settings()) for s in schedulers]
    for t in range(40):
        rate = ours.get_last_lr()[0]
        assert rate == opt.lr
        assert close(rate, torch_rate(torch_opt), 0.4), t
        assert close(rate, theirs.get_last_lr()[0], 0.4)
        want = ref.sequential_lr([s.lr_at for s in fresh], milestones, t)
        assert rate == pytest.approx(want, rel=1e-15)
        step_both(ours, theirs, torch_opt)
    assert ours.last_epoch == 40


def test_sequential_one_cycle_then_linear_matches_torch() -> None:
    opt, torch_opt = optimizers(0.01)
    cycle = OneCycleLR(opt, 0.3, total_steps=10)
    after = LinearLR(opt, 0.5, 0.1, total_iters=6)  # its base is the cycle's initial_lr
    ours = SequentialLR(opt, [cycle, after], [10])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_cycle = torch_lr.OneCycleLR(torch_opt, 0.3, total_steps=10)
        torch_after = torch_lr.LinearLR(torch_opt, 0.5, 0.1, total_iters=6)
        theirs = torch_lr.SequentialLR(torch_opt, [torch_cycle, torch_after], [10])
    for t in range(20):
        assert close(ours.get_last_lr()[0], torch_rate(torch_opt), 0.3), t
        assert opt.momentum == torch_opt.param_groups[0]["momentum"]  # type: ignore[attr-defined]
        step_both(ours, theirs, torch_opt)
    assert after.base_lr == 0.3 / 25


# ---------------------------------------------------------------------------------------------
# State dicts: a JSON round trip (as checkpoints store them) resumes exactly
# ---------------------------------------------------------------------------------------------
def one_cycle_sgd() -> tuple[Any, Any]:
    opt = SGD([Parameter(np.zeros(1))], lr=0.2, momentum=0.5)
    return OneCycleLR(opt, 1.0, total_steps=12, three_phase=True), opt


def one_cycle_other() -> tuple[Any, Any]:
    opt = SGD([Parameter(np.zeros(1))], lr=5.0)
    return OneCycleLR(opt, 0.3, total_steps=30, anneal_strategy="linear"), opt


def warmup_cosine(lr: float = 0.2, t_max: int = 7) -> tuple[Any, Any]:
    opt = SGD([Parameter(np.zeros(1))], lr=lr)
    warmup, cosine = LinearLR(opt, 0.1, total_iters=3), CosineAnnealingLR(opt, t_max)
    return SequentialLR(opt, [warmup, cosine], [3]), opt


def linear(lr: float = 0.2, total_iters: int = 6) -> tuple[Any, Any]:
    opt = SGD([Parameter(np.zeros(1))], lr=lr)
    return LinearLR(opt, 0.2, 0.9, total_iters), opt


@pytest.mark.parametrize(
    ("make", "make_other"),
    [
        (linear, lambda: linear(3.0, 2)),
        (one_cycle_sgd, one_cycle_other),
        (warmup_cosine, lambda: warmup_cosine(9.0, 2)),
    ],
    ids=["LinearLR", "OneCycleLR", "SequentialLR"],
)
def test_epoch_schedules_state_dict_round_trip(make: Any, make_other: Any) -> None:
    uninterrupted, uninterrupted_opt = make()
    want = []
    for _ in range(11):
        want.append((uninterrupted.get_last_lr()[0], uninterrupted_opt.momentum))
        uninterrupted.step()
    schedule, _ = make()
    for _ in range(5):
        schedule.step()
    state = json.loads(json.dumps(schedule.state_dict()))
    resumed, resumed_opt = make_other()
    resumed.load_state_dict(state)
    assert resumed.state_dict() == schedule.state_dict()
    got = []
    for _ in range(6):
        got.append((resumed.get_last_lr()[0], resumed_opt.momentum))
        resumed.step()
    assert got == want[5:]


def test_plateau_state_dict_round_trip() -> None:
    metrics = [5.0, 4.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2, 3.3, 3.0, 2.0, 2.5, 2.5, 2.6]
    settings = {"mode": "min", "factor": 0.5, "patience": 1, "cooldown": 1}
    uninterrupted_opt = SGD([Parameter(np.zeros(1))], lr=0.2)
    uninterrupted = ReduceLROnPlateau(uninterrupted_opt, **settings)
    want = []
    for metric in metrics:
        uninterrupted.step(metric)
        want.append(uninterrupted_opt.lr)
    schedule = ReduceLROnPlateau(SGD([Parameter(np.zeros(1))], lr=0.2), **settings)
    for metric in metrics[:7]:
        schedule.step(metric)
    state = json.loads(json.dumps(schedule.state_dict()))
    other_opt = SGD([Parameter(np.zeros(1))], lr=3.0)
    resumed = ReduceLROnPlateau(other_opt, mode="max", patience=9)
    resumed.load_state_dict(state)
    assert other_opt.lr == want[6] and resumed.state_dict() == schedule.state_dict()
    got = []
    for metric in metrics[7:]:
        resumed.step(metric)
        got.append(other_opt.lr)
    assert got == want[7:]
    fresh = ReduceLROnPlateau(SGD([Parameter(np.zeros(1))], lr=0.2))
    assert json.loads(json.dumps(fresh.state_dict()))["best"] == math.inf


# ---------------------------------------------------------------------------------------------
# Errors: every validation branch
# ---------------------------------------------------------------------------------------------
def opt_() -> SGD:
    return SGD([Parameter(np.zeros(1))], lr=0.1)


CONSTRUCTION_ERRORS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (
        lambda: LinearLR(opt_(), 0.0),
        ParameterError,
        r"LinearLR: start_factor must lie in "
        r"\(0, 1\]; expected 0 < start_factor <= 1, got 0.0",
    ),
    (lambda: LinearLR(opt_(), 1.5), ParameterError, r"start_factor must lie in"),
    (
        lambda: LinearLR(opt_(), 0.5, -0.1),
        ParameterError,
        r"LinearLR: end_factor must lie in "
        r"\[0, 1\]",
    ),
    (lambda: LinearLR(opt_(), 0.5, 1.0, 0), ParameterError, r"LinearLR: total_iters must be >= 1"),
    (lambda: LinearLR(opt_(), 0.5, 1.0, 2.5), ParameterError, r"total_iters must be an integer"),
    (lambda: LinearLR("sgd", 0.5), TypeError, r"LinearLR: optimizer must be a convprop Optimizer"),
    (
        lambda: OneCycleLR(opt_(), 0.0, 10),
        ParameterError,
        r"OneCycleLR: max_lr must be a "
        r"positive number; expected 0 < max_lr < inf, got 0.0",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0),
        ParameterError,
        r"OneCycleLR: the cycle length is "
        r"missing; expected total_steps, or epochs and steps_per_epoch",
    ),
    (lambda: OneCycleLR(opt_(), 1.0, epochs=2), ParameterError, r"the cycle length is missing"),
    (lambda: OneCycleLR(opt_(), 1.0, 0), ParameterError, r"OneCycleLR: total_steps must be >= 1"),
    (
        lambda: OneCycleLR(opt_(), 1.0, epochs=0, steps_per_epoch=3),
        ParameterError,
        r"OneCycleLR: epochs must be >= 1",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, epochs=2, steps_per_epoch=0),
        ParameterError,
        r"OneCycleLR: steps_per_epoch must be >= 1",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, pct_start=1.2),
        ParameterError,
        r"OneCycleLR: "
        r"pct_start must lie in \[0, 1\]",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, anneal_strategy="exp"),
        ParameterError,
        r"OneCycleLR: unknown anneal_strategy; expected one of \['cos', 'linear'\], got 'exp'",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, base_momentum=-0.1),
        ParameterError,
        r"OneCycleLR: "
        r"base_momentum is out of range for SGD; expected 0 <= base_momentum < inf",
    ),
    (
        lambda: OneCycleLR(Adam([Parameter(np.zeros(1))]), 1.0, 10, max_momentum=1.0),
        ParameterError,
        r"max_momentum is out of range for Adam; expected 0 <= max_momentum < 1.0",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, div_factor=0),
        ParameterError,
        r"OneCycleLR: "
        r"div_factor must be a positive number",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, final_div_factor=-1),
        ParameterError,
        r"final_div_factor must be a positive number",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 10, three_phase=1),
        ParameterError,
        r"OneCycleLR: "
        r"three_phase must be a bool",
    ),
    (
        lambda: OneCycleLR(opt_(), 1.0, 3, pct_start=2 / 3, three_phase=True),
        ParameterError,
        r"a phase of the cycle has no length",
    ),
    (lambda: OneCycleLR(None, 1.0, 10), TypeError, r"OneCycleLR: optimizer must be"),
    (
        lambda: ReduceLROnPlateau(opt_(), mode="lowest"),
        ParameterError,
        r"ReduceLROnPlateau: "
        r"unknown mode; expected one of \['min', 'max'\], got 'lowest'",
    ),
    (
        lambda: ReduceLROnPlateau(opt_(), threshold_mode="pct"),
        ParameterError,
        r"unknown threshold_mode; expected one of \['rel', 'abs'\]",
    ),
    (
        lambda: ReduceLROnPlateau(opt_(), factor=1.0),
        ParameterError,
        r"ReduceLROnPlateau: factor "
        r"must lie in \[0, 1\); expected 0 <= factor < 1, got 1.0",
    ),
    (lambda: ReduceLROnPlateau(opt_(), patience=-1), ParameterError, r"patience must be >= 0"),
    (lambda: ReduceLROnPlateau(opt_(), cooldown=-2), ParameterError, r"cooldown must be >= 0"),
    (lambda: ReduceLROnPlateau(opt_(), threshold=-1e-4), ParameterError, r"threshold must be >= 0"),
    (lambda: ReduceLROnPlateau(opt_(), min_lr=-1.0), ParameterError, r"min_lr must be >= 0"),
    (lambda: ReduceLROnPlateau(opt_(), eps=math.nan), ParameterError, r"eps must be a real"),
    (
        lambda: ReduceLROnPlateau(torch.optim.SGD([torch.zeros(1)], lr=0.1)),
        TypeError,
        r"ReduceLROnPlateau: optimizer must be a convprop Optimizer",
    ),
]


@pytest.mark.parametrize(("build", "error", "match"), CONSTRUCTION_ERRORS)
def test_construction_errors(build: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()


def test_sequential_errors() -> None:
    opt = opt_()
    first, second = LinearLR(opt, 0.5), StepLR(opt, 2)
    with pytest.raises(ParameterError, match=r"SequentialLR: no schedules; expected at least one"):
        SequentialLR(opt, [], [])
    with pytest.raises(
        TypeError,
        match=r"SequentialLR: schedulers\[1\] is not an epoch "
        r"schedule; expected an LRScheduler .* got ReduceLROnPlateau",
    ):
        SequentialLR(opt, [first, ReduceLROnPlateau(opt)], [2])
    with pytest.raises(
        TypeError,
        match=r"schedulers\[0\] \(StepLR\) belongs to another "
        r"optimizer",
    ):
        SequentialLR(opt, [StepLR(opt_(), 2), second], [2])
    with pytest.raises(
        ParameterError,
        match=r"SequentialLR: wrong number of milestones; "
        r"expected one fewer than the schedules \(1\), got 2",
    ):
        SequentialLR(opt, [first, second], [2, 3])
    with pytest.raises(ParameterError, match=r"milestones must be a sequence of int"):
        SequentialLR(opt, [first, second], 2)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"milestones\[0\] must be >= 0"):
        SequentialLR(opt, [first, second], [-1])
    with pytest.raises(ParameterError, match=r"milestones\[0\] must be an integer"):
        SequentialLR(opt, [first, second], [1.5])  # type: ignore[list-item]
    with pytest.raises(
        ParameterError,
        match=r"milestones must not decrease; expected a "
        r"non-decreasing sequence, got \[4, 2\]",
    ):
        SequentialLR(opt, [first, second, CosineAnnealingLR(opt, 3)], [4, 2])
    with pytest.raises(TypeError, match=r"SequentialLR: optimizer must be"):
        SequentialLR("opt", [first], [])  # type: ignore[arg-type]


def test_load_state_dict_errors_change_nothing() -> None:
    schedule, opt = warmup_cosine()
    for _ in range(4):
        schedule.step()
    good = schedule.state_dict()
    bad_states: list[tuple[Any, type[Exception], str]] = [
        (None, TypeError, r"SequentialLR.load_state_dict: state must be a mapping"),
        ({**good, "extra": 1}, ParameterError, r"SequentialLR.load_state_dict: wrong keys"),
        ({**good, "last_epoch": -1}, ParameterError, r"last_epoch must be >= 0"),
        ({**good, "milestones": [1, 2]}, ParameterError, r"wrong number of milestones"),
        (
            {**good, "schedulers": good["schedulers"][:1]},
            ParameterError,
            r"schedulers must hold one state per schedule; expected 2 states",
        ),
        (
            {**good, "schedulers": [good["schedulers"][0], {"last_epoch": 1}]},
            ParameterError,
            r"CosineAnnealingLR.load_state_dict: wrong keys",
        ),
    ]
    for state, error, match in bad_states:
        with pytest.raises(error, match=match):
            schedule.load_state_dict(state)
        assert schedule.state_dict() == good and opt.lr == schedule.get_last_lr()[0]
    cycle, cycle_opt = one_cycle_sgd()
    cycle.step()
    good, momentum = cycle.state_dict(), cycle_opt.momentum
    for state, match in [
        (
            {**good, "last_epoch": 13},
            r"OneCycleLR.load_state_dict: last_epoch is past the cycle; expected last_epoch "
            r"<= total_steps=12, got 13",
        ),
        ({**good, "anneal_strategy": "step"}, r"unknown anneal_strategy"),
        ({**good, "max_momentum": -1.0}, r"max_momentum is out of range"),
    ]:
        with pytest.raises(ParameterError, match=match):
            cycle.load_state_dict(state)
        assert cycle.state_dict() == good and cycle_opt.momentum == momentum
    plateau = ReduceLROnPlateau(opt_())
    plateau.step(1.0)
    good = plateau.state_dict()
    for state, error, match in [
        ([], TypeError, r"ReduceLROnPlateau.load_state_dict: state must be a mapping"),
        ({**good, "lr": -0.1}, ParameterError, r"lr must be >= 0"),
        ({"best": 1.0}, ParameterError, r"wrong keys"),
        ({**good, "num_bad_epochs": -1}, ParameterError, r"num_bad_epochs must be >= 0"),
        ({**good, "mode": "up"}, ParameterError, r"unknown mode"),
        ({**good, "best": "low"}, ParameterError, r"best must be a real number"),
    ]:
        with pytest.raises(error, match=match):
            plateau.load_state_dict(state)
        assert plateau.state_dict() == good


def test_one_cycle_needs_a_momentum_to_cycle() -> None:
    class Plain(Optimizer):
        SCALARS: ClassVar[dict[str, type]] = {"lr": float}

        def _scalars(self) -> dict[str, Any]:
            return {"lr": self.lr}

    with pytest.raises(
        ParameterError,
        match=r"OneCycleLR: cycle_momentum needs a momentum or "
        r"beta1 to cycle; expected SGD, Adam or AdamW",
    ):
        OneCycleLR(Plain([Parameter(np.zeros(1))], lr=0.1), 1.0, 10)
    plain = Plain([Parameter(np.zeros(1))], lr=0.1)
    schedule = OneCycleLR(plain, 1.0, 10, cycle_momentum=False)
    assert plain.lr == schedule.get_last_lr()[0] == pytest.approx(1.0 / 25, rel=1e-14)


def test_schedules_share_the_optimizers_initial_lr_as_pytorch() -> None:
    opt = SGD([Parameter(np.zeros(1))], lr=0.5)
    assert opt.initial_lr is None
    warmup = LinearLR(opt, 0.1, total_iters=2)
    assert opt.initial_lr == 0.5 and opt.lr == pytest.approx(0.05)
    cosine = CosineAnnealingLR(opt, 4)  # built after the warm-up lowered lr: base stays 0.5
    assert warmup.base_lr == cosine.base_lr == 0.5
    OneCycleLR(opt, 2.0, 10)
    assert opt.initial_lr == 2.0 / 25  # PyTorch's OneCycleLR overwrites initial_lr
