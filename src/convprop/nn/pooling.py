"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (PyTorch's names and arguments)."""

from __future__ import annotations

from typing import Any

from convprop._shapes import pair
from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.nn import functional as F
from convprop.nn.module import Module


def _check_padding(op: str, kernel_size: tuple[int, int], padding: Any) -> tuple[int, int]:
    """Padding is at most half the window, as pool2d_geometry requires (checked when built)."""
    pad_hw = pair(op, "padding", padding, minimum=0)
    if 2 * pad_hw[0] > kernel_size[0] or 2 * pad_hw[1] > kernel_size[1]:
        raise ParameterError(
            f"{op}: padding is more than half the window; expected padding <= "
            f"({kernel_size[0] // 2}, {kernel_size[1] // 2}), got {pad_hw} "
            f"(kernel_size={kernel_size})"
        )
    return pad_hw


class MaxPool2d(Module):
    """Max pooling; the gradient goes to each window's arg-max (first maximum on ties)."""

    def __init__(
        self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False
    ) -> None:
        super().__init__()
        self.kernel_size = pair("MaxPool2d", "kernel_size", kernel_size, minimum=1)
        self.stride = (
            self.kernel_size if stride is None else pair("MaxPool2d", "stride", stride, minimum=1)
        )
        self.padding = _check_padding("MaxPool2d", self.kernel_size, padding)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)

    def config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
        }


class AvgPool2d(Module):
    """Average pooling; the gradient is spread evenly over each window."""

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = pair("AvgPool2d", "kernel_size", kernel_size, minimum=1)
        self.stride = (
            self.kernel_size if stride is None else pair("AvgPool2d", "stride", stride, minimum=1)
        )
        self.padding = _check_padding("AvgPool2d", self.kernel_size, padding)
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x: Any) -> Tensor:
        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad
        )

    def config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; ``output_size=1`` is global average pooling."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = pair("AdaptiveAvgPool2d", "output_size", output_size, minimum=1)

    def forward(self, x: Any) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size)}
