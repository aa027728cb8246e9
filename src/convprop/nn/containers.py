"""Containers: Sequential, ModuleList, ModuleDict, Identity, and the Residual convenience."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.errors import ShapeError
from convprop.nn.activation import ReLU
from convprop.nn.conv import Conv2d
from convprop.nn.module import Module, observed
from convprop.nn.regularization import _BatchNorm


def _checked(owner: str, index: Any, module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(
            f"{owner}: item {index} must be a Module; expected a Module, got "
            f"{type(module).__name__}"
        )
    return module


class Identity(Module):
    """y = x (a placeholder, e.g. the shortcut of a block that keeps its shape)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Sequential(Module):
    """Modules applied in order, ``Sequential(a, b, c)(x) = c(b(a(x)))``.

    A BatchNorm or Conv2d layer followed by a ReLU runs as one op (``layer(x, relu=True)``:
    functional/batch_norm_relu.py, functional/conv2d_relu.py): the same values and gradients
    with fewer passes over memory and one node, unless a summary is observing each module's
    output.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Linear, ReLU
    >>> net = Sequential(Linear(4, 3, rng=0), ReLU(), Linear(3, 2, rng=1))
    >>> net(np.ones((5, 4), dtype=np.float32)).shape
    (5, 2)
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(str(name), _checked("Sequential", name, module))
            return
        for index, module in enumerate(modules):
            self.add_module(str(index), _checked("Sequential", index, module))

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return Sequential(dict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), _checked("Sequential", len(self), module))
        return self

    def forward(self, x: Any) -> Any:
        modules = tuple(self._modules.values())
        index = 0
        while index < len(modules):
            module = modules[index]
            if index + 1 < len(modules) and _fuses_relu(module, modules[index + 1]):
                x = module(x, relu=True)  # (BR1)-(BR4) or (CB1)-(CB4): the two layers as one op
                index += 2
                continue
            x = module(x)
            index += 1
        return x


def _fuses_relu(module: Module, after: Module) -> bool:
    """Whether a BatchNorm or Conv2d layer and the ReLU after it run as one op
    (``module(x, relu=True)``): both convprop's own (no forward of a subclass to bypass) and
    no observer watching each module's output."""
    if type(after) is not ReLU or observed():
        return False
    if isinstance(module, _BatchNorm):
        return type(module).forward is _BatchNorm.forward
    return isinstance(module, Conv2d) and type(module).forward is Conv2d.forward


class ModuleList(Module):
    """A list of modules, registered as "0", "1", …; it has no forward of its own."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), _checked("ModuleList", len(self), module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: Any) -> Any:
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        key = list(self._modules)[index]
        self._modules[key] = _checked("ModuleList", index, module)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules, registered under their keys in insertion order."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, module in (modules or {}).items():
            self[name] = module

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(str(key), _checked("ModuleDict", key, module))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()


class Residual(Module):
    """y = x + body(x): a skip connection that keeps the shape.

    The gradient of x is the sum of the two paths' (GR2), which the graph adds.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Linear
    >>> block = Residual(Linear(3, 3, rng=0))
    >>> block(np.ones((2, 3), dtype=np.float32)).shape
    (2, 3)
    >>> [name for name, _ in block.named_parameters()]
    ['body.weight', 'body.bias']
    """

    def __init__(self, body: Module) -> None:
        super().__init__()
        self.body = _checked("Residual", "body", body)

    def forward(self, x: Any) -> Tensor:
        y = self.body(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ShapeError(
                f"Residual: the body must keep the shape; expected {tuple(x.shape)}, got "
                f"{tuple(y.shape)}"
            )
        x_tensor = x if isinstance(x, Tensor) else Tensor(x)
        return x_tensor + y  # type: ignore[no-any-return]  # y comes from an untyped forward
