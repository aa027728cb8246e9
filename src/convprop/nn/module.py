"""Module, Sequential and Residual: stateful containers around convprop.functional.

A Module owns Parameters (``.data``, ``.grad``), optional buffers (running statistics)
and one cache slot. ``forward(x)`` fills the slot, ``backward(dy)`` consumes it, adds into
each parameter's ``.grad`` and returns ``dx``. Modules contain no math: every formula is
in convprop.functional.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from convprop.backend import Array, get_xp, to_device
from convprop.errors import ShapeError
from convprop.nn.parameter import Parameter


class Module:
    """Base class of every layer and container.

    Subclasses set parameters and buffers in ``__init__`` through ``self._parameters``,
    ``self._buffers`` and ``self._modules`` (ordered dicts, insertion order = PyTorch's
    order), implement ``forward`` and ``backward``, and ``config()`` for model files.
    """

    def __init__(self) -> None:
        self.training = True
        self._parameters: dict[str, Parameter | None] = {}
        self._buffers: dict[str, Array] = {}
        self._modules: dict[str, Module] = {}
        self._cache: Any = None

    # -- the computation -------------------------------------------------------------
    def forward(self, x: Array) -> Array:
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def _take_cache(self) -> Any:
        """Return the cache of the last forward and release it (one backward per forward)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        cache, self._cache = self._cache, None
        return cache

    # -- parameters, buffers, children ------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Parameters with PyTorch ``state_dict`` names ("0.weight", "0.bias", ...)."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for child_name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def parameters(self) -> list[Parameter]:
        """All parameters in PyTorch's order: modules in order, weight before bias."""
        return [param for _, param in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        for name, buffer in self._buffers.items():
            yield prefix + name, buffer
        for child_name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}{child_name}.")

    def modules(self) -> Iterator[Module]:
        """This module and all its descendants, depth first."""
        yield self
        for child in self._modules.values():
            yield from child.modules()

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, device: str) -> Module:
        """Move every parameter and buffer to ``device`` ("cpu" or "cuda"); drops the caches."""
        if device not in ("cpu", "cuda"):  # checked first: a module without arrays, too
            raise ValueError(
                f"{type(self).__name__}.to: unknown device; expected 'cpu' or 'cuda', "
                f"got {device!r}"
            )
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    param.data = to_device(param.data, device)
            for name, buffer in module._buffers.items():
                module._buffers[name] = to_device(buffer, device)
            module._cache = None
        return self

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Array]:
        """Parameters and buffers by PyTorch name (the arrays themselves, not copies).

        The order is PyTorch's: each module's parameters, then its buffers, then its
        children's entries, so entries can also be matched with a PyTorch state_dict by
        position.

        Examples
        --------
        >>> from convprop.nn import BatchNorm2d, Conv2d
        >>> list(Sequential(Conv2d(1, 2, 3, rng=0), BatchNorm2d(2)).state_dict())[2:]
        ['1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        return dict(self._named_state(""))

    def _named_state(self, prefix: str) -> Iterator[tuple[str, Array]]:
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param.data
        for name, buffer in self._buffers.items():
            yield prefix + name, buffer
        for child_name, child in self._modules.items():
            yield from child._named_state(f"{prefix}{child_name}.")

    def load_state_dict(self, state: dict[str, Array]) -> None:
        """Copy arrays into parameters and buffers; names and shapes must match exactly.

        The arrays' dtype is kept (a float64 state makes the module float64).
        """
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(
                f"load_state_dict: keys do not match; expected {sorted(own)}, got "
                f"{sorted(state)} (missing {missing}, unexpected {unexpected})"
            )
        for name, value in state.items():
            if tuple(value.shape) != tuple(own[name].shape):
                raise ShapeError(
                    f"load_state_dict: {name} has the wrong shape; expected "
                    f"{tuple(own[name].shape)}, got {tuple(value.shape)}"
                )
        params = dict(self.named_parameters())
        for name, value in state.items():
            xp = get_xp(own[name])
            if name in params:
                params[name].data = xp.array(value, copy=True)
            else:
                self._set_buffer(name, xp.array(value, copy=True))

    def _set_buffer(self, dotted: str, value: Array) -> None:
        module: Module = self
        *path, leaf = dotted.split(".")
        for part in path:
            module = module._modules[part]
        module._buffers[leaf] = value

    # -- description -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable, so a model file can rebuild the module."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse.

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

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential: item {index} must be a Module; expected a Module, got "
                    f"{type(module).__name__}"
                )
            self._modules[str(index)] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, x: Array) -> Array:
        for module in self._modules.values():
            x = module.forward(x)
        return x

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        modules = list(self._modules.values())
        grad: Array | None = dy
        for index in range(len(modules) - 1, -1, -1):
            grad = modules[index].backward(grad, need_dx=need_dx or index > 0)
        return grad


class Residual(Module):
    """y = x + f(x): a skip connection, so ResNet-style nets need no autograd.

    Backward: dx = dy + f.backward(dy) (the two paths' gradients add).

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
        self._modules["body"] = body

    @property
    def body(self) -> Module:
        return self._modules["body"]

    def forward(self, x: Array) -> Array:
        y = self.body.forward(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ShapeError(
                f"Residual: the body must keep the shape; expected {tuple(x.shape)}, got "
                f"{tuple(y.shape)}"
            )
        self._cache = True
        return x + y

    def backward(self, dy: Array, *, need_dx: bool = True) -> Array | None:
        self._take_cache()
        # Without need_dx the body's own dx is not needed either (its parameters still get
        # their gradients).
        d_body = self.body.backward(dy, need_dx=need_dx)
        if not need_dx or d_body is None:
            return None
        return dy + d_body
