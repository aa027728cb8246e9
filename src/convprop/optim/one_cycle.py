"""The one-cycle policy: the learning rate rises to ``max_lr`` and falls far below its start.

Notation  t = last_epoch, the number of ``step()`` calls (one per batch), T = total_steps,
          eta_0 = max_lr / div_factor (``base_lr``, the optimizer's new ``initial_lr``),
          eta_max = max_lr, eta_min = eta_0 / final_div_factor, p = pct_start,
          m_lo = base_momentum, m_hi = max_momentum
  phases (end step e_i; rate and momentum from -> to), with e_{-1} = 0:
    two phases:    e_0 = p*T - 1:  eta_0 -> eta_max,  m_hi -> m_lo
                   e_1 = T - 1:    eta_max -> eta_min, m_lo -> m_hi                    (LR4)
    three phases:  e_0 = p*T - 1:  eta_0 -> eta_max,  m_hi -> m_lo
                   e_1 = 2*p*T - 2: eta_max -> eta_0, m_lo -> m_hi
                   e_2 = T - 1:    eta_0 -> eta_min,  m_hi -> m_hi
  step t falls in the first phase i with t <= e_i (the last phase takes every later t);
  s = (t - e_{i-1}) / (e_i - e_{i-1}), the fraction of the phase done                  (LR5)
  anneal(a, b, s) = b + (a - b) / 2 * (cos(pi * s) + 1)     anneal_strategy="cos"
                  = (b - a) * s + a                          anneal_strategy="linear"     (LR6)
  eta_t = anneal(rate from, rate to, s);  momentum_t = anneal(momentum from, to, s)

This is PyTorch's ``torch.optim.lr_scheduler.OneCycleLR`` operation for operation (so the
rates are equal to the last bit). With ``cycle_momentum`` the schedule also sets SGD's
``momentum`` or Adam's first beta (``beta1``) to momentum_t at every step, as PyTorch does.
Call ``step()`` after every optimizer step; T + 1 rates exist (t = 0 ... T).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from convprop.errors import ParameterError
from convprop.optim._scalars import as_bool, as_float, as_int, check_at_least
from convprop.optim.adam import Adam
from convprop.optim.optimizer import Optimizer
from convprop.optim.schedules import LRScheduler, check_optimizer
from convprop.optim.sgd import SGD

ANNEAL_STRATEGIES = ("cos", "linear")


class OneCycleLR(LRScheduler):
    """The 1cycle learning-rate (and momentum) policy, stepped once per batch (LR4)-(LR6).

    Parameters
    ----------
    optimizer : Optimizer
        Its ``initial_lr`` is set to ``max_lr / div_factor`` (PyTorch does the same).
    max_lr : float
        The peak rate, > 0.
    total_steps : int, optional
        T >= 1, the number of steps in the cycle; or give ``epochs`` and
        ``steps_per_epoch`` (T = their product).
    epochs, steps_per_epoch : int, optional
        Both >= 1; used when ``total_steps`` is None.
    pct_start : float, default 0.3
        The share of the cycle spent rising, 0 <= p <= 1.
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
        Also cycle SGD's momentum or Adam's beta1 between the two momenta.
    base_momentum, max_momentum : float, default 0.85, 0.95
        m_lo and m_hi, both >= 0 (and < 1 for Adam's beta1).
    div_factor : float, default 25.0
        eta_0 = max_lr / div_factor, > 0.
    final_div_factor : float, default 1e4
        eta_min = eta_0 / final_div_factor, > 0.
    three_phase : bool, default False
        Rise, fall back to eta_0, then anneal to eta_min (PyTorch's three_phase).

    Raises
    ------
    ParameterError
        For an invalid setting, a phase of zero length that a step would divide by, or a
        ``step()`` past T.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(2))], lr=0.1, momentum=0.9)
    >>> schedule = OneCycleLR(opt, max_lr=1.0, total_steps=4, pct_start=0.5,
    ...                       anneal_strategy="linear", div_factor=4.0, final_div_factor=2.5)
    >>> rates = [schedule.get_last_lr()[0]]
    >>> for _ in range(3):
    ...     schedule.step()
    ...     rates.append(round(schedule.get_last_lr()[0], 12))
    >>> rates, opt.momentum
    ([0.25, 1.0, 0.55, 0.1], 0.95)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        check_optimizer(self.name, optimizer)
        settings = {
            "max_lr": max_lr,
            "total_steps": _total_steps(self.name, total_steps, epochs, steps_per_epoch),
            "pct_start": pct_start,
            "anneal_strategy": anneal_strategy,
            "cycle_momentum": cycle_momentum,
            "base_momentum": base_momentum,
            "max_momentum": max_momentum,
            "div_factor": div_factor,
            "final_div_factor": final_div_factor,
            "three_phase": three_phase,
        }
        self._set_settings(self.name, optimizer, settings)
        optimizer.initial_lr = self.max_lr / self.div_factor  # PyTorch overwrites it too
        super().__init__(optimizer)

    def step(self) -> None:
        """Advance one batch; refuse to go past ``total_steps`` (as PyTorch)."""
        if self.last_epoch + 1 > self.total_steps:
            raise ParameterError(
                f"{self.name}: tried to step {self.last_epoch + 1} times; expected at most "
                f"total_steps={self.total_steps} steps, got one more"
            )
        super().step()

    def _phases(self) -> list[tuple[float, float, float, float, float]]:
        """(end step, rate from, rate to, momentum from, momentum to) per phase (LR4)."""
        ends = _phase_ends(self.total_steps, self.pct_start, self.three_phase)
        initial, peak = self.base_lr, self.max_lr
        final = initial / self.final_div_factor
        high, low = self.max_momentum, self.base_momentum
        if self.three_phase:
            return [
                (ends[0], initial, peak, high, low),
                (ends[1], peak, initial, low, high),
                (ends[2], initial, final, high, high),
            ]
        return [(ends[0], initial, peak, high, low), (ends[1], peak, final, low, high)]

    def _rate_and_momentum(self, step: int) -> tuple[float, float]:
        phases = self._phases()
        start = 0.0
        for i, (end, rate_from, rate_to, momentum_from, momentum_to) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                # _check_phases refused every phase of zero length that a step can reach
                fraction = (step - start) / (end - start)  # (LR5)
                return (
                    self._anneal(rate_from, rate_to, fraction),  # (LR6)
                    self._anneal(momentum_from, momentum_to, fraction),  # (LR6)
                )
            start = end
        raise AssertionError("unreachable: the last phase takes every step")  # pragma: no cover

    def _anneal(self, start: float, end: float, fraction: float) -> float:
        if self.anneal_strategy == "cos":
            cos_out = math.cos(math.pi * fraction) + 1
            return end + (start - end) / 2.0 * cos_out  # (LR6)
        return (end - start) * fraction + start  # (LR6)

    def lr_at(self, epoch: int) -> float:
        return self._rate_and_momentum(epoch)[0]

    def _apply(self) -> None:
        rate, momentum = self._rate_and_momentum(self.last_epoch)
        if self.cycle_momentum and isinstance(self.optimizer, Adam):
            self.optimizer.beta1 = momentum
        elif self.cycle_momentum and isinstance(self.optimizer, SGD):
            self.optimizer.momentum = momentum
        self._last_lr = rate
        # The linear anneal extrapolates past the last phase: at t = T (after the last
        # batch, so no step uses it) PyTorch's rate is usually below zero. get_last_lr()
        # reports it as PyTorch does; the optimizer, which refuses negative rates, gets 0.
        self.optimizer.lr = max(rate, 0.0)

    def _settings(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
        }

    def _load_settings(self, where: str, state: Mapping[str, Any]) -> None:
        last_epoch = as_int(where, "last_epoch", state["last_epoch"])
        total_steps = as_int(where, "total_steps", state["total_steps"])
        if last_epoch > total_steps:
            raise ParameterError(
                f"{where}: last_epoch is past the cycle; expected last_epoch <= total_steps="
                f"{total_steps}, got {last_epoch}"
            )
        self._set_settings(where, self.optimizer, {key: state[key] for key in self._settings()})

    def _set_settings(self, owner: str, optimizer: Optimizer, settings: Mapping[str, Any]) -> None:
        """Check every setting, then assign them all (nothing changes on an error)."""
        max_lr = as_float(owner, "max_lr", settings["max_lr"])
        _check_positive(owner, "max_lr", max_lr)
        total_steps = as_int(owner, "total_steps", settings["total_steps"])
        check_at_least(owner, "total_steps", total_steps, 1)
        pct_start = as_float(owner, "pct_start", settings["pct_start"])
        if not 0.0 <= pct_start <= 1.0:
            raise ParameterError(
                f"{owner}: pct_start must lie in [0, 1]; expected 0 <= pct_start <= 1, "
                f"got {pct_start!r}"
            )
        anneal = settings["anneal_strategy"]
        if anneal not in ANNEAL_STRATEGIES:
            raise ParameterError(
                f"{owner}: unknown anneal_strategy; expected one of {list(ANNEAL_STRATEGIES)}, "
                f"got {anneal!r}"
            )
        cycle_momentum = as_bool(owner, "cycle_momentum", settings["cycle_momentum"])
        if cycle_momentum and not isinstance(optimizer, (SGD, Adam)):
            raise ParameterError(
                f"{owner}: cycle_momentum needs a momentum or beta1 to cycle; expected SGD, "
                f"Adam or AdamW (or cycle_momentum=False), got {type(optimizer).__name__}"
            )
        base_momentum = as_float(owner, "base_momentum", settings["base_momentum"])
        max_momentum = as_float(owner, "max_momentum", settings["max_momentum"])
        if cycle_momentum:
            _check_momenta(owner, optimizer, base_momentum, max_momentum)
        div_factor = as_float(owner, "div_factor", settings["div_factor"])
        _check_positive(owner, "div_factor", div_factor)
        final_div_factor = as_float(owner, "final_div_factor", settings["final_div_factor"])
        _check_positive(owner, "final_div_factor", final_div_factor)
        three_phase = as_bool(owner, "three_phase", settings["three_phase"])
        _check_phases(owner, total_steps, pct_start, three_phase)
        self.max_lr, self.total_steps, self.pct_start = max_lr, total_steps, pct_start
        self.anneal_strategy, self.cycle_momentum = str(anneal), cycle_momentum
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.three_phase = three_phase


