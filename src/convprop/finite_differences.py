"""Numerical checks of hand-written gradients: finite differences and adjoint identities.

Three witnesses, all in float64 on the host (NumPy):

* :func:`numerical_gradient` -- the full gradient of a scalar function by central
  differences, one coordinate at a time::

      df/dx[i] ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)                        (G1)

* :func:`directional_derivative_check` -- one central difference along a random
  direction v, for shapes too large for (G1)::

      (f(x + eps v) - f(x - eps v)) / (2 eps)  ~  <grad f(x), v>                    (G2)

* :func:`dot_product_check` -- the adjoint identity of a linear map A and its claimed
  transpose, exact up to rounding::

      <A u, v> = <u, A^T v>                                                          (G3)

A scalar "loss" for an op with output y is usually ``f(x) = sum(y * dy)`` with a random
upstream ``dy`` (never all ones: ones hide transpositions and sign errors); its gradient
is then exactly what the op's backward returns for ``dy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

Float64Array = NDArray[np.float64]

__all__ = ["directional_derivative_check", "dot_product_check", "numerical_gradient"]


def _as_float64(name: str, x: Any) -> Float64Array:
    array = np.asarray(x)
    if array.dtype != np.float64:
        raise TypeError(
            f"gradcheck: {name} must be float64 for finite differences; expected float64, "
            f"got {array.dtype} ({name}.shape={array.shape})"
        )
    return array


def _checked_shape(
    name: str,
    value: Any,
    shape: tuple[int, ...],
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
) -> Float64Array:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != tuple(shape):
        raise ValueError(
            f"gradcheck: {name} returned the wrong shape; expected {tuple(shape)}, got "
            f"{array.shape} (x_shape={tuple(x_shape)}, y_shape={tuple(y_shape)})"
        )
    return array


def numerical_gradient(
    f: Callable[[Float64Array], float], x: Float64Array, *, eps: float = 1e-6
) -> Float64Array:
    """Central-difference gradient (G1) of a scalar function of one float64 array.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, a scalar function of an array shaped like ``x``.
    x : ndarray, float64, any shape
        The point; it is not modified (the differences are taken on a copy).
    eps : float
        The step.

    Returns
    -------
    ndarray, float64, shape of x
        ``grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``; exact up to rounding
        for functions that are linear or quadratic in ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not float64 (float32 steps drown in rounding).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, -2.0, 3.0])
    >>> np.round(numerical_gradient(lambda v: float(np.sum(v**2)), x), 6)  # 2x
    array([ 2., -4.,  6.])
    """
    x = _as_float64("x", x)
    point = np.array(x, dtype=np.float64, copy=True)
    flat = point.reshape(-1)  # a view: writing flat[i] moves the point
    grad = np.empty(flat.size, dtype=np.float64)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = float(f(point))
        flat[i] = original - eps
        f_minus = float(f(point))
        flat[i] = original
        grad[i] = (f_plus - f_minus) / (2.0 * eps)  # (G1)
    return grad.reshape(x.shape)


def directional_derivative_check(
    f: Callable[[Float64Array], float],
    grad: Float64Array,
    x: Float64Array,
    *,
    rng: np.random.Generator,
    eps: float = 1e-6,
) -> tuple[float, float]:
    """Compare the derivative of ``f`` along a random direction with ``<grad, v>`` (G2).

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    grad : ndarray, float64, shape of x
        The analytic gradient of ``f`` at ``x`` (the value under test).
    x : ndarray, float64, any shape
        The point; not modified.
    rng : numpy.random.Generator
        Draws the direction ``v`` (standard normal, shape of x).
    eps : float
        The step along ``v``.

    Returns
    -------
    numeric : float
        ``(f(x + eps v) - f(x - eps v)) / (2 eps)``.
    analytic : float
        ``sum(grad * v)``.

    Raises
    ------
    TypeError
        If ``x`` or ``grad`` is not float64.
    ValueError
        If ``grad`` does not have the shape of ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> numeric, analytic = directional_derivative_check(
    ...     lambda v: float(np.sum(v**3)), 3 * x**2, x, rng=np.random.default_rng(0))
    >>> bool(abs(numeric - analytic) <= 1e-7 * abs(analytic))
    True
    """
    x = _as_float64("x", x)
    grad = _as_float64("grad", grad)
    if grad.shape != x.shape:
        raise ValueError(
            "gradcheck: grad must have the shape of x; expected "
            f"{x.shape}, got {grad.shape} (x.shape={x.shape}, grad.shape={grad.shape})"
        )
    direction = rng.standard_normal(x.shape)
    f_plus = float(f(x + eps * direction))
    f_minus = float(f(x - eps * direction))
    numeric = (f_plus - f_minus) / (2.0 * eps)  # (G2)
    analytic = float(np.sum(grad * direction))  # (G2)
    return numeric, analytic


def dot_product_check(
    forward: Callable[[Float64Array], Float64Array],
    adjoint: Callable[[Float64Array], Float64Array],
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    *,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """The adjoint identity (G3) on random float64 vectors u (x_shape) and v (y_shape).

    Parameters
    ----------
    forward : callable
        A linear map ``A``: array of ``x_shape`` -> array of ``y_shape``.
    adjoint : callable
        Its claimed transpose ``A^T``: array of ``y_shape`` -> array of ``x_shape``.
    x_shape, y_shape : tuple of int
        Shapes of the domain and the codomain.
    rng : numpy.random.Generator
        Draws u and v (standard normal).

    Returns
    -------
    lhs : float
        ``<A u, v>``.
    rhs : float
        ``<u, A^T v>``; equal to ``lhs`` up to rounding (about 1e-12 relative) exactly
        when ``adjoint`` is the transpose of ``forward``.

    Raises
    ------
    ValueError
        If ``forward`` or ``adjoint`` returns an array of the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
    >>> lhs, rhs = dot_product_check(lambda u: A @ u, lambda v: A.T @ v, (3,), (2,),
    ...                              rng=np.random.default_rng(0))
    >>> bool(abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs)))
    True
    """
    u = rng.standard_normal(x_shape)
    v = rng.standard_normal(y_shape)
    Au = _checked_shape("forward", forward(u), y_shape, x_shape, y_shape)
    ATv = _checked_shape("adjoint", adjoint(v), x_shape, x_shape, y_shape)
    lhs = float(np.sum(Au * v))  # (G3) <A u, v>
    rhs = float(np.sum(u * ATv))  # (G3) <u, A^T v>
    return lhs, rhs
