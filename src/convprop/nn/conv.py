"""Conv2d and ConvTranspose2d layers (PyTorch's names, arguments and initialisation)."""

from __future__ import annotations

from typing import Any

from convprop._shapes import explicit_padding, pair
from convprop.autograd.tensor import Tensor
from convprop.errors import ParameterError
from convprop.functional.conv2d import ALGORITHMS
from convprop.nn import functional as F
from convprop.nn.conv_nd import check_padding_mode, pad_for_mode
from convprop.nn.init import RNGLike, check_dtype, weight_and_bias
from convprop.nn.module import Module


def _check_common(
    op: str, in_channels: int, out_channels: int, groups: int, algorithm: str
) -> None:
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("groups", groups),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParameterError(
                f"{op}: {name} must be a positive int; expected >= 1, got {value!r}"
            )
    if in_channels % groups or out_channels % groups:
        raise ParameterError(
            f"{op}: groups must divide in_channels and out_channels; expected both divisible by "
            f"{groups}, got in_channels={in_channels}, out_channels={out_channels}"
        )
    if algorithm != "auto" and algorithm not in ALGORITHMS:
        raise ParameterError(
            f"{op}: unknown algorithm; expected one of {['auto', *ALGORITHMS]}, got {algorithm!r}"
        )


def _check_padding(op: str, padding: Any, strings: tuple[str, ...]) -> None:
    """Check ``padding`` when the layer is built: one of ``strings`` or a numeric padding."""
    if isinstance(padding, str):
        if padding not in strings:
            raise ParameterError(
                f"{op}: unknown padding string; expected one of {list(strings)}, got {padding!r}"
            )
        return
    explicit_padding(op, padding)  # raises ParameterError on a negative or malformed padding


def _padding_config(padding: Any) -> Any:
    """Padding as JSON-friendly data (tuples become lists)."""
    if isinstance(padding, (tuple, list)):
        return [_padding_config(p) for p in padding]
    return padding


class Conv2d(Module):
    """2-D convolution layer: y = conv2d(x, weight, bias), equations (F1), (B1)–(B3).

    Parameters
    ----------
    in_channels, out_channels : int
        C and K.
    kernel_size, stride, dilation : int or (int, int)
    padding : int, pair, ((top, bottom), (left, right)), "same" or "valid"
    groups : int
    bias : bool
    padding_mode : "zeros", "reflect", "replicate" or "circular"
        How the border is padded (a non-zero mode takes numeric padding).
    algorithm : str
        "auto" (default), "direct", "im2col", "fft", "winograd", "winograd4" or "depthwise".
    rng : numpy.random.Generator, int or None
        Source of the Kaiming-uniform initial weights (PyTorch's default rule).
    dtype : "float32" or "float64"

    Attributes
    ----------
    weight : Parameter (K, C/groups, R, S)
    bias : Parameter (K,) or None
    """

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
        algorithm: str = "auto",
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        op = type(self).__name__
        _check_common(op, in_channels, out_channels, groups, algorithm)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(op, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(op, "stride", stride, minimum=1)
        self.dilation = pair(op, "dilation", dilation, minimum=1)
        _check_padding(op, padding, ("same", "valid"))
        self.padding = padding
        self.padding_mode = check_padding_mode(op, padding_mode, padding)
        self.algorithm = algorithm
        dtype = check_dtype(op, dtype)
        R, S = self.kernel_size
        C_g = in_channels // groups
        self.weight, bias_parameter = weight_and_bias(
            (out_channels, C_g, R, S), out_channels if bias else None, C_g * R * S, rng, dtype
        )
        self.register_parameter("bias", bias_parameter)  # None is registered too, as PyTorch

    def forward(self, x: Any, *, relu: bool = False) -> Tensor:
        """The layer's forward; with ``relu``, followed by a ReLU in the same op (CB1–CB4:
        max(y, 0) written over the convolution's own output, one node).
        :class:`convprop.nn.Sequential` asks for it where a ReLU follows."""
        padding = self.padding
        if self.padding_mode != "zeros":  # pad by the mode first, then convolve unpadded
            x, padding = pad_for_mode(x, self.padding, self.padding_mode, 2, "Conv2d"), 0
        return F.conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            algorithm=self.algorithm,
            relu=relu,
        )

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": _padding_config(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "algorithm": self.algorithm,
        } | ({} if self.padding_mode == "zeros" else {"padding_mode": self.padding_mode})


class ConvTranspose2d(Module):
    """Transposed convolution layer, conv2d's adjoint (equations CT1–CT4).

    Parameters as PyTorch's ``ConvTranspose2d(in_channels, out_channels, kernel_size,
    stride=1, padding=0, output_padding=0, groups=1, bias=True, dilation=1)``.

    Attributes
    ----------
    weight : Parameter (C_in, C_out/groups, R, S)
    bias : Parameter (C_out,) or None
    """

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
        *,
        algorithm: str = "auto",
        rng: RNGLike = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        op = type(self).__name__
        _check_common(op, in_channels, out_channels, groups, algorithm)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(op, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(op, "stride", stride, minimum=1)
        self.dilation = pair(op, "dilation", dilation, minimum=1)
        self.output_padding = pair(op, "output_padding", output_padding, minimum=0)
        _check_padding(op, padding, ("valid",))
        self.padding = padding
        self.algorithm = algorithm
        dtype = check_dtype(op, dtype)
        R, S = self.kernel_size
        C_out_g = out_channels // groups
        # PyTorch computes fan_in from weight.shape[1] * R * S
        self.weight, bias_parameter = weight_and_bias(
            (in_channels, C_out_g, R, S),
            out_channels if bias else None,
            C_out_g * R * S,
            rng,
            dtype,
        )
        self.register_parameter("bias", bias_parameter)  # None is registered too, as PyTorch

    def forward(self, x: Any) -> Tensor:
        return F.conv_transpose2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
            algorithm=self.algorithm,
        )

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": _padding_config(self.padding),
            "output_padding": list(self.output_padding),
            "groups": self.groups,
            "bias": self.bias is not None,
            "dilation": list(self.dilation),
            "algorithm": self.algorithm,
        }
