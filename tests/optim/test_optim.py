"""Tests of convprop.optim: SGD (SGD1-SGD6), Adam/AdamW (ADAM1-ADAM7, ADAMW3), schedules (LR1, LR2).

Witnesses: naive float64 references written from the equations element by element
(``reference_sgd``, ``reference_adam``, ``reference_step_lr``, ``reference_cosine_lr``), and
PyTorch's optimizers and schedulers (single-tensor path) fed the same gradients.
"""

from __future__ import annotations

import itertools
import math
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from convprop.backend import get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.nn import Parameter
from convprop.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LRScheduler,
    Optimizer,
    StepLR,
)

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]
STEPS = 10
RTOL = 1e-12


# ---------------------------------------------------------------------------------------------
# Naive references: one element at a time, straight from the module docstrings' equations.
# ---------------------------------------------------------------------------------------------


def reference_sgd(
    x0: list[float],
    grads: list[list[float]],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> list[list[float]]:
    """Trajectory of SGD (SGD1-SGD6) on a flat list of scalars; one entry per step."""
    x, buffer, trajectory = list(x0), [0.0] * len(x0), []
    for t, g_t in enumerate(grads, start=1):
        for j in range(len(x)):
            g = -g_t[j] if maximize else g_t[j]  # (SGD1)
            g = g + weight_decay * x[j]  # (SGD2)
            if momentum != 0:
                if t == 1:
                    buffer[j] = g  # (SGD3)
                else:
                    buffer[j] = momentum * buffer[j] + (1 - dampening) * g  # (SGD4)
                g = g + momentum * buffer[j] if nesterov else buffer[j]  # (SGD5)
            x[j] = x[j] - lr * g  # (SGD6)
        trajectory.append(list(x))
    return trajectory


def reference_adam(
    x0: list[float],
    grads: list[list[float]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled: bool,
) -> list[list[float]]:
    """Trajectory of Adam (ADAM1-ADAM7) or AdamW (ADAMW3) on a flat list of scalars."""
    beta1, beta2 = betas
    n = len(x0)
    x, m, v, v_max, trajectory = list(x0), [0.0] * n, [0.0] * n, [0.0] * n, []
    for t, g_t in enumerate(grads, start=1):  # (ADAM1)
        for j in range(n):
            g = -g_t[j] if maximize else g_t[j]  # (ADAM2)
            if decoupled:
                x[j] = x[j] * (1 - lr * weight_decay)  # (ADAMW3)
            else:
                g = g + weight_decay * x[j]  # (ADAM3)
            m[j] = beta1 * m[j] + (1 - beta1) * g  # (ADAM4)
            v[j] = beta2 * v[j] + (1 - beta2) * g * g  # (ADAM5)
            v_max[j] = max(v_max[j], v[j])  # (ADAM5A)
            second = v_max[j] if amsgrad else v[j]
            denom = math.sqrt(second) / math.sqrt(1 - beta2**t) + eps  # (ADAM6)
            x[j] = x[j] - lr / (1 - beta1**t) * m[j] / denom  # (ADAM7)
        trajectory.append(list(x))
    return trajectory


def reference_step_lr(base_lr: float, step_size: int, gamma: float, epoch: int) -> float:
    """(LR1): gamma applied once per completed block of step_size epochs."""
    lr = base_lr
    for _ in range(epoch // step_size):
        lr *= gamma
    return lr


def reference_cosine_lr(base_lr: float, T_max: int, eta_min: float, epoch: int) -> float:
    """(LR2)."""
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def make_params(dtype: Any = np.float64, seed: int = 0) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


def random_grads(dtype: Any = np.float64, seed: int = 1, steps: int = STEPS) -> list[list[Any]]:
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]


def torch_twins(params: list[Parameter]) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in params]


def give_grads(params: list[Parameter], grads: list[Any]) -> None:
    """As a training step does: zero, then the layers add into .grad."""
    for param, grad in zip(params, grads, strict=True):
        param.zero_grad()
        param.grad += grad


def give_torch_grads(twins: list[torch.nn.Parameter], grads: list[Any]) -> None:
    for twin, grad in zip(twins, grads, strict=True):
        twin.grad = torch.from_numpy(grad.copy())


def flat(arrays: list[Any]) -> list[float]:
    return [float(v) for a in arrays for v in np.ravel(a)]


def assert_matches_torch(
    params: list[Parameter], twins: list[torch.nn.Parameter], rtol: float = RTOL
) -> None:
    for param, twin in zip(params, twins, strict=True):
        np.testing.assert_allclose(param.data, twin.detach().numpy(), rtol=rtol, atol=0)


SGD_CASES = [
    {
        "momentum": momentum,
        "dampening": dampening,
        "nesterov": nesterov,
        "weight_decay": weight_decay,
        "maximize": maximize,
    }
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.01), (False, True)
    )
    if not (nesterov and (momentum == 0 or dampening != 0))
]

