"""Module: the base of every layer and model, as PyTorch's ``nn.Module``.

A Module owns Parameters, buffers (running statistics) and sub-modules, all registered by
attribute assignment in definition order (so ``state_dict`` keys equal PyTorch's for the
same class). ``forward`` is written freely, from Tensor ops and other modules; a module
may be called any number of times in one forward (shared weights), since what a backward
needs lives in the recorded graph, not in the module. Modules contain no math and no
backward: every formula is in convprop.functional, and the graph orders the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from convprop.autograd.tensor import Tensor
from convprop.backend import Array, get_xp, to_device
from convprop.errors import ParameterError, ShapeError
from convprop.nn.parameter import Parameter

CallObserver = Callable[["Module", tuple[Any, ...], Any], None]
_observers: list[CallObserver] = []
"""Called after every module call (``summary`` uses it); empty in normal use."""


def observed() -> bool:
    """Whether an observer (a summary) is watching every module's call."""
    return bool(_observers)


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer, container and user model.

    Subclasses call ``super().__init__()`` first, then assign Parameters, Modules and
    (with ``register_buffer``) buffers as attributes, and define ``forward``.

    Examples
    --------
    >>> import numpy as np
    >>> from convprop.nn import Linear
    >>> class TwoLayer(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.first = Linear(4, 3, rng=0)
    ...         self.second = Linear(3, 2, rng=1)
    ...     def forward(self, x):
    ...         return self.second(self.first(x))
    >>> [name for name, _ in TwoLayer().named_parameters()]
    ['first.weight', 'first.bias', 'second.weight', 'second.bias']
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Array]
    _modules: dict[str, Module]
    _non_persistent: set[str]

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_non_persistent", set())

    # -- registration by attribute ------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(
                f"{type(self).__name__}: cannot assign {name!r} before Module.__init__(); "
                "expected super().__init__() first in __init__"
            )
        if isinstance(value, Parameter):
            if name not in params:  # type: ignore[operator]
                self._forget(name)  # a reassigned Parameter keeps its place, as in PyTorch
            params[name] = value  # type: ignore[index]
        elif isinstance(value, Module):
            if name not in self._modules:
                self._forget(name)
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: {name} is a Parameter; expected a Parameter or "
                    f"None, got {type(value).__name__}"
                )
            params[name] = None
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: {name} is a sub-module; expected a Module or "
                    f"None, got {type(value).__name__}"
                )
            del self._modules[name]
            object.__setattr__(self, name, None)
        elif params is not None and name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails: parameters, buffers and modules live in dicts
        for store in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(store)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Array | None, persistent: bool = True) -> None:
        """Keep an array that is state but not trained (running statistics); in state_dict
        unless ``persistent`` is False."""
        if isinstance(value, Tensor):
            value = value.data
        if name not in self._buffers:
            self._forget(name)
        self._buffers[name] = value
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or a None placeholder) under ``name``."""
        self._forget(name)
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` under ``name`` (as attribute assignment does)."""
        if module is None:
            self._forget(name)
            return
        setattr(self, name, module)

    # -- the computation -------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        y = self.forward(*args, **kwargs)
        for observer in _observers:
            observer(self, args, y)
        return y

    # -- parameters, buffers, children -----------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Parameters with PyTorch ``state_dict`` names ("0.weight", "0.bias", ...); a
        Parameter shared by several modules is listed once, under its first name."""
        seen: set[int] = set()
        for name, module in self.named_modules(prefix.rstrip(".")):
            for param_name, param in module._parameters.items():
                if param is not None and id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{name}.{param_name}" if name else param_name), param

    def parameters(self) -> list[Parameter]:
        """All parameters in PyTorch's order: modules in order, weight before bias."""
        return [param for _, param in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        for name, module in self.named_modules(prefix.rstrip(".")):
            for buffer_name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{name}.{buffer_name}" if name else buffer_name), buffer

    def buffers(self) -> list[Array]:
        return [buffer for _, buffer in self.named_buffers()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and its descendants, depth first; a
        module that appears twice is listed once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and all its descendants, depth first."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, child) for each direct sub-module; one registered twice is listed once."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first) and on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.zero_grad()

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- device and dtype --------------------------------------------------------------------
    def _map_arrays(self, fn: Callable[[Array], Array], floating_only: bool) -> Module:
        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    param.data = fn(param.data)
            for name, buffer in module._buffers.items():
                if buffer is not None and (not floating_only or buffer.dtype.kind == "f"):
                    module._buffers[name] = fn(buffer)
        return self

    def to(self, target: Any) -> Module:
        """Move every parameter and buffer to a device ("cpu" or "cuda"), or cast the
        floating ones to a dtype ("float32", "float64")."""
        if target in ("cpu", "cuda"):
            return self._map_arrays(lambda a: to_device(a, target), floating_only=False)
        if str(target) in ("float32", "float64"):
            return self._map_arrays(lambda a: a.astype(str(target)), floating_only=True)
        raise ParameterError(
            f"{type(self).__name__}.to: unknown target; expected 'cpu', 'cuda', 'float32' "
            f"or 'float64', got {target!r}"
        )

    def double(self) -> Module:
        return self.to("float64")

    def float(self) -> Module:
        return self.to("float32")

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Array]:
        """Parameters and buffers by PyTorch name (the arrays themselves, not copies).

        The order is PyTorch's: each module's parameters, then its buffers, then its
        children's entries, so entries can also be matched with a PyTorch state_dict by
        position.

        Examples
        --------
        >>> from convprop.nn import BatchNorm2d, Conv2d, Sequential
        >>> list(Sequential(Conv2d(1, 2, 3, rng=0), BatchNorm2d(2)).state_dict())[2:]
        ['1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']
        """
        return dict(self._named_state(""))

    def _named_state(self, prefix: str) -> Iterator[tuple[str, Array]]:
        # as PyTorch: a module or Parameter registered twice appears under both names
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param.data
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent:
                yield prefix + name, buffer
        for child_name, child in self._modules.items():
            yield from child._named_state(f"{prefix}{child_name}.")

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or Tensors) into parameters and buffers.

        With ``strict`` the names must match exactly; otherwise the common names are loaded
        and the others returned. Shapes must always match. The arrays' dtype is kept (a
        float64 state makes the module float64); every array is copied.
        """
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: keys do not match; expected {sorted(own)}, got "
                f"{sorted(state)} (missing {missing}, unexpected {unexpected})"
            )
        arrays = {k: (v.data if isinstance(v, Tensor) else v) for k, v in state.items() if k in own}
        for name, value in arrays.items():
            if tuple(value.shape) != tuple(own[name].shape):
                raise ShapeError(
                    f"load_state_dict: {name} has the wrong shape; expected "
                    f"{tuple(own[name].shape)}, got {tuple(value.shape)}"
                )
        for name, value in arrays.items():
            self._set_state(name, get_xp(own[name]).array(value, copy=True))
        return IncompatibleKeys(missing, unexpected)

    def _set_state(self, dotted: str, value: Array) -> None:
        module: Module = self
        *path, leaf = dotted.split(".")
        for part in path:
            module = module._modules[part]
        param = module._parameters.get(leaf)
        if param is not None:
            param.data = value
        else:
            module._buffers[leaf] = value

    # -- description -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable, so that a model file can rebuild the
        module; for a class registered with ``convprop.nn.register``, the arguments its
        constructor was called with."""
        return dict(self.__dict__.get("_init_args", {}))

    def summary(self, input_shape: tuple[int, ...], *, dtype: str | None = None) -> str:
        """Per layer output shape and parameter count, and the totals (see nn.summary)."""
        from convprop.nn.summary import summary

        return summary(self, input_shape, dtype=dtype)

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
