"""``convprop explain conv``: channels. Two input channels and two filters with every number,
then the shapes of a many-channel layer.

Each output channel sums one correlation per input channel (F1); each weight plane is the
correlation of its input channel with its filter's dy (B2); each input channel's gradient sums
one full correlation per filter (B3, channel roles swapped). The numbers are convprop's; the
per-channel terms are computed by hand (``_by_hand``) and their sums checked against them.
"""

from __future__ import annotations

import numpy

from convprop.explain._by_hand import correlate, full_correlation
from convprop.explain._text import Example, block, fmt, require_equal
from convprop.explain.conv_geometry import DIRECT, conv_gradients, integers
from convprop.functional.conv2d import conv2d_forward


def two_channels() -> Example:
    """C = 2 input channels, K = 2 filters of 2x2: y, dw, dx and db channel by channel."""
    x = integers(21, (1, 2, 3, 3))
    w = integers(22, (2, 2, 2, 2), -2, 2)
    b = numpy.array([1.0, -1.0])
    y, cache = conv2d_forward(x, w, b, algorithm=DIRECT)
    dy = integers(23, y.shape, -2, 2)
    dx, dw, db = conv_gradients(dy, cache)
    lines = [
        "x (1, 2, 3, 3), w (2, 2, 2, 2), b (2,) -> y (1, 2, 2, 2)",
        *block("x[channel 0]", x[0, 0]),
        *block("x[channel 1]", x[0, 1]),
    ]
    for k in range(2):
        parts = [correlate(x[0, c], w[k, c]) for c in range(2)]
        require_equal(f"(F1) for filter {k}", y[0, k], parts[0] + parts[1] + b[k])
        lines += [
            f"filter {k}: w[{k}, 0] = {fmt(w[k, 0]).replace(chr(10), '')}, "
            f"w[{k}, 1] = {fmt(w[k, 1]).replace(chr(10), '')}, b[{k}] = {b[k]:g}",
            *block(f"  x[0] corr w[{k},0]", parts[0]),
            *block(f"  x[1] corr w[{k},1]", parts[1]),
            *block(f"  y[{k}]", y[0, k], f"(the sum, plus b[{k}]) ="),
        ]
    lines += [*block("dy[filter 0]", dy[0, 0]), *block("dy[filter 1]", dy[0, 1])]
    for k in range(2):
        for c in range(2):
            require_equal(f"(B2) for w[{k}, {c}]", dw[k, c], correlate(x[0, c], dy[0, k]))
    lines.append("dw[k, c] = x[c] correlated with dy[k] (B2): one plane per (filter, channel)")
    for k in range(2):
        for c in range(2):
            lines += block(f"  dw[{k}, {c}]", dw[k, c])
    for c in range(2):
        parts = [full_correlation(dy[0, k], w[k, c]) for k in range(2)]
        require_equal(f"(B3) for channel {c}", dx[0, c], parts[0] + parts[1])
        lines += [
            f"dx[{c}] = sum over the filters k of full(dy[k]) corr rot180(w[k, {c}]) (B3):",
            *block("  from filter 0", parts[0]),
            *block("  from filter 1", parts[1]),
            *block(f"  dx[{c}]", dx[0, c], "(the sum) ="),
        ]
    sums = [f"{float(dy[0, k].sum()):g}" for k in range(2)]
    require_equal("(B1) per filter", db, dy[0].sum(axis=(1, 2)))
    lines.append(f"db = [sum of dy[0], sum of dy[1]] = [{', '.join(sums)}] (B1): {fmt(db)}")
    return Example(
        "Two input channels, two filters, every number",
        "(F1) §3, (B1) (B2) (B3) §4 Step 4",
        lines,
        {"x": x, "w": w, "b": b, "y": y, "dy": dy, "dx": dx, "dw": dw, "db": db},
    )


def many_channels() -> Example:
    """A LeNet-sized layer: the shapes, and how the sums run over channels and filters."""
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 3, 32, 32))
    w = rng.standard_normal((6, 3, 5, 5))
    b = rng.standard_normal(6)
    y, cache = conv2d_forward(x, w, b)  # auto: the algorithm a training run would use
    dx, dw, db = conv_gradients(rng.standard_normal(y.shape), cache)
    return Example(
        "Many channels: a 3x32x32 input and 6 filters of 3x5x5 give 6x28x28",
        "§4 worked example 3",
        [
            f"x {x.shape[1:]}  w {w.shape}  b {b.shape}  ->  y {y.shape[1:]}",
            f"backward: dx {dx.shape[1:]}  dw {dw.shape}  db {db.shape}",
            "each dw[k,c] sums the correlation of input channel c with dy[k] over the batch;",
            "each dx[c] sums, over the 6 filters, dy[k] fully convolved with rot180(w[k,c]).",
            f"algorithms chosen by auto (forward, dx, dw): {cache.algorithms}",
        ],
        {"y_shape": numpy.array(y.shape), "dx_shape": numpy.array(dx.shape)},
    )