ADAM_CASES = [
    {
        "betas": betas,
        "eps": eps,
        "weight_decay": weight_decay,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }
    for (betas, eps), weight_decay, amsgrad, maximize in itertools.product(
        (((0.9, 0.999), 1e-8), ((0.5, 0.8), 1e-3), ((0.3, 0.2), 1e-8)),
        (0.0, 0.1),
        (False, True),
        (False, True),
    )
]
"""betas (0.3, 0.2) puts 1 - beta1 >= 0.5, the other branch of PyTorch's lerp in (ADAM4)."""

ADAM_CLASSES = {"Adam": (Adam, torch.optim.Adam), "AdamW": (AdamW, torch.optim.AdamW)}


def case_id(case: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items())


# ---------------------------------------------------------------------------------------------
# SGD
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SGD_CASES, ids=case_id)
def test_sgd_matches_reference_sgd1_to_sgd6(case: dict[str, Any]) -> None:
    params, grads = make_params(), random_grads()
    expected = reference_sgd(
        flat([p.data for p in params]), [flat(g) for g in grads], lr=0.05, **case
    )
    opt = SGD(params, lr=0.05, **case)
    for step_grads, want in zip(grads, expected, strict=True):
        give_grads(params, step_grads)
        opt.step()
        np.testing.assert_allclose(flat([p.data for p in params]), want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("case", SGD_CASES, ids=case_id)
def test_sgd_matches_torch_sgd(case: dict[str, Any]) -> None:
    params, grads = make_params(), random_grads()
    twins = torch_twins(params)
    opt = SGD(params, lr=0.05, **case)
    torch_opt = torch.optim.SGD(twins, lr=0.05, foreach=False, **case)
    for step_grads in grads:
        give_grads(params, step_grads)
        give_torch_grads(twins, step_grads)
        opt.step()
        torch_opt.step()
        assert_matches_torch(params, twins)
    if case["momentum"] != 0:
        state = opt.state_dict()
        for i, twin in enumerate(twins):
            np.testing.assert_allclose(
                state[f"state.{i}.momentum_buffer"],
                torch_opt.state[twin]["momentum_buffer"].numpy(),
                rtol=RTOL,
            )


def test_sgd_first_momentum_step_has_no_dampening_sgd3() -> None:
    param = Parameter(np.array([1.0, 2.0]))
    opt = SGD([param], lr=0.5, momentum=0.9, dampening=0.5)
    param.grad[...] = [0.4, -0.2]
    opt.step()
    np.testing.assert_array_equal(opt.state_dict()["state.0.momentum_buffer"], [0.4, -0.2])
    np.testing.assert_array_equal(param.data, [0.8, 2.1])


# ---------------------------------------------------------------------------------------------
# Adam / AdamW
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ADAM_CLASSES))
@pytest.mark.parametrize("case", ADAM_CASES, ids=case_id)
def test_adam_matches_reference_adam1_to_adam7(name: str, case: dict[str, Any]) -> None:
    cls = ADAM_CLASSES[name][0]
    params, grads = make_params(), random_grads()
    expected = reference_adam(
        flat([p.data for p in params]),
        [flat(g) for g in grads],
        lr=0.01,
        decoupled=cls is AdamW,
        **case,
    )
    opt = cls(params, lr=0.01, **case)
    for step_grads, want in zip(grads, expected, strict=True):
        give_grads(params, step_grads)
        opt.step()
        np.testing.assert_allclose(flat([p.data for p in params]), want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", sorted(ADAM_CLASSES))
@pytest.mark.parametrize("case", ADAM_CASES, ids=case_id)
def test_adam_matches_torch_adam(name: str, case: dict[str, Any]) -> None:
    cls, torch_cls = ADAM_CLASSES[name]
    params, grads = make_params(), random_grads()
    twins = torch_twins(params)
    opt = cls(params, lr=0.01, **case)
    torch_opt = torch_cls(twins, lr=0.01, foreach=False, **case)
    for step_grads in grads:
        give_grads(params, step_grads)
        give_torch_grads(twins, step_grads)
        opt.step()
        torch_opt.step()
        assert_matches_torch(params, twins)
    state = opt.state_dict()
    assert state["step"] == STEPS == int(torch_opt.state[twins[0]]["step"])
    names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if case["amsgrad"] else [])
    for i, twin in enumerate(twins):
        for buffer_name in names:
            np.testing.assert_allclose(
                state[f"state.{i}.{buffer_name}"],
                torch_opt.state[twin][buffer_name].numpy(),
                rtol=RTOL,
            )


