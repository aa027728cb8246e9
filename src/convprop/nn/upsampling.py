"""Upsample: resampling by nearest neighbour or (bi/tri)linear interpolation (UP1)–(UP7)."""

from __future__ import annotations

from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.functional.interpolation import MODE_DIMS
from convprop.nn import functional as F
from convprop.nn.module import Module


def _json(value: Any) -> Any:
    """Tuples as lists, so that the config is JSON data."""
    return list(value) if isinstance(value, tuple) else value


class Upsample(Module):
    """``F.interpolate`` as a layer, with PyTorch's arguments.

    Give exactly one of ``size`` (the output spatial size) and ``scale_factor``. Modes
    "nearest" (default), "nearest-exact", "linear" (3-D input), "bilinear" (4-D) and
    "trilinear" (5-D); ``align_corners`` for the linear modes only.

    Examples
    --------
    >>> import numpy as np
    >>> Upsample(scale_factor=2)(np.array([[[1.0, 2.0]]])).data
    array([[[1., 1., 2., 2.]]])
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ParameterError(
                "Upsample: give exactly one of size and scale_factor; expected one of them, "
                f"got size={size!r}, scale_factor={scale_factor!r}"
            )
        if mode not in MODE_DIMS:
            raise ParameterError(
                f"Upsample: unknown mode; expected one of {list(MODE_DIMS)}, got {mode!r}"
            )
        if mode.startswith("nearest") and align_corners is not None:
            raise ParameterError(
                f"Upsample: align_corners applies to the linear modes only; expected None for "
                f"mode {mode!r}, got {align_corners!r}"
            )
        self.size = tuple(size) if isinstance(size, (tuple, list)) else size
        self.scale_factor = (
            tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else scale_factor
        )
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Any) -> Tensor:
        return F.interpolate(
            x, self.size, self.scale_factor, self.mode, self.align_corners,
            self.recompute_scale_factor,
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {
            "size": _json(self.size),
            "scale_factor": _json(self.scale_factor),
            "mode": self.mode,
            "align_corners": self.align_corners,
            "recompute_scale_factor": self.recompute_scale_factor,
        }
