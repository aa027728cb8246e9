"""Line charts as inline SVG for the training report: no plotting library, no script.

Every point is a marker carrying ``data-series``, ``data-epoch`` and ``data-value`` (the number
as the history holds it), with a ``<title>`` a browser shows on hover. Series differ by colour
(Okabe–Ito, safe for colour-blind readers), by dash pattern and by marker shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999933")
DASHES = ("", "7 3", "2 3", "9 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class Series:
    """One line: its name and its (epoch, value) points (None or non-finite values are gaps)."""

    name: str
    epochs: Sequence[float]
    values: Sequence[float | None]
    label: str = ""  # shown in the legend instead of the name, where given


def tag(name: str, text: str | None = None, **attrs: Any) -> str:
    """An SVG element; ``class_`` and ``data_series`` style names become class, data-series."""
    rendered = " ".join(
        f'{key.rstrip("_").replace("_", "-")}="{escape(str(value))}"'
        for key, value in attrs.items()
    )
    return f"<{name} {rendered}/>" if text is None else f"<{name} {rendered}>{text}</{name}>"


@dataclass(frozen=True)
class Frame:
    """The plot area inside the SVG and the data ranges it maps."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log_y: bool

    def x(self, epoch: float) -> float:
        low, high = self.x_range
        return self.left + (epoch - low) / (high - low or 1.0) * self.width

    def y(self, value: float) -> float:
        low, high = self.y_range
        v = math.log10(value) if self.log_y else value
        return self.top + self.height - (v - low) / (high - low or 1.0) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height


def drawable(value: float | None, log_y: bool) -> bool:
    """A value the chart can place: finite, and positive on a log scale."""
    return value is not None and math.isfinite(value) and (value > 0 or not log_y)


def value_range(values: list[float], log_y: bool) -> tuple[float, float]:
    """The value axis: whole decades on a log scale, else the data with 8 % margins."""
    if log_y:
        floor = math.floor(min(math.log10(v) for v in values))
        return floor, max(math.ceil(max(math.log10(v) for v in values)), floor + 1)
    low, high = min(values), max(values)
    margin = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    return low - margin, high + margin


def power_of_ten(exponent: int) -> str:
    """10 with a superscript exponent, e.g. 10⁻³ (1 and 10 for 0 and 1)."""
    if exponent in (0, 1):
        return str(10**exponent)
    return "10" + str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def value_ticks(frame: Frame) -> list[tuple[float, str]]:
    """Tick values and labels: each decade on a log scale, else 1-2-5 steps (at most 6)."""
    low, high = frame.y_range
    if frame.log_y:
        return [(10.0**e, power_of_ten(e)) for e in range(int(low), int(high) + 1)]
    step = 10 ** math.floor(math.log10((high - low) / 4))
    step *= next(f for f in (1, 2, 5, 10) if (high - low) / (step * f) <= 6)
    first = math.ceil(low / step) * step
    count = int((high - first) / step) + 1
    return [(first + i * step, f"{first + i * step:.4g}") for i in range(count)]


def marker(shape: str, x: float, y: float, colour: str, title: str = "", **attrs: Any) -> str:
    """A circle, square, triangle or diamond centred on (x, y)."""
    text = f"<title>{escape(title)}</title>" if title else ""
    if shape == "circle":
        return tag("circle", text, cx=f"{x:.1f}", cy=f"{y:.1f}", r="3.5", fill=colour, **attrs)
    if shape == "square":
        corner = {"x": f"{x - 3.2:.1f}", "y": f"{y - 3.2:.1f}"}
        return tag("rect", text, **corner, width="6.4", height="6.4", fill=colour, **attrs)
    offsets = (
        ((0, -4), (-4, 3), (4, 3))
        if shape == "triangle"
        else ((0, -4.5), (4, 0), (0, 4.5), (-4, 0))
    )
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in offsets)
    return tag("polygon", text, points=points, fill=colour, **attrs)