def test_adamw_default_weight_decay_and_betas_property() -> None:
    opt = AdamW(make_params())
    assert (opt.lr, opt.weight_decay, opt.betas, opt.eps) == (1e-3, 1e-2, (0.9, 0.999), 1e-8)
    assert Adam(make_params()).weight_decay == 0.0


# ---------------------------------------------------------------------------------------------
# Behaviour shared by all optimizers
# ---------------------------------------------------------------------------------------------

ALL_OPTIMIZERS = {
    "SGD": lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
    "Adam": lambda ps: Adam(ps, lr=0.1, weight_decay=0.1, amsgrad=True, maximize=True),
    "AdamW": lambda ps: AdamW(ps, lr=0.1, amsgrad=True, maximize=True),
}
TORCH_OPTIMIZERS = {
    "SGD": lambda ps: torch.optim.SGD(
        ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True, foreach=False
    ),
    "Adam": lambda ps: torch.optim.Adam(
        ps, lr=0.1, weight_decay=0.1, amsgrad=True, maximize=True, foreach=False
    ),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.1, amsgrad=True, maximize=True, foreach=False),
}


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_step_updates_data_in_place_and_leaves_grad_alone(name: str) -> None:
    params = make_params()
    opt = ALL_OPTIMIZERS[name](params)
    arrays = [p.data for p in params]
    for step_grads in random_grads(steps=3):
        give_grads(params, step_grads)
        before = [p.data.copy() for p in params]
        opt.step()
        for param, array, grad, old in zip(params, arrays, step_grads, before, strict=True):
            assert param.data is array
            np.testing.assert_array_equal(param.grad, grad)
            assert not np.array_equal(param.data, old)


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_zero_grad_zeroes_every_grad(name: str) -> None:
    params = make_params()
    opt = ALL_OPTIMIZERS[name](params)
    give_grads(params, random_grads(steps=1)[0])
    opt.zero_grad()
    assert all(not p.grad.any() for p in params)


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_float32_stays_float32_and_tracks_torch(name: str) -> None:
    params, grads = make_params(np.float32), random_grads(np.float32)
    twins = torch_twins(params)
    opt, torch_opt = ALL_OPTIMIZERS[name](params), TORCH_OPTIMIZERS[name](twins)
    for step_grads in grads:
        give_grads(params, step_grads)
        give_torch_grads(twins, step_grads)
        opt.step()
        torch_opt.step()
        assert_matches_torch(params, twins, rtol=1e-5)
    assert all(p.data.dtype == np.float32 for p in params)
    arrays = [v for k, v in opt.state_dict().items() if k.startswith("state.")]
    assert arrays and all(a.dtype == np.float32 for a in arrays)


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_lr_is_mutable_and_used_by_the_next_step(name: str) -> None:
    params, grads = make_params(), random_grads()
    twins = torch_twins(params)
    opt, torch_opt = ALL_OPTIMIZERS[name](params), TORCH_OPTIMIZERS[name](twins)
    for step, step_grads in enumerate(grads):
        opt.lr = torch_opt.param_groups[0]["lr"] = 0.1 / (1 + step)
        give_grads(params, step_grads)
        give_torch_grads(twins, step_grads)
        opt.step()
        torch_opt.step()
        assert_matches_torch(params, twins)


