"""Tensor ops: layer and group normalisation (re-exported by nn.functional).

Each records its pair's hand-written backward (functional/layer_normalization.py,
functional/group_normalization.py) in the graph; the labels name the equations.
"""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array
from convprop.functional.group_normalization import group_norm_backward, group_norm_forward
from convprop.functional.layer_normalization import layer_norm_backward, layer_norm_forward


def _array(value: Any) -> Array:
    return value.data if isinstance(value, Tensor) else value


def _backward(pair_backward: Any) -> Any:
    return lambda dy, cache, needs: pair_backward(dy, cache)


def layer_norm(
    input: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    """Each sample standardised over its last axes (LN1)–(LN4); backward (LN5)–(LN8)."""
    y, cache = layer_norm_forward(
        _array(input), normalized_shape, _array(weight), _array(bias), eps=eps
    )
    backward = _backward(layer_norm_backward)
    return record("layer_norm", "LN5–LN8", y, cache, (input, weight, bias), backward)


def group_norm(
    input: Any,
    num_groups: int,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Tensor:
    """Channels standardised in groups per sample (GN1, GN2); backward (GN3, GN4, LN8)."""
    y, cache = group_norm_forward(_array(input), num_groups, _array(weight), _array(bias), eps=eps)
    backward = _backward(group_norm_backward)
    return record("group_norm", "GN3, GN4, LN8", y, cache, (input, weight, bias), backward)
