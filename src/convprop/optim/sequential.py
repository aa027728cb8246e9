"""Schedules one after another: a warm-up, then the schedule proper.

Notation  S_0 ... S_m the schedules, 0 <= M_1 <= ... <= M_m the milestones, t = last_epoch
  i = the number of milestones <= t        (bisect_right),  M_0 = 0                   (LR9)
  eta_t = rate of S_i at its own epoch t - M_i                                         (LR10)

So each schedule restarts from its epoch 0 at its milestone: after a LinearLR warm-up of K
epochs (milestone K), a CosineAnnealingLR starts from its base rate at epoch K. This is
PyTorch's ``torch.optim.lr_scheduler.SequentialLR``: it steps the active schedule and, at a
milestone, sets the next one to its epoch 0 in closed form. All schedules share the
optimizer's ``initial_lr`` as their base rate, as in PyTorch. One difference: a schedule
built *before* a OneCycleLR on the same optimizer keeps the base rate it was built with,
where PyTorch's recursive formulas would restart it from the rate the OneCycleLR set.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from convprop.errors import ParameterError
from convprop.optim._scalars import as_int, check_at_least
from convprop.optim.optimizer import Optimizer
from convprop.optim.schedules import LRScheduler, check_optimizer


class SequentialLR(LRScheduler):
    """Run ``schedulers[i]`` from milestone i on, from its own epoch 0 (LR9)-(LR10).

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer every schedule was built on.
    schedulers : sequence of LRScheduler
        At least one; each built on ``optimizer`` (ReduceLROnPlateau is not an epoch
        schedule and is refused, as in PyTorch).
    milestones : sequence of int
        One fewer than the schedules, non-decreasing, >= 0: the epochs at which the next
        schedule takes over.

    Raises
    ------
    ParameterError
        For a wrong number of milestones, or milestones that are negative or decrease.
    TypeError
        For a schedule that is not an LRScheduler, or one built on another optimizer.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD, LinearLR, StepLR
    >>> opt = SGD([Parameter(np.zeros(2))], lr=1.0)
    >>> warmup = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> decay = StepLR(opt, step_size=2, gamma=0.5)
    >>> schedule = SequentialLR(opt, [warmup, decay], milestones=[3])
    >>> rates = []
    >>> for epoch in range(8):
    ...     rates.append(schedule.get_last_lr()[0])
    ...     schedule.step()
    >>> rates
    [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(
        self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]
    ) -> None:
        check_optimizer(self.name, optimizer)
        self.schedulers = list(schedulers)
        if not self.schedulers:
            raise ParameterError(
                f"{self.name}: no schedules; expected at least one LRScheduler, got none"
            )
        for i, scheduler in enumerate(self.schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(
                    f"{self.name}: schedulers[{i}] is not an epoch schedule; expected an "
                    f"LRScheduler (StepLR, CosineAnnealingLR, LinearLR, OneCycleLR, "
                    f"SequentialLR), got {type(scheduler).__name__}"
                )
            if scheduler.optimizer is not optimizer:
                raise TypeError(
                    f"{self.name}: schedulers[{i}] ({scheduler.name}) belongs to another "
                    "optimizer; expected every schedule to be built on this optimizer, got "
                    "a different one"
                )
        self.milestones = _check_milestones(self.name, milestones, len(self.schedulers))
        super().__init__(optimizer)

    def _position(self, epoch: int) -> tuple[LRScheduler, int]:
        """The active schedule at ``epoch`` and that schedule's own epoch (LR9)."""
        index = bisect.bisect_right(self.milestones, epoch)  # (LR9)
        start = self.milestones[index - 1] if index > 0 else 0
        return self.schedulers[index], epoch - start

    def lr_at(self, epoch: int) -> float:
        scheduler, local_epoch = self._position(epoch)
        return scheduler.lr_at(local_epoch)  # (LR10)

    def _apply(self) -> None:
        scheduler, local_epoch = self._position(self.last_epoch)
        scheduler.last_epoch = local_epoch  # as PyTorch, the active schedule keeps its epoch
        scheduler._apply()  # (LR10) the rate (and OneCycleLR's momentum) of that epoch
        self._last_lr = scheduler.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        """``last_epoch``, ``milestones`` and each schedule's own state dict (``schedulers``)."""
        return {
            "last_epoch": self.last_epoch,
            "milestones": list(self.milestones),
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` output into these schedules; atomic.

        Raises
        ------
        TypeError
            If ``state`` is not a mapping.
        ParameterError
            On wrong keys, milestones or values, or a wrong number of schedule states.
        """
        where = f"{self.name}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{where}: state must be a mapping; expected the dict from state_dict(), "
                f"got {type(state).__name__}"
            )
        expected = {"last_epoch", "milestones", "schedulers"}
        if set(state) != expected:
            raise ParameterError(
                f"{where}: wrong keys; expected {sorted(expected)}, got {sorted(map(str, state))}"
            )
        last_epoch = as_int(where, "last_epoch", state["last_epoch"])
        check_at_least(where, "last_epoch", last_epoch, 0)
        milestones = _check_milestones(where, state["milestones"], len(self.schedulers))
        states = state["schedulers"]
        if not isinstance(states, Sequence) or len(states) != len(self.schedulers):
            raise ParameterError(
                f"{where}: schedulers must hold one state per schedule; expected "
                f"{len(self.schedulers)} states, got {states!r}"
            )
        backups = [scheduler.state_dict() for scheduler in self.schedulers]
        try:
            for scheduler, saved in zip(self.schedulers, states, strict=True):
                scheduler.load_state_dict(saved)
        except (TypeError, ValueError):
            for scheduler, backup in zip(self.schedulers, backups, strict=True):
                scheduler.load_state_dict(backup)
            self._apply()
            raise
        self.last_epoch, self.milestones = last_epoch, milestones
        self._apply()


def _check_milestones(owner: str, milestones: Any, count: int) -> list[int]:
    """``count - 1`` integers >= 0 in non-decreasing order."""
    try:
        listed = list(milestones)
    except TypeError:
        raise ParameterError(
            f"{owner}: milestones must be a sequence of int; expected {count - 1} epochs, "
            f"got {milestones!r}"
        ) from None
    if len(listed) != count - 1:
        raise ParameterError(
            f"{owner}: wrong number of milestones; expected one fewer than the schedules "
            f"({count - 1}), got {len(listed)} ({listed})"
        )
    values = [as_int(owner, f"milestones[{i}]", value) for i, value in enumerate(listed)]
    for i, value in enumerate(values):
        check_at_least(owner, f"milestones[{i}]", value, 0)
    if values != sorted(values):
        raise ParameterError(
            f"{owner}: milestones must not decrease; expected a non-decreasing sequence, "
            f"got {values}"
        )
    return values