def test_params_accepts_a_generator() -> None:
    params = make_params()
    opt = SGD((p for p in params), lr=0.1)
    assert opt.params == params


# ---------------------------------------------------------------------------------------------
# State dicts
# ---------------------------------------------------------------------------------------------

ROUND_TRIP = {
    "SGD-momentum": (
        lambda ps: SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
        lambda ps: SGD(ps, lr=1.0),
    ),
    "SGD-nesterov": (
        lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True, maximize=True),
        lambda ps: SGD(ps, lr=1.0, momentum=0.1),
    ),
    "Adam-amsgrad": (
        lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True),
        lambda ps: Adam(ps),
    ),
    "AdamW": (lambda ps: AdamW(ps, lr=0.02, eps=1e-4, maximize=True), lambda ps: AdamW(ps)),
}


def to_safetensors_and_back(state: dict[str, Any]) -> dict[str, Any]:
    """Scalars as 0-d arrays, the way a checkpoint stores them."""
    arrays = {key: np.asarray(value) for key, value in state.items()}
    return dict(safetensors_load(safetensors_save(arrays)))


@pytest.mark.parametrize("through_safetensors", [False, True])
@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_state_dict_round_trip_resumes_exactly(name: str, through_safetensors: bool) -> None:
    build, build_other = ROUND_TRIP[name]
    grads = random_grads()
    uninterrupted = make_params()
    opt = build(uninterrupted)
    for step_grads in grads:
        give_grads(uninterrupted, step_grads)
        opt.step()

    first = make_params()
    opt = build(first)
    for step_grads in grads[:5]:
        give_grads(first, step_grads)
        opt.step()
    state = opt.state_dict()
    if through_safetensors:
        state = to_safetensors_and_back(state)
    resumed = [Parameter(p.data.copy()) for p in first]
    opt = build_other(resumed)
    opt.load_state_dict(state)
    assert opt.state_dict().keys() == state.keys()
    for step_grads in grads[5:]:
        give_grads(resumed, step_grads)
        opt.step()
    for got, want in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_array_equal(got.data, want.data)


def test_state_dict_keys_values_and_snapshot() -> None:
    params = make_params()
    opt = Adam(params, lr=0.01, amsgrad=True)
    assert opt.state_dict() == {
        "lr": 0.01,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": True,
        "maximize": False,
        "step": 0,
    }
    give_grads(params, random_grads(steps=1)[0])
    opt.step()
    state = opt.state_dict()
    names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    assert [k for k in state if k.startswith("state.")] == [
        f"state.{i}.{n}" for i in range(len(SHAPES)) for n in names
    ]
    saved = state["state.0.exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(state["state.0.exp_avg"], saved)


def test_load_state_dict_copies_and_casts_to_the_parameter_dtype() -> None:
    source = make_params()
    opt = SGD(source, lr=0.1, momentum=0.9)
    give_grads(source, random_grads(steps=1)[0])
    opt.step()
    state = opt.state_dict()
    target = make_params(np.float32)
    opt32 = SGD(target, lr=0.1)
    opt32.load_state_dict(state)
    loaded = opt32.state_dict()["state.0.momentum_buffer"]
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, state["state.0.momentum_buffer"], rtol=1e-6)
    state["state.0.momentum_buffer"][...] = 0
    assert opt32.state_dict()["state.0.momentum_buffer"].any()


