"""``convprop explain conv``: the three gradients of a convolution, with numbers.

Every number printed comes from convprop's own conv2d_forward / conv2d_backward, computed
when the command runs, and each identity is checked against a computation by hand
(``_by_hand``: loops, np.pad, rot90; scipy.signal for the true convolution) before it is
printed. The stride, dilation and padding examples are in ``conv_geometry``, the channel
examples in ``conv_channels``.
"""

from __future__ import annotations

import numpy

from convprop.explain._by_hand import correlate, full_correlation, rot180
from convprop.explain._text import Example, block, fmt, render, require_equal
from convprop.explain.conv_channels import many_channels, two_channels
from convprop.explain.conv_geometry import (
    DIRECT,
    conv_gradients,
    dilation,
    padding,
    stride_two,
)
from convprop.functional.conv2d import conv2d_forward


def one_dimensional() -> Example:
    """The Jacobian of a 1-D correlation: each column is the kernel flipped and shifted."""
    a, b, c, d, e = 1.0, 2.0, 3.0, 4.0, 5.0
    kx, ky = 10.0, 100.0
    x = numpy.array([a, b, c, d, e]).reshape(1, 1, 1, 5)
    w = numpy.array([kx, ky]).reshape(1, 1, 1, 2)
    y, cache = conv2d_forward(x, w, padding=((0, 0), (1, 1)), algorithm=DIRECT)
    jacobian = numpy.empty((6, 5))
    for j in range(6):
        dy = numpy.zeros((1, 1, 1, 6))
        dy[0, 0, 0, j] = 1.0
        dx, _, _ = conv_gradients(dy, cache)
        jacobian[j] = dx.ravel()  # row j: dO_j / d(input)
    require_equal("dO/db = the flipped kernel", jacobian[:, 1], [0, ky, kx, 0, 0, 0])
    lines = [
        "input [a,b,c,d,e] = [1,2,3,4,5], kernel [x,y] = [10,100],",
        "zero padding 1 on each side, so O has 6 entries: O_j = x*in[j-1] + y*in[j]",
        f"O = {fmt(y.ravel())}",
        "The gradient of O with respect to each input (a column of the Jacobian) is the",
        "kernel flipped and shifted, e.g. dO/db = [0, y, x, 0, 0, 0]:",
    ]
    lines += [f"dO/d{name} = {fmt(jacobian[:, i])}" for i, name in enumerate("abcde")]
    return Example(
        "One dimension: the flipped kernel in dO/dx",
        "(F1) §3, (B3) §4 worked example 1",
        lines,
        {"x": x, "w": w, "y": y, "jacobian": jacobian},
        {"padding": ((0, 0), (1, 1))},
    )


