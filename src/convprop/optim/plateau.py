"""Lower the learning rate when a monitored metric stops improving.

Notation  x_t the metric passed to the t-th ``step(x_t)``, b the best value so far
          (+inf in mode "min", -inf in mode "max" at the start), tau = threshold,
          k the number of bad epochs, c the cooldown counter, eta the optimizer's rate
  x_t improves on b when                                                               (LR7)
      x_t < b * (1 - tau)   mode "min", threshold_mode "rel"
      x_t < b - tau         mode "min", threshold_mode "abs"
      x_t > b * (1 + tau)   mode "max", threshold_mode "rel"
      x_t > b + tau         mode "max", threshold_mode "abs"
  then b <- x_t and k <- 0, else k <- k + 1; during a cooldown (c > 0): c <- c - 1, k <- 0
  when k > patience:                                                                   (LR8)
      eta' = max(eta * factor, min_lr);  eta <- eta' if eta - eta' > eps;  c <- cooldown, k <- 0

This is PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (one parameter group),
comparison for comparison. Unlike the epoch schedules its rate depends on the metrics seen,
so it starts from the optimizer's current rate, changes nothing at construction, and its
state dict holds that rate (``lr``), which loading gives back to the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from convprop.errors import ParameterError
from convprop.optim._scalars import as_float, as_int, check_at_least
from convprop.optim.optimizer import Optimizer
from convprop.optim.schedules import check_optimizer

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")


class ReduceLROnPlateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement (LR7)-(LR8).

    Parameters
    ----------
    optimizer : Optimizer
        Its ``lr`` is lowered in place.
    mode : {"min", "max"}, default "min"
        Whether lower (a loss) or higher (an accuracy) metrics are better.
    factor : float, default 0.1
        0 <= factor < 1.
    patience : int, default 10
        Bad epochs tolerated before the rate falls, >= 0.
    threshold : float, default 1e-4
        tau >= 0, the least change that counts as an improvement (LR7).
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        Epochs after a reduction during which bad epochs are not counted, >= 0.
    min_lr : float, default 0.0
        The rate never falls below it, >= 0.
    eps : float, default 1e-8
        A reduction smaller than eps is skipped, >= 0.

    Attributes
    ----------
    best : float
        b, the best metric so far.
    num_bad_epochs, cooldown_counter, last_epoch : int

    Raises
    ------
    ParameterError
        For an invalid setting.
    TypeError
        If ``optimizer`` is not a convprop optimizer.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> from convprop.optim import SGD
    >>> opt = SGD([Parameter(np.zeros(2))], lr=1.0)
    >>> schedule = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [3.0, 2.0, 2.5, 2.4, 1.0, 1.5, 1.5]:
    ...     schedule.step(loss)
    >>> opt.lr, schedule.best, schedule.num_bad_epochs
    (0.25, 1.0, 0)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        check_optimizer(self.name, optimizer)
        settings = {
            "mode": mode,
            "factor": factor,
            "patience": patience,
            "threshold": threshold,
            "threshold_mode": threshold_mode,
            "cooldown": cooldown,
            "min_lr": min_lr,
            "eps": eps,
        }
        self._set_settings(_check_settings(self.name, settings))
        self.optimizer = optimizer
        self.last_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = optimizer.lr

    @property
    def name(self) -> str:
        """The class name, used in error messages."""
        return type(self).__name__

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` improves on ``best`` (LR7)."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)  # (LR7)
        if self.mode == "min":
            return current < best - self.threshold  # (LR7)
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)  # (LR7)
        return current > best + self.threshold  # (LR7)

    def step(self, metrics: Any) -> None:
        """Record one epoch's metric (a number, 0-d array or 0-d Tensor) and maybe lower the rate.

        A NaN metric is never an improvement, so it counts as a bad epoch (as in PyTorch).
        """
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):  # (LR7)
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in a cooldown do not count
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)  # (LR8)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr  # (LR8)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self.optimizer.lr

    def get_last_lr(self) -> list[float]:
        """The optimizer's rate after the last ``step`` (a one-element list, as in PyTorch)."""
        return [self._last_lr]

    def state_dict(self) -> dict[str, Any]:
        """The counters, the best metric, the current rate ``lr`` and the settings."""
        return {
            "last_epoch": self.last_epoch,
            "lr": self._last_lr,
            "best": self.best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            **self._settings(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` output and give the optimizer its rate back; atomic.

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
        counters = {}
        for key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            counters[key] = as_int(where, key, state[key])
            check_at_least(where, key, counters[key], 0)
        lr = as_float(where, "lr", state["lr"])
        check_at_least(where, "lr", lr, 0.0)
        best = as_float(where, "best", state["best"])
        settings = _check_settings(where, {key: state[key] for key in self._settings()})
        self._set_settings(settings)
        self.last_epoch = counters["last_epoch"]
        self.num_bad_epochs = counters["num_bad_epochs"]
        self.cooldown_counter = counters["cooldown_counter"]
        self.best = best
        self._last_lr = self.optimizer.lr = lr

    def _settings(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "eps": self.eps,
        }

    def _set_settings(self, settings: Mapping[str, Any]) -> None:
        self.mode = str(settings["mode"])
        self.threshold_mode = str(settings["threshold_mode"])
        self.factor = float(settings["factor"])
        self.threshold = float(settings["threshold"])
        self.patience = int(settings["patience"])
        self.cooldown = int(settings["cooldown"])
        self.min_lr = float(settings["min_lr"])
        self.eps = float(settings["eps"])


def _check_settings(owner: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting read and checked; the dict of ``_set_settings``."""
    for key, choices in (("mode", MODES), ("threshold_mode", THRESHOLD_MODES)):
        if settings[key] not in choices:
            raise ParameterError(
                f"{owner}: unknown {key}; expected one of {list(choices)}, got {settings[key]!r}"
            )
    factor = as_float(owner, "factor", settings["factor"])
    if not 0.0 <= factor < 1.0:
        raise ParameterError(
            f"{owner}: factor must lie in [0, 1); expected 0 <= factor < 1, got {factor!r}"
        )
    checked: dict[str, Any] = {
        "mode": str(settings["mode"]),
        "threshold_mode": str(settings["threshold_mode"]),
        "factor": factor,
    }
    for key in ("patience", "cooldown"):
        checked[key] = as_int(owner, key, settings[key])
        check_at_least(owner, key, checked[key], 0)
    for key in ("threshold", "min_lr", "eps"):
        checked[key] = as_float(owner, key, settings[key])
        check_at_least(owner, key, checked[key], 0.0)
    return checked
