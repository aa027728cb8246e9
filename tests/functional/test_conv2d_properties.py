"""Properties of conv2d over the valid parameter space (hypothesis).

Shapes (S1), linearity in x and in w (F1 is bilinear), 1x1 conv = matmul, known-answer
kernels, and agreement of every algorithm on forward and all gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convprop.functional import ALGORITHMS, conv2d, conv2d_backward, conv2d_forward
from reference import ConvCase, as_pair, max_error, pad_amounts

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None)
TOL = 1e-10


@st.composite
def conv_cases(
    draw: Any, *, kernel: tuple[int, int] | None = None, winograd: bool = False
) -> ConvCase:
    """Any valid conv2d: groups, strides, dilations, every padding form, odd sizes.
    ``winograd=True`` keeps to the cases winograd computes (3x3, stride 1, any dilation)."""
    groups = draw(st.sampled_from([1, 2, 3]))
    C = groups * draw(st.integers(1, 2))
    K = groups * draw(st.integers(1, 2))
    if winograd:
        kernel = (3, 3)
    R, S = kernel or (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (1, 1) if winograd else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["int", "pair", "asymmetric", "same", "valid"]))
    padding: Any = {
        "int": lambda: draw(st.integers(0, 2)),
        "pair": lambda: (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        "asymmetric": lambda: tuple(
            (draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2)
        ),
        "same": lambda: "same",
        "valid": lambda: "valid",
    }[kind]()
    pads = pad_amounts(padding, (1, 1), (R, S), stride, dilation)
    if padding == "same":
        pads = (0, 0, 0, 0)  # "same" always has an output; its padding depends on H, W
    # the smallest input that still has one window: H + pad >= dil*(R-1) + 1   (S1)
    min_h = max(1, dilation[0] * (R - 1) + 1 - pads[0] - pads[1])
    min_w = max(1, dilation[1] * (S - 1) + 1 - pads[2] - pads[3])
    H = draw(st.integers(min_h, min_h + 6))
    W = draw(st.integers(min_w, min_w + 6))
    N = draw(st.integers(1, 2))
    return ConvCase(
        "drawn", N, C, H, W, K, R, S, stride=stride, padding=padding, dilation=dilation,
        groups=groups,
    )  # fmt: skip


def _accepting(case: ConvCase) -> list[str]:
    return [name for name in ALGORITHMS if case.applies(name)] + ["auto"]


def _arrays(case: ConvCase, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal(case.x_shape),
        rng.standard_normal(case.w_shape),
        rng.standard_normal(case.K),
    )


def _assert_close(actual: Any, expected: Any, what: str) -> None:
    error, scale = max_error(actual, expected)
    assert error <= TOL * scale, f"{what}: {error:.3e}"


@PROPERTY_SETTINGS
@given(case=conv_cases())
def test_output_shape_follows_S1_and_same_rule_S2(case: ConvCase) -> None:
    x, w, b = _arrays(case, 0)
    y = conv2d(x, w, b, **case.hyper)
    stride, dilation = as_pair(case.stride), as_pair(case.dilation)
    top, bottom, left, right = pad_amounts(
        case.padding, (case.H, case.W), (case.R, case.S), stride, dilation
    )
    P = (case.H + top + bottom - dilation[0] * (case.R - 1) - 1) // stride[0] + 1  # (S1)
    Q = (case.W + left + right - dilation[1] * (case.S - 1) - 1) // stride[1] + 1  # (S1)
    assert y.shape == (case.N, case.K, P, Q)
    if case.padding == "same":  # (S2) TensorFlow's rule: ceil(H / stride), odd pixel last
        assert (-(-case.H // stride[0]), -(-case.W // stride[1])) == (P, Q)
        assert bottom - top in (0, 1) and right - left in (0, 1)


@PROPERTY_SETTINGS
@given(case=conv_cases(), alpha=st.floats(-3, 3), beta=st.floats(-3, 3), data=st.data())
def test_forward_is_linear_in_x(case: ConvCase, alpha: float, beta: float, data: Any) -> None:
    algorithm = data.draw(st.sampled_from(_accepting(case)))
    x1, w, _ = _arrays(case, 1)
    x2, _, _ = _arrays(case, 2)
    hyper = {**case.hyper, "algorithm": algorithm}
    combined = conv2d(alpha * x1 + beta * x2, w, **hyper)
    _assert_close(combined, alpha * conv2d(x1, w, **hyper) + beta * conv2d(x2, w, **hyper), "x")


@PROPERTY_SETTINGS
@given(case=conv_cases(), alpha=st.floats(-3, 3), beta=st.floats(-3, 3), data=st.data())
def test_forward_is_linear_in_w(case: ConvCase, alpha: float, beta: float, data: Any) -> None:
    algorithm = data.draw(st.sampled_from(_accepting(case)))
    x, w1, _ = _arrays(case, 3)
    _, w2, _ = _arrays(case, 4)
    hyper = {**case.hyper, "algorithm": algorithm}
    combined = conv2d(x, alpha * w1 + beta * w2, **hyper)
    _assert_close(combined, alpha * conv2d(x, w1, **hyper) + beta * conv2d(x, w2, **hyper), "w")


@PROPERTY_SETTINGS
@given(case=conv_cases(kernel=(1, 1)), data=st.data())
def test_1x1_conv_equals_matmul(case: ConvCase, data: Any) -> None:
    """With R = S = 1, y[n, g-block, p, q] = W_g @ x_pad[n, g-block, p*stride_h, q*stride_w]."""
    algorithm = data.draw(st.sampled_from(_accepting(case)))
    x, w, b = _arrays(case, 5)
    y = conv2d(x, w, b, algorithm=algorithm, **case.hyper)
    stride = as_pair(case.stride)
    top, bottom, left, right = pad_amounts(case.padding, (case.H, case.W), (1, 1), stride, 1)
    x_pad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    x_sub = x_pad[:, :, :: stride[0], :: stride[1]][:, :, : y.shape[2], : y.shape[3]]
    G, C_g, K_g = case.groups, case.C // case.groups, case.K // case.groups
    x_g = x_sub.reshape(case.N, G, C_g, -1)  # (N, G, C/G, P*Q)
    w_g = w.reshape(G, K_g, C_g)  # (G, K/G, C/G)
    expected = (w_g @ x_g).reshape(y.shape) + b.reshape(1, -1, 1, 1)
    _assert_close(y, expected, "1x1")


@PROPERTY_SETTINGS
@given(case=st.one_of(conv_cases(), conv_cases(winograd=True)))
def test_every_algorithm_agrees_on_forward_and_gradients(case: ConvCase) -> None:
    x, w, b = _arrays(case, 6)
    results = {}
    for algorithm in _accepting(case):
        y, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
        dy = np.random.default_rng(7).standard_normal(y.shape)
        results[algorithm] = (y, *conv2d_backward(dy, cache))
    baseline = results.pop("direct")
    for algorithm, values in results.items():
        for name, got, want in zip(("y", "dx", "dw", "db"), values, baseline, strict=True):
            _assert_close(got, want, f"{algorithm} {name}")


@PROPERTY_SETTINGS
@given(
    N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
    R=st.sampled_from([1, 3, 5]), S=st.sampled_from([1, 3]), data=st.data(),
)  # fmt: skip
def test_identity_kernel_with_same_padding_returns_x(
    N: int, C: int, H: int, W: int, R: int, S: int, data: Any
) -> None:
    """A centred delta per channel (depthwise) is the identity under "same" padding."""
    case = ConvCase("identity", N, C, H, W, C, R, S, padding="same", groups=C)
    algorithm = data.draw(st.sampled_from(_accepting(case)))
    x = np.random.default_rng(8).standard_normal(case.x_shape)
    w = np.zeros(case.w_shape)
    w[:, 0, R // 2, S // 2] = 1.0
    _assert_close(conv2d(x, w, padding="same", groups=C, algorithm=algorithm), x, "identity")


@PROPERTY_SETTINGS
@given(H=st.integers(3, 9), W=st.integers(3, 9), data=st.data())
def test_sobel_kernel_is_the_separable_pair(H: int, W: int, data: Any) -> None:
    """Sobel = [1, 2, 1]^T [1, 0, -1]: one 3x3 conv equals a 3x1 conv then a 1x3 conv."""
    x = np.random.default_rng(9).standard_normal((1, 1, H, W))
    sobel = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0]).reshape(1, 1, 3, 3)
    algorithm = data.draw(st.sampled_from([*ALGORITHMS, "auto"]))  # one channel: all apply
    column = np.array([1.0, 2.0, 1.0]).reshape(1, 1, 3, 1)
    row = np.array([1.0, 0.0, -1.0]).reshape(1, 1, 1, 3)
    two_passes = conv2d(conv2d(x, column), row)
    _assert_close(conv2d(x, sobel, algorithm=algorithm), two_passes, "sobel")
