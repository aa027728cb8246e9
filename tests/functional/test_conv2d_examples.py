"""The worked examples of the derivations, as tests.

(a) 1-D: input [a, b, c, d, e], kernel [x, y], zero padding 1 on both sides: each output
    depends on an input through the flipped kernel placed at that input,
    e.g. dO/db = [0, y, x, 0, 0, 0].
(b) 2-D, one channel: dx is the full convolution of dy with the 180°-rotated kernel, and
    dw is the correlation of x with dy (B3, B2), also with a stride (dy zero-dilated).
(c) 3x32x32 input, 6 filters 3x5x5 -> 6x28x28, forward and backward.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from convprop.functional import conv2d, conv2d_backward, conv2d_forward
from reference import ALGORITHM_NAMES, assert_close, conv2d_ref

# winograd (both tilings) needs 3x3 kernels; it declines every example but (b)'s 3x3 case
WINOGRAD = ("winograd", "winograd4")
NON_WINOGRAD = [name for name in ALGORITHM_NAMES if name not in WINOGRAD]

# --- (a) the 1-D example ---------------------------------------------------------------

INPUT_1D = np.array([2.0, -1.0, 3.0, 0.5, -4.0])  # a, b, c, d, e
KERNEL_X, KERNEL_Y = 5.0, -7.0


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_1d_example_forward(algorithm: str) -> None:
    a, b, c, d, e = INPUT_1D
    x_, y_ = KERNEL_X, KERNEL_Y
    out = conv2d(
        INPUT_1D.reshape(1, 1, 1, 5), np.array([x_, y_]).reshape(1, 1, 1, 2),
        padding=((0, 0), (1, 1)), algorithm=algorithm,
    )  # fmt: skip
    expected = [y_ * a, x_ * a + y_ * b, x_ * b + y_ * c, x_ * c + y_ * d, x_ * d + y_ * e, x_ * e]
    assert out.shape == (1, 1, 1, 6)
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_1d_example_jacobian_columns_are_the_flipped_kernel(algorithm: str) -> None:
    """dO/d(input i) = [..., 0, y, x, 0, ...] with y at output i and x at output i + 1."""
    kernel = np.array([KERNEL_X, KERNEL_Y]).reshape(1, 1, 1, 2)
    _, cache = conv2d_forward(
        INPUT_1D.reshape(1, 1, 1, 5), kernel, padding=((0, 0), (1, 1)), algorithm=algorithm
    )
    # row j of the Jacobian is dx for the unit upstream gradient e_j (B3)
    jacobian = np.zeros((6, 5))
    for j in range(6):
        unit = np.zeros((1, 1, 1, 6))
        unit[0, 0, 0, j] = 1.0
        dx, _, _ = conv2d_backward(unit, cache)
        jacobian[j] = dx.ravel()
    for i, name in enumerate("abcde"):
        column = np.zeros(6)
        column[i], column[i + 1] = KERNEL_Y, KERNEL_X  # the flipped kernel [y, x] at i
        np.testing.assert_allclose(jacobian[:, i], column, atol=1e-14, err_msg=f"dO/d{name}")
    # the derivation's own example: dO/db = [0, y, x, 0, 0, 0]
    np.testing.assert_allclose(jacobian[:, 1], [0, KERNEL_Y, KERNEL_X, 0, 0, 0], atol=1e-14)


# --- (b) one channel: full convolution with the rotated kernel ---------------------------


def _full_convolution_rot180(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pad dy by R-1, S-1 on every side and correlate with rot180(w): explicit loops."""
    R, S = w.shape
    dy_pad = np.pad(dy, ((R - 1, R - 1), (S - 1, S - 1)))
    w_rot = np.rot90(w, 2)
    out = np.zeros((dy_pad.shape[0] - R + 1, dy_pad.shape[1] - S + 1))
    for h, col in itertools.product(range(out.shape[0]), range(out.shape[1])):
        for r, s in itertools.product(range(R), range(S)):
            out[h, col] += dy_pad[h + r, col + s] * w_rot[r, s]
    return out


