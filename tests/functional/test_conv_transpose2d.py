"""conv_transpose2d: its definition, its gradients, and its place as conv2d's adjoint.

Labels as in conv_transpose2d.py: (CT1) output size, (CT2) forward, (CT3) dx, (CT4) dw,
(B1) db. The reference (tests/reference.py) scatters each input through the kernel
exactly as PyTorch defines the op, independently of conv2d.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import (
    directional_derivative_check,
    dot_product_check,
    numerical_gradient,
)
from convprop.functional import (
    conv2d,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from reference import (
    ALGORITHM_NAMES,
    CASES,
    TRANSPOSE_CASES,
    ConvCase,
    TransposeCase,
    as_pair,
    assert_close,
    conv_transpose2d_backward_ref,
    conv_transpose2d_ref,
    random_transpose_inputs,
    transpose_of,
)

DTYPES = ("float64", "float32")


def _params(cases: Any) -> list[Any]:
    return [
        pytest.param(case, algorithm, id=f"{case.name}-{algorithm}")
        for case in cases
        for algorithm in ALGORITHM_NAMES
        if case.applies(algorithm)
    ]


@functools.cache
def expected(case: TransposeCase, dtype: str) -> dict[str, Any]:
    x, w, b, dy = random_transpose_inputs(case, dtype, seed=3)
    hyper = {k: v for k, v in case.hyper.items() if k != "output_padding"}
    dx, dw, db = conv_transpose2d_backward_ref(dy, x, w, **hyper)
    y = conv_transpose2d_ref(x, w, b, **case.hyper)
    return {"x": x, "w": w, "b": b, "dy": dy, "y": y, "dx": dx, "dw": dw, "db": db}


@pytest.mark.parametrize(("case", "algorithm"), _params(TRANSPOSE_CASES))
def test_forward_matches_definition_CT1_CT2(case: TransposeCase, algorithm: str) -> None:
    for dtype in DTYPES:
        data = expected(case, dtype)
        y = conv_transpose2d(data["x"], data["w"], data["b"], algorithm=algorithm, **case.hyper)
        assert y.shape == case.y_shape  # (CT1)
        assert str(y.dtype) == dtype
        assert_close(y, data["y"], dtype, f"y (CT2), {dtype}")


@pytest.mark.parametrize(("case", "algorithm"), _params(TRANSPOSE_CASES))
def test_gradients_match_reference_CT3_CT4_B1(case: TransposeCase, algorithm: str) -> None:
    for dtype in DTYPES:
        data = expected(case, dtype)
        _, cache = conv_transpose2d_forward(
            data["x"], data["w"], data["b"], algorithm=algorithm, **case.hyper
        )
        dx, dw, db = conv_transpose2d_backward(data["dy"], cache)
        for name, got, label in (("dx", dx, "CT3"), ("dw", dw, "CT4"), ("db", db, "B1")):
            if name == "db" and not case.bias:
                assert db is None
                continue
            assert got.shape == data[name].shape
            assert str(got.dtype) == dtype
            assert_close(got, data[name], dtype, f"{name} ({label}), {dtype}")


@pytest.mark.parametrize("case", [c for c in TRANSPOSE_CASES if not c.winograd_applies][:4])
def test_winograd_declines_outside_its_domain(case: TransposeCase) -> None:
    x, w, b, _ = random_transpose_inputs(case, "float64", seed=3)
    with pytest.raises(
        NotImplementedError,
        match=r"conv_transpose2d: algorithm 'winograd' cannot compute this case: F\(2x2, 3x3\)",
    ):
        conv_transpose2d(x, w, b, algorithm="winograd", **case.hyper)


@pytest.mark.parametrize(("case", "algorithm"), _params(CASES))
def test_is_the_adjoint_of_conv2d(case: ConvCase, algorithm: str) -> None:
    """<conv2d(u, w), v> = <u, conv_transpose2d(v, w)>, with output_padding = remainder."""
    rng = np.random.default_rng(43)
    w = rng.standard_normal(case.w_shape)
    transpose = transpose_of(case)
    lhs, rhs = dot_product_check(
        lambda u: conv2d(u, w, algorithm=algorithm, **case.hyper),
        lambda v: conv_transpose2d(v, w, algorithm=algorithm, **transpose.hyper),
        case.x_shape,
        case.y_shape,
        rng=rng,
    )
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize(("case", "algorithm"), _params(TRANSPOSE_CASES))
def test_own_gradients_are_adjoints_CT3_CT4(case: TransposeCase, algorithm: str) -> None:
    """<conv_transpose2d(u, w), v> = <u, dx(v)> (CT3) and
    <conv_transpose2d(x, u_w), v> = <u_w, dw(v)> (CT4), output_padding >= stride included."""
    x, w, _, _ = random_transpose_inputs(case, "float64", seed=53)
    hyper = {**case.hyper, "algorithm": algorithm}

    def dx_of(v: np.ndarray) -> np.ndarray:
        _, cache = conv_transpose2d_forward(np.zeros(case.x_shape), w, **hyper)
        return conv_transpose2d_backward(v, cache)[0]

    def dw_of(v: np.ndarray) -> np.ndarray:
        _, cache = conv_transpose2d_forward(x, np.zeros(case.w_shape), **hyper)
        return conv_transpose2d_backward(v, cache, need_dx=False)[1]

    rng = np.random.default_rng(59)
    for label, forward, adjoint, shape in (
        ("CT3", lambda u: conv_transpose2d(u, w, **hyper), dx_of, case.x_shape),
        ("CT4", lambda u: conv_transpose2d(x, u, **hyper), dw_of, case.w_shape),
    ):
        lhs, rhs = dot_product_check(forward, adjoint, shape, case.y_shape, rng=rng)
        assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)), label


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in TRANSPOSE_CASES
        if any(o >= s for o, s in zip(as_pair(c.output_padding), as_pair(c.stride), strict=True))
    ],
    ids=lambda c: c.name,
)
def test_adjoint_of_conv2d_when_output_padding_reaches_the_stride(case: TransposeCase) -> None:
    """With output_padding >= stride the underlying conv2d has more output rows than x:
    <conv2d(u, w)[:, :, :H, :W], z> = <u, conv_transpose2d(z, w)>."""
    rng = np.random.default_rng(61)
    w = rng.standard_normal(case.w_shape)
    conv_hyper = {k: v for k, v in case.hyper.items() if k != "output_padding"}
    H, W = case.x_shape[2:]
    lhs, rhs = dot_product_check(
        lambda u: conv2d(u, w, **conv_hyper)[:, :, :H, :W],
        lambda z: conv_transpose2d(z, w, **case.hyper),
        case.y_shape,
        case.x_shape,
        rng=rng,
    )
    assert conv2d(np.zeros(case.y_shape), w, **conv_hyper).shape[2] > H
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "fft", "auto"])
def test_remainder_rows_need_output_padding(algorithm: str) -> None:
    """With a remainder, the transposed conv reaches x's size only through output_padding."""
    case = next(c for c in CASES if min(c.remainders) > 0)
    transpose = transpose_of(case)
    rng = np.random.default_rng(47)
    w = rng.standard_normal(case.w_shape)
    z = rng.standard_normal(case.y_shape)
    hyper = {**transpose.hyper, "algorithm": algorithm}
    short = conv_transpose2d(z, w, **{**hyper, "output_padding": 0})
    full = conv_transpose2d(z, w, **hyper)
    assert full.shape == case.x_shape
    assert short.shape[2:] == tuple(np.subtract(case.x_shape[2:], case.remainders))
    top_left = full[:, :, : short.shape[2], : short.shape[3]]
    np.testing.assert_allclose(top_left, short, rtol=1e-12, atol=1e-12)
    # the rows added by output_padding are the x rows no window of conv2d reads: exactly 0
    assert not full[:, :, short.shape[2] :].any()
    assert not full[:, :, :, short.shape[3] :].any()


