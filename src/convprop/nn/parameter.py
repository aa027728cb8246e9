"""Parameter: a trainable array and the gradient accumulated into it."""

from __future__ import annotations

from convprop.backend import Array, get_xp


class Parameter:
    """A trainable array.

    Attributes
    ----------
    data : Array
        The values (any shape); its dtype sets the network's dtype.
    grad : Array
        Same shape and dtype as ``data``; layers *add* into it in ``backward`` and
        ``zero_grad`` resets it.

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.ones((2, 3), dtype=np.float32))
    >>> p.grad.shape, p.grad.dtype
    ((2, 3), dtype('float32'))
    """

    __slots__ = ("_data", "grad")

    def __init__(self, data: Array) -> None:
        self._data = data
        self.grad = get_xp(data).zeros_like(data)

    @property
    def data(self) -> Array:
        return self._data

    @data.setter
    def data(self, value: Array) -> None:
        """Assigning new values (possibly of another dtype or device) resets ``grad`` to match."""
        self._data = value
        if (
            self.grad.shape != value.shape
            or self.grad.dtype != value.dtype
            or (get_xp(self.grad) is not get_xp(value))
        ):
            self.grad = get_xp(value).zeros_like(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    def zero_grad(self) -> None:
        """Reset the accumulated gradient to zero (in place)."""
        self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self._data.dtype})"


def add_gradients(weight: Parameter, bias: Parameter | None, dw: Array, db: Array | None) -> None:
    """Accumulate a layer's gradients: ``weight.grad += dw``, ``bias.grad += db``."""
    weight.grad += dw
    if bias is not None and db is not None:
        bias.grad += db
