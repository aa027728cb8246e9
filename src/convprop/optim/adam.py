"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay.

Notation  p a parameter, g its gradient (p.grad), m and v the first and second moment
          estimates (zero before the first step), t the step count, eta the learning rate,
          beta1 beta2 the decay rates, eps the denominator guard, lambda the weight decay
  t <- t + 1                                                                 (ADAM1)
  g <- -g                                         if maximize                (ADAM2)
  g <- g + lambda * p                             Adam (L2 penalty)          (ADAM3)
  p <- p * (1 - eta * lambda)                     AdamW (decoupled decay)    (ADAMW3)
  m <- beta1 * m + (1 - beta1) * g                                           (ADAM4)
  v <- beta2 * v + (1 - beta2) * g * g                                       (ADAM5)
  v_max <- max(v_max, v);  v_max replaces v in (ADAM6)      if amsgrad       (ADAM5A)
  denom = sqrt(v) / sqrt(1 - beta2**t) + eps                                 (ADAM6)
  p <- p - (eta / (1 - beta1**t)) * m / denom                                (ADAM7)

These follow PyTorch's ``torch.optim.Adam``/``AdamW`` (single-tensor path) operation for
operation: (ADAM4) is evaluated as PyTorch's ``lerp``, m + (1 - beta1)(g - m), and eps is
added after dividing by sqrt(1 - beta2**t), so trajectories agree with PyTorch to rounding.
The bias corrections are Python floats computed on the host from the step count: a step
never reads an array value back from the device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from convprop import _native
from convprop._native import adam
from convprop.backend import Array, get_xp
from convprop.errors import ParameterError
from convprop.nn.parameter import Parameter
from convprop.optim._scalars import (
    Scalar,
    as_bool,
    as_float,
    check_at_least,
    check_unit_interval,
)
from convprop.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam, equations (ADAM1)-(ADAM7) of this module (L2 weight decay, ADAM3).

    Parameters
    ----------
    params : iterable of Parameter
        The parameters to update (materialised to a list; must not be empty).
    lr : float, default 1e-3
        Learning rate eta >= 0.
    betas : (float, float), default (0.9, 0.999)
        beta1, beta2 in [0, 1).
    eps : float, default 1e-8
        eps >= 0 in (ADAM6).
    weight_decay : float, default 0.0
        lambda >= 0 in (ADAM3).
    amsgrad : bool, default False
        Normalise by the running maximum of v (ADAM5A).
    maximize : bool, default False
        Ascend instead of descend (ADAM2).

    Raises
    ------
    ParameterError
        On an invalid setting or an empty ``params``.
    TypeError
        If ``params`` holds something other than Parameters.

    Notes
    -----
    State: the step count ``step`` (an int, key ``"step"``) and per parameter i the buffers
    ``state.i.exp_avg`` (m), ``state.i.exp_avg_sq`` (v) and, with amsgrad,
    ``state.i.max_exp_avg_sq`` (v_max), each of the shape of ``params[i]`` and created at the
    first step. ``p.data`` is updated in place; ``p.grad`` is never modified.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> p = Parameter(np.array([1.0, -2.0]))
    >>> opt = Adam([p], lr=0.1)
    >>> p.grad[...] = [0.5, -0.25]
    >>> opt.step()  # the first step moves each entry by about lr * sign(g)
    >>> np.round(p.data, 6)
    array([ 0.9, -1.9])
    >>> opt.state_dict()["step"]
    1
    """

    SCALARS: ClassVar[dict[str, type]] = {
        "lr": float,
        "beta1": float,
        "beta2": float,
        "eps": float,
        "weight_decay": float,
        "amsgrad": bool,
        "maximize": bool,
        "step": int,
    }
    DECOUPLED: ClassVar[bool] = False
    """Whether weight decay scales p directly (ADAMW3) instead of adding to g (ADAM3)."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr)
        beta1, beta2 = _two_betas(self.name, betas)
        scalars: dict[str, Scalar] = {
            "lr": self.lr,
            "beta1": as_float(self.name, "betas[0]", beta1),
            "beta2": as_float(self.name, "betas[1]", beta2),
            "eps": as_float(self.name, "eps", eps),
            "weight_decay": as_float(self.name, "weight_decay", weight_decay),
            "amsgrad": as_bool(self.name, "amsgrad", amsgrad),
            "maximize": as_bool(self.name, "maximize", maximize),
            "step": 0,
        }
        self._check_scalars(scalars)
        self._set_scalars(scalars)

    @property
    def betas(self) -> tuple[float, float]:
        """(beta1, beta2), as passed to the constructor."""
        return (self.beta1, self.beta2)

    def step(self) -> None:
        """Apply (ADAM1)-(ADAM7) to every parameter, writing into ``p.data`` in place."""
        self.step_count += 1  # (ADAM1)
        bias_correction1 = 1 - self.beta1**self.step_count  # (ADAM7)
        bias_correction2_sqrt = (1 - self.beta2**self.step_count) ** 0.5  # (ADAM6)
        step_size = self.lr / bias_correction1  # (ADAM7)
        scalars = (
            1 - self.lr * self.weight_decay,  # (ADAMW3)
            self.weight_decay,  # (ADAM3), or AdamW's lambda
            1 - self.beta1,  # (ADAM4)
            self.beta2,  # (ADAM5)
            1 - self.beta2,
            bias_correction2_sqrt,  # (ADAM6)
            self.eps,
            step_size,  # (ADAM7)
            self.maximize,
            self.amsgrad,
            self.DECOUPLED,
        )
        for param, state in zip(self.params, self._state, strict=True):
            if not state:
                state.update(self._zero_buffers(param.data))
            m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
            _update(param.data, param.grad, m, v, v_max, scalars)  # (ADAM2)-(ADAM7)

    def _zero_buffers(self, data: Array) -> dict[str, Array]:
        """m = v (= v_max) = 0 before the first step, on the device and dtype of p."""
        xp = get_xp(data)
        names = self._buffer_names({"amsgrad": self.amsgrad})
        return {name: xp.zeros_like(data) for name in names}

    def _scalars(self) -> dict[str, Scalar]:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "maximize": self.maximize,
            "step": self.step_count,
        }

    def _check_scalars(self, scalars: dict[str, Scalar]) -> None:
        check_at_least(self.name, "lr", scalars["lr"], 0.0)
        check_unit_interval(self.name, "betas[0]", scalars["beta1"])
        check_unit_interval(self.name, "betas[1]", scalars["beta2"])
        check_at_least(self.name, "eps", scalars["eps"], 0.0)
        check_at_least(self.name, "weight_decay", scalars["weight_decay"], 0.0)
        check_at_least(self.name, "step", scalars["step"], 0)

    def _set_scalars(self, scalars: dict[str, Scalar]) -> None:
        self.lr = float(scalars["lr"])
        self.beta1 = float(scalars["beta1"])
        self.beta2 = float(scalars["beta2"])
        self.eps = float(scalars["eps"])
        self.weight_decay = float(scalars["weight_decay"])
        self.amsgrad = bool(scalars["amsgrad"])
        self.maximize = bool(scalars["maximize"])
        self.step_count = int(scalars["step"])

    def _buffer_names(self, scalars: dict[str, Scalar]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if scalars["amsgrad"] else ())

    def _check_initialised(
        self, where: str, scalars: dict[str, Scalar], *, initialised: bool
    ) -> None:
        if initialised != (scalars["step"] > 0):
            raise ParameterError(
                f"{where}: step and buffers disagree; expected buffers exactly when step > 0, "
                f"got step={scalars['step']} and {'buffers' if initialised else 'no buffers'}"
            )


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, (ADAMW3) in place of (ADAM3).

    Same parameters, state and errors as ``Adam``, except that ``weight_decay``
    (default 1e-2) multiplies p by (1 - lr * weight_decay) before the moment updates
    instead of adding lambda * p to the gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Parameter
    >>> p = Parameter(np.array([1.0, -2.0]))
    >>> opt = AdamW([p], lr=0.1, weight_decay=0.5)
    >>> p.grad[...] = [0.5, -0.25]
    >>> opt.step()  # decay by 1 - 0.1 * 0.5, then the Adam step of about lr * sign(g)
    >>> np.round(p.data, 6)
    array([ 0.85, -1.8 ])
    """

    DECOUPLED: ClassVar[bool] = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )


def _two_betas(owner: str, betas: tuple[float, float]) -> tuple[float, float]:
    """Unpack ``betas``, refusing anything but a pair."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ParameterError(
            f"{owner}: betas must be a pair; expected (beta1, beta2), got {betas!r}"
        )
    return betas[0], betas[1]


