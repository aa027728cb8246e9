"""Pooling layers under PyTorch's names and arguments: max and average pooling in 1-3
dimensions, LP pooling, adaptive average and max pooling, max unpooling.

Each layer checks its hyperparameters when built and calls convprop.nn.functional; the
input may be batched or one sample without its batch axis, as in PyTorch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from convprop._shapes import _is_int as is_int
from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.functional.lp_pool import check_norm
from convprop.functional.pool_nd import ntuple
from convprop.nn import functional as F
from convprop.nn.module import Module


def _each(value: Any, dims: int) -> Any:
    if isinstance(value, (tuple, list)) and len(value) == 1 and dims > 1:
        return tuple(value) * dims
    return value


def _window(
    op: str, dims: int, kernel_size: Any, stride: Any, padding: Any, *, half: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Kernel, stride (None: the kernel) and padding; pooling's padding is at most half the
    window (``half``), checked here so that a bad layer fails when it is built."""
    kernel = ntuple(op, "kernel_size", _each(kernel_size, dims), dims, minimum=1)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and not stride)
    strides = kernel if no_stride else ntuple(op, "stride", _each(stride, dims), dims, minimum=1)
    pads = ntuple(op, "padding", _each(padding, dims), dims, minimum=0)
    if half and any(2 * p > k for p, k in zip(pads, kernel, strict=True)):
        raise ParameterError(
            f"{op}: padding is more than half the window; expected padding <= "
            f"{tuple(k // 2 for k in kernel)}, got {pads} (kernel_size={kernel})"
        )
    return kernel, strides, pads


def _output_size(op: str, output_size: Any, dims: int) -> tuple[int | None, ...]:
    """PyTorch's adaptive output size: an int, or one entry per axis, None keeping the axis."""
    values = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * dims
    values = _each(values, dims)
    if len(values) != dims or not all(v is None or is_int(v) for v in values):
        raise ParameterError(
            f"{op}: output_size must be an int or {dims} of them (None keeps an axis); "
            f"expected e.g. 2 or {(2,) * dims}, got {output_size!r}"
        )
    if any(v is not None and int(v) < 1 for v in values):
        raise ParameterError(
            f"{op}: output_size must be >= 1; expected values >= 1, got {output_size!r}"
        )
    return tuple(None if v is None else int(v) for v in values)


class _MaxPoolNd(Module):
    """Max pooling; the gradient goes to each window's arg-max (first maximum on ties)."""

    dims: ClassVar[int]
    op: ClassVar[str]

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = _window(
            self.op, self.dims, kernel_size, stride, padding
        )
        self.dilation = ntuple(
            self.op, "dilation", _each(dilation, self.dims), self.dims, minimum=1
        )
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Any) -> Any:
        function = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[self.dims]
        return function(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices,
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
        }
        # Defaults are left out, so that files and reprs from before these arguments stay.
        if any(d != 1 for d in self.dilation):
            config["dilation"] = list(self.dilation)
        if self.return_indices:
            config["return_indices"] = True
        return config


class MaxPool1d(_MaxPoolNd):
    """Max pooling of (N, C, L) or (C, L); ``return_indices`` adds PyTorch's indices."""

    dims, op = 1, "MaxPool1d"


class MaxPool2d(_MaxPoolNd):
    """Max pooling of (N, C, H, W) or (C, H, W); ``return_indices`` adds PyTorch's indices."""

    dims, op = 2, "MaxPool2d"


class MaxPool3d(_MaxPoolNd):
    """Max pooling of (N, C, D, H, W) or (C, D, H, W); ``return_indices`` adds the indices."""

    dims, op = 3, "MaxPool3d"


class _AvgPoolNd(Module):
    """Average pooling; the gradient is spread evenly over each window."""

    dims: ClassVar[int]
    op: ClassVar[str]

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = _window(
            self.op, self.dims, kernel_size, stride, padding
        )
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None and (
            not isinstance(divisor_override, int) or divisor_override == 0
        ):
            raise ParameterError(
                f"{self.op}: divisor_override must be a nonzero int or None; expected e.g. 4, "
                f"got {divisor_override!r}"
            )
        self.divisor_override = divisor_override

    def forward(self, x: Any) -> Tensor:
        hyper = (self.kernel_size, self.stride, self.padding, self.ceil_mode)
        if self.dims == 1:
            return F.avg_pool1d(x, *hyper, self.count_include_pad)
        function = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        return function(x, *hyper, self.count_include_pad, self.divisor_override)

    def config(self) -> dict[str, Any]:
        config = {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }
        if self.dims > 1:
            config["divisor_override"] = self.divisor_override
        return config


class AvgPool1d(_AvgPoolNd):
    """Average pooling of (N, C, L) or (C, L) (PyTorch's AvgPool1d has no divisor_override)."""

    dims, op = 1, "AvgPool1d"

    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Average pooling of (N, C, H, W) or (C, H, W); ``divisor_override`` fixes the divisor."""

    dims, op = 2, "AvgPool2d"


class AvgPool3d(_AvgPoolNd):
    """Average pooling of (N, C, D, H, W) or (C, D, H, W); ``divisor_override`` as AvgPool2d."""

    dims, op = 3, "AvgPool3d"


class _LPPoolNd(Module):
    """Power-average pooling (Σ x^p)^(1/p) over each window, without padding."""

    dims: ClassVar[int]
    op: ClassVar[str]

    def __init__(
        self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False
    ) -> None:
        super().__init__()
        self.norm_type = check_norm(self.op, norm_type)
        self.kernel_size, self.stride, _ = _window(self.op, self.dims, kernel_size, stride, 0)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Any) -> Tensor:
        function = F.lp_pool1d if self.dims == 1 else F.lp_pool2d
        return function(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def config(self) -> dict[str, Any]:
        return {
            "norm_type": self.norm_type,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "ceil_mode": self.ceil_mode,
        }


class LPPool1d(_LPPoolNd):
    """Power-average pooling of (N, C, L) or (C, L); norm_type 2 is L2-norm pooling."""

    dims, op = 1, "LPPool1d"


class LPPool2d(_LPPoolNd):
    """Power-average pooling of (N, C, H, W) or (C, H, W); norm_type 2 is L2-norm pooling."""

    dims, op = 2, "LPPool2d"


class AdaptiveAvgPool1d(Module):
    """Average pooling of (N, C, L) or (C, L) to a fixed length; 1 is global average pooling."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _output_size("AdaptiveAvgPool1d", output_size, 1)

    def forward(self, x: Any) -> Tensor:
        return F.adaptive_avg_pool1d(x, self.output_size)

    def config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size)}


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size; ``output_size=1`` is global average pooling."""

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _output_size("AdaptiveAvgPool2d", output_size, 2)

    def forward(self, x: Any) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size)}


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size; ``return_indices`` adds PyTorch's indices."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = _output_size("AdaptiveMaxPool2d", output_size, 2)
        self.return_indices = bool(return_indices)

    def forward(self, x: Any) -> Any:
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def config(self) -> dict[str, Any]:
        return {"output_size": list(self.output_size), "return_indices": self.return_indices}


class MaxUnpool2d(Module):
    """The inverse of MaxPool2d(return_indices=True): values back at their indices, zeros
    elsewhere; ``forward(x, indices, output_size=None)``."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = _window(
            "MaxUnpool2d", 2, kernel_size, stride, padding, half=False
        )

    def forward(self, x: Any, indices: Any, output_size: Any = None) -> Tensor:
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def config(self) -> dict[str, Any]:
        return {
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
        }
