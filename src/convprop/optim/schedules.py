"""Learning-rate schedules: the learning rate as a function of the epoch.

Notation  eta_0 the base rate (``base_lr``): the optimizer's ``initial_lr``, which the first
          schedule built on it sets to its learning rate (PyTorch's "initial_lr"),
          t = last_epoch (0 at construction, +1 per ``step()``)
  eta_t = eta_0 * gamma ** floor(t / step_size)                              StepLR  (LR1)
  eta_t = eta_min + (eta_0 - eta_min) * (1 + cos(pi * t / T_max)) / 2   Cosine  (LR2)
  eta_t = eta_0 * (f_0 + (f_1 - f_0) * min(t, T) / T)                     LinearLR (LR3)

All are evaluated in closed form. PyTorch's schedulers reach the same values recursively
from the previous epoch's rate (and its cosine formula is periodic past T_max, as LR2 is);
the two agree to rounding. Call ``step()`` once per epoch, after the optimizer's steps.
OneCycleLR, ReduceLROnPlateau and SequentialLR live in their own modules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from convprop.errors import ParameterError
from convprop.optim._scalars import as_float, as_int, check_at_least
from convprop.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: sets ``optimizer.lr`` to ``lr_at(last_epoch)`` at construction and each step.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer whose ``lr`` is set.
    base_lr : float
        eta_0: the optimizer's ``initial_lr`` (its learning rate when its first schedule
        was built, as PyTorch's ``initial_lr``).
    last_epoch : int
        The number of ``step()`` calls so far.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        check_optimizer(self.name, optimizer)
        self.optimizer = optimizer
        if optimizer.initial_lr is None:
            optimizer.initial_lr = optimizer.lr  # PyTorch: group.setdefault("initial_lr", lr)
        self.base_lr = optimizer.initial_lr
        self.last_epoch = 0
        self._apply()

    @property
    def name(self) -> str:
        """The class name, used in error messages."""
        return type(self).__name__

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last ``step`` (a one-element list, as in PyTorch)."""
        return [self._last_lr]

    def state_dict(self) -> dict[str, Any]:
        """``last_epoch``, ``base_lr`` and the schedule's settings, as Python scalars."""
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr, **self._settings()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` output and set the optimizer's rate to match; atomic.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping.
        ParameterError
            On missing or unknown keys or invalid values.
        """
        where = f"{self.name}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{where}: state must be a mapping; expected the dict from state_dict(), "
                f"got {type(state).__name__}"
            )
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ParameterError(
                f"{where}: wrong keys; expected {sorted(expected)}, got {sorted(map(str, state))}"
            )
        last_epoch = as_int(where, "last_epoch", state["last_epoch"])
        check_at_least(where, "last_epoch", last_epoch, 0)
        base_lr = as_float(where, "base_lr", state["base_lr"])
        check_at_least(where, "base_lr", base_lr, 0.0)
        self._load_settings(where, state)
        self.last_epoch, self.base_lr = last_epoch, base_lr
        self._apply()

    def _apply(self) -> None:
        self._last_lr = self.lr_at(self.last_epoch)
        self.optimizer.lr = self._last_lr

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_settings(self, where: str, state: Mapping[str, Any]) -> None:
        raise NotImplementedError


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (LR1).

    Parameters
    ----------
    optimizer : Optimizer
        Its current ``lr`` becomes ``base_lr``.
    step_size : int
        Epochs between decays, >= 1.
    gamma : float, default 0.1
        Decay factor, >= 0.

    Raises
    ------
    ParameterError
        If ``step_size < 1`` or ``gamma < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD
    >>> schedule = StepLR(SGD([Parameter(np.zeros(2))], lr=1.0), step_size=2, gamma=0.5)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates += schedule.get_last_lr()
    ...     schedule.step()
    >>> rates
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = _check_step_settings(self.name, step_size, gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)  # (LR1)

    def _settings(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def _load_settings(self, where: str, state: Mapping[str, Any]) -> None:
        self.step_size, self.gamma = _check_step_settings(where, state["step_size"], state["gamma"])


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from ``base_lr`` to ``eta_min`` along a half cosine (LR2).

    Parameters
    ----------
    optimizer : Optimizer
        Its current ``lr`` becomes ``base_lr``.
    T_max : int
        Epochs from ``base_lr`` down to ``eta_min``, >= 1; past it the rate rises again
        (the cosine's period is 2 * T_max), as in PyTorch.
    eta_min : float, default 0.0
        The lowest rate, >= 0.

    Raises
    ------
    ParameterError
        If ``T_max < 1`` or ``eta_min < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD
    >>> schedule = CosineAnnealingLR(SGD([Parameter(np.zeros(2))], lr=1.0), T_max=2)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates.append(round(schedule.get_last_lr()[0], 12))
    ...     schedule.step()
    >>> rates
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max, self.eta_min = _check_cosine_settings(self.name, T_max, eta_min)
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        # PyTorch's closed form, factor for factor, so that rounding matches it too.
        cosine = 1 + math.cos(epoch * math.pi / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * cosine / 2  # (LR2)

    def _settings(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def _load_settings(self, where: str, state: Mapping[str, Any]) -> None:
        self.T_max, self.eta_min = _check_cosine_settings(where, state["T_max"], state["eta_min"])


class LinearLR(LRScheduler):
    """Scale the base rate by a factor that moves linearly from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then stays (LR3): a warm-up.

    Parameters
    ----------
    optimizer : Optimizer
        Its ``initial_lr`` (its current ``lr`` for a first schedule) becomes ``base_lr``.
    start_factor : float, default 1/3
        f_0, the factor of epoch 0; 0 < f_0 <= 1.
    end_factor : float, default 1.0
        f_1, the factor from epoch ``total_iters`` on; 0 <= f_1 <= 1.
    total_iters : int, default 5
        T >= 1, the epochs the factor takes to go from f_0 to f_1.

    Raises
    ------
    ParameterError
        For a factor out of range or ``total_iters < 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD
    >>> schedule = LinearLR(SGD([Parameter(np.zeros(2))], lr=1.0), start_factor=0.25,
    ...                     total_iters=3)
    >>> rates = []
    >>> for epoch in range(5):
    ...     rates.append(schedule.get_last_lr()[0])
    ...     schedule.step()
    >>> rates
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self.start_factor, self.end_factor, self.total_iters = _check_linear_settings(
            self.name, start_factor, end_factor, total_iters
        )
        super().__init__(optimizer)

    def lr_at(self, epoch: int) -> float:
        # PyTorch's closed form, factor for factor (its step() recurses from the last rate).
        change = (self.end_factor - self.start_factor) * min(self.total_iters, epoch)
        return self.base_lr * (self.start_factor + change / self.total_iters)  # (LR3)

    def _settings(self) -> dict[str, Any]:
        return {
            "start_factor": self.start_factor,
            "end_factor": self.end_factor,
            "total_iters": self.total_iters,
        }

    def _load_settings(self, where: str, state: Mapping[str, Any]) -> None:
        self.start_factor, self.end_factor, self.total_iters = _check_linear_settings(
            where, state["start_factor"], state["end_factor"], state["total_iters"]
        )


def check_optimizer(owner: str, optimizer: Any) -> None:
    """Raise TypeError unless ``optimizer`` is one of convprop's optimizers."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{owner}: optimizer must be a convprop Optimizer; expected SGD, Adam or "
            f"AdamW, got {type(optimizer).__name__}"
        )


def _check_linear_settings(
    owner: str, start_factor: Any, end_factor: Any, total_iters: Any
) -> tuple[float, float, int]:
    start_factor = as_float(owner, "start_factor", start_factor)
    if not 0.0 < start_factor <= 1.0:
        raise ParameterError(
            f"{owner}: start_factor must lie in (0, 1]; expected 0 < start_factor <= 1, "
            f"got {start_factor!r}"
        )
    end_factor = as_float(owner, "end_factor", end_factor)
    if not 0.0 <= end_factor <= 1.0:
        raise ParameterError(
            f"{owner}: end_factor must lie in [0, 1]; expected 0 <= end_factor <= 1, "
            f"got {end_factor!r}"
        )
    total_iters = as_int(owner, "total_iters", total_iters)
    check_at_least(owner, "total_iters", total_iters, 1)
    return start_factor, end_factor, total_iters


def _check_step_settings(owner: str, step_size: Any, gamma: Any) -> tuple[int, float]:
    step_size = as_int(owner, "step_size", step_size)
    check_at_least(owner, "step_size", step_size, 1)
    gamma = as_float(owner, "gamma", gamma)
    check_at_least(owner, "gamma", gamma, 0.0)
    return step_size, gamma


def _check_cosine_settings(owner: str, T_max: Any, eta_min: Any) -> tuple[int, float]:
    T_max = as_int(owner, "T_max", T_max)
    check_at_least(owner, "T_max", T_max, 1)
    eta_min = as_float(owner, "eta_min", eta_min)
    check_at_least(owner, "eta_min", eta_min, 0.0)
    return T_max, eta_min