def test_loading_a_fresh_state_dict_clears_buffers() -> None:
    params = make_params()
    opt = SGD(params, lr=0.1, momentum=0.9)
    fresh = opt.state_dict()
    give_grads(params, random_grads(steps=1)[0])
    opt.step()
    opt.load_state_dict(fresh)
    assert opt.state_dict() == fresh


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def schedule_pair(
    make: Any, make_torch: Any, base_lr: float
) -> tuple[LRScheduler, Any, SGD, torch.optim.SGD]:
    opt = SGD([Parameter(np.zeros(2))], lr=base_lr)
    twin = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    twin.grad = torch.zeros(2, dtype=torch.float64)
    torch_opt = torch.optim.SGD([twin], lr=base_lr, foreach=False)
    return make(opt), make_torch(torch_opt), opt, torch_opt


def run_epochs(ours: LRScheduler, theirs: Any, torch_opt: Any, epochs: int) -> list[list[float]]:
    rates = []
    for _ in range(epochs):
        rates.append([ours.get_last_lr()[0], ours.optimizer.lr, theirs.get_last_lr()[0]])
        torch_opt.step()  # PyTorch warns when a scheduler steps before its optimizer
        ours.step()
        theirs.step()
    return rates


@pytest.mark.parametrize("step_size", [1, 3, 7])
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.0])
def test_step_lr_matches_reference_lr1_and_torch(step_size: int, gamma: float) -> None:
    ours, theirs, _, torch_opt = schedule_pair(
        lambda o: StepLR(o, step_size, gamma),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma),
        base_lr=0.3,
    )
    for epoch, (rate, optimizer_rate, torch_rate) in enumerate(
        run_epochs(ours, theirs, torch_opt, 25)
    ):
        want = reference_step_lr(0.3, step_size, gamma, epoch)
        assert rate == optimizer_rate
        assert rate == pytest.approx(want, rel=RTOL, abs=0)
        assert rate == pytest.approx(torch_rate, rel=RTOL, abs=0)
    assert ours.last_epoch == 25


@pytest.mark.parametrize("T_max", [1, 2, 5, 10, 17])
@pytest.mark.parametrize("eta_min", [0.0, 1e-4, 0.5])
def test_cosine_lr_matches_reference_lr2_and_torch(T_max: int, eta_min: float) -> None:
    ours, theirs, _, torch_opt = schedule_pair(
        lambda o: CosineAnnealingLR(o, T_max, eta_min),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max, eta_min),
        base_lr=0.1,
    )
    # PyTorch's rates come from a recursion; near eta_min = 0 only an absolute bound is fair.
    for epoch, (rate, optimizer_rate, torch_rate) in enumerate(
        run_epochs(ours, theirs, torch_opt, 3 * T_max + 1)
    ):
        assert rate == optimizer_rate
        assert rate == pytest.approx(reference_cosine_lr(0.1, T_max, eta_min, epoch), rel=RTOL)
        assert abs(rate - torch_rate) <= RTOL * max(0.1, eta_min)


def test_schedules_drive_training_like_torch() -> None:
    params, grads = make_params(), random_grads(steps=12)
    twins = torch_twins(params)
    opt = AdamW(params, lr=0.05, amsgrad=True)
    torch_opt = torch.optim.AdamW(twins, lr=0.05, amsgrad=True, foreach=False)
    schedule = CosineAnnealingLR(opt, T_max=3, eta_min=1e-3)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=3, eta_min=1e-3)
    for epoch in range(6):
        for step_grads in grads[2 * epoch : 2 * epoch + 2]:
            give_grads(params, step_grads)
            give_torch_grads(twins, step_grads)
            opt.step()
            torch_opt.step()
        schedule.step()
        torch_schedule.step()
    assert_matches_torch(params, twins, rtol=1e-11)


