"""``convprop explain pool``: max pooling routes each dy to its window's arg-max (ties to the
first cell), average pooling spreads dy / divisor over the window.

The numbers are those of docs/derivations.md §10, computed by convprop's max_pool2d / avg_pool2d
pairs when the command runs; each routing is checked against a loop over the windows here
before it is printed.
"""

from __future__ import annotations

import numpy

from convprop.explain._text import Example, block, fmt, render, require_equal
from convprop.functional.pool2d import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

X_DOCS = numpy.array([[1, 3, 2, 1], [4, 2, 0, 5], [6, 6, 1, 2], [0, 1, 3, 3]], dtype=float)
"""The 4 x 4 input of §10's worked example: it has ties in two windows."""


def _route_by_hand(
    x: numpy.ndarray, dy: numpy.ndarray, size: int, stride: int
) -> tuple[numpy.ndarray, list[str]]:
    """(MP3) with a loop: each dy[p, q] added to the first maximal cell of its window; and one
    line per window naming that cell (and its ties)."""
    dx = numpy.zeros_like(x)
    lines = []
    for p in range(dy.shape[0]):
        for q in range(dy.shape[1]):
            window = x[p * stride : p * stride + size, q * stride : q * stride + size]
            rows, cols = numpy.nonzero(window == window.max())
            cells = [(int(r), int(s)) for r, s in zip(rows, cols, strict=True)]
            r, s = cells[0]  # numpy.nonzero lists row-major: the first maximum (MP2)
            i, j = p * stride + r, q * stride + s
            dx[i, j] += dy[p, q]
            tie = f"; a tie with {[(p * stride + a, q * stride + b) for a, b in cells[1:]]}"
            lines.append(
                f"window ({p}, {q}): max {window.max():g} at x[{i}, {j}] (tap t = {r * size + s})"
                f"{tie if len(cells) > 1 else ''} -> dx[{i}, {j}] += {dy[p, q]:g}"
            )
    return dx, lines


def max_routing(stride: int, dy_values: list[list[float]]) -> Example:
    """Max pooling 2x2 with the given stride on §10's x: y, arg-max, and dx by routing."""
    x = X_DOCS.reshape(1, 1, 4, 4)
    y, cache = max_pool2d_forward(x, 2, stride=stride)
    dy = numpy.array(dy_values).reshape(y.shape)
    dx = max_pool2d_backward(dy, cache)
    by_hand, lines = _route_by_hand(x[0, 0], dy[0, 0], 2, stride)
    require_equal("(MP3) routing", dx[0, 0], by_hand, exact=True)
    require_equal("sum of dx = sum of dy", [dx.sum()], [dy.sum()])
    overlap = "disjoint windows" if stride == 2 else "overlapping windows: a cell can win twice"
    return Example(
        f"Max pooling 2x2, stride {stride} ({overlap})",
        "(PS1) (MP1) (MP2) (MP3) §10, worked example",
        [
            *block("x", x[0, 0]),
            *block("y", y[0, 0], "(the maximum of each window, MP1) ="),
            *block("argmax", cache.argmax[0, 0], "(tap t = r·2 + s of the first maximum, MP2) ="),
            *block("dy", dy[0, 0]),
            *lines,
            *block("dx", dx[0, 0], "(max_pool2d_backward, MP3) ="),
            f"sum of dx = {dx.sum():g} = sum of dy: every dy lands on exactly one cell.",
            "Ties: max is not differentiable there; convprop (like PyTorch) sends the whole dy",
            "to the first tied cell in row-major order.",
        ],
        {"x": x, "y": y, "argmax": cache.argmax.astype(float), "dy": dy, "dx": dx},
        {"kernel_size": 2, "stride": stride},
    )


def average_spreading() -> Example:
    """Average pooling 2x2 stride 1: each dy / 4 over its window, overlaps summed."""
    x = X_DOCS.reshape(1, 1, 4, 4)
    y, cache = avg_pool2d_forward(x, 2, stride=1)
    dy = numpy.array([[1.0, -2.0, 0.5], [3.0, -1.0, 2.0], [0.25, 4.0, -3.0]]).reshape(y.shape)
    dx = avg_pool2d_backward(dy, cache)
    spread = numpy.zeros((4, 4))
    for p in range(3):
        for q in range(3):
            spread[p : p + 2, q : q + 2] += dy[0, 0, p, q] / 4  # (AP3) by hand
    require_equal("(AP3) spreading", dx[0, 0], spread)
    return Example(
        "Average pooling 2x2, stride 1: dy spread evenly",
        "(AP1) (AP2) (AP3) §10",
        [
            *block("x", x[0, 0]),
            *block("y", y[0, 0], "(window sums / 4, AP2) ="),
            *block("dy", dy[0, 0]),
            "each window passes dy[p, q] / 4 to each of its 4 cells; where windows overlap",
            "the shares add (a corner cell gets one share, the centre cells four):",
            *block("dx", dx[0, 0], "(avg_pool2d_backward, AP3) ="),
            f"sum of dx = {dx.sum():g} = sum of dy = {dy.sum():g} (no padding: nothing is lost)",
        ],
        {"x": x, "y": y, "dy": dy, "dx": dx},
        {"kernel_size": 2, "stride": 1},
    )


def average_with_padding() -> Example:
    """§10's column: padding shares are lost with count_include_pad=True, kept with False."""
    x = numpy.arange(6.0).reshape(1, 1, 6, 1)
    dy = numpy.array([1.0, -2.0, 3.0, 6.0]).reshape(1, 1, 4, 1)
    lines = [f"x = {fmt(x.ravel())} (one column), window 3, stride 2, padding 1, ceil_mode"]
    arrays: dict[str, numpy.ndarray] = {"x": x, "dy": dy}
    for include in (True, False):
        y, cache = avg_pool2d_forward(
            x, (3, 1), stride=(2, 1), padding=(1, 0), ceil_mode=True, count_include_pad=include
        )
        dx = avg_pool2d_backward(dy, cache)
        name = "with_pad" if include else "without_pad"
        arrays.update({f"y_{name}": y, f"dx_{name}": dx, f"divisor_{name}": cache.divisor})
        lines += [
            f"count_include_pad={include}: divisors {fmt(numpy.ravel(cache.divisor))} (AP1)",
            f"   y = {fmt(y.ravel())}  (AP2)",
            f"   dy = {fmt(dy.ravel())}  ->  dx = {fmt(dx.ravel())}  (AP3), "
            f"sum of dx = {dx.sum():.4g}",
        ]
    lines.append("With the padding counted, the shares that fall on padding rows are dropped")
    lines.append("with the border, so sum of dx < sum of dy = 8.")
    return Example(
        "Average pooling with padding: what the divisor counts",
        "(PS2) (AP1) (AP2) (AP3) §10",
        lines,
        arrays,
        {"kernel_size": (3, 1), "stride": (2, 1), "padding": (1, 0), "ceil_mode": True},
    )


def examples() -> list[Example]:
    """Every example of ``convprop explain pool``."""
    return [
        max_routing(2, [[0.5, -1.0], [2.0, 3.0]]),
        max_routing(1, [[1.0, -2.0, 0.5], [3.0, -1.0, 2.0], [0.25, 4.0, -3.0]]),
        average_spreading(),
        average_with_padding(),
    ]


def explain_pool() -> str:
    """The text of ``convprop explain pool``."""
    heading = (
        "convprop explain pool: where pooling sends the upstream gradient, computed now by\n"
        "convprop.functional's max_pool2d and avg_pool2d pairs."
    )
    return render(examples(), heading)