def _worked_example_two() -> dict[str, numpy.ndarray]:
    """The numbers of §4, worked example 2: X 3x3, w 2x2, b = 0.5, dY 2x2."""
    return {
        "x": numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3),
        "w": numpy.array([[1.0, 2.0], [0.0, -1.0]]).reshape(1, 1, 2, 2),
        "b": numpy.array([0.5]),
        "dy": numpy.array([[1.0, -1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2),
    }


def one_channel() -> Example:
    """§4's worked example 2: y, dx by the full correlation with rot180(w), dw."""
    a = _worked_example_two()
    y, cache = conv2d_forward(a["x"], a["w"], a["b"], algorithm=DIRECT)
    dx, dw, db = conv_gradients(a["dy"], cache)
    x0, w0, dy0 = a["x"][0, 0], a["w"][0, 0], a["dy"][0, 0]
    agree = require_equal("(B3) by hand", full_correlation(dy0, w0), dx[0, 0])
    require_equal("(B2) by hand", correlate(x0, dy0), dw[0, 0])
    require_equal("(F1) by hand", correlate(x0, w0) + 0.5, y[0, 0])
    lines = [
        *block("x", x0),
        *block("w", w0),
        "b = 0.5",
        *block("y", y[0, 0], "x correlated with w, plus b (F1) ="),
        *block("upstream dy", dy0),
        *block("rot180(w)", rot180(w0)),
        *block("dy padded by R-1 = 1", numpy.pad(dy0, 1)),
        *block("dx", dx[0, 0], "full correlation of dy with rot180(w) (B3) ="),
        *block("dw", dw[0, 0], "correlation of x with dy (B2) ="),
        f"db = {fmt(db)} (B1, see the next example)",
        f"checked against loops over np.pad(dy) and rot90(w): {agree}",
    ]
    return Example(
        "One channel in two dimensions: x 3x3, w 2x2 -> y 2x2",
        "(F1) §3, (B1) (B2) (B3) §4 worked example 2",
        lines,
        {**a, "y": y, "dx": dx, "dw": dw, "db": db},
    )


def bias_gradient() -> Example:
    """db as a number: the sum of dy over n, p, q, written out term by term."""
    a = _worked_example_two()
    _, cache = conv2d_forward(a["x"], a["w"], a["b"], algorithm=DIRECT)
    _, _, db = conv_gradients(a["dy"], cache)
    terms = " + ".join(f"({value:g})" for value in a["dy"].ravel())
    require_equal("(B1) by hand", db, [a["dy"].sum()])
    return Example(
        "The bias gradient as a number",
        "(B1) §4",
        [
            "b[k] is added to every output of channel k, so dy/db = 1 at each of them and",
            "db[k] = sum over n, p, q of dy[n, k, p, q]. With the dy above:",
            f"db = {terms} = {float(db[0]):g}",
            f"convprop's conv2d_backward returns db = {fmt(db)}",
        ],
        {"dy": a["dy"], "db": db},
    )


def the_words() -> Example:
    """Convolution or correlation: what the words mean, shown with numbers."""
    import scipy.signal

    rng = numpy.random.default_rng(5)
    x = rng.integers(-3, 4, size=(1, 1, 4, 4)).astype(float)
    w = numpy.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(x, w, algorithm=DIRECT)
    dy = rng.integers(-2, 3, size=y.shape).astype(float)
    dx, _, _ = conv_gradients(dy, cache)
    true_convolution = scipy.signal.convolve2d(x[0, 0], w[0, 0], mode="valid")
    flipped, _ = conv2d_forward(x, rot180(w[0, 0]).reshape(1, 1, 2, 2), algorithm=DIRECT)
    require_equal("conv2d with rot180(w) = the true convolution", flipped[0, 0], true_convolution)
    full = scipy.signal.convolve2d(dy[0, 0], w[0, 0], mode="full")
    require_equal("dx = the true full convolution of dy with w", dx[0, 0], full)
    return Example(
        "The words: convolution or correlation",
        "§1 Cross-correlation, not convolution; (B3) §4 Step 2",
        [
            "Every framework, convprop included, calls F1 a 'convolution', but F1 is a",
            "cross-correlation: output p reads input p + r, the kernel is not flipped.",
            "A true convolution reads p - r, i.e. correlates with rot180(w):",
            *block("x", x[0, 0]),
            *block("w", w[0, 0]),
            *block("conv2d(x, w)", y[0, 0], "(what frameworks call convolution) ="),
            *block("true convolution", true_convolution, "(scipy.signal.convolve2d, valid) ="),
            *block("conv2d(x, rot180(w))", flipped[0, 0]),
            "So the backward pass, which needs the flipped kernel, is a true convolution:",
            *block("dy", dy[0, 0]),
            *block("dx", dx[0, 0], "(conv2d_backward) ="),
            "   = scipy.signal.convolve2d(dy, w, 'full'): equal. 'Full convolution of dy',",
            "   in the papers' words, means exactly this.",
        ],
        {"x": x, "w": w, "y": y, "dy": dy, "dx": dx, "true_convolution": true_convolution},
    )


def examples() -> list[Example]:
    """Every example of ``convprop explain conv``, in the order printed."""
    return [
        one_dimensional(),
        one_channel(),
        bias_gradient(),
        stride_two(),
        dilation(),
        padding(),
        two_channels(),
        many_channels(),
        the_words(),
    ]


def explain_conv() -> str:
    """The worked examples of convolution backpropagation, as text."""
    heading = (
        "convprop explain conv: the three gradients of a convolution, computed now by\n"
        "convprop.functional.conv2d_forward / conv2d_backward and checked by hand.\n"
        "(The im2col and FFT views: convprop explain im2col, convprop explain fft.)"
    )
    return render(examples(), heading)
