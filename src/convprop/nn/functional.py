"""Tensor-level ops under PyTorch's names and signatures (``import convprop.nn.functional as F``).

Each op runs the forward of its pair in convprop.functional on the inputs' arrays and
records the pair's hand-written backward in the graph (convprop.autograd). Arrays are
accepted wherever Tensors are (as data that needs no gradient); the result is a Tensor.
The labels in each docstring name the equations of docs/derivations.md.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.autograd.ops import flatten as _flatten
from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional import activation, batch_norm_relu, normalization
from convprop.functional._checks import require_array
from convprop.functional.dropout import dropout_backward, dropout_forward
from convprop.functional.linear import linear_backward, linear_forward
from convprop.nn.functional_activation import elu as elu  # F.gelu, F.softmax, ...
from convprop.nn.functional_activation import gelu as gelu
from convprop.nn.functional_activation import log_softmax as log_softmax
from convprop.nn.functional_activation import silu as silu
from convprop.nn.functional_activation import softmax as softmax
from convprop.nn.functional_conv import conv1d as conv1d  # re-exported: F.conv1d, ...
from convprop.nn.functional_conv import conv2d as conv2d
from convprop.nn.functional_conv import conv3d as conv3d
from convprop.nn.functional_conv import conv_transpose1d as conv_transpose1d
from convprop.nn.functional_conv import conv_transpose2d as conv_transpose2d
from convprop.nn.functional_conv import conv_transpose3d as conv_transpose3d
from convprop.nn.functional_loss import binary_cross_entropy as binary_cross_entropy
from convprop.nn.functional_loss import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
)
from convprop.nn.functional_loss import cross_entropy as cross_entropy
from convprop.nn.functional_loss import mse_loss as mse_loss
from convprop.nn.functional_loss import nll_loss as nll_loss
from convprop.nn.functional_normalization import group_norm as group_norm
from convprop.nn.functional_normalization import layer_norm as layer_norm
from convprop.nn.functional_pooling import adaptive_avg_pool1d as adaptive_avg_pool1d
from convprop.nn.functional_pooling import adaptive_avg_pool2d as adaptive_avg_pool2d
from convprop.nn.functional_pooling import adaptive_max_pool2d as adaptive_max_pool2d
from convprop.nn.functional_pooling import avg_pool1d as avg_pool1d
from convprop.nn.functional_pooling import avg_pool2d as avg_pool2d
from convprop.nn.functional_pooling import avg_pool3d as avg_pool3d
from convprop.nn.functional_pooling import lp_pool1d as lp_pool1d
from convprop.nn.functional_pooling import lp_pool2d as lp_pool2d
from convprop.nn.functional_pooling import max_pool1d as max_pool1d
from convprop.nn.functional_pooling import max_pool2d as max_pool2d
from convprop.nn.functional_pooling import max_pool3d as max_pool3d
from convprop.nn.functional_pooling import max_unpool2d as max_unpool2d
from convprop.nn.functional_spatial import dropout2d as dropout2d
from convprop.nn.functional_spatial import interpolate as interpolate
from convprop.nn.functional_spatial import pad as pad

_default_rng = numpy.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that ``dropout`` draws from when it is given none."""
    global _default_rng
    _default_rng = numpy.random.default_rng(seed)


def _array(value: Any) -> Array:
    return value.data if isinstance(value, Tensor) else value


def _one(backward: Any) -> Any:
    """Adapt a single-input backward ``(dy, cache) -> dx`` to the graph's form."""
    return lambda dy, cache, needs: (backward(dy, cache),)


def _no_inplace(op: str, inplace: bool) -> None:
    if inplace:
        raise ParameterError(
            f"{op}: in-place ops would overwrite what the graph keeps for backward; expected "
            "inplace=False, got True"
        )


