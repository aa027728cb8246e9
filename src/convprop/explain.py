"""``convprop explain conv``: the worked examples of docs/derivations.md, computed live.

Every number printed here comes from convprop's own conv2d_forward / conv2d_backward, and
each identity is checked against an independent computation (NumPy loops or np.pad +
rot90) before it is printed.
"""

from __future__ import annotations

import numpy

from convprop.functional.conv2d import Conv2dCache, conv2d_backward, conv2d_forward
from convprop.functional.conv2d_im2col import im2col


def _gradients(dy: numpy.ndarray, cache: Conv2dCache) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(dx, dw) of conv2d_backward; dx is always requested here."""
    dx, dw, _ = conv2d_backward(dy, cache)
    if dx is None:  # pragma: no cover - need_dx defaults to True
        raise RuntimeError("explain: conv2d_backward returned no dx")
    return dx, dw


def _fmt(array: numpy.ndarray) -> str:
    return numpy.array2string(numpy.asarray(array), precision=3, suppress_small=True)


def _one_dimensional() -> list[str]:
    a, b, c, d, e = 1.0, 2.0, 3.0, 4.0, 5.0
    kx, ky = 10.0, 100.0
    x = numpy.array([a, b, c, d, e]).reshape(1, 1, 1, 5)
    w = numpy.array([kx, ky]).reshape(1, 1, 1, 2)
    y, cache = conv2d_forward(x, w, padding=((0, 0), (1, 1)), algorithm="direct")
    lines = [
        "1. One dimension: input [a,b,c,d,e] = [1,2,3,4,5], kernel [x,y] = [10,100],",
        "   zero padding 1 on each side, so O has 6 entries: O_j = x*in[j-1] + y*in[j]",
        f"   O = {_fmt(y.ravel())}",
        "   The gradient of O with respect to each input (a column of the Jacobian) is the",
        "   kernel flipped and shifted, e.g. dO/db = [0, y, x, 0, 0, 0]:",
    ]
    jacobian = numpy.empty((6, 5))
    for j in range(6):
        dy = numpy.zeros((1, 1, 1, 6))
        dy[0, 0, 0, j] = 1.0
        dx, _ = _gradients(dy, cache)
        jacobian[j] = dx.ravel()  # row j: dO_j / d(input)
    for i, name in enumerate("abcde"):
        lines.append(f"   dO/d{name} = {_fmt(jacobian[:, i])}")
    expected_b = numpy.array([0, ky, kx, 0, 0, 0])
    if not numpy.allclose(jacobian[:, 1], expected_b):  # pragma: no cover - a broken build
        raise RuntimeError("explain: dO/db is not the flipped kernel")
    return lines


def _two_dimensional() -> list[str]:
    rng = numpy.random.default_rng(0)
    x = rng.integers(-3, 4, size=(1, 1, 4, 4)).astype(float)
    w = numpy.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(x, w, algorithm="direct")
    dy = rng.integers(-2, 3, size=y.shape).astype(float)
    dx, dw = _gradients(dy, cache)
    rotated = numpy.rot90(w[0, 0], 2)
    padded = numpy.pad(dy[0, 0], 1)
    full = numpy.array(
        [[numpy.sum(padded[i : i + 2, j : j + 2] * rotated) for j in range(4)] for i in range(4)]
    )
    corr = numpy.array(
        [[numpy.sum(x[0, 0, i : i + 3, j : j + 3] * dy[0, 0]) for j in range(2)] for i in range(2)]
    )
    agree = numpy.allclose(full, dx[0, 0]) and numpy.allclose(corr, dw[0, 0])
    return [
        "2. One channel in two dimensions: x 4x4, w 2x2 -> y 3x3",
        f"   x =\n{_fmt(x[0, 0])}",
        f"   w =\n{_fmt(w[0, 0])}",
        f"   y = x correlated with w (F1) =\n{_fmt(y[0, 0])}",
        f"   upstream dy =\n{_fmt(dy[0, 0])}",
        f"   rot180(w) =\n{_fmt(rotated)}",
        f"   dx = full convolution of dy with rot180(w) (B3) =\n{_fmt(dx[0, 0])}",
        f"   dw = correlation of x with dy (B2) =\n{_fmt(dw[0, 0])}",
        f"   checked against loops over np.pad(dy) and rot90(w): {'equal' if agree else 'DIFFER'}",
    ]


def _im2col_view() -> list[str]:
    x = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = numpy.array([[1.0, 0.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    _, cache = conv2d_forward(x, w, algorithm="im2col")
    cols = im2col(x, cache.geom)[0, 0]  # (C*R*S, P*Q)
    W = w.reshape(1, -1)
    Y = W @ cols
    return [
        "3. The im2col view: every window of x becomes a column, so conv is one GEMM",
        f"   x =\n{_fmt(x[0, 0])}",
        f"   cols (C*R*S x P*Q, rows are taps (r,s), columns are outputs (p,q)) (I1) =\n"
        f"{_fmt(cols)}",
        f"   W (K x C*R*S) = {_fmt(W)}",
        f"   Y = W @ cols (I2) = {_fmt(Y)}   -> reshaped to (P, Q) =\n{_fmt(Y.reshape(2, 2))}",
        "   backward: dW = dY @ cols^T (I3), dcols = W^T @ dY (I4), dx = col2im(dcols) (I5)",
    ]


def _multi_channel() -> list[str]:
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 3, 32, 32))
    w = rng.standard_normal((6, 3, 5, 5))
    b = rng.standard_normal(6)
    y, cache = conv2d_forward(x, w, b)
    dx, dw = _gradients(rng.standard_normal(y.shape), cache)
    return [
        "4. Many channels: a 3x32x32 input and 6 filters of 3x5x5 give 6x28x28",
        f"   x {x.shape[1:]}  w {w.shape}  b {b.shape}  ->  y {y.shape[1:]}",
        f"   backward: dx {dx.shape[1:]}  dw {dw.shape}  db {b.shape}",
        "   each dw[k,c] sums the correlation of input channel c with dy[k] over the batch;",
        "   each dx[c] sums, over the 6 filters, dy[k] fully convolved with rot180(w[k,c]).",
        f"   algorithms chosen by auto (forward, dx, dw): {cache.algorithms}",
    ]


def explain_conv() -> str:
    """The worked examples of convolution backpropagation, as text."""
    sections = [_one_dimensional(), _two_dimensional(), _im2col_view(), _multi_channel()]
    return "\n\n".join("\n".join(section) for section in sections)
