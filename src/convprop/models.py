"""Ready-made networks, built from convprop.nn layers with PyTorch-compatible state_dict keys.

Every builder takes the input's channels and (square) size, so the same network serves the
8×8 digits and 28×28 Fashion-MNIST, and an explicit ``rng`` (Generator or seed) for the
initial weights.
"""

from __future__ import annotations

from collections.abc import Callable

from convprop.errors import ParameterError
from convprop.nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Residual,
    Sequential,
)
from convprop.nn.init import RNGLike, make_rng


def _pooled_side(name: str, image_size: int) -> int:
    """Side of the feature maps after the two 2×2 max-pools of the LeNet layouts."""
    if image_size // 4 < 1:
        raise ParameterError(f"{name}: image_size must be >= 4; expected >= 4, got {image_size}")
    return image_size // 4


def lenet(
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    *,
    rng: RNGLike = 0,
    dtype: str = "float32",
) -> Sequential:
    """The default LeNet-style net: two 5×5 conv + ReLU + 2×2 max-pool stages, then two FC.

    conv(C→32, 5×5, pad 2) → ReLU → maxpool 2 → conv(32→64, 5×5, pad 2) → ReLU → maxpool 2
    → flatten → linear(64·(size/4)² → 128) → ReLU → dropout 0.25 → linear(128 → classes).

    Examples
    --------
    >>> import numpy as np
    >>> net = lenet(image_size=8)
    >>> net(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape
    (2, 10)
    """
    generator = make_rng(rng)
    side = _pooled_side("lenet", image_size)
    return Sequential(
        Conv2d(in_channels, 32, 5, padding=2, rng=generator, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(32, 64, 5, padding=2, rng=generator, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(64 * side * side, 128, rng=generator, dtype=dtype),
        ReLU(),
        Dropout(0.25, rng=generator.spawn(1)[0]),
        Linear(128, num_classes, rng=generator, dtype=dtype),
    )


def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    *,
    rng: RNGLike = 0,
    dtype: str = "float32",
) -> Sequential:
    """LeCun's LeNet-5 layout (6 and 16 filters of 5×5, FC 120 → 84), with ReLU and max-pool."""
    generator = make_rng(rng)
    side = _pooled_side("lenet5", image_size)
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=2, rng=generator, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Conv2d(6, 16, 5, padding=2, rng=generator, dtype=dtype),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(16 * side * side, 120, rng=generator, dtype=dtype),
        ReLU(),
        Linear(120, 84, rng=generator, dtype=dtype),
        ReLU(),
        Linear(84, num_classes, rng=generator, dtype=dtype),
    )


def resnet_mini(
    num_classes: int = 10,
    in_channels: int = 1,
    image_size: int = 28,
    *,
    rng: RNGLike = 0,
    dtype: str = "float32",
) -> Sequential:
    """A small residual net: stem conv, two residual blocks (conv-BN-ReLU-conv-BN), global pool."""
    del image_size  # global average pooling makes the head independent of the input size
    generator = make_rng(rng)

    def block(channels: int) -> Residual:
        return Residual(
            Sequential(
                Conv2d(channels, channels, 3, padding=1, bias=False, rng=generator, dtype=dtype),
                BatchNorm2d(channels, dtype=dtype),
                ReLU(),
                Conv2d(channels, channels, 3, padding=1, bias=False, rng=generator, dtype=dtype),
                BatchNorm2d(channels, dtype=dtype),
            )
        )

    return Sequential(
        Conv2d(in_channels, 32, 3, padding=1, rng=generator, dtype=dtype),
        ReLU(),
        block(32),
        ReLU(),
        MaxPool2d(2),
        block(32),
        ReLU(),
        AdaptiveAvgPool2d(1),
        Flatten(),
        Linear(32, num_classes, rng=generator, dtype=dtype),
    )


MODELS: dict[str, Callable[..., Sequential]] = {
    "lenet": lenet,
    "lenet5": lenet5,
    "resnet-mini": resnet_mini,
}
"""Model builders by the name the command line uses."""


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    rng: RNGLike = 0,
    dtype: str = "float32",
) -> Sequential:
    """Build a model by name; unknown names get an error listing the choices."""
    if name not in MODELS:
        raise ParameterError(
            f"build_model: unknown model; expected one of {sorted(MODELS)}, got {name!r}"
        )
    return MODELS[name](num_classes, in_channels, image_size, rng=rng, dtype=dtype)
