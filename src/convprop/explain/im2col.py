"""``convprop explain im2col``: the convolution as one matrix product, and its derivative.

The columns come from convprop's own ``im2col`` and the input gradient from its ``col2im``
(convprop.functional.conv2d_im2col); the three products Y = W·cols, dW = dY·colsᵀ and
dcols = Wᵀ·dY are written out here and checked against conv2d_forward / conv2d_backward
with the ``direct`` sums.
"""

from __future__ import annotations

import numpy

from convprop.explain._text import Example, block, render, require_equal
from convprop.explain.conv_geometry import DIRECT, conv_gradients, integers
from convprop.functional.conv2d import conv2d_forward
from convprop.functional.conv2d_im2col import col2im, im2col


def matrices(x: numpy.ndarray, w: numpy.ndarray, dy: numpy.ndarray) -> dict[str, numpy.ndarray]:
    """Every matrix of (I1)-(I5) for one image, and the direct sums to check them against.

    x (1, C, H, W), w (K, C, R, S), dy (1, K, P, Q); returns cols (C·R·S, P·Q), W (K, C·R·S),
    Y and dY (K, P·Q), dW (K, C·R·S), dcols (C·R·S, P·Q), dx (1, C, H, W) by col2im, and
    y, dx_direct, dw_direct of conv2d with the direct sums.
    """
    K = w.shape[0]
    y, cache = conv2d_forward(x, w, algorithm=DIRECT)
    dx_direct, dw_direct, _ = conv_gradients(dy, cache)
    cols = im2col(x, cache.geom)[0, 0]  # (I1) -> (C*R*S, P*Q)
    W = w.reshape(K, -1)  # (K, C*R*S)
    Y = W @ cols  # (I2) -> (K, P*Q)
    dY = dy.reshape(K, -1)  # (K, P*Q)
    dW = dY @ cols.T  # (I3) -> (K, C*R*S)
    dcols = W.T @ dY  # (I4) -> (C*R*S, P*Q)
    dx = col2im(dcols[None, None], cache.geom)  # (I5) -> (1, C, H, W)
    return {
        "x": x, "w": w, "dy": dy, "cols": cols, "W": W, "Y": Y, "dY": dY, "dW": dW,
        "dcols": dcols, "dx": dx, "y": y, "dx_direct": dx_direct, "dw_direct": dw_direct,
    }  # fmt: skip


def one_channel() -> Example:
    """x 4x4, two 2x2 filters: cols is 4 x 9, and every interior pixel sits in 4 columns."""
    x = integers(31, (1, 1, 4, 4))
    w = numpy.array([[[[1.0, 0.0], [0.0, -1.0]]], [[[2.0, 1.0], [-1.0, 1.0]]]])  # (2, 1, 2, 2)
    dy = integers(32, (1, 2, 3, 3), -2, 2)
    m = matrices(x, w, dy)
    require_equal("(I2) Y = W·cols", m["Y"], m["y"].reshape(2, 9))
    require_equal("(I3) dW = dY·colsᵀ", m["dW"], m["dw_direct"].reshape(2, 4))
    require_equal("(I4)-(I5) col2im(Wᵀ·dY)", m["dx"], m["dx_direct"])
    counts = col2im(numpy.ones((1, 1, 4, 9)), conv2d_forward(x, w)[1].geom)
    return Example(
        "im2col: one image, one channel, two filters",
        "(I1)-(I5) §5",
        [
            *block("x", x[0, 0]),
            "cols: column (p, q) holds the window of output (p, q), row (r, s) one tap (I1)",
            *block("cols", m["cols"], "(C·R·S x P·Q = 4 x 9) ="),
            *block("W", m["W"], "(K x C·R·S = 2 x 4: w, one filter per row) ="),
            *block("Y", m["Y"], "W·cols (I2); row k reshaped to 3x3 is y[k] ="),
            *block("dY", m["dY"], "(dy viewed as K x P·Q) ="),
            *block("dW", m["dW"], "dY·colsᵀ (I3); row k is dw[k] flattened ="),
            *block("dcols", m["dcols"], "Wᵀ·dY (I4) ="),
            *block(
                "dx",
                m["dx"][0, 0],
                "col2im(dcols), each entry added back where it came from (I5) =",
            ),
            "col2im adds, because windows overlap: col2im of all ones counts the columns",
            "each pixel was copied into (the centre pixels 4 times, the corners once):",
            *block("copies", counts[0, 0]),
            "All three equal conv2d's direct sums (F1), (B2), (B3): equal.",
        ],
        {**m, "copies": counts},
    )


def two_channels() -> Example:
    """x (1, 2, 3, 3), one 2x2 filter over both channels: rows are (c, r, s)."""
    x = integers(33, (1, 2, 3, 3))
    w = integers(34, (1, 2, 2, 2), -2, 2)
    dy = integers(35, (1, 1, 2, 2), -2, 2)
    m = matrices(x, w, dy)
    require_equal("(I2) Y = W·cols", m["Y"], m["y"].reshape(1, 4))
    require_equal("(I3) dW = dY·colsᵀ", m["dW"], m["dw_direct"].reshape(1, 8))
    require_equal("(I4)-(I5) col2im(Wᵀ·dY)", m["dx"], m["dx_direct"])
    return Example(
        "im2col with two channels: the rows are (c, r, s), row-major",
        "(I1)-(I5) §5",
        [
            *block("x[0]", x[0, 0]),
            *block("x[1]", x[0, 1]),
            *block("cols", m["cols"], "(8 x 4: rows 0-3 read channel 0, rows 4-7 channel 1) ="),
            *block("W", m["W"], "(1 x 8: w flattened over (c, r, s)) ="),
            *block("Y", m["Y"], "W·cols, the sum over both channels (I2) ="),
            *block("dW", m["dW"], "dY·colsᵀ (I3) ="),
            *block("dcols", m["dcols"], "Wᵀ·dY (I4) ="),
            *block("dx[0]", m["dx"][0, 0], "col2im(dcols) (I5) ="),
            *block("dx[1]", m["dx"][0, 1], "col2im(dcols) (I5) ="),
        ],
        m,
    )


def examples() -> list[Example]:
    """Every example of ``convprop explain im2col``."""
    return [one_channel(), two_channels()]


def explain_im2col() -> str:
    """The text of ``convprop explain im2col``."""
    heading = (
        "convprop explain im2col: convolution as a matrix product (Caffe's lowering), with\n"
        "convprop's im2col and col2im; the products are checked against conv2d's direct sums."
    )
    return render(examples(), heading)
