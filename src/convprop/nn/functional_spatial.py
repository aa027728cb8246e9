"""Tensor ops over the spatial axes: pad, interpolate, dropout2d (re-exported by nn.functional).

Each records its pair's hand-written backward (functional/padding.py,
functional/interpolation.py, functional/dropout_channels.py) in the graph.
"""

from __future__ import annotations

from typing import Any

import numpy

from convprop.autograd.tensor import Tensor, record
from convprop.backend import Array
from convprop.errors import ParameterError
from convprop.functional.dropout_channels import dropout2d_backward, dropout2d_forward
from convprop.functional.interpolation import interpolate_backward, interpolate_forward
from convprop.functional.padding import pad_backward, pad_forward


def _array(value: Any) -> Array:
    return value.data if isinstance(value, Tensor) else value


def _one(backward: Any) -> Any:
    return lambda dy, cache, needs: (backward(dy, cache),)


def pad(input: Any, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """``torch.nn.functional.pad``: (PD1)–(PD5); backward (PD6) or (PD7).

    ``pad`` lists (before, after) pairs from the last axis backwards; negative values crop.
    """
    filled = 0.0 if value is None else value
    if value is not None and mode != "constant":
        raise ParameterError(
            f"pad: mode {mode!r} takes no fill value; expected value=None, got {value!r}"
        )
    y, cache = pad_forward(_array(input), pad, mode=mode, value=filled)
    return record("pad", "PD6, PD7", y, cache, (input,), _one(pad_backward))


def interpolate(
    input: Any,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """``torch.nn.functional.interpolate`` for the nearest and (bi/tri)linear modes:
    (UP1)–(UP6); backward (UP7)."""
    if antialias:
        raise ParameterError(
            "interpolate: antialiasing (a low-pass filter before downsampling) is not "
            "implemented; expected antialias=False, got True"
        )
    y, cache = interpolate_forward(
        _array(input), size=size, scale_factor=scale_factor, mode=mode,
        align_corners=align_corners, recompute_scale_factor=recompute_scale_factor,
    )  # fmt: skip
    return record("interpolate", "UP7", y, cache, (input,), _one(interpolate_backward))


def dropout2d(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rng: numpy.random.Generator | None = None,
) -> Tensor:
    """Whole channels dropped (DO7)–(DO9); backward (DO10). Masks from ``rng`` (default:
    the generator that ``convprop.nn.functional.manual_seed`` seeds)."""
    from convprop.nn import functional

    if inplace:
        raise ParameterError(
            "dropout2d: in-place ops would overwrite what the graph keeps for backward; "
            "expected inplace=False, got True"
        )
    generator = functional._default_rng if rng is None else rng
    y, cache = dropout2d_forward(_array(input), p=p, training=training, rng=generator)
    return record("dropout2d", "DO10", y, cache, (input,), _one(dropout2d_backward))