def _phase_ends(total_steps: int, pct_start: float, three_phase: bool) -> list[float]:
    """The end steps e_i of the phases, in PyTorch's arithmetic (LR4)."""
    T, p = total_steps, pct_start
    if three_phase:
        return [float(p * T) - 1, float(2 * p * T) - 2, float(T - 1)]
    return [float(p * T) - 1, float(T - 1)]


def _check_phases(owner: str, total_steps: int, pct_start: float, three_phase: bool) -> None:
    """Refuse a phase of zero length that a step reaches, where (LR5) would divide by zero.

    The first phase is reached by t = 0 whatever its end; a later phase i is reached only
    past e_{i-1}, so a middle phase ending where the one before it ends is never used,
    while the last phase takes every later step (t = T at least).
    """
    ends = [0.0, *_phase_ends(total_steps, pct_start, three_phase)]
    if ends[1] == ends[0] or ends[-1] == ends[-2]:
        raise ParameterError(
            f"{owner}: a phase of the cycle has no length; expected pct_start * total_steps "
            f"!= 1 and the last phase to end after the one before it, got pct_start="
            f"{pct_start}, total_steps={total_steps}, three_phase={three_phase} (phase ends "
            f"{ends[1:]})"
        )


def _total_steps(
    owner: str, total_steps: int | None, epochs: int | None, steps_per_epoch: int | None
) -> int:
    if total_steps is not None:
        return as_int(owner, "total_steps", total_steps)
    if epochs is None or steps_per_epoch is None:
        raise ParameterError(
            f"{owner}: the cycle length is missing; expected total_steps, or epochs and "
            f"steps_per_epoch, got total_steps=None, epochs={epochs}, "
            f"steps_per_epoch={steps_per_epoch}"
        )
    epochs = as_int(owner, "epochs", epochs)
    check_at_least(owner, "epochs", epochs, 1)
    steps_per_epoch = as_int(owner, "steps_per_epoch", steps_per_epoch)
    check_at_least(owner, "steps_per_epoch", steps_per_epoch, 1)
    return epochs * steps_per_epoch


def _check_positive(owner: str, name: str, value: float) -> None:
    if not 0.0 < value < math.inf:
        raise ParameterError(
            f"{owner}: {name} must be a positive number; expected 0 < {name} < inf, got {value!r}"
        )


def _check_momenta(owner: str, optimizer: Optimizer, low: float, high: float) -> None:
    """Both momenta >= 0, and below 1 where they become Adam's beta1."""
    limit = 1.0 if isinstance(optimizer, Adam) else math.inf
    for name, value in (("base_momentum", low), ("max_momentum", high)):
        if not 0.0 <= value < limit:
            raise ParameterError(
                f"{owner}: {name} is out of range for {type(optimizer).__name__}; expected "
                f"0 <= {name} < {limit}, got {value!r}"
            )
