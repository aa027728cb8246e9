"""Whether ops record the graph: on by default, off inside ``no_grad()``.

The switch is per thread, as PyTorch's: a thread evaluating a model under ``no_grad`` does
not stop another from training.
"""

from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when ops record nodes (and keep their caches) for a later backward."""
    return bool(getattr(_state, "enabled", True))


def set_grad_enabled(mode: bool) -> None:
    """Turn recording on or off for this thread."""
    _state.enabled = bool(mode)


class no_grad(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Run a block (or a decorated function) without recording: nothing to backward through,
    no cache kept, so inference needs only the memory of its activations.

    Examples
    --------
    >>> import numpy as np, convprop
    >>> x = convprop.tensor(np.ones(2), requires_grad=True)
    >>> with convprop.no_grad():
    ...     y = x * 2.0
    >>> y.requires_grad
    False
    """

    def _recreate_cm(self) -> no_grad:
        # a fresh context per decorated call: a recursive call must not overwrite the mode
        # that the outer call restores
        return type(self)()

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc: object) -> None:
        set_grad_enabled(self._previous)


class enable_grad(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Record again inside a ``no_grad`` block."""

    def _recreate_cm(self) -> enable_grad:
        return type(self)()

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        set_grad_enabled(True)

    def __exit__(self, *exc: object) -> None:
        set_grad_enabled(self._previous)
