"""The networks the whole-network benchmark times: the shipped models and a ResNet-20.

ResNet-20 is He et al.'s CIFAR net (2016, section 4.2) on 3×32×32 inputs: a 3×3 conv of 16
filters, three stages of three basic blocks (16, 32 and 64 channels; the first block of
stages 2 and 3 halves the size with stride 2 and takes a projection shortcut, a 1×1 conv of
stride 2 and a BatchNorm), global average pooling and a linear layer to the classes. It is
written here as a user writes a network: Module subclasses whose ``forward`` is ordinary
Python, residual adds with ``+``. Its PyTorch twin in :mod:`convprop.bench_nets.torch_nets`
has the same attribute names, so the two state_dicts share their keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convprop.autograd.tensor import Tensor
from convprop.models import MODELS
from convprop.nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Identity,
    Linear,
    Module,
    ReLU,
    Sequential,
)
from convprop.nn.init import RNGLike, make_rng


class BasicBlock(Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the block of ResNet-20.

    conv1 is 3×3 with the block's stride, conv2 3×3 with stride 1, both without bias (the
    BatchNorm after each has its own shift). The shortcut is the identity where the shape is
    kept, else a 1×1 conv of the same stride and a BatchNorm (a projection).
    """

    def __init__(
        self, in_channels: int, channels: int, stride: int, rng: RNGLike, dtype: str
    ) -> None:
        super().__init__()
        generator = make_rng(rng)
        self.conv1 = Conv2d(
            in_channels, channels, 3, stride, 1, bias=False, rng=generator, dtype=dtype
        )
        self.bn1 = BatchNorm2d(channels, dtype=dtype)
        self.conv2 = Conv2d(channels, channels, 3, 1, 1, bias=False, rng=generator, dtype=dtype)
        self.bn2 = BatchNorm2d(channels, dtype=dtype)
        self.relu = ReLU()
        self.shortcut: Module = Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = Sequential(
                Conv2d(in_channels, channels, 1, stride, bias=False, rng=generator, dtype=dtype),
                BatchNorm2d(channels, dtype=dtype),
            )

    def forward(self, x: Any) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))  # type: ignore[no-any-return]


class ResNet20(Module):
    """He et al.'s ResNet-20 for 3×32×32 images, with projection shortcuts (0.27 M weights).

    Examples
    --------
    >>> import numpy as np
    >>> net = ResNet20(rng=0)
    >>> net(np.zeros((2, 3, 32, 32), dtype=np.float32)).shape
    (2, 10)
    >>> sum(p.data.size for p in net.parameters())
    272474
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        *,
        rng: RNGLike = 0,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        generator = make_rng(rng)
        self.conv = Conv2d(in_channels, 16, 3, 1, 1, bias=False, rng=generator, dtype=dtype)
        self.bn = BatchNorm2d(16, dtype=dtype)
        self.relu = ReLU()
        stages, channels = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(channels, width, stride, generator, dtype)]
            blocks += [BasicBlock(width, width, 1, generator, dtype) for _ in range(2)]
            stages.append(Sequential(*blocks))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(64, num_classes, rng=generator, dtype=dtype)

    def forward(self, x: Any) -> Tensor:
        y = self.relu(self.bn(self.conv(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        return self.fc(self.flatten(self.pool(y)))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Case:
    """One network of the benchmark: how to build it, its input and its training batch.

    ``dataset``: the data set whose images the benchmark feeds the network where it is
    installed (``convprop.data.load_dataset``'s name), as a user trains it; None, or where it
    is missing, standard normal values. The data matter to PyTorch, whose LeNet training
    step took about a fifth longer on standard normal values than on Fashion-MNIST images
    (convprop's the same; docs/performance.md, "Real images, not random values").
    """

    name: str
    build: Callable[..., Module]
    sample_shape: tuple[int, int, int]
    batch: int
    num_classes: int = 10
    dataset: str | None = None


def _shipped(name: str) -> Callable[..., Module]:
    def build(*, rng: RNGLike = 0, dtype: str = "float32") -> Module:
        return MODELS[name](10, 1, 28, rng=rng, dtype=dtype)

    return build


def _resnet20(*, rng: RNGLike = 0, dtype: str = "float32") -> Module:
    return ResNet20(10, 3, rng=rng, dtype=dtype)


TRAINING_BATCH = {"lenet": 64, "lenet5": 64, "resnet-mini": 32}
"""The training batch of each shipped model (on 1×28×28, Fashion-MNIST's size); a shipped
model not named here trains at 32."""

CASES: dict[str, Case] = {
    **{
        name: Case(
            name, _shipped(name), (1, 28, 28), TRAINING_BATCH.get(name, 32), dataset="fashion-mnist"
        )
        for name in MODELS
    },
    "resnet20": Case("resnet20", _resnet20, (3, 32, 32), 128),
}
"""Every shipped model on Fashion-MNIST's 1×28×28 images, and ResNet-20 on 3×32×32 standard
normal values (no CIFAR-like data set ships) at batch 128."""