@pytest.mark.parametrize(
    ("make", "make_other"),
    [
        (lambda o: StepLR(o, 2, 0.5), lambda o: StepLR(o, 9)),
        (lambda o: CosineAnnealingLR(o, 4, 0.01), lambda o: CosineAnnealingLR(o, 1)),
    ],
    ids=["StepLR", "CosineAnnealingLR"],
)
def test_schedule_state_dict_round_trip(make: Any, make_other: Any) -> None:
    uninterrupted = make(SGD([Parameter(np.zeros(1))], lr=0.2))
    want = []
    for _ in range(10):
        want.append(uninterrupted.get_last_lr()[0])
        uninterrupted.step()
    schedule = make(SGD([Parameter(np.zeros(1))], lr=0.2))
    for _ in range(5):
        schedule.step()
    state = to_safetensors_and_back(schedule.state_dict())
    other_opt = SGD([Parameter(np.zeros(1))], lr=7.0)
    resumed = make_other(other_opt)
    resumed.load_state_dict(state)
    assert resumed.last_epoch == 5 and other_opt.lr == want[5]
    got = []
    for _ in range(5):
        got.append(resumed.get_last_lr()[0])
        resumed.step()
    assert got == want[5:]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def one_param() -> list[Parameter]:
    return [Parameter(np.zeros(3))]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: SGD(one_param(), lr=-0.1),
            r"SGD: lr must be >= 0\.0; expected lr >= 0\.0, got -0\.1",
        ),
        (lambda: SGD(one_param(), lr=0.1, momentum=-0.5), r"SGD: momentum must be >= 0"),
        (lambda: SGD(one_param(), lr=0.1, weight_decay=-1), r"SGD: weight_decay must be >= 0"),
        (
            lambda: SGD(one_param(), lr=0.1, nesterov=True),
            r"SGD: nesterov=True needs momentum and no dampening; expected momentum > 0 and "
            r"dampening == 0, got momentum=0\.0, dampening=0\.0",
        ),
        (
            lambda: SGD(one_param(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            r"got momentum=0\.9, dampening=0\.1",
        ),
        (lambda: SGD(one_param(), lr="0.1"), r"SGD: lr must be a real number; expected a float"),
        (lambda: SGD(one_param(), lr=True), r"SGD: lr must be a real number"),
        (lambda: SGD(one_param(), lr=float("nan")), r"SGD: lr must be a real number"),
        (lambda: SGD(one_param(), lr=0.1, nesterov=1), r"SGD: nesterov must be a bool"),
        (lambda: SGD(one_param(), lr=0.1, maximize=None), r"SGD: maximize must be a bool"),
        (lambda: Adam(one_param(), lr=-1.0), r"Adam: lr must be >= 0"),
        (
            lambda: Adam(one_param(), betas=(1.0, 0.999)),
            r"Adam: betas\[0\] must lie in \[0, 1\); expected 0 <= betas\[0\] < 1, got 1\.0",
        ),
        (lambda: Adam(one_param(), betas=(0.9, -0.1)), r"Adam: betas\[1\] must lie in \[0, 1\)"),
        (lambda: Adam(one_param(), betas=(0.9,)), r"Adam: betas must be a pair"),
        (lambda: Adam(one_param(), betas=0.9), r"Adam: betas must be a pair"),
        (lambda: Adam(one_param(), eps=-1e-8), r"Adam: eps must be >= 0"),
        (lambda: Adam(one_param(), weight_decay=-0.1), r"Adam: weight_decay must be >= 0"),
        (lambda: Adam(one_param(), amsgrad="yes"), r"Adam: amsgrad must be a bool"),
        (lambda: AdamW(one_param(), betas=(0.9, 1.0)), r"AdamW: betas\[1\] must lie in \[0, 1\)"),
        (lambda: SGD([], lr=0.1), r"SGD: params is empty; expected at least one Parameter"),
        (lambda: AdamW(iter([])), r"AdamW: params is empty"),
    ],
)
def test_invalid_settings_raise_parameter_error(build: Any, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        build()


def test_invalid_params_raise() -> None:
    param = Parameter(np.zeros(3))
    with pytest.raises(TypeError, match=r"SGD: params must be an iterable of Parameter.*single"):
        SGD(param, lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Adam: params must be an iterable of Parameter.*got int"):
        Adam(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"SGD: params\[1\] is not a Parameter; .* got ndarray"):
        SGD([param, np.zeros(3)], lr=0.1)  # type: ignore[list-item]
    with pytest.raises(ParameterError, match=r"SGD: params\[2\] repeats params\[0\]"):
        SGD([param, Parameter(np.zeros(1)), param], lr=0.1)
    frozen = Parameter(np.zeros(3, dtype=np.int64), requires_grad=False)  # as PyTorch: only
    with pytest.raises(DTypeError, match=r"SGD: params\[0\] has dtype int64; expected float32"):
        SGD([frozen], lr=0.1)  # a floating Parameter may require a gradient
    with pytest.raises(DTypeError, match=r"requires_grad: only floating tensors"):
        Parameter(np.zeros(3, dtype=np.int64))


def test_assigning_a_negative_lr_raises() -> None:
    opt = AdamW(one_param())
    with pytest.raises(ParameterError, match=r"AdamW: lr must be >= 0"):
        opt.lr = -0.5
    assert opt.lr == 1e-3


def stepped(opt: Optimizer) -> Optimizer:
    for param in opt.params:
        param.grad[...] = 0.5
    opt.step()
    return opt


def test_load_state_dict_errors() -> None:
    sgd = stepped(SGD(make_params(), lr=0.1, momentum=0.9))
    good = sgd.state_dict()
    with pytest.raises(TypeError, match=r"SGD.load_state_dict: state must be a mapping"):
        sgd.load_state_dict([("lr", 0.1)])  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"SGD.load_state_dict: missing keys; .*\['lr'\]"):
        sgd.load_state_dict({k: v for k, v in good.items() if k != "lr"})
    with pytest.raises(
        ParameterError, match=r"missing \['amsgrad', 'beta1', 'beta2', 'eps', 'step'\]"
    ):
        Adam(make_params()).load_state_dict(good)
    with pytest.raises(ParameterError, match=r"unknown keys \['state\.3\.momentum_buffer'\]"):
        sgd.load_state_dict({**good, "state.3.momentum_buffer": np.zeros(3)})
    with pytest.raises(ParameterError, match=r"unknown keys \['state\.0\.momentum_buffer'"):
        sgd.load_state_dict({**good, "momentum": 0.0})
    partial = {k: v for k, v in good.items() if k != "state.1.momentum_buffer"}
    with pytest.raises(
        ParameterError, match=r"incomplete state; .*\['state\.1\.momentum_buffer'\]"
    ):
        sgd.load_state_dict(partial)
    with pytest.raises(
        ShapeError,
        match=r"state\.0\.momentum_buffer has the wrong shape; expected \(3, 4\) \(params\[0\]\), "
        r"got \(4, 3\)",
    ):
        sgd.load_state_dict({**good, "state.0.momentum_buffer": np.zeros((4, 3))})
    with pytest.raises(DTypeError, match=r"state\.0\.momentum_buffer must be an array"):
        sgd.load_state_dict({**good, "state.0.momentum_buffer": [[0.0] * 4] * 3})
    with pytest.raises(DTypeError, match=r"has dtype int64; expected a floating-point array"):
        sgd.load_state_dict({**good, "state.0.momentum_buffer": np.zeros((3, 4), dtype=np.int64)})
    with pytest.raises(ParameterError, match=r"SGD: lr must be >= 0"):
        sgd.load_state_dict({**good, "lr": -1.0, "state.0.momentum_buffer": np.zeros((3, 4))})
    with pytest.raises(ParameterError, match=r"SGD.load_state_dict: nesterov must be a bool"):
        sgd.load_state_dict({**good, "nesterov": "no"})
    after = sgd.state_dict()  # nothing changed by the failed loads
    assert after.keys() == good.keys()
    assert all(np.array_equal(after[k], good[k]) for k in good)


def test_adam_load_state_dict_step_errors() -> None:
    adam = stepped(Adam(make_params(), amsgrad=True))
    good = adam.state_dict()
    scalars = {k: v for k, v in good.items() if not k.startswith("state.")}
    with pytest.raises(ParameterError, match=r"step and buffers disagree; .* got step=1 and no"):
        adam.load_state_dict(scalars)
    with pytest.raises(ParameterError, match=r"got step=0 and buffers"):
        adam.load_state_dict({**good, "step": 0})
    with pytest.raises(ParameterError, match=r"Adam: step must be >= 0"):
        adam.load_state_dict({**good, "step": -1})
    with pytest.raises(
        ParameterError, match=r"step must be an integer; expected an int, got float"
    ):
        adam.load_state_dict({**good, "step": 1.5})
    with pytest.raises(ParameterError, match=r"incomplete state"):
        adam.load_state_dict({k: v for k, v in good.items() if "max_exp_avg_sq" not in k})
    adam.load_state_dict({**good, "step": 1.0})  # PyTorch stores step counts as floats
    assert adam.state_dict()["step"] == 1


def test_schedule_errors() -> None:
    opt = SGD(one_param(), lr=0.1)
    with pytest.raises(ParameterError, match=r"StepLR: step_size must be >= 1; .* got 0"):
        StepLR(opt, 0)
    with pytest.raises(ParameterError, match=r"StepLR: step_size must be an integer"):
        StepLR(opt, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"StepLR: gamma must be >= 0"):
        StepLR(opt, 2, gamma=-0.1)
    with pytest.raises(ParameterError, match=r"CosineAnnealingLR: T_max must be >= 1"):
        CosineAnnealingLR(opt, 0)
    with pytest.raises(ParameterError, match=r"CosineAnnealingLR: eta_min must be >= 0"):
        CosineAnnealingLR(opt, 5, eta_min=-1e-3)
    with pytest.raises(TypeError, match=r"StepLR: optimizer must be a convprop Optimizer"):
        StepLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), 2)  # type: ignore[arg-type]
    schedule = StepLR(opt, 2)
    good = schedule.state_dict()
    with pytest.raises(TypeError, match=r"StepLR.load_state_dict: state must be a mapping"):
        schedule.load_state_dict(None)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"StepLR.load_state_dict: wrong keys; expected"):
        schedule.load_state_dict({**good, "T_max": 3})
    with pytest.raises(ParameterError, match=r"last_epoch must be >= 0"):
        schedule.load_state_dict({**good, "last_epoch": -2})
    with pytest.raises(ParameterError, match=r"base_lr must be >= 0"):
        schedule.load_state_dict({**good, "base_lr": -0.1})
    with pytest.raises(ParameterError, match=r"StepLR.load_state_dict: step_size must be >= 1"):
        schedule.load_state_dict({**good, "step_size": 0})
    assert schedule.state_dict() == good