def test_groups_accepts_any_integer_type_like_conv2d() -> None:
    case = next(c for c in TRANSPOSE_CASES if c.groups == 2)
    x, w, b, _ = random_transpose_inputs(case, "float64", seed=3)
    hyper = {**case.hyper, "groups": np.int64(2)}
    np.testing.assert_array_equal(
        conv_transpose2d(x, w, b, **hyper), conv_transpose2d(x, w, b, **case.hyper)
    )


FD_CASES = [
    TransposeCase("fd_stride2_groups2", 1, 2, 3, 2, 4, 2, 3, stride=2, padding=((1, 0), (0, 1)),
                  output_padding=1, groups=2),
    TransposeCase("fd_3x3_dilated", 2, 2, 2, 3, 1, 3, 3, padding=1, dilation=(2, 1),
                  output_padding=(1, 0)),
]  # fmt: skip


def _problem(case: TransposeCase, algorithm: str) -> dict[str, Any]:
    x, w, b, dy = random_transpose_inputs(case, "float64", seed=5)
    hyper = {**case.hyper, "algorithm": algorithm}

    def loss(x_: np.ndarray, w_: np.ndarray, b_: np.ndarray) -> float:
        return float(np.sum(conv_transpose2d(x_, w_, b_, **hyper) * dy))

    _, cache = conv_transpose2d_forward(x, w, b, **hyper)
    dx, dw, db = conv_transpose2d_backward(dy, cache)
    return {
        "point": {"x": x, "w": w, "b": b},
        "f": {
            "x": lambda v: loss(v, w, b),
            "w": lambda v: loss(x, v, b),
            "b": lambda v: loss(x, w, v),
        },
        "grad": {"x": dx, "w": dw, "b": db},
    }


