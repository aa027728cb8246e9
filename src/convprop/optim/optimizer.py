"""The optimizer base: the parameter list, a checked learning rate and a flat state dict.

An optimizer holds a list of ``Parameter`` objects and, per parameter, a dict of state
buffers (momentum, moment estimates) created at the first ``step``. Its state dict is flat,
so that a checkpoint can store it as safetensors:

* scalar keys (``"lr"``, ``"momentum"``, ``"step"``, ...): Python ``float``/``int``/``bool``;
* buffer keys ``"state.<i>.<name>"``: arrays of the shape of ``params[i]``, present once
  the optimizer has stepped (before that a state dict holds the scalars alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from convprop.backend import Array, check_float_dtype, get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.nn.parameter import Parameter
from convprop.optim._scalars import Scalar, as_bool, as_float, as_int, check_at_least

_READERS = {float: as_float, int: as_int, bool: as_bool}


class Optimizer:
    """Base class of SGD, Adam and AdamW (not used directly).

    Subclasses declare ``SCALARS`` (state-dict key -> float, int or bool) and implement
    ``step``, ``_scalars``, ``_check_scalars``, ``_set_scalars`` and ``_buffer_names``.

    Attributes
    ----------
    params : list[Parameter]
        The parameters updated in place by ``step``, in the order given.
    lr : float
        The learning rate; assignable (schedules do), checked to be >= 0.
    initial_lr : float or None
        The learning rate when the first schedule was attached (PyTorch's
        ``param_group["initial_lr"]``): every schedule built on this optimizer takes it as
        its base rate, so that a warm-up and the schedule after it share one. None until
        then; not part of the state dict (a schedule's own state holds its base rate).
    """

    SCALARS: ClassVar[dict[str, type]] = {}

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = _parameter_list(self.name, params)
        self._state: list[dict[str, Array]] = [{} for _ in self.params]
        self.lr = lr
        self.initial_lr: float | None = None

    @property
    def name(self) -> str:
        """The class name, used in error messages."""
        return type(self).__name__

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        value = as_float(self.name, "lr", value)
        check_at_least(self.name, "lr", value, 0.0)
        self._lr = value

    def step(self) -> None:
        """Update every parameter in place from its ``.grad``."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero (in place)."""
        for param in self.params:
            param.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """Return the scalars and copies of the state buffers under flat keys."""
        state: dict[str, Any] = dict(self._scalars())
        for i, buffers in enumerate(self._state):
            for buffer_name, buffer in buffers.items():
                state[f"state.{i}.{buffer_name}"] = buffer.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the scalars and buffers saved by ``state_dict``; nothing changes on error.

        Buffers are copied onto the device and into the dtype of their parameter (as
        PyTorch casts optimizer state to its parameter's dtype).

        Raises
        ------
        TypeError
            If ``state`` is not a mapping.
        ParameterError
            On a missing, unknown or invalid key, or incomplete buffers.
        ShapeError
            If a buffer does not have the shape of its parameter.
        DTypeError
            If a buffer is not a floating-point array.
        """
        where = f"{self.name}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(
                f"{where}: state must be a mapping; expected the dict from state_dict(), "
                f"got {type(state).__name__}"
            )
        missing = sorted(set(self.SCALARS) - set(state))
        if missing:
            raise ParameterError(
                f"{where}: missing keys; expected all of {sorted(self.SCALARS)}, missing {missing}"
            )
        scalars = {
            key: _READERS[kind](where, key, state[key]) for key, kind in self.SCALARS.items()
        }
        self._check_scalars(scalars)
        names = self._buffer_names(scalars)
        buffers = self._read_buffers(where, state, names, scalars)
        self._set_scalars(scalars)
        self._state = buffers

    def _read_buffers(
        self,
        where: str,
        state: Mapping[str, Any],
        names: tuple[str, ...],
        scalars: dict[str, Scalar],
    ) -> list[dict[str, Array]]:
        """Check the buffer keys (all or none, nothing unknown) and convert each buffer."""
        expected = [f"state.{i}.{n}" for i in range(len(self.params)) for n in names]
        given = {str(key) for key in state} - set(self.SCALARS)
        unknown = sorted(given - set(expected))
        if unknown:
            raise ParameterError(
                f"{where}: unknown keys {unknown}; expected the scalars {sorted(self.SCALARS)} "
                f"and buffers 'state.<i>.<name>' with i < {len(self.params)} and name in "
                f"{list(names)}"
            )
        if given and len(given) != len(expected):
            absent = [key for key in expected if key not in given]
            raise ParameterError(
                f"{where}: incomplete state; expected every buffer or none, missing {absent}"
            )
        self._check_initialised(where, scalars, initialised=bool(given))
        if not given:
            return [{} for _ in self.params]
        return [
            {n: _buffer_like(where, f"state.{i}.{n}", state[f"state.{i}.{n}"], p) for n in names}
            for i, p in enumerate(self.params)
        ]

    # Hooks for the subclasses.
    def _scalars(self) -> dict[str, Scalar]:
        """The current scalar settings and counters, keyed as in ``SCALARS``."""
        raise NotImplementedError

    def _check_scalars(self, scalars: dict[str, Scalar]) -> None:
        """Raise ParameterError unless the settings are valid together."""
        raise NotImplementedError

    def _set_scalars(self, scalars: dict[str, Scalar]) -> None:
        """Assign checked settings."""
        raise NotImplementedError

    def _buffer_names(self, scalars: dict[str, Scalar]) -> tuple[str, ...]:
        """The per-parameter buffers that exist after a step under these settings."""
        raise NotImplementedError

    def _check_initialised(
        self, where: str, scalars: dict[str, Scalar], *, initialised: bool
    ) -> None:
        """Check that counters agree with whether buffers are present (default: no counter)."""


def _parameter_list(owner: str, params: Iterable[Parameter]) -> list[Parameter]:
    """Materialise ``params``; refuse an empty list, non-Parameters, duplicates, bad dtypes."""
    if isinstance(params, Parameter):
        raise TypeError(
            f"{owner}: params must be an iterable of Parameter; expected e.g. "
            f"model.parameters() or [param], got a single Parameter {params!r}"
        )
    try:
        listed = list(params)
    except TypeError:
        raise TypeError(
            f"{owner}: params must be an iterable of Parameter; expected e.g. "
            f"model.parameters(), got {type(params).__name__}"
        ) from None
    if not listed:
        raise ParameterError(
            f"{owner}: params is empty; expected at least one Parameter, got 0 parameters"
        )
    seen: dict[int, int] = {}
    for i, param in enumerate(listed):
        if not isinstance(param, Parameter):
            raise TypeError(
                f"{owner}: params[{i}] is not a Parameter; expected Parameter, "
                f"got {type(param).__name__}"
            )
        if id(param) in seen:
            raise ParameterError(
                f"{owner}: params[{i}] repeats params[{seen[id(param)]}]; expected each "
                f"Parameter once, got it twice ({param!r})"
            )
        seen[id(param)] = i
        check_float_dtype(owner, **{f"params[{i}]": param.data})
    return listed


def _buffer_like(where: str, key: str, value: Any, param: Parameter) -> Array:
    """Return a copy of ``value`` on the device and in the dtype of ``param.data``."""
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        raise DTypeError(
            f"{where}: {key} must be an array; expected an ndarray of shape "
            f"{param.shape}, got {type(value).__name__}"
        )
    if tuple(value.shape) != param.shape:
        index = key.split(".")[1]
        raise ShapeError(
            f"{where}: {key} has the wrong shape; expected {param.shape} (params[{index}]), "
            f"got {tuple(value.shape)}"
        )
    if getattr(value.dtype, "kind", None) != "f":
        raise DTypeError(
            f"{where}: {key} has dtype {value.dtype}; expected a floating-point array, "
            f"got {value.dtype} ({key}.shape={tuple(value.shape)})"
        )
    xp = get_xp(param.data)
    if get_xp(value) is not xp:
        value = to_host(value)  # one host copy; xp.array below moves it to the device
    return xp.array(value, dtype=param.data.dtype, copy=True)
