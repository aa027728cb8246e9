"""Weight initialisation, as PyTorch's defaults, drawn on the host from an explicit Generator.

PyTorch initialises Conv2d, ConvTranspose2d and Linear weights with
``kaiming_uniform_(a=sqrt(5))``, i.e. uniform on ``[-bound, bound]`` with
``bound = gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)``, which is
``bound = 1 / sqrt(fan_in)``; biases are uniform on the same interval.
"""

from __future__ import annotations

import math

import numpy

from convprop.backend import Array
from convprop.functional._checks import check_parameter_size
from convprop.nn.parameter import Parameter

RNGLike = numpy.random.Generator | int | None


def make_rng(rng: RNGLike) -> numpy.random.Generator:
    """A Generator from a Generator (used as is), a seed, or None (fresh entropy)."""
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


def check_dtype(op: str, dtype: str) -> str:
    """Layers are float32 (default) or float64."""
    name = str(numpy.dtype(dtype))
    if name not in ("float32", "float64"):
        from convprop.errors import DTypeError

        raise DTypeError(
            f"{op}: dtype must be float32 or float64; expected one of them, got {name}"
        )
    return name


def kaiming_uniform(
    shape: tuple[int, ...], fan_in: int, rng: numpy.random.Generator, dtype: str
) -> Array:
    """Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) of ``shape`` (PyTorch's default for weights).

    Examples
    --------
    >>> w = kaiming_uniform((4, 3), 3, numpy.random.default_rng(0), "float32")
    >>> w.dtype, bool(abs(w).max() <= 1 / 3 ** 0.5)
    (dtype('float32'), True)
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def weight_and_bias(
    weight_shape: tuple[int, ...], bias_size: int | None, fan_in: int, rng: RNGLike, dtype: str
) -> tuple[Parameter, Parameter | None]:
    """PyTorch's default parameters of Conv2d, ConvTranspose2d and Linear.

    A Kaiming-uniform weight, then (unless ``bias_size`` is None) a bias drawn from the same
    interval ±1/sqrt(fan_in), in that order from one generator.
    """
    shapes = (weight_shape,) if bias_size is None else (weight_shape, (bias_size,))
    check_parameter_size("weight_and_bias", shapes, numpy.dtype(dtype).itemsize)  # before the draw
    generator = make_rng(rng)
    weight = Parameter(kaiming_uniform(weight_shape, fan_in, generator, dtype))
    if bias_size is None:
        return weight, None
    return weight, Parameter(kaiming_uniform((bias_size,), fan_in, generator, dtype))
