"""Conv1d, Conv3d, ConvTranspose1d, ConvTranspose3d (PyTorch's names, arguments and init),
and the non-zero padding modes shared with Conv2d.

A padding mode other than "zeros" pads the input first with ``F.pad`` (reflect, replicate
or circular, each with its own backward) and then convolves without padding, as PyTorch does.
"""

from __future__ import annotations

import math
from typing import Any

from convprop._shapes import _is_int
from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.nn import functional as F
from convprop.nn.init import RNGLike, check_dtype, weight_and_bias
from convprop.nn.module import Module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(op: str, padding_mode: Any, padding: Any) -> str:
    """The mode, checked; a non-zero mode needs numeric padding."""
    if padding_mode not in PADDING_MODES:
        raise ParameterError(
            f"{op}: unknown padding_mode; expected one of {list(PADDING_MODES)}, got "
            f"{padding_mode!r}"
        )
    numeric = (
        padding == "valid"
        or _is_int(padding)
        or (isinstance(padding, (tuple, list)) and all(_is_int(p) for p in padding))
    )
    if padding_mode != "zeros" and not numeric:
        raise ParameterError(
            f"{op}: padding_mode={padding_mode!r} needs one symmetric padding per axis; expected "
            f"an int or a tuple of ints, got {padding!r}"
        )
    return str(padding_mode)


def pad_for_mode(x: Any, padding: Any, mode: str, dims: int, op: str = "conv") -> Any:
    """x padded by ``F.pad`` in ``mode`` with a symmetric numeric ``padding`` per axis."""
    if padding == "valid":
        return x
    per_axis = (padding,) * dims if _is_int(padding) else tuple(padding)
    if len(per_axis) != dims or not all(_is_int(p) for p in per_axis):
        raise ParameterError(
            f"{op}: padding_mode {mode!r} needs one padding per axis; expected {dims} ints, "
            f"got {padding!r}"
        )
    pads: list[int] = []
    for p in reversed(per_axis):  # F.pad lists the last axis first, as PyTorch's
        pads += [int(p), int(p)]
    return F.pad(x, tuple(pads), mode=mode)


def _sizes(op: str, name: str, value: Any, dims: int, minimum: int) -> tuple[int, ...]:
    if _is_int(value):
        values = (int(value),) * dims
    elif isinstance(value, (tuple, list)) and len(value) == dims and all(map(_is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        raise ParameterError(
            f"{op}: {name} must be an int or {dims} ints; expected e.g. {(1,) * dims}, got "
            f"{value!r}"
        )
    if min(values) < minimum:
        raise ParameterError(
            f"{op}: {name} must be >= {minimum}; expected >= {minimum}, got {value!r}"
        )
    return values


class _ConvNd(Module):
    """The shared constructor of the 1-D and 3-D (transposed) convolution layers."""

    dims = 0
    transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        op, dims = type(self).__name__, self.dims
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("groups", groups),
        ):
            if not _is_int(value) or int(value) < 1:
                raise ParameterError(
                    f"{op}: {name} must be a positive int; expected >= 1, got {value!r}"
                )
        if in_channels % groups or out_channels % groups:
            raise ParameterError(
                f"{op}: groups must divide in_channels and out_channels; expected both "
                f"divisible by {groups}, got in_channels={in_channels}, out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _sizes(op, "kernel_size", kernel_size, dims, 1)
        self.stride = _sizes(op, "stride", stride, dims, 1)
        self.dilation = _sizes(op, "dilation", dilation, dims, 1)
        self.output_padding = _sizes(op, "output_padding", output_padding, dims, 0)
        if isinstance(padding, str):
            if padding not in (("valid",) if self.transposed else ("same", "valid")):
                raise ParameterError(f"{op}: unknown padding string; got {padding!r}")
            self.padding: Any = padding
        else:
            self.padding = _sizes(op, "padding", padding, dims, 0)
        if self.transposed and padding_mode != "zeros":
            raise ParameterError(
                f"{op}: only padding_mode='zeros' is supported, as in PyTorch; got {padding_mode!r}"
            )
        self.padding_mode = check_padding_mode(op, padding_mode, padding)
        dtype = check_dtype(op, dtype)
        fan_channels = (out_channels if self.transposed else in_channels) // groups
        first = in_channels if self.transposed else out_channels
        self.weight, bias_parameter = weight_and_bias(
            (first, fan_channels, *self.kernel_size),
            out_channels if bias else None,
            fan_channels * math.prod(self.kernel_size),
            rng,
            dtype,
        )
        self.register_parameter("bias", bias_parameter)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
        }
        if self.transposed:
            config["output_padding"] = list(self.output_padding)
            del config["padding_mode"]
        return config

    def _convolve(self, x: Any) -> Tensor:
        conv = {1: F.conv1d, 3: F.conv3d}[self.dims]
        if self.padding_mode != "zeros":
            x = pad_for_mode(x, self.padding, self.padding_mode, self.dims, type(self).__name__)
            padding: Any = 0
        else:
            padding = self.padding
        y: Tensor = conv(
            x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
        )
        return y

    def _transpose(self, x: Any) -> Tensor:
        conv_t = {1: F.conv_transpose1d, 3: F.conv_transpose3d}[self.dims]
        y: Tensor = conv_t(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )
        return y


class _Conv(_ConvNd):
    """A convolution layer's signature, as PyTorch's Conv1d/Conv3d."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, 0, dilation, groups, bias,
            padding_mode, rng=rng, dtype=dtype,
        )  # fmt: skip

    def forward(self, x: Any) -> Tensor:
        return self._convolve(x)


class _ConvTranspose(_ConvNd):
    """A transposed convolution layer's signature, as PyTorch's ConvTranspose1d/3d."""

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        *,
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, output_padding, dilation,
            groups, bias, padding_mode, rng=rng, dtype=dtype,
        )  # fmt: skip

    def forward(self, x: Any) -> Tensor:
        return self._transpose(x)


class Conv1d(_Conv):
    """1-D convolution: x (N, C, L) or (C, L) -> (N, K, L_out); weight (K, C/groups, S).

    Runs conv2d's algorithms with H = 1 (F1), (B1)–(B3).
    """

    dims = 1


class Conv3d(_Conv):
    """3-D convolution: x (N, C, D, H, W) or unbatched; weight (K, C/groups, *kernel).

    N-d im2col, equations (CN1)–(CN6).
    """

    dims = 3


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution; weight (C_in, C_out/groups, S); (CT1)–(CT4) with H = 1."""

    dims = 1


class ConvTranspose3d(_ConvTranspose):
    """3-D transposed convolution; weight (C_in, C_out/groups, *kernel); (CTN1)–(CTN3)."""

    dims = 3
