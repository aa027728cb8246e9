"""What every ``convprop explain`` topic shares: the Example record, number formatting, checks.

Each topic is a list of Examples. An Example keeps the arrays it printed, so that the tests
compare exactly those numbers with the naive references, and the text names the equation
labels it shows together with their section of docs/derivations.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy

DERIVATIONS = "docs/derivations.md"


@dataclass(frozen=True)
class Example:
    """One worked example: a title, the labels it shows, its text and its arrays.

    Attributes
    ----------
    title : str
        One line.
    cites : str
        The equation labels with their sections, e.g. ``"(B3) §4, (S1) §2"``.
    lines : list of str
        The text, indented by three spaces when printed.
    arrays : dict of str to numpy.ndarray
        Every array the text prints, under the name it is printed with (float64).
    settings : dict
        The hyperparameters of the example (stride, padding, dilation ...), for the tests.
    """

    title: str
    cites: str
    lines: list[str]
    arrays: dict[str, numpy.ndarray] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def fmt(array: Any, precision: int = 3) -> str:
    """An array as NumPy prints it; rounding noise (below 1e-10) and -0 are shown as 0."""
    values = numpy.asarray(array)
    if values.dtype.kind in "fc":
        values = numpy.round(values, 10) + 0.0  # -0.0 + 0.0 is +0.0
    return numpy.array2string(values, precision=precision, suppress_small=True)


def block(name: str, array: Any, note: str = "") -> list[str]:
    """``name =`` (with ``note``: ``name = note`` or, for a note in parentheses,
    ``name (note) =``) and the array below it, indented."""
    text = fmt(array)
    head = f"{name} {note}" if note.startswith("(") else f"{name} = {note}".rstrip()
    if "\n" not in text and len(head) + len(text) < 90:
        return [f"{head} {text}" if note else f"{name} = {text}"]
    return [head, *("    " + line for line in text.splitlines())]


def render(examples: Sequence[Example], heading: str) -> str:
    """The text of a topic: a heading, then the numbered examples."""
    parts = [heading]
    for number, example in enumerate(examples, start=1):
        lines = [f"{number}. {example.title}   [{example.cites}; {DERIVATIONS}]"]
        lines.extend("   " + line for line in example.lines)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def require_equal(what: str, actual: Any, expected: Any, *, exact: bool = False) -> str:
    """``"equal"`` when the two agree (bit for bit if ``exact``), else raise RuntimeError.

    Every identity a topic prints is checked before it is printed: a topic that would print a
    false identity stops instead.
    """
    a, b = numpy.asarray(actual), numpy.asarray(expected)
    same = a.shape == b.shape and (
        numpy.array_equal(a, b) if exact else numpy.allclose(a, b, rtol=1e-10, atol=1e-12)
    )
    if not same:
        raise RuntimeError(
            f"explain: {what} does not hold; expected {fmt(b)}, got {fmt(a)} "
            f"(shapes {b.shape} and {a.shape})"
        )
    return "equal"
