"""Which Module classes a model file may name: convprop.nn's layers and the user's.

A model file stores its architecture as JSON: each node a class *name* and its
constructor arguments. Loading builds only classes found here, never code named by a file.
``register`` adds a user's class; its constructor arguments are recorded at each
construction, so ``config()`` needs no code of the user's.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

from convprop.nn.module import Module

ModuleType = TypeVar("ModuleType", bound=type[Module])

_user_classes: dict[str, type[Module]] = {}


def builtin_classes() -> dict[str, type[Module]]:
    """convprop.nn's own Module classes, by name."""
    import convprop.nn

    classes = (getattr(convprop.nn, name) for name in convprop.nn.__all__)
    return {
        cls.__name__: cls
        for cls in classes
        if isinstance(cls, type) and issubclass(cls, Module) and cls is not Module
    }


def registered_classes() -> dict[str, type[Module]]:
    """Every class a model file may name: convprop.nn's, then the user's registered ones."""
    return {**builtin_classes(), **_user_classes}


def _record_arguments(cls: type[Module]) -> None:
    """Wrap ``cls.__init__`` to keep the arguments of each construction as ``_init_args``."""
    original = cls.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Module, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        if "_init_args" not in self.__dict__:  # the outermost registered constructor
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments: dict[str, Any] = {}
            for index, (name, value) in enumerate(bound.arguments.items()):
                kind = signature.parameters[name].kind
                if index == 0:
                    continue  # self
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    arguments["*" + name] = list(value)
                else:
                    arguments[name] = value
            object.__setattr__(self, "_init_args", arguments)
        original(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[method-assign]


def register(cls: Any = None, *, name: str | None = None) -> Any:
    """Let model files and checkpoints name a user's Module class (a class decorator).

    The architecture stores ``{"type": name, "config": the constructor's arguments}``;
    loading calls ``cls(**config)`` and loads the weights. The arguments must be JSON data
    (numbers, strings, lists, dicts, None); saving says which one is not.

    Examples
    --------
    >>> from convprop.nn import Linear, Module
    >>> @register
    ... class Head(Module):
    ...     def __init__(self, features, classes=10):
    ...         super().__init__()
    ...         self.fc = Linear(features, classes, rng=0)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> Head(8).config()
    {'features': 8, 'classes': 10}
    """

    def decorate(klass: Any) -> Any:
        if not (isinstance(klass, type) and issubclass(klass, Module)):
            raise TypeError(f"register: expected a subclass of convprop.nn.Module, got {klass!r}")
        key = name or klass.__name__
        known = registered_classes().get(key)
        if known is not None and known is not klass and known.__qualname__ != klass.__qualname__:
            raise ValueError(
                f"register: the name {key!r} is taken by {known.__module__}.{known.__qualname__}; "
                f"expected a new name, got {klass.__module__}.{klass.__qualname__} (pass name=)"
            )
        if key in builtin_classes():
            raise ValueError(
                f"register: {key!r} is a convprop.nn layer; expected another name, got {key!r}"
            )
        if "_convprop_registered" not in klass.__dict__:
            _record_arguments(klass)
            klass._convprop_registered = key  # type: ignore[attr-defined]
        _user_classes[key] = klass
        return klass

    return decorate(cls) if cls is not None else decorate


def name_of(module: Module) -> str | None:
    """The name under which ``type(module)`` is registered (built-in or user), else None."""
    for key, cls in registered_classes().items():
        if type(module) is cls:
            return key
    return None
