"""conv2d gradients by finite differences (G1, G2) and adjoint identities (G3).

The loss is L = sum(y * dy) with a random upstream dy, so dL/dx, dL/dw, dL/db are what
conv2d_backward returns for dy. Each input is checked separately, holding the others.
conv2d is linear in x and in w (with the other fixed), so the adjoint identities
<conv(x), g> = <x, dx(g)> and <conv_w(w), g> = <w, dw(g)> hold to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convprop._shapes import conv_geometry
from convprop.finite_differences import (
    directional_derivative_check,
    dot_product_check,
    numerical_gradient,
)
from convprop.functional import conv2d, conv2d_backward, conv2d_forward
from convprop.functional.conv2d_im2col import col2im, im2col
from reference import ALGORITHM_NAMES, CASES, ConvCase, random_inputs

FD_RTOL = 1e-7  # conv is linear in each input: central differences are exact up to rounding
ADJOINT_RTOL = 1e-12


def _accepts(case: ConvCase, algorithm: str) -> bool:
    return case.applies(algorithm)


def _params(cases: list[ConvCase]) -> list[Any]:
    return [
        pytest.param(case, algorithm, id=f"{case.name}-{algorithm}")
        for case in cases
        for algorithm in ALGORITHM_NAMES
        if _accepts(case, algorithm)
    ]


# small enough for one central difference per element of x, w and b
FD_CASES = [
    ConvCase("fd_3x3_asymmetric_groups2", 2, 2, 4, 5, 2, 3, 3, padding=((0, 1), (1, 0)), groups=2),
    ConvCase(
        "fd_stride_dilation_remainder", 1, 2, 7, 6, 2, 2, 3,
        stride=(2, 3), dilation=(2, 1), padding=((1, 0), (0, 1)),
    ),
    ConvCase(
        "fd_same_stride2_multiplier2", 1, 2, 5, 4, 4, 3, 2, stride=2, padding="same", groups=2
    ),
    ConvCase("fd_1x1_stride2_padded", 2, 3, 3, 4, 2, 1, 1, stride=2, padding=1),
]  # fmt: skip


def _losses(case: ConvCase, algorithm: str, seed: int) -> dict[str, Any]:
    """The three scalar functions L(x), L(w), L(b) and the analytic gradients at the point."""
    x, w, b, dy = random_inputs(case, "float64", seed)
    if b is None:
        b = np.random.default_rng(seed + 1).standard_normal(case.K)
    hyper = {**case.hyper, "algorithm": algorithm}

    def loss(x_: np.ndarray, w_: np.ndarray, b_: np.ndarray) -> float:
        return float(np.sum(conv2d(x_, w_, b_, **hyper) * dy))

    _, cache = conv2d_forward(x, w, b, **hyper)
    dx, dw, db = conv2d_backward(dy, cache)
    return {
        "point": {"x": x, "w": w, "b": b},
        "f": {
            "x": lambda v: loss(v, w, b),
            "w": lambda v: loss(x, v, b),
            "b": lambda v: loss(x, w, v),
        },
        "grad": {"x": dx, "w": dw, "b": db},
    }


def _assert_fd_close(numeric: np.ndarray, analytic: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(analytic))))
    error = float(np.max(np.abs(numeric - analytic)))
    assert error <= FD_RTOL * scale, f"{what}: finite differences differ by {error:.3e}"


@pytest.mark.parametrize(("case", "algorithm"), _params(FD_CASES))
@pytest.mark.parametrize(("name", "label"), [("x", "B3"), ("w", "B2"), ("b", "B1")])
def test_gradient_matches_finite_differences(
    case: ConvCase, algorithm: str, name: str, label: str
) -> None:
    """(G1) for each input separately: dx (B3), dw (B2), db (B1)."""
    problem = _losses(case, algorithm, seed=11)
    numeric = numerical_gradient(problem["f"][name], problem["point"][name])
    _assert_fd_close(numeric, problem["grad"][name], f"d{name} ({label})")


@pytest.mark.parametrize(("case", "algorithm"), _params(list(CASES[::3])))
def test_gradients_match_directional_derivatives(case: ConvCase, algorithm: str) -> None:
    """(G2) along a random direction for x, w and b, on every third case of the grid."""
    problem = _losses(case, algorithm, seed=13)
    rng = np.random.default_rng(17)
    for name in ("x", "w", "b"):
        numeric, analytic = directional_derivative_check(
            problem["f"][name], problem["grad"][name], problem["point"][name], rng=rng
        )
        assert abs(numeric - analytic) <= FD_RTOL * max(1.0, abs(analytic)), name


@pytest.mark.parametrize(("case", "algorithm"), _params(list(CASES)))
def test_gradients_are_adjoints_of_forward_B3_B2(case: ConvCase, algorithm: str) -> None:
    """(B3) is the transpose of (F1) in x: <conv(u, w), v> = <u, dx(v)>;
    (B2) is the transpose of (F1) in w: <conv(x, u), v> = <u, dw(v)>;
    and, F1 being bilinear, one pass gives <y, dy> = <x, dx> = <w, dw> (Euler)."""
    x, w, _, dy = random_inputs(case, "float64", seed=19)
    hyper = {**case.hyper, "algorithm": algorithm}

    def dx_of(v: np.ndarray) -> np.ndarray:
        _, cache = conv2d_forward(np.zeros(case.x_shape), w, **hyper)
        return conv2d_backward(v, cache)[0]

    def dw_of(v: np.ndarray) -> np.ndarray:
        _, cache = conv2d_forward(x, np.zeros(case.w_shape), **hyper)
        return conv2d_backward(v, cache, need_dx=False)[1]

    rng = np.random.default_rng(23)
    for label, forward, adjoint, shape in (
        ("B3", lambda u: conv2d(u, w, **hyper), dx_of, case.x_shape),
        ("B2", lambda u: conv2d(x, u, **hyper), dw_of, case.w_shape),
    ):
        lhs, rhs = dot_product_check(forward, adjoint, shape, case.y_shape, rng=rng)
        assert abs(lhs - rhs) <= ADJOINT_RTOL * max(1.0, abs(lhs)), label

    y, cache = conv2d_forward(x, w, **hyper)
    dx, dw, _ = conv2d_backward(dy, cache)
    y_dy, x_dx, w_dw = (float(np.sum(a * b)) for a, b in ((y, dy), (x, dx), (w, dw)))
    scale = max(1.0, abs(y_dy))
    assert abs(x_dx - y_dy) <= ADJOINT_RTOL * scale and abs(w_dw - y_dy) <= ADJOINT_RTOL * scale


def test_col2im_is_the_adjoint_of_im2col_I1_I5() -> None:
    """<im2col(u), V> = <u, col2im(V)> on every case of the grid."""
    rng = np.random.default_rng(29)
    for case in CASES:
        geom = conv_geometry("conv2d", case.x_shape, case.w_shape, None, **case.hyper)
        cols_shape = (case.N, case.groups, case.w_shape[1] * case.R * case.S, geom.P * geom.Q)
        lhs, rhs = dot_product_check(
            lambda u, g=geom: im2col(u, g),
            lambda v, g=geom: col2im(v, g),
            case.x_shape,
            cols_shape,
            rng=rng,
        )
        assert abs(lhs - rhs) <= ADJOINT_RTOL * max(1.0, abs(lhs)), case.name


def test_bias_grad_is_adjoint_of_bias_broadcast_B1() -> None:
    """<b broadcast over (n, p, q), v> = <b, db(v)>."""
    case = CASES[0]
    x, w, _, _ = random_inputs(case, "float64", seed=37)

    def adjoint(v: np.ndarray) -> np.ndarray:
        _, cache = conv2d_forward(x, w, np.zeros(case.K), **case.hyper)
        _, _, db = conv2d_backward(v, cache)
        return db

    y0 = conv2d(x, w, **case.hyper)
    lhs, rhs = dot_product_check(
        lambda u: conv2d(x, w, u, **case.hyper) - y0,
        adjoint,
        (case.K,),
        case.y_shape,
        rng=np.random.default_rng(41),
    )
    assert abs(lhs - rhs) <= ADJOINT_RTOL * max(1.0, abs(lhs))
