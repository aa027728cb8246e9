"""``summary(model, input_shape)``: each layer's output shape and parameter count, and totals."""

from __future__ import annotations

from typing import Any

import numpy

from convprop.autograd.grad_mode import no_grad
from convprop.errors import ShapeError
from convprop.nn.module import Module, _observers


def _shape(value: Any) -> str:
    if hasattr(value, "shape"):
        return str(tuple(int(n) for n in value.shape))
    if isinstance(value, (tuple, list)):
        return ", ".join(_shape(v) for v in value)
    return type(value).__name__


def summary(model: Module, input_shape: tuple[int, ...], *, dtype: str | None = None) -> str:
    """Run one forward on zeros of ``input_shape`` (nothing recorded) and tabulate each
    module call that has no sub-modules: its name, class, output shape and parameters.

    Parameters
    ----------
    model : Module
    input_shape : tuple of int
        E.g. (1, 1, 28, 28).
    dtype : str, optional
        The zeros' dtype; by default the model's (its first parameter's), else float32.

    Returns
    -------
    str
        A table; a layer called twice (shared weights) has a row per call and its
        parameters counted once in the totals.

    Examples
    --------
    >>> from convprop.nn import Conv2d, Flatten, Linear, ReLU, Sequential
    >>> net = Sequential(Conv2d(1, 2, 3, rng=0), ReLU(), Flatten(), Linear(8, 3, rng=0))
    >>> print(net.summary((1, 1, 4, 4)))  # doctest: +NORMALIZE_WHITESPACE
    layer  type    output shape  parameters
    0      Conv2d  (1, 2, 2, 2)  20
    1      ReLU    (1, 2, 2, 2)  0
    2      Flatten (1, 8)        0
    3      Linear  (1, 3)        27
    total parameters: 47 (trainable 47)
    """
    if not (
        isinstance(input_shape, (tuple, list))
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in input_shape)
    ):
        raise ShapeError(
            f"summary: input_shape must be a tuple of sizes; expected e.g. (1, 1, 28, 28), "
            f"got {input_shape!r}"
        )
    names = {id(module): name for name, module in model.named_modules()}
    rows: list[tuple[str, str, str, int]] = []

    def observe(module: Module, args: tuple[Any, ...], y: Any) -> None:
        if module._modules and module is not model:
            return
        if module._modules:  # the model itself, with children: its rows come from them
            return
        own = sum(int(p.data.size) for p in module._parameters.values() if p is not None)
        rows.append(
            (names.get(id(module), "?") or "(model)", type(module).__name__, _shape(y), own)
        )

    if dtype is None:
        params = model.parameters()
        dtype = str(params[0].dtype) if params else "float32"
    was_training = model.training
    model.eval()
    _observers.append(observe)
    try:
        with no_grad():
            model(numpy.zeros(tuple(input_shape), dtype=dtype))
    finally:
        _observers.remove(observe)
        model.train(was_training)
    header = ("layer", "type", "output shape", "parameters")
    table = [header, *((n, t, s, str(p)) for n, t, s, p in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table
    ]
    params = model.parameters()
    total = sum(int(p.data.size) for p in params)
    trainable = sum(int(p.data.size) for p in params if p.requires_grad)
    lines.append(f"total parameters: {total} (trainable {trainable})")
    return "\n".join(lines)