AdamScalars = tuple[float, float, float, float, float, float, float, float, bool, bool, bool]
"""One step's numbers: (1 - lr·lambda, lambda, 1 - beta1, beta2, 1 - beta2,
sqrt(1 - beta2**t), eps, lr / (1 - beta1**t), maximize, amsgrad, decoupled)."""


@_native.accelerated(adam.adam_step)
def _update(
    p: Array, g: Array, m: Array, v: Array, v_max: Array | None, scalars: AdamScalars
) -> None:
    """(ADAM2)-(ADAM7) on one parameter, writing p, m, v (and v_max) in place; compiled, one
    pass with the same operations in the same order and precision (the same bits), where
    the kernels serve the arrays."""
    decay, l2, weight, beta2, one_minus_beta2, bc2_sqrt, eps, step_size = scalars[:8]
    maximize, amsgrad, decoupled = scalars[8:]
    xp = get_xp(p)
    grad = -g if maximize else g  # (ADAM2)
    if l2 != 0 and decoupled:
        p *= decay  # (ADAMW3)
    elif l2 != 0:
        grad = grad + l2 * p  # (ADAM3)
    _lerp_(m, grad, weight)  # (ADAM4)
    v *= beta2  # (ADAM5)
    v += one_minus_beta2 * grad * grad  # (ADAM5)
    second_moment = v
    if amsgrad:  # v_max: the buffer max_exp_avg_sq, present exactly with amsgrad
        second_moment = v_max
        xp.maximum(second_moment, v, out=second_moment)  # (ADAM5A)
    denom = xp.sqrt(second_moment) / bc2_sqrt + eps  # (ADAM6)
    p -= step_size * m / denom  # (ADAM7)


def _lerp_(start: Array, end: Array, weight: float) -> None:
    """start <- start + weight * (end - start), in place, rounded as PyTorch's ``lerp``.

    PyTorch switches to end - (end - start) * (1 - weight) for weight >= 0.5, where that
    form loses less precision; the two forms are equal in exact arithmetic.
    """
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)
