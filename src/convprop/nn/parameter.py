"""Parameter: a trainable Tensor whose gradient the backward pass adds into."""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.backend import Array, get_xp


class Parameter(Tensor):
    """A leaf Tensor that needs its gradient; a Module registers it by attribute assignment.

    Unlike a plain Tensor, a Parameter's ``grad`` exists from the start (zeros of its shape
    and dtype): the backward pass adds into it in place and ``zero_grad`` resets it, so a
    training step allocates no gradient buffers.

    Attributes
    ----------
    data : Array
        The values (any shape); its dtype sets the network's dtype.
    grad : Array
        Same shape and dtype as ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.ones((2, 3), dtype=np.float32))
    >>> p.grad.shape, p.grad.dtype, p.requires_grad
    ((2, 3), dtype('float32'), True)
    """

    grad: Array  # always an array of data's shape and dtype (never None, unlike a Tensor's)

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data)
        self.grad = get_xp(self.data).zeros_like(self.data)
        self.requires_grad_(requires_grad)

    @property
    def data(self) -> Array:
        return self._data

    @data.setter
    def data(self, value: Array) -> None:
        """Assigning new values (possibly of another dtype or device) resets ``grad`` to match."""
        Tensor.data.fset(self, value)  # type: ignore[attr-defined]
        grad = self.grad
        if (
            grad is None
            or grad.shape != value.shape
            or grad.dtype != value.dtype
            or (get_xp(grad) is not get_xp(value))
        ):
            self.grad = get_xp(value).zeros_like(value)

    def zero_grad(self) -> None:
        """Reset the accumulated gradient to zero (in place)."""
        if self.grad is None:
            self.grad = get_xp(self._data).zeros_like(self._data)
        else:
            self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self._data.dtype})"
