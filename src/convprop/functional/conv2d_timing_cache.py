"""The ``auto`` algorithm choice's timing cache: measured choices, kept on disk.

:func:`enable_timing_cache` switches on measured choices: the first time ``auto`` meets a
layer shape (per dtype and backend) it times every algorithm on each pass once and keeps
the fastest; the table is bounded (``MAX_ENTRIES``, oldest dropped first) and persisted as
JSON under the user's cache directory (``$XDG_CACHE_HOME/convprop`` or
``~/.cache/convprop``), written atomically. Off by default, so that results and run times
never depend on a file the user did not ask for. ``conv2d_select`` consults it before the
cost model (``conv2d_cost_model``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convprop._shapes import ConvGeometry

MAX_ENTRIES = 512
"""The table's bound: past it, the oldest entry is dropped first."""


class TimingCache:
    """Measured fastest algorithm per (backend, dtype, layer shape, pass), bounded, on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = json.load(handle)
            if isinstance(loaded, dict):
                self.entries = {str(k): str(v) for k, v in loaded.items()}
        except (OSError, ValueError):
            self.entries = {}  # a missing or unreadable cache is an empty one

    @staticmethod
    def key(geom: ConvGeometry, dtype: str, backend: str, pass_name: str) -> str:
        return f"{backend}|{dtype}|{geom.describe()}|N={geom.N}|{pass_name}"

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, name: str) -> None:
        self.entries.pop(key, None)
        self.entries[key] = name
        while len(self.entries) > MAX_ENTRIES:
            self.entries.pop(next(iter(self.entries)))
        self.save()

    def save(self) -> None:
        """Write the table atomically (temporary file + rename); failures are ignored."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self.entries, stream)
            os.replace(temporary, self.path)
        except OSError:  # pragma: no cover - a read-only cache directory
            pass

    def fastest(
        self,
        geom: ConvGeometry,
        pass_name: str,
        dtype: str,
        backend: str,
        candidates: list[str],
        measure: Callable[[str, str], Callable[[], object]],
    ) -> str:
        """The measured fastest of ``candidates`` for one pass: the table's entry when it names
        one of them, else each timed once now (``measure``: name, pass -> a callable that runs
        that pass) and the fastest recorded."""
        key = self.key(geom, dtype, backend, pass_name)
        known = self.get(key)
        if known in candidates:
            return known
        timings = {name: _measure(measure(name, pass_name)) for name in candidates}
        best = min(timings, key=lambda name: timings[name])
        self.put(key, best)
        return best


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "convprop" / "conv_timings.json"


_TIMINGS: TimingCache | None = None


def enable_timing_cache(path: str | os.PathLike[str] | None = None) -> TimingCache:
    """Let ``auto`` measure unseen layer shapes once and remember the fastest algorithm."""
    global _TIMINGS
    _TIMINGS = TimingCache(Path(path) if path is not None else default_cache_path())
    return _TIMINGS


def disable_timing_cache() -> None:
    """Back to the cost model alone (the default)."""
    global _TIMINGS
    _TIMINGS = None


def _measure(run: Callable[[], object]) -> float:
    run()  # warm-up: allocations, FFT plans
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def timing_cache_enabled() -> bool:
    """Whether ``auto`` reads measured choices (see :func:`enable_timing_cache`)."""
    return _TIMINGS is not None


def active_cache() -> TimingCache | None:
    """The table ``auto`` reads now, or None where the cost model alone decides."""
    return _TIMINGS


def cache_state() -> dict[str, Any]:
    """Whether measured choices are on, and where the table lives (for reports)."""
    if _TIMINGS is None:
        return {"enabled": False}
    return {"enabled": True, "path": str(_TIMINGS.path), "entries": len(_TIMINGS.entries)}
