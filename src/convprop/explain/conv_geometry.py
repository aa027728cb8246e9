"""``convprop explain conv``: stride, dilation and padding, each with one small example.

Stride 2 shows the zero-upsampled dy and the remainder rows whose gradient is exactly 0,
dilation the zero-dilated kernel, padding the border of dx_pad that is cropped away. The
numbers are convprop's (conv2d_forward / conv2d_backward); each identity is checked against
the computation by hand of ``_by_hand`` before it is printed.
"""

from __future__ import annotations

import numpy

from convprop.explain._by_hand import correlate, dilate, full_correlation, rot180, zero_upsample
from convprop.explain._text import Example, block, require_equal
from convprop.functional.conv2d import Conv2dCache, conv2d_backward, conv2d_forward

DIRECT = "direct"
"""The sums of (F1), (B1)-(B3) as written: exact on the small integers of these examples."""


def conv_gradients(
    dy: numpy.ndarray, cache: Conv2dCache
) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """(dx, dw, db) of conv2d_backward; dx is always requested and b is always given here
    (a missing db comes back as zeros of shape (K,))."""
    dx, dw, db = conv2d_backward(dy, cache)
    if dx is None:  # pragma: no cover - need_dx defaults to True
        raise RuntimeError("explain: conv2d_backward returned no dx")
    return dx, dw, numpy.zeros(dw.shape[0]) if db is None else db


def integers(seed: int, shape: tuple[int, ...], low: int = -3, high: int = 3) -> numpy.ndarray:
    """Small integers as float64: every sum below is exact and easy to check by hand."""
    return numpy.random.default_rng(seed).integers(low, high + 1, size=shape).astype(float)


def stride_two() -> Example:
    """Stride 2: dx is the full correlation of the zero-upsampled dy with rot180(w)."""
    x = integers(11, (1, 1, 5, 5))
    w = numpy.array([[1.0, 2.0], [-1.0, 3.0]]).reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(x, w, stride=2, algorithm=DIRECT)
    dy = numpy.array([[1.0, -2.0], [3.0, 1.0]]).reshape(1, 1, 2, 2)
    dx, dw, _ = conv_gradients(dy, cache)
    dy_up = zero_upsample(dy[0, 0], 2)
    read = full_correlation(dy_up, w[0, 0])  # (Hp - rem) x (Wp - rem) = 4 x 4
    require_equal("(B3) with dy_up", dx[0, 0, :4, :4], read)
    require_equal("remainder rows are 0", dx[0, 0, 4:, :], numpy.zeros((1, 5)), exact=True)
    require_equal("(B2) with stride", dw[0, 0], correlate(x[0, 0], dy_up)[:2, :2])
    return Example(
        "Stride 2: the zero-upsampled dy",
        "(S1) §2, (B3) §4 Steps 1 and 5, dy_up §1, the remainder case §2",
        [
            "x 5x5, w 2x2, stride 2: P = (5 - 2) // 2 + 1 = 2 (S1), and rem = (5 - 2) mod 2 = 1:",
            "the last row and column of x are read by no window.",
            *block("x", x[0, 0]),
            *block("w", w[0, 0]),
            *block("y", y[0, 0], "(F1, windows 2 apart) ="),
            *block("dy", dy[0, 0]),
            *block("dy_up", dy_up, "(stride - 1 = 1 zero between entries) ="),
            *block("rot180(w)", rot180(w[0, 0])),
            *block("full correlation of dy_up with rot180(w)", read, "(4x4 = Hp - rem) ="),
            *block("dx", dx[0, 0], "(conv2d_backward; row 4 and column 4 exactly 0) ="),
            *block("dw", dw[0, 0], "(x correlated with dy_up, B2) ="),
        ],
        {"x": x, "w": w, "y": y, "dy": dy, "dy_up": dy_up, "dx": dx, "dw": dw},
        {"stride": 2},
    )