def _convolution_by_definition(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The textbook full convolution, no flip written: out[h, c] = sum dy[h-r, c-s] w[r, s]."""
    (P, Q), (R, S) = dy.shape, w.shape
    out = np.zeros((P + R - 1, Q + S - 1))
    for h, col in itertools.product(range(out.shape[0]), range(out.shape[1])):
        for r, s in itertools.product(range(R), range(S)):
            if 0 <= h - r < P and 0 <= col - s < Q:
                out[h, col] += dy[h - r, col - s] * w[r, s]
    return out


def _correlation_valid(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dw[r, s] = sum_{p, q} x[p + r, q + s] * dy[p, q]: explicit loops."""
    R, S = x.shape[0] - dy.shape[0] + 1, x.shape[1] - dy.shape[1] + 1
    dw = np.zeros((R, S))
    for r, s in itertools.product(range(R), range(S)):
        for p, q in itertools.product(range(dy.shape[0]), range(dy.shape[1])):
            dw[r, s] += x[p + r, q + s] * dy[p, q]
    return dw


@pytest.mark.parametrize(("R", "S"), [(3, 3), (2, 4)])
@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_single_channel_dx_is_full_convolution_with_rotated_kernel_B3(
    R: int, S: int, algorithm: str
) -> None:
    if algorithm in WINOGRAD and (R, S) != (3, 3):
        with pytest.raises(NotImplementedError, match="needs a 3x3 kernel"):
            conv2d(np.zeros((1, 1, 5, 6)), np.zeros((1, 1, R, S)), algorithm=algorithm)
        return
    rng = np.random.default_rng(61)
    x = rng.standard_normal((5, 6))
    w = rng.standard_normal((R, S))
    y, cache = conv2d_forward(x[None, None], w[None, None], algorithm=algorithm)
    dy = rng.standard_normal(y.shape[2:])
    dx, dw, _ = conv2d_backward(dy[None, None], cache)
    full = _full_convolution_rot180(dy, w)
    np.testing.assert_allclose(dx[0, 0], full, rtol=1e-12, atol=1e-12)
    # correlating with the rotated kernel is convolving with the kernel itself
    np.testing.assert_allclose(full, _convolution_by_definition(dy, w), atol=1e-12)
    # (B2): dw is the correlation of x with dy (every dy-sized window of x against dy)
    correlation = _correlation_valid(x, dy)
    np.testing.assert_allclose(dw[0, 0], correlation, rtol=1e-12, atol=1e-12)
    windows = sliding_window_view(x, dy.shape)  # (R, S, P, Q)
    np.testing.assert_allclose(correlation, np.einsum("rspq,pq->rs", windows, dy), atol=1e-12)


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_strided_dx_is_full_convolution_of_zero_dilated_dy_B3(
    algorithm: str,
) -> None:
    """With stride 2, dy is first spread out with a zero between neighbours; the last row
    of x (the remainder, never read) gets zero gradient."""
    rng = np.random.default_rng(67)
    x = rng.standard_normal((8, 7))  # (8 - 3) % 2 = 1: a remainder row
    w = rng.standard_normal((3, 3))
    y, cache = conv2d_forward(x[None, None], w[None, None], stride=2, algorithm=algorithm)
    dy = rng.standard_normal(y.shape[2:])  # (3, 3)
    dx, _, _ = conv2d_backward(dy[None, None], cache)
    dy_dilated = np.zeros((2 * dy.shape[0] - 1, 2 * dy.shape[1] - 1))
    dy_dilated[::2, ::2] = dy
    full = _full_convolution_rot180(dy_dilated, w)  # (7, 7): rows the windows reach
    expected = np.zeros_like(x)
    expected[: full.shape[0], : full.shape[1]] = full
    np.testing.assert_allclose(dx[0, 0], expected, rtol=1e-12, atol=1e-12)
    assert not dx[0, 0, 7].any()


# --- (c) the multi-channel example: 3x32x32, 6 filters 3x5x5 -> 6x28x28 ------------------


def _spot(x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> dict[str, dict[tuple[int, ...], float]]:
    """Selected entries of y (F1), dw (B2) and dx (B3) from the sums, one entry at a time."""
    rng = np.random.default_rng(71)
    K, C, R, S = w.shape
    P, Q = dy.shape[1:]
    spots: dict[str, dict[tuple[int, ...], float]] = {"y": {}, "dw": {}, "dx": {}}
    corners = [(0, 0, 0), (K - 1, P - 1, Q - 1), (2, 0, Q - 1)]
    for k, p, q in corners + [tuple(int(v) for v in rng.integers((K, P, Q))) for _ in range(9)]:
        spots["y"][(k, p, q)] = sum(
            w[k, c, r, s] * x[c, p + r, q + s]
            for c, r, s in itertools.product(range(C), range(R), range(S))
        )  # (F1)
    for k, c, r, s in [(0, 0, 0, 0), (K - 1, C - 1, R - 1, S - 1), (3, 1, 2, 4), (1, 2, 4, 0)]:
        spots["dw"][(k, c, r, s)] = sum(
            dy[k, p, q] * x[c, p + r, q + s] for p, q in itertools.product(range(P), range(Q))
        )  # (B2)
    for c, h, col in [(0, 0, 0), (2, 31, 31), (1, 15, 3), (0, 4, 27), (2, 30, 1)]:
        spots["dx"][(c, h, col)] = sum(
            w[k, c, r, s] * dy[k, h - r, col - s]
            for k, r, s in itertools.product(range(K), range(R), range(S))
            if 0 <= h - r < P and 0 <= col - s < Q
        )  # (B3) gathered: every output whose window covers (h, col)
    return spots


@pytest.mark.parametrize("algorithm", [a for a in NON_WINOGRAD if a != "depthwise"])
def test_multichannel_example_3x32x32_with_six_5x5_filters(algorithm: str) -> None:
    rng = np.random.default_rng(73)
    x = rng.standard_normal((1, 3, 32, 32))
    w = rng.standard_normal((6, 3, 5, 5))
    b = rng.standard_normal(6)
    y, cache = conv2d_forward(x, w, b, algorithm=algorithm)
    assert y.shape == (1, 6, 28, 28)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    assert (dx.shape, dw.shape, db.shape) == ((1, 3, 32, 32), (6, 3, 5, 5), (6,))
    spots = _spot(x[0], w, dy[0])
    for (k, p, q), value in spots["y"].items():
        assert abs(y[0, k, p, q] - b[k] - value) <= 1e-11, ("y", k, p, q)
    for index, value in spots["dw"].items():
        assert abs(dw[index] - value) <= 1e-11, ("dw", index)
    for (c, h, col), value in spots["dx"].items():
        assert abs(dx[0, c, h, col] - value) <= 1e-11, ("dx", c, h, col)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_multichannel_example_forward_matches_full_reference() -> None:
    """The whole 6x28x28 output once against the naive loops (F1)."""
    rng = np.random.default_rng(79)
    x = rng.standard_normal((1, 3, 32, 32))
    w = rng.standard_normal((6, 3, 5, 5))
    assert_close(conv2d(x, w), conv2d_ref(x, w), "float64", "y (F1)")


# --- the numbers of docs/derivations.md ------------------------------------------------


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_1d_example_numbers(algorithm: str) -> None:
    """a..e = 1..5, kernel [x, y] = [2, 3], upstream δ = [1, -1, 3, 0.5, -1, 2]."""
    x = np.arange(1.0, 6.0).reshape(1, 1, 1, 5)
    w = np.array([2.0, 3.0]).reshape(1, 1, 1, 2)
    out, cache = conv2d_forward(x, w, padding=((0, 0), (1, 1)), algorithm=algorithm)
    np.testing.assert_allclose(out.ravel(), [3, 8, 13, 18, 23, 10], atol=1e-13)
    delta = np.array([1.0, -1.0, 3.0, 0.5, -1.0, 2.0]).reshape(1, 1, 1, 6)
    dx, dw, _ = conv2d_backward(delta, cache)
    np.testing.assert_allclose(dx.ravel(), [1, 3, 10, -0.5, 1], atol=1e-13)
    np.testing.assert_allclose(dw.ravel(), [12.5, 5], atol=1e-13)


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_2d_example_numbers_F1_B1_B2_B3(algorithm: str) -> None:
    X = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(X, w, np.array([0.5]), algorithm=algorithm)
    np.testing.assert_allclose(y[0, 0], [[0.5, 2.5], [6.5, 8.5]], atol=1e-13)
    dy = np.array([[1.0, -1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    dx, dw, db = conv2d_backward(dy, cache)
    np.testing.assert_allclose(db, [5.0], atol=1e-13)
    np.testing.assert_allclose(dw[0, 0], [[22, 27], [37, 42]], atol=1e-13)
    np.testing.assert_allclose(dx[0, 0], [[1, 1, -2], [2, 6, 7], [0, -2, -3]], atol=1e-13)


@pytest.mark.parametrize("algorithm", NON_WINOGRAD)
def test_remainder_example_numbers(algorithm: str) -> None:
    """H = 5, R = 2, stride 2: row 4 is never read, its gradient is exactly 0."""
    x = np.arange(1.0, 6.0).reshape(1, 1, 5, 1)
    w = np.array([1.0, -1.0]).reshape(1, 1, 2, 1)
    y, cache = conv2d_forward(x, w, stride=2, algorithm=algorithm)
    np.testing.assert_allclose(y.ravel(), [-1, -1], atol=1e-13)
    dx, dw, _ = conv2d_backward(np.array([2.0, -3.0]).reshape(1, 1, 2, 1), cache)
    np.testing.assert_allclose(dx.ravel(), [2, -2, -3, 3, 0], atol=1e-13)
    assert dx[0, 0, 4, 0] == 0.0
    np.testing.assert_allclose(dw.ravel(), [-7, -8], atol=1e-13)
