"""Inverted dropout.

Notation  x (any shape)  y, dy, dx (the shape of x)  p the drop probability
Forward in training mode with 0 < p ≤ 1
  u ~ Uniform[0, 1) element-wise, drawn from an explicit generator on the host          (DO1)
  mask = (u ≥ p)                 -- each element is kept with probability 1 − p       (DO2)
  y = x ⊙ mask / (1 − p)         -- "inverted": E[y] = x, so evaluation needs no
                                    rescaling; p = 1 keeps nothing and y = 0          (DO3)
Forward in evaluation mode, or p = 0
  y = x                                                                               (DO4)
Backward (y is linear in x for a fixed mask)
  dx = dy ⊙ mask / (1 − p)       -- training mode, the mask of the forward pass       (DO5)
  dx = dy                        -- evaluation mode or p = 0                          (DO6)

The mask is drawn on the host from a ``numpy.random.Generator`` so that a seed reproduces
it on any device, then moved once to the array module of x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError
from convprop.functional._checks import check_upstream, require_array


@dataclass(frozen=True, slots=True)
class DropoutCache:
    """What dropout_backward needs.

    Fields
    ------
    mask : Array (the shape of x), bool, or None
        The kept elements (DO2): one byte per element of x. None in the identity case (DO4).
    scale : float
        1/(1 − p) in training mode (0 when p = 1, where nothing is kept); 1 for the identity.
    x_shape : tuple[int, ...]
        The shape of x (and of y and dy).
    dtype : Any
        The dtype of x.
    """

    mask: Array | None
    scale: float
    x_shape: tuple[int, ...]
    dtype: Any


def _check_hyperparameters(p: Any, training: Any, rng: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ParameterError(
            f"dropout: p is the probability of dropping an element; expected a number in "
            f"[0, 1], got {p!r}"
        )
    if not isinstance(training, bool):
        raise ParameterError(
            f"dropout: training must be a bool; expected True or False, got {training!r}"
        )
    if training and p > 0 and not callable(getattr(rng, "random", None)):
        raise ParameterError(
            f"dropout: training with p={p} draws a random mask and needs a generator; expected "
            f"rng=numpy.random.default_rng(seed), got {rng!r}"
        )
    return float(p)


def dropout_forward(
    x: Array, *, p: float = 0.5, training: bool = True, rng: Any = None
) -> tuple[Array, DropoutCache]:
    """Inverted dropout forward pass, equations (DO1)–(DO4).

    Parameters
    ----------
    x : Array (any shape)
        float32 or float64.
    p : float
        Probability of dropping each element, in [0, 1].
    training : bool
        False (evaluation mode) makes the op the identity (DO4).
    rng : numpy.random.Generator or None
        Draws the mask (DO1); required when training with p > 0, unused otherwise.

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x; a fresh array also in the identity case.
    cache : DropoutCache
        For dropout_backward.

    Raises
    ------
    DTypeError
        When x is not a float32/float64 array.
    ParameterError
        When p is outside [0, 1], training is not a bool, or the generator is missing.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones(6)
    >>> y, cache = dropout_forward(x, p=0.5, rng=np.random.default_rng(0))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> dx = dropout_backward(np.ones(6), cache)
    >>> bool(np.array_equal(dx, y))
    True
    >>> dropout_forward(x, p=0.5, training=False)[0]
    array([1., 1., 1., 1., 1., 1.])
    """
    op = "dropout"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    p = _check_hyperparameters(p, training, rng)
    xp = get_xp(x)
    x_shape = tuple(x.shape)
    if not training or p == 0:
        y = x.copy()  # (DO4)
        return y, DropoutCache(mask=None, scale=1.0, x_shape=x_shape, dtype=x.dtype)
    u = rng.random(x_shape)  # (DO1) on the host, reproducible from the seed
    mask = xp.asarray(u >= p)  # (DO2) one transfer to the device of x
    scale = 0.0 if p == 1 else 1 / (1 - p)  # p = 1: every element is dropped
    y = x * mask * scale  # (DO3)
    return y, DropoutCache(mask=mask, scale=scale, x_shape=x_shape, dtype=x.dtype)


def dropout_backward(dy: Array, cache: DropoutCache) -> Array:
    """Dropout backward pass, equation (DO5), or (DO6) for the identity.

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : DropoutCache
        From dropout_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy through the forward pass's mask, scaled by 1/(1 − p).
    """
    check_upstream("dropout_backward", dy, cache.x_shape, cache.dtype)
    if cache.mask is None:
        return dy.copy()  # (DO6)
    return dy * cache.mask * cache.scale  # (DO5)


def dropout(x: Array, *, p: float = 0.5, training: bool = True, rng: Any = None) -> Array:
    """Dropout forward alone; see :func:`dropout_forward`."""
    y, _ = dropout_forward(x, p=p, training=training, rng=rng)
    return y