def dilation() -> Example:
    """Dilation 2: the kernel's taps two apart; dx with the rotated dilated kernel."""
    x = integers(12, (1, 1, 5, 5))
    w = numpy.array([[2.0, -1.0], [1.0, 1.0]]).reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(x, w, dilation=2, algorithm=DIRECT)
    dy = integers(13, y.shape, -2, 2)
    dx, dw, _ = conv_gradients(dy, cache)
    w_dil = dilate(w[0, 0], 2)
    require_equal("(F1) with w_dil", y[0, 0], correlate(x[0, 0], w_dil))
    require_equal("(B3) with rot180(w_dil)", dx[0, 0], full_correlation(dy[0, 0], w_dil))
    require_equal("(B2) at the dilation", dw[0, 0], correlate(x[0, 0], dy[0, 0])[::2, ::2])
    return Example(
        "Dilation 2: taps two apart",
        "(F1) §3, (B2) (B3) §4 Step 3, w_dil §1",
        [
            "w 2x2 with dilation 2 covers Rd = 2·(2 - 1) + 1 = 3 rows: it is the 3x3 w_dil",
            "with zeros between the taps, so P = 5 - 3 + 1 = 3.",
            *block("x", x[0, 0]),
            *block("w_dil", w_dil),
            *block("y", y[0, 0], "(x correlated with w_dil) ="),
            *block("dy", dy[0, 0]),
            *block("dx", dx[0, 0], "(dy padded by Rd - 1 = 2, correlated with rot180(w_dil)) ="),
            "dw[r, s] sums dy[p, q]·x[p + 2r, q + 2s]: the correlation of x with dy, read at",
            "the taps, two apart:",
            *block("x correlated with dy", correlate(x[0, 0], dy[0, 0])),
            *block("dw", dw[0, 0], "(its entries [0, 0], [0, 2], [2, 0], [2, 2]) ="),
        ],
        {"x": x, "w": w, "w_dil": w_dil, "y": y, "dy": dy, "dx": dx, "dw": dw},
        {"dilation": 2},
    )


def padding() -> Example:
    """Padding 1: dx_pad is computed whole, and its border, the padding's gradient, dropped."""
    x = integers(14, (1, 1, 3, 3))
    w = numpy.array([[0.0, 1.0, 0.0], [1.0, -2.0, 1.0], [0.0, 1.0, 2.0]]).reshape(1, 1, 3, 3)
    y, cache = conv2d_forward(x, w, padding=1, algorithm=DIRECT)
    dy = integers(15, y.shape, -2, 2)
    dx, dw, _ = conv_gradients(dy, cache)
    x_pad = numpy.pad(x[0, 0], 1)
    dx_pad = full_correlation(dy[0, 0], w[0, 0])  # 5 x 5, as x_pad
    require_equal("(B3) cropped", dx[0, 0], dx_pad[1:-1, 1:-1])
    require_equal("(B2) on x_pad", dw[0, 0], correlate(x_pad, dy[0, 0]))
    return Example(
        "Padding 1: the cropped border",
        "§1 Padding, (S1) §2, (B2) (B3) §4 Step 5",
        [
            "x 3x3 with one ring of zeros is x_pad 5x5; w 3x3 gives y 3x3 (S1).",
            *block("x_pad", x_pad),
            *block("w", w[0, 0]),
            *block("y", y[0, 0]),
            *block("dy", dy[0, 0]),
            *block("dx_pad", dx_pad, "(dy padded by 2, correlated with rot180(w)) ="),
            "Its border holds the gradients of the padding zeros: constants, not inputs,",
            "so the crop drops them:",
            *block("dx", dx[0, 0], "(conv2d_backward, = dx_pad without its border) ="),
            *block("dw", dw[0, 0], "(x_pad correlated with dy: the zeros add nothing) ="),
        ],
        {"x": x, "w": w, "x_pad": x_pad, "y": y, "dy": dy, "dx_pad": dx_pad, "dx": dx, "dw": dw},
        {"padding": 1},
    )