def test_base_classes_leave_the_rule_to_subclasses() -> None:
    with pytest.raises(NotImplementedError):
        Optimizer(one_param(), lr=0.1).step()
    with pytest.raises(NotImplementedError):
        LRScheduler(SGD(one_param(), lr=0.1))


# ---------------------------------------------------------------------------------------------
# Backends (the xp fixture adds CuPy where a GPU is present)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_backend_parity_and_device_checkpoints(name: str, xp: ModuleType) -> None:
    host, grads = make_params(), random_grads()
    device = [Parameter(xp.asarray(p.data)) for p in host]
    host_opt, device_opt = ALL_OPTIMIZERS[name](host), ALL_OPTIMIZERS[name](device)
    for step_grads in grads:
        give_grads(host, step_grads)
        give_grads(device, [xp.asarray(g) for g in step_grads])
        host_opt.step()
        device_opt.step()
    for h, d in zip(host, device, strict=True):
        assert get_xp(d.data) is xp
        np.testing.assert_allclose(to_host(d.data), h.data, rtol=RTOL)
    host_state = {
        key: to_host(value) if key.startswith("state.") else value
        for key, value in device_opt.state_dict().items()
    }
    resumed = ALL_OPTIMIZERS[name]([Parameter(d.data.copy()) for d in device])
    resumed.load_state_dict(host_state)  # a host checkpoint becomes buffers on the device
    buffers = [v for k, v in resumed.state_dict().items() if k.startswith("state.")]
    assert buffers and all(get_xp(b) is xp for b in buffers)
