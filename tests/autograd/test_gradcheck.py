"""convprop.finite_differences on functions whose gradients and adjoints are known in closed form.

The checks must pass on correct pairs and catch wrong ones (a transposition, a sign, a
missing factor), or the conv tests that rely on them would prove nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from convprop.finite_differences import (
    directional_derivative_check,
    dot_product_check,
    numerical_gradient,
)


def _f(x: np.ndarray) -> float:
    """f(x) = sum(sin(x) * x) + (sum x)^2 / 2, non-linear and coupling all entries."""
    return float(np.sum(np.sin(x) * x) + 0.5 * np.sum(x) ** 2)


def _grad_f(x: np.ndarray) -> np.ndarray:
    return np.cos(x) * x + np.sin(x) + np.sum(x)  # type: ignore[no-any-return]


X = np.random.default_rng(0).standard_normal((3, 4))


def test_numerical_gradient_G1_matches_the_analytic_gradient() -> None:
    numeric = numerical_gradient(_f, X)
    assert numeric.shape == X.shape and numeric.dtype == np.float64
    np.testing.assert_allclose(numeric, _grad_f(X), rtol=1e-8, atol=1e-8)


def test_numerical_gradient_does_not_move_the_point() -> None:
    x = X.copy()
    seen: list[np.ndarray] = []

    def f(v: np.ndarray) -> float:
        seen.append(v.copy())
        return _f(v)

    numerical_gradient(f, x)
    np.testing.assert_array_equal(x, X)
    # each evaluation moves exactly one coordinate by +-eps
    for v in seen:
        moved = np.flatnonzero(v != X)
        assert moved.size == 1
        assert abs(abs(float((v - X).flat[moved[0]])) - 1e-6) < 1e-12


def test_numerical_gradient_is_exact_for_a_quadratic() -> None:
    A = np.random.default_rng(1).standard_normal((5, 5))
    x = np.random.default_rng(2).standard_normal(5)
    numeric = numerical_gradient(lambda v: float(v @ A @ v), x, eps=1e-3)
    np.testing.assert_allclose(numeric, (A + A.T) @ x, rtol=1e-9, atol=1e-9)


def test_numerical_gradient_refuses_float32() -> None:
    with pytest.raises(TypeError, match=r"gradcheck: x must be float64 for finite differences; "
                       r"expected float64, got float32 \(x.shape=\(3, 4\)\)"):  # fmt: skip
        numerical_gradient(_f, X.astype(np.float32))


def test_directional_derivative_G2_agrees_and_catches_a_wrong_gradient() -> None:
    rng = np.random.default_rng(3)
    numeric, analytic = directional_derivative_check(_f, _grad_f(X), X, rng=rng)
    assert abs(numeric - analytic) <= 1e-8 * max(1.0, abs(analytic))
    wrong = _grad_f(X)
    wrong[1, 2] += 0.1  # one wrong entry
    numeric, analytic = directional_derivative_check(_f, wrong, X, rng=np.random.default_rng(3))
    assert abs(numeric - analytic) > 1e-3


def test_directional_derivative_uses_the_generator_and_leaves_x() -> None:
    x = X.copy()
    first = directional_derivative_check(_f, _grad_f(x), x, rng=np.random.default_rng(4))
    second = directional_derivative_check(_f, _grad_f(x), x, rng=np.random.default_rng(4))
    assert first == second
    np.testing.assert_array_equal(x, X)


def test_directional_derivative_refuses_bad_arguments() -> None:
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match=r"gradcheck: grad must have the shape of x; expected "
                       r"\(3, 4\), got \(4, 3\)"):  # fmt: skip
        directional_derivative_check(_f, _grad_f(X).T, X, rng=rng)
    with pytest.raises(TypeError, match=r"gradcheck: grad must be float64"):
        directional_derivative_check(_f, _grad_f(X).astype(np.float32), X, rng=rng)
    with pytest.raises(TypeError, match=r"gradcheck: x must be float64"):
        directional_derivative_check(_f, _grad_f(X), X.astype(np.float32), rng=rng)


A = np.random.default_rng(6).standard_normal((4, 7))


def test_dot_product_G3_holds_for_a_matrix_and_its_transpose() -> None:
    lhs, rhs = dot_product_check(
        lambda u: A @ u, lambda v: A.T @ v, (7,), (4,), rng=np.random.default_rng(7)
    )
    assert lhs != 0.0
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)


def test_dot_product_catches_a_wrong_adjoint() -> None:
    wrong = A.copy()
    wrong[2, 3] *= -1  # a sign error in one entry
    lhs, rhs = dot_product_check(
        lambda u: A @ u, lambda v: wrong.T @ v, (7,), (4,), rng=np.random.default_rng(7)
    )
    assert abs(lhs - rhs) > 1e-3


def test_dot_product_works_on_arrays_of_any_rank() -> None:
    """A 2-D map: u (3, 5) -> A u B^T (2, 4); its adjoint is v -> A^T v B."""
    rng = np.random.default_rng(8)
    left, right = rng.standard_normal((2, 3)), rng.standard_normal((4, 5))
    lhs, rhs = dot_product_check(
        lambda u: left @ u @ right.T, lambda v: left.T @ v @ right, (3, 5), (2, 4), rng=rng
    )
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_dot_product_refuses_maps_of_the_wrong_shape() -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match=r"gradcheck: forward returned the wrong shape; expected "
                       r"\(5,\), got \(4,\) \(x_shape=\(7,\), y_shape=\(5,\)\)"):  # fmt: skip
        dot_product_check(lambda u: A @ u, lambda v: A.T @ v, (7,), (5,), rng=rng)
    with pytest.raises(ValueError, match=r"gradcheck: adjoint returned the wrong shape; expected "
                       r"\(7,\), got \(4,\)"):  # fmt: skip
        dot_product_check(lambda u: A @ u, lambda v: v, (7,), (4,), rng=rng)