@pytest.mark.parametrize(("case", "algorithm"), _params(FD_CASES))
@pytest.mark.parametrize(("name", "label"), [("x", "CT3"), ("w", "CT4"), ("b", "B1")])
def test_gradient_matches_finite_differences(
    case: TransposeCase, algorithm: str, name: str, label: str
) -> None:
    problem = _problem(case, algorithm)
    numeric = numerical_gradient(problem["f"][name], problem["point"][name])
    analytic = problem["grad"][name]
    error = float(np.max(np.abs(numeric - analytic)))
    assert error <= 1e-7 * max(1.0, float(np.max(np.abs(analytic)))), f"d{name} ({label})"


@pytest.mark.parametrize(
    ("case", "algorithm"), _params([c for c in TRANSPOSE_CASES if c.bias][::3])
)
def test_gradients_match_directional_derivatives(case: TransposeCase, algorithm: str) -> None:
    problem = _problem(case, algorithm)
    rng = np.random.default_rng(7)
    for name in ("x", "w", "b"):
        numeric, analytic = directional_derivative_check(
            problem["f"][name], problem["grad"][name], problem["point"][name], rng=rng
        )
        assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(analytic)), name


# --- contracts -------------------------------------------------------------------------

CONTRACT_CASE = next(c for c in TRANSPOSE_CASES if c.name == "depthwise_stride2")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_and_shapes_follow_the_inputs(dtype: str) -> None:
    x, w, b, dy = random_transpose_inputs(CONTRACT_CASE, dtype, seed=9)
    y, cache = conv_transpose2d_forward(x, w, b, **CONTRACT_CASE.hyper)
    assert y.dtype == x.dtype and y.shape == CONTRACT_CASE.y_shape
    grads = conv_transpose2d_backward(dy, cache)
    for grad, original in zip(grads, (x, w, b), strict=True):
        assert grad.shape == original.shape and grad.dtype == original.dtype


