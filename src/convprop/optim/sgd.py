"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

Notation  p a parameter, g its gradient (p.grad), t = 1, 2, ... the step,
          eta the learning rate, mu the momentum, tau the dampening, lambda the weight decay
  g <- -g                                       if maximize                  (SGD1)
  g <- g + lambda * p                           (L2 penalty on p)            (SGD2)
  b <- g                                        at t = 1 (no dampening)      (SGD3)
  b <- mu * b + (1 - tau) * g                   at t > 1                     (SGD4)
  g <- g + mu * b  if nesterov,  else  g <- b   (only when mu != 0)          (SGD5)
  p <- p - eta * g                                                           (SGD6)

These are PyTorch's update (``torch.optim.SGD``, single-tensor path) operation for
operation, so trajectories agree with it to rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from convprop.errors import ParameterError
from convprop.nn.parameter import Parameter
from convprop.optim._scalars import Scalar, as_bool, as_float, check_at_least
from convprop.optim.optimizer import Optimizer


class SGD(Optimizer):
    """Stochastic gradient descent, equations (SGD1)-(SGD6) of this module.

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update (materialised to a list; must not be empty).
    lr : float
        Learning rate eta >= 0.
    momentum : float, default 0.0
        mu >= 0; 0 disables the momentum buffer (SGD3)-(SGD5).
    dampening : float, default 0.0
        tau in (SGD4); not applied at the first step.
    nesterov : bool, default False
        Use g + mu * b instead of b (SGD5); needs momentum > 0 and dampening == 0.
    weight_decay : float, default 0.0
        lambda >= 0 in (SGD2).
    maximize : bool, default False
        Ascend instead of descend (SGD1).

    Raises
    ------
    ParameterError
        On an invalid setting or an empty ``params``.
    TypeError
        If ``params`` holds something other than Parameters.

    Notes
    -----
    State per parameter i: ``state.i.momentum_buffer`` (the shape of ``params[i]``), created at
    the first step when momentum != 0. ``p.data`` is updated in place (the same array object),
    and ``p.grad`` is never modified.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> p = Parameter(np.array([1.0, -2.0]))
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad[...] = [0.5, -0.25]
    >>> opt.step()
    >>> p.data
    array([ 0.95 , -1.975])
    >>> list(opt.state_dict())[-1]
    'state.0.momentum_buffer'
    """

    SCALARS: ClassVar[dict[str, type]] = {
        "lr": float,
        "momentum": float,
        "dampening": float,
        "nesterov": bool,
        "weight_decay": float,
        "maximize": bool,
    }

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr)
        scalars: dict[str, Scalar] = {
            "lr": self.lr,
            "momentum": as_float(self.name, "momentum", momentum),
            "dampening": as_float(self.name, "dampening", dampening),
            "nesterov": as_bool(self.name, "nesterov", nesterov),
            "weight_decay": as_float(self.name, "weight_decay", weight_decay),
            "maximize": as_bool(self.name, "maximize", maximize),
        }
        self._check_scalars(scalars)
        self._set_scalars(scalars)

    def step(self) -> None:
        """Apply (SGD1)-(SGD6) to every parameter, writing into ``p.data`` in place."""
        for param, state in zip(self.params, self._state, strict=True):
            data = param.data
            grad = -param.grad if self.maximize else param.grad  # (SGD1)
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * data  # (SGD2)
            if self.momentum != 0:
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    # A copy: grad may be p.grad itself, which layers keep adding into.
                    buffer = state["momentum_buffer"] = grad.copy()  # (SGD3)
                else:
                    buffer *= self.momentum  # (SGD4)
                    buffer += (1 - self.dampening) * grad  # (SGD4)
                grad = grad + self.momentum * buffer if self.nesterov else buffer  # (SGD5)
            data -= self.lr * grad  # (SGD6)

    def _scalars(self) -> dict[str, Scalar]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "maximize": self.maximize,
        }

    def _check_scalars(self, scalars: dict[str, Scalar]) -> None:
        check_at_least(self.name, "lr", scalars["lr"], 0.0)
        check_at_least(self.name, "momentum", scalars["momentum"], 0.0)
        check_at_least(self.name, "weight_decay", scalars["weight_decay"], 0.0)
        momentum, dampening = scalars["momentum"], scalars["dampening"]
        if scalars["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ParameterError(
                f"{self.name}: nesterov=True needs momentum and no dampening; expected "
                f"momentum > 0 and dampening == 0, got momentum={momentum}, dampening={dampening}"
            )

    def _set_scalars(self, scalars: dict[str, Scalar]) -> None:
        self.lr = float(scalars["lr"])
        self.momentum = float(scalars["momentum"])
        self.dampening = float(scalars["dampening"])
        self.nesterov = bool(scalars["nesterov"])
        self.weight_decay = float(scalars["weight_decay"])
        self.maximize = bool(scalars["maximize"])

    def _buffer_names(self, scalars: dict[str, Scalar]) -> tuple[str, ...]:
        return ("momentum_buffer",) if scalars["momentum"] != 0 else ()
