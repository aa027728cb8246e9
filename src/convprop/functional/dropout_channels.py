"""Channel dropout (dropout2d): whole feature maps are dropped, not single elements.

Notation  x (N, C, H, W) or (N, C, L)  y, dy, dx (the shape of x)  p the drop probability
Neighbouring pixels of one feature map are strongly correlated, so dropping single pixels
barely regularises a convolutional layer; dropping whole maps does (Tompson et al., 2015).
Forward in training mode with 0 < p ≤ 1
  u[n, c] ~ Uniform[0, 1), one draw per (sample, channel), from an explicit generator  (DO7)
  mask[n, c] = (u[n, c] ≥ p)                                                          (DO8)
  y[n, c, …] = x[n, c, …]·mask[n, c] / (1 − p)   -- p = 1 keeps nothing: y = 0        (DO9)
Forward in evaluation mode, or p = 0: y = x (DO4)
Backward (linear in x for a fixed mask)
  dx[n, c, …] = dy[n, c, …]·mask[n, c] / (1 − p)                                      (DO10)
  evaluation mode or p = 0: dx = dy (DO6)
A 3-D input is (N, C, L), as PyTorch 2.13 reads it (PyTorch warns that a later release will
read it as an unbatched (C, H, W)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array


@dataclass(frozen=True, slots=True)
class Dropout2dCache:
    """What dropout2d_backward needs.

    Fields
    ------
    mask : Array (N, C, 1, …), bool, or None
        The kept channels (DO8): N·C bytes. None in the identity case (DO4).
    scale : float
        1/(1 − p) in training mode (0 when p = 1); 1 for the identity.
    x_shape : tuple[int, ...]
        The shape of x (and of y and dy).
    dtype : Any
        The dtype of x.
    """

    mask: Array | None
    scale: float
    x_shape: tuple[int, ...]
    dtype: Any


def _check(x: Any, p: Any, training: Any, rng: Any) -> float:
    op = "dropout2d"
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    if x.ndim not in (3, 4):
        raise ShapeError(
            f"{op}: x must be (N, C, H, W) or (N, C, L); expected 3 or 4 dimensions, got "
            f"{x.ndim} (x.shape={tuple(x.shape)})"
        )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ParameterError(
            f"{op}: p is the probability of dropping a channel; expected a number in [0, 1], "
            f"got {p!r}"
        )
    if not isinstance(training, bool):
        raise ParameterError(
            f"{op}: training must be a bool; expected True or False, got {training!r}"
        )
    if training and p > 0 and not callable(getattr(rng, "random", None)):
        raise ParameterError(
            f"{op}: training with p={p} draws a random mask and needs a generator; expected "
            f"rng=numpy.random.default_rng(seed), got {rng!r}"
        )
    return float(p)


def dropout2d_forward(
    x: Array, *, p: float = 0.5, training: bool = True, rng: Any = None
) -> tuple[Array, Dropout2dCache]:
    """Channel dropout forward pass, equations (DO7)–(DO9), or (DO4) for the identity.

    Parameters
    ----------
    x : Array (N, C, H, W) or (N, C, L)
        float32 or float64.
    p : float
        Probability of dropping each channel of each sample, in [0, 1].
    training : bool
        False (evaluation mode) makes the op the identity (DO4).
    rng : numpy.random.Generator or None
        Draws the mask (DO7); required when training with p > 0, unused otherwise.

    Returns
    -------
    y : Array (the shape of x)
        Same dtype as x; a fresh array also in the identity case.
    cache : Dropout2dCache
        For dropout2d_backward.

    Raises
    ------
    ShapeError, DTypeError
        When x is not a 3-D or 4-D float32/float64 array.
    ParameterError
        When p is outside [0, 1], training is not a bool, or the generator is missing.

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = dropout2d_forward(np.ones((1, 6, 2, 2)), p=0.5, rng=np.random.default_rng(0))
    >>> y[0, :, 0, 0], bool(np.all(y == y[:, :, :1, :1]))
    (array([2., 0., 0., 0., 2., 2.]), True)
    """
    p = _check(x, p, training, rng)
    xp = get_xp(x)
    x_shape = tuple(x.shape)
    if not training or p == 0:
        return x.copy(), Dropout2dCache(None, 1.0, x_shape, x.dtype)  # (DO4)
    u = rng.random(x_shape[:2])  # (DO7) on the host, reproducible from the seed
    mask = xp.asarray(u >= p).reshape(x_shape[:2] + (1,) * (x.ndim - 2))  # (DO8) (N, C, 1, …)
    scale = 0.0 if p == 1 else 1 / (1 - p)  # p = 1: every channel is dropped
    y = x * mask * scale  # (DO9)
    return y, Dropout2dCache(mask, scale, x_shape, x.dtype)


def dropout2d_backward(dy: Array, cache: Dropout2dCache) -> Array:
    """Channel dropout backward pass, equation (DO10), or (DO6) for the identity.

    Parameters
    ----------
    dy : Array (the shape of x)
        Gradient of the loss with respect to y.
    cache : Dropout2dCache
        From dropout2d_forward.

    Returns
    -------
    dx : Array (the shape of x)
        dy through the forward pass's channel mask, scaled by 1/(1 − p).
    """
    check_upstream("dropout2d_backward", dy, cache.x_shape, cache.dtype)
    if cache.mask is None:
        return dy.copy()  # (DO6)
    return dy * cache.mask * cache.scale  # (DO10)


def dropout2d(x: Array, *, p: float = 0.5, training: bool = True, rng: Any = None) -> Array:
    """Channel dropout forward alone; see :func:`dropout2d_forward`."""
    y, _ = dropout2d_forward(x, p=p, training=training, rng=rng)
    return y