def axes(frame: Frame, width: int, y_label: str) -> list[str]:
    """Grid lines with value ticks, epoch ticks, the frame and the two axis labels."""
    parts = []
    for value, label in value_ticks(frame):
        y = f"{frame.y(value):.1f}"
        parts.append(
            tag("line", x1=frame.left, x2=frame.left + frame.width, y1=y, y2=y, class_="grid")
        )
        parts.append(
            tag(
                "text",
                label,
                x=frame.left - 6,
                y=f"{frame.y(value) + 4:.1f}",
                class_="tick",
                text_anchor="end",
            )
        )
    first, last = int(frame.x_range[0]), int(frame.x_range[1])
    for epoch in range(first, last + 1, max(1, math.ceil((last - first + 1) / 12))):
        x = f"{frame.x(epoch):.1f}"
        parts.append(
            tag("text", str(epoch), x=x, y=frame.bottom + 16, class_="tick", text_anchor="middle")
        )
    parts.append(
        tag(
            "rect",
            x=frame.left,
            y=frame.top,
            width=frame.width,
            height=frame.height,
            class_="frame",
        )
    )
    middle = f"{frame.left + frame.width / 2:.0f}"
    parts.append(
        tag("text", "epoch", x=middle, y=frame.bottom + 34, class_="axis", text_anchor="middle")
    )
    turn = f"translate(16 {frame.top + frame.height / 2:.0f}) rotate(-90)"
    parts.append(tag("text", escape(y_label), transform=turn, class_="axis", text_anchor="middle"))
    return parts


def line(s: Series, index: int, frame: Frame) -> list[str]:
    """A series' polyline and its markers, each marker with its data- attributes."""
    colour, dash, shape = PALETTE[index % 8], DASHES[index % 4], MARKERS[index % 4]
    drawn = [
        (float(e), float(v))
        for e, v in zip(s.epochs, s.values, strict=True)
        if v is not None and drawable(v, frame.log_y)
    ]
    points = " ".join(f"{frame.x(e):.1f},{frame.y(v):.1f}" for e, v in drawn)
    style: dict[str, Any] = {
        "fill": "none",
        "stroke": colour,
        "stroke_width": 2,
        "stroke_dasharray": dash,
    }
    parts = [tag("polyline", points=points, data_series=s.name, **style)]
    for epoch, value in drawn:
        title = f"{s.name}, epoch {epoch:g}: {value:.4g}"
        parts.append(
            marker(shape, frame.x(epoch), frame.y(value), colour, title, class_="point",
                   data_series=s.name, data_epoch=f"{epoch:g}", data_value=repr(value))
        )  # fmt: skip
    return parts


def legend(s: Series, index: int, top: float, width: int) -> str:
    """One legend entry: a short line with the series' dash and marker, and its name."""
    colour, dash, shape = PALETTE[index % 8], DASHES[index % 4], MARKERS[index % 4]
    x, y = 64 + (index % 3) * (width - 84) / 3, top + 18 * (index // 3)
    stroke: dict[str, Any] = {"stroke": colour, "stroke_width": 2, "stroke_dasharray": dash}
    return (
        '<g class="legend">'
        + tag("line", x1=f"{x:.1f}", x2=f"{x + 28:.1f}", y1=y, y2=y, **stroke)
        + marker(shape, x + 14, y, colour)
        + tag("text", escape(s.label or s.name), x=f"{x + 34:.1f}", y=y + 4, class_="tick")
        + "</g>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    chart_id: str,
    title: str,
    y_label: str,
    log_y: bool = False,
    width: int = 580,
    height: int = 320,
) -> str:
    """An SVG line chart of ``series`` against the epoch, with axes, ticks and a legend.

    Parameters
    ----------
    series : sequence of Series
        Eight are told apart by colour; dashes and markers repeat every four.
    chart_id : str
        The ``id`` of the ``<svg>`` (the tests find the chart by it).
    title, y_label : str
    log_y : bool
        A base-10 logarithmic value axis (values <= 0 are left out).
    width, height : int
        In CSS pixels.

    Returns
    -------
    str
        The ``<svg>`` element, or a paragraph saying there is nothing to draw.
    """
    pairs = [(e, v) for s in series for e, v in zip(s.epochs, s.values, strict=True)]
    kept = [(float(e), float(v)) for e, v in pairs if v is not None and drawable(v, log_y)]
    if not kept:
        return tag("p", f"{escape(title)}: nothing recorded.", id=chart_id, class_="empty")
    rows = math.ceil(len(series) / 3)
    epochs = [e for e, _ in kept]
    frame = Frame(64, 34, width - 84, height - 84 - 18 * rows, (min(epochs), max(epochs)),
                  value_range([v for _, v in kept], log_y), log_y)  # fmt: skip
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title)}">',
        tag("text", escape(title), x=width // 2, y=20, class_="chart-title"),
        *axes(frame, width, y_label),
    ]
    for index, s in enumerate(series):
        parts += [*line(s, index, frame), legend(s, index, frame.bottom + 50, width)]
    return "\n".join([*parts, "</svg>"])
