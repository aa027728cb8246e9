"""Tensor ops: GELU, SiLU, ELU, softmax and log-softmax (re-exported by nn.functional).

Each records its pair's hand-written backward (functional/activation_smooth.py,
functional/softmax_dim.py) in the graph; the labels name the equations.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array
from convprop.errors import DTypeError, ParameterError
from convprop.functional import activation_smooth as smooth
from convprop.functional import softmax_dim
from convprop.functional._checks import require_array


def _array(value: Any) -> Array:
    return value.data if isinstance(value, Tensor) else value


def _one(backward: Any) -> Any:
    return lambda dy, cache, needs: (backward(dy, cache),)


def _no_inplace(op: str, inplace: bool) -> None:
    if inplace:
        raise ParameterError(
            f"{op}: in-place ops would overwrite what the graph keeps for backward; expected "
            "inplace=False, got True"
        )


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """x·Φ(x) (GE1, GE2), or its tanh form (GE4, GE5); backward (A1) with (GE3) or (GE6)."""
    y, cache = smooth.gelu_forward(_array(input), approximate=approximate)
    return record("gelu", "A1, GE3, GE6", y, cache, (input,), _one(smooth.gelu_backward))


def silu(input: Any, inplace: bool = False) -> Tensor:
    """x·σ(x) (SI1); backward (A1, SI2)."""
    _no_inplace("silu", inplace)
    y, cache = smooth.silu_forward(_array(input))
    return record("silu", "A1, SI2", y, cache, (input,), _one(smooth.silu_backward))


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, α·(e^x − 1) otherwise (EL1); backward (A1, EL2)."""
    _no_inplace("elu", inplace)
    y, cache = smooth.elu_forward(_array(input), alpha=alpha)
    return record("elu", "A1, EL2", y, cache, (input,), _one(smooth.elu_backward))


def implicit_softmax_dim(op: str, ndim: int) -> int:
    """PyTorch's deprecated choice when no dim is given: 0 for 0-, 1- and 3-D, else 1."""
    warnings.warn(
        f"Implicit dimension choice for {op} has been deprecated. Change the call to include "
        "dim=X as an argument.",
        UserWarning,
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _cast(op: str, x: Array, dtype: Any) -> Array:
    """x in ``dtype`` (PyTorch's ``dtype=`` argument: the input is cast before the op)."""
    if dtype is None:
        return x
    name = str(numpy.dtype(dtype))
    if name not in ("float32", "float64"):
        raise DTypeError(f"{op}: dtype must be float32 or float64; expected one, got {name}")
    return x.astype(name, copy=False)


def _softmax_op(op: str, labels: str, input: Any, dim: Any, dtype: Any, pair: Any) -> Tensor:
    forward, backward = pair
    x = _array(input)
    require_array(op, "x", x)
    axis = implicit_softmax_dim(op, x.ndim) if dim is None else dim
    x_dtype = x.dtype
    y, cache = forward(_cast(op, x, dtype), axis)

    def chain(dy: Array, cache: Any, needs: tuple[bool, ...]) -> Any:
        return (backward(dy, cache).astype(x_dtype, copy=False),)  # the cast's adjoint

    return record(op, labels, y, cache, (input,), chain)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Tensor:
    """softmax along ``dim`` (SM1); backward (SM2). ``dtype`` casts the input first."""
    pair = (softmax_dim.softmax_forward, softmax_dim.softmax_backward)
    return _softmax_op("softmax", "SM2", input, dim, dtype, pair)


def log_softmax(
    input: Any, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """log softmax along ``dim`` (SM3); backward (SM4). ``dtype`` casts the input first."""
    pair = (softmax_dim.log_softmax_forward, softmax_dim.log_softmax_backward)
    return _softmax_op("log_softmax", "SM4", input, dim, dtype, pair)
