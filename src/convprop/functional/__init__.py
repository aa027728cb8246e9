"""Pure op pairs: ``NAME_forward -> (y, cache)``, ``NAME_backward(dy, cache)``, ``NAME``."""

from convprop.functional.conv2d import (
    ALGORITHMS,
    Conv2dCache,
    conv2d,
    conv2d_backward,
    conv2d_forward,
)
from convprop.functional.conv_transpose2d import (
    ConvTranspose2dCache,
    conv_transpose2d,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)

__all__ = [
    "ALGORITHMS",
    "Conv2dCache",
    "ConvTranspose2dCache",
    "conv2d",
    "conv2d_backward",
    "conv2d_forward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose2d_forward",
]