# -- linear ----------------------------------------------------------------------------
def linear(input: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = x·Wᵀ + b (L1); backward (L2)–(L4)."""
    y, cache = linear_forward(_array(input), _array(weight), _array(bias))

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return linear_backward(dy, cache, need_dx=needs[0])

    return record("linear", "L2, L3, L4", y, cache, (input, weight, bias), backward)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Axes start_dim … end_dim merged (RS1, RS2), as ``torch.flatten``."""
    x = input if isinstance(input, Tensor) else Tensor(input)
    return _flatten(x, start_dim, end_dim)


# -- activations -----------------------------------------------------------------------
def relu(input: Any, inplace: bool = False) -> Tensor:
    """max(x, 0) (A2); backward dy ⊙ [x > 0] (A1, A3)."""
    _no_inplace("relu", inplace)
    y, cache = activation.relu_forward(_array(input))
    return record("relu", "A1, A3", y, cache, (input,), _one(activation.relu_backward))


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else α·x (A4); backward (A1, A5)."""
    _no_inplace("leaky_relu", inplace)
    y, cache = activation.leaky_relu_forward(_array(input), negative_slope=negative_slope)
    return record("leaky_relu", "A1, A5", y, cache, (input,), _one(activation.leaky_relu_backward))


def sigmoid(input: Any) -> Tensor:
    """1 / (1 + e^(−x)) (A6); backward dy ⊙ y(1 − y) (A1, A7)."""
    y, cache = activation.sigmoid_forward(_array(input))
    return record("sigmoid", "A1, A7", y, cache, (input,), _one(activation.sigmoid_backward))


def tanh(input: Any) -> Tensor:
    """tanh(x) (A8); backward dy ⊙ (1 − y²) (A1, A9)."""
    y, cache = activation.tanh_forward(_array(input))
    return record("tanh", "A1, A9", y, cache, (input,), _one(activation.tanh_backward))


# -- regularisation and normalisation --------------------------------------------------
def dropout(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rng: numpy.random.Generator | None = None,
) -> Tensor:
    """Inverted dropout (DO1–DO4); masks from ``rng`` (default: the seeded module generator)."""
    _no_inplace("dropout", inplace)
    generator = _default_rng if rng is None else rng
    y, cache = dropout_forward(_array(input), p=p, training=training, rng=generator)
    return record("dropout", "DO5, DO6", y, cache, (input,), _one(dropout_backward))


def batch_norm_with_statistics(
    input: Any,
    running_mean: Array,
    running_var: Array,
    weight: Any,
    bias: Any,
    *,
    training: bool,
    momentum: float,
    eps: float,
    relu: bool = False,
) -> tuple[Tensor, Array, Array]:
    """Batch normalisation (BN1)–(BN7); returns y and the updated running statistics.

    Inputs (N, C), (N, C, L) and (N, C, H, W) are normalised per channel over every other
    axis; backward (BN8)–(BN12). With ``relu``, z = max(y, 0) in its place as one op, its
    backward through both (functional/batch_norm_relu.py: BR1–BR4).
    """
    x = _array(input)
    require_array("batch_norm", "x", x)
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        require_array("batch_norm", name, stat)
    if x.ndim not in (2, 3, 4):
        raise ShapeError(
            f"batch_norm: input must be (N, C), (N, C, L) or (N, C, H, W); expected 2 to 4 "
            f"dimensions, got {x.ndim} (input.shape={tuple(x.shape)})"
        )
    x4 = x.reshape((*x.shape[:2], -1, 1)) if x.ndim != 4 else x
    xp = get_xp(x)
    channels = x.shape[1]
    gamma = _array(weight) if weight is not None else xp.ones(channels, dtype=x.dtype)
    beta = _array(bias) if bias is not None else xp.zeros(channels, dtype=x.dtype)
    forward, pair_backward = (
        (batch_norm_relu.batch_norm2d_relu_forward, batch_norm_relu.batch_norm2d_relu_backward)
        if relu
        else (normalization.batch_norm2d_forward, normalization.batch_norm2d_backward)
    )
    y4, cache = forward(
        x4,
        gamma,
        beta,
        running_mean.astype(x.dtype, copy=False),
        running_var.astype(x.dtype, copy=False),
        training=training, momentum=momentum, eps=eps,
    )  # fmt: skip
    x_shape, y4_shape = tuple(x.shape), tuple(y4.shape)  # shapes only: y is not kept

    def backward(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        dx, dgamma, dbeta = pair_backward(dy.reshape(y4_shape), cache)
        return dx.reshape(x_shape), dgamma, dbeta

    name, labels = ("batch_norm_relu", "BR3, BR4") if relu else ("batch_norm", "BN8–BN12")
    y_array = y4 if x4 is x else y4.reshape(x_shape)
    y = record(name, labels, y_array, cache, (input, weight, bias), backward)
    return y, cache.new_running_mean, cache.new_running_var


def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation as ``torch.nn.functional.batch_norm``.

    In training the running statistics (arrays or Tensors, or None) are updated in place,
    as PyTorch does; without them only the batch statistics are used.
    """
    x = _array(input)
    require_array("batch_norm", "x", x)
    channels = int(x.shape[1]) if x.ndim >= 2 else 0
    mean, var = _array(running_mean), _array(running_var)
    if mean is None or var is None:
        if not training:
            raise ParameterError(
                "batch_norm: inference normalises with the running statistics; expected "
                "running_mean and running_var arrays, got None"
            )
        xp = get_xp(x)
        mean, var = xp.zeros(channels, dtype=x.dtype), xp.ones(channels, dtype=x.dtype)
        keep = False
    else:
        keep = True
    y, new_mean, new_var = batch_norm_with_statistics(
        input, mean, var, weight, bias, training=training, momentum=momentum, eps=eps
    )
    if training and keep:
        mean[...] = new_mean
        var[...] = new_var
    return y