def test_backward_is_pure_and_repeatable() -> None:
    x, w, b, dy = random_transpose_inputs(CONTRACT_CASE, "float64", seed=9)
    copies = [a.copy() for a in (x, w, b, dy)]
    _, cache = conv_transpose2d_forward(x, w, b, **CONTRACT_CASE.hyper)
    first = conv_transpose2d_backward(dy, cache)
    second = conv_transpose2d_backward(dy, cache)
    for a, b_ in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b_)
        assert a is not b_
    for original, copy in zip((x, w, b, dy), copies, strict=True):
        np.testing.assert_array_equal(original, copy)
    assert cache.x is x and cache.w is w


def test_need_dx_false_and_absent_bias_give_none() -> None:
    x, w, _, dy = random_transpose_inputs(CONTRACT_CASE, "float64", seed=9)
    _, cache = conv_transpose2d_forward(x, w, None, **CONTRACT_CASE.hyper)
    dx, dw, db = conv_transpose2d_backward(dy, cache, need_dx=False)
    assert dx is None and db is None
    _, full_dw, _ = conv_transpose2d_backward(dy, cache)
    np.testing.assert_allclose(dw, full_dw, rtol=1e-13, atol=1e-13)


def test_non_contiguous_inputs_are_accepted() -> None:
    x, w, b, dy = random_transpose_inputs(CONTRACT_CASE, "float64", seed=9)
    x_view = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    w_view = np.repeat(w, 2, axis=0)[::2]
    dy_view = np.repeat(dy, 2, axis=3)[..., ::2]
    assert not (x_view.flags.c_contiguous or w_view.flags.c_contiguous)
    assert not dy_view.flags.c_contiguous
    y, cache = conv_transpose2d_forward(x_view, w_view, b, **CONTRACT_CASE.hyper)
    y_ref, cache_ref = conv_transpose2d_forward(x, w, b, **CONTRACT_CASE.hyper)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(
        conv_transpose2d_backward(dy_view, cache),
        conv_transpose2d_backward(dy, cache_ref),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- errors ----------------------------------------------------------------------------

X = np.zeros((2, 4, 5, 5))
W = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(lambda: conv_transpose2d(X[0], W), ShapeError,
                     r"conv_transpose2d: x \(N, C_in, H, W\) and w \(C_in, C_out/groups, R, S\) "
                     r"must be 4-D; expected 4 dimensions each, got 3 and 4", id="x-rank"),
        pytest.param(lambda: conv_transpose2d(X, W[0]), ShapeError,
                     r"must be 4-D; expected 4 dimensions each, got 4 and 3", id="w-rank"),
        pytest.param(lambda: conv_transpose2d(X, W[:3]), ShapeError,
                     r"conv_transpose2d: x has C_in=4 channels but w expects C_in=3; expected "
                     r"x.shape\[1\] == w.shape\[0\], got 4 != 3 \(x.shape=\(2, 4, 5, 5\), "
                     r"w.shape=\(3, 3, 3, 3\)\)", id="channels"),
        pytest.param(lambda: conv_transpose2d(X, W, stride=1, output_padding=1), ParameterError,
                     r"conv_transpose2d: output_padding must be smaller than stride or dilation; "
                     r"expected output_padding < max\(stride, dilation\) = 1 per axis, got "
                     r"\(1, 1\)", id="output-padding-too-large"),
        pytest.param(lambda: conv_transpose2d(X, W, stride=2, output_padding=(0, 2)),
                     ParameterError, r"output_padding < max\(stride, dilation\) = 2 per axis, "
                     r"got \(0, 2\)", id="output-padding-width"),
        pytest.param(lambda: conv_transpose2d(X, W, output_padding=-1), ParameterError,
                     r"conv_transpose2d: output_padding must be >= 0", id="output-padding-neg"),
        pytest.param(lambda: conv_transpose2d(X, W, groups=3), ParameterError,
                     r"conv_transpose2d: groups must be a positive divisor of C_in; expected "
                     r"C_in % groups == 0, got groups=3, C_in=4", id="groups-not-dividing"),
        pytest.param(lambda: conv_transpose2d(X, W, groups=0), ParameterError,
                     r"groups must be a positive divisor of C_in; .* got groups=0",
                     id="groups-zero"),
        pytest.param(lambda: conv_transpose2d(X, W, groups=2.0), ParameterError,
                     r"groups must be a positive divisor of C_in; .* got groups=2.0",
                     id="groups-float"),
        pytest.param(lambda: conv_transpose2d(X, W, groups=True), ParameterError,
                     r"groups must be a positive divisor of C_in; .* got groups=True",
                     id="groups-bool"),
        pytest.param(lambda: conv_transpose2d(X, W, np.zeros(4)), ShapeError,
                     r"conv_transpose2d: b must have shape \(C_out,\) = \(3,\); expected \(3,\), "
                     r"got \(4,\)", id="bias-shape"),
        pytest.param(lambda: conv_transpose2d(X[:, :, :1, :1], W, padding=2), ShapeError,
                     r"conv_transpose2d: output size must be >= 1; expected \(H-1\)\*stride - "
                     r"padding \+ dil\*\(R-1\) \+ output_padding \+ 1 >= 1, got H_out=-1, "
                     r"W_out=-1", id="output-size"),
        pytest.param(lambda: conv_transpose2d(X, W, padding="same"), ParameterError,
                     r"conv_transpose2d: padding string 'same' is not supported here", id="same"),
        pytest.param(lambda: conv_transpose2d(X, W, padding=-1), ParameterError,
                     r"conv_transpose2d: padding must be >= 0", id="negative-padding"),
        pytest.param(lambda: conv_transpose2d(X, W, stride=0), ParameterError,
                     r"conv_transpose2d: stride must be >= 1", id="stride"),
        pytest.param(lambda: conv_transpose2d(X, W, dilation=(1, 0)), ParameterError,
                     r"conv_transpose2d: dilation must be >= 1", id="dilation"),
        pytest.param(lambda: conv_transpose2d(X.astype(np.float32), W), DTypeError,
                     r"conv_transpose2d: arrays must share one dtype", id="mixed-dtype"),
        pytest.param(lambda: conv_transpose2d(X.astype(np.int64), W.astype(np.int64)),
                     DTypeError, r"conv_transpose2d: x has dtype int64; expected float32 or "
                     r"float64", id="int-dtype"),
        pytest.param(lambda: conv_transpose2d(X.tolist(), W), DTypeError,
                     r"conv_transpose2d: x must be a numpy or cupy array; expected an ndarray, "
                     r"got list", id="not-an-array"),
        pytest.param(lambda: conv_transpose2d(X, W, algorithm="gemm"), ParameterError,
                     r"conv_transpose2d: unknown algorithm; expected one of \['auto', 'direct', "
                     r"'im2col', 'fft', 'winograd', 'winograd4', 'depthwise'\], got 'gemm'",
                     id="algorithm"),
    ],
)  # fmt: skip
def test_invalid_calls_are_refused_with_their_reason(call: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_backward_checks_dy() -> None:
    _, cache = conv_transpose2d_forward(X, W)  # y (2, 3, 7, 7)
    with pytest.raises(ShapeError, match=r"conv_transpose2d_backward: dy.shape=\(2, 3, 7, 6\) "
                       r"does not match the forward output; expected \(2, 3, 7, 7\)"):  # fmt: skip
        conv_transpose2d_backward(np.zeros((2, 3, 7, 6)), cache)
    with pytest.raises(DTypeError, match=r"conv_transpose2d_backward: dy has dtype float32; "
                       r"expected the forward dtype float64"):  # fmt: skip
        conv_transpose2d_backward(np.zeros((2, 3, 7, 7), dtype=np.float32), cache)
    with pytest.raises(DTypeError, match=r"conv_transpose2d_backward: dy must be a numpy or cupy"):
        conv_transpose2d_backward(0.0, cache)
