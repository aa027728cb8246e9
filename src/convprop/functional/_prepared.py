"""Calls whose checks passed, remembered by signature, so that a network's repeated calls skip
them.

A network makes the same few calls of each op on every step, and an op's checks (array
kinds, dtypes, shapes, hyperparameters) and decisions (a geometry, an algorithm) are
functions of the call's *signature* alone:

- for each array argument: its array type, shape and dtype (None for an absent one);
- each other argument as given, with its type (``convprop._shapes.typed_key``, the key the
  geometry checks keep too): ``1 == 1.0 == True``, and a check may refuse one of them and
  accept another.

A call with a signature seen before takes what was decided then; a call that raised is never
remembered; what depends on the values themselves (a NaN, a variance) is asked on every
call. Each op's module says what its signature holds beyond this.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from convprop.backend import is_array

T = TypeVar("T")


def arrays_signature(*arrays: Any) -> tuple[Any, ...] | None:
    """(type, shape, dtype) of each array (None for a None), or None where an argument is
    neither an array nor None (the op's checks refuse it, every time)."""
    key: list[Any] = []
    for a in arrays:
        if a is None:
            key.append(None)
        elif is_array(a):
            key.append((type(a), a.shape, a.dtype))
        else:
            return None
    return tuple(key)


class PreparedCalls(Generic[T]):
    """A table of calls whose checks passed: signature -> what the op decided then.

    At most ``kept`` signatures (a network has a few dozen); the table starts afresh past it.
    """

    def __init__(self, kept: int = 512) -> None:
        self.kept = kept
        self._table: dict[tuple[Any, ...], T] = {}

    def recall(self, key: tuple[Any, ...] | None) -> T | None:
        """What was kept for ``key`` (None: none, or a call not remembered: ``key`` None or
        unhashable: an array among the arguments, which the checks see afresh)."""
        if key is None:
            return None
        try:
            return self._table.get(key)
        except TypeError:  # an unhashable argument
            return None

    def keep(self, key: tuple[Any, ...] | None, value: T) -> None:
        """Remember a call whose checks passed (``key`` None or unhashable: nothing to
        remember)."""
        if key is None:
            return
        try:
            hash(key)
        except TypeError:
            return
        if len(self._table) >= self.kept:
            self._table.clear()
        self._table[key] = value

    def forget(self) -> None:
        """Empty the table (tests that change what the checks or decisions read)."""
        self._table.clear()

    def __len__(self) -> int:
        return len(self._table)
