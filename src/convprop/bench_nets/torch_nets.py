"""The benchmark's networks in PyTorch, with convprop's initial weights copied in.

:func:`torch_twin` rebuilds a convprop network layer by layer with the PyTorch module of the
same name and arguments (a layer's ``config()``), then loads the convprop state_dict
(weights, BatchNorm statistics), so that both libraries compute the same function from the
same starting point. ResNet-20's forward is written again here, line for line.
"""

from __future__ import annotations

from typing import Any

import numpy
import torch

from convprop.bench_nets.nets import BasicBlock, ResNet20
from convprop.nn import Module, Residual, Sequential


class TorchResidual(torch.nn.Module):
    """y = x + body(x), convprop.nn.Residual's twin."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # type: ignore[no-any-return]


class TorchBasicBlock(torch.nn.Module):
    """convprop.bench_nets.nets.BasicBlock's twin (same attribute names)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels)
        self.relu = torch.nn.ReLU()
        self.shortcut: torch.nn.Module = torch.nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                torch.nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))  # type: ignore[no-any-return]


class TorchResNet20(torch.nn.Module):
    """convprop.bench_nets.nets.ResNet20's twin (same attribute names)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = torch.nn.BatchNorm2d(16)
        self.relu = torch.nn.ReLU()
        stages, channels = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [TorchBasicBlock(channels, width, stride)]
            blocks += [TorchBasicBlock(width, width, 1) for _ in range(2)]
            stages.append(torch.nn.Sequential(*blocks))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.flatten = torch.nn.Flatten()
        self.fc = torch.nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        return self.fc(self.flatten(self.pool(y)))  # type: ignore[no-any-return]


CONVPROP_ONLY = ("algorithm",)
"""Layer arguments PyTorch's modules do not take."""


def _twin_layer(module: Module) -> torch.nn.Module:
    """The PyTorch module of a convprop module, built from the same arguments."""
    if isinstance(module, Sequential):
        return torch.nn.Sequential(*(_twin_layer(child) for child in module))
    if isinstance(module, Residual):
        return TorchResidual(_twin_layer(module.body))
    if isinstance(module, ResNet20):
        return TorchResNet20(module.fc.out_features, module.conv.in_channels)
    if isinstance(module, BasicBlock):  # pragma: no cover - built by ResNet20 only
        raise TypeError("torch_twin: a BasicBlock is built by its ResNet20")
    layer = getattr(torch.nn, type(module).__name__, None)
    if layer is None or next(module.children(), None) is not None:
        raise TypeError(
            f"torch_twin: no PyTorch twin for {type(module).__name__}; expected Sequential, "
            f"Residual, ResNet20 or a layer named as in torch.nn, got {module!r}"
        )
    arguments = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in module.config().items()
        if key not in CONVPROP_ONLY
    }
    return layer(**arguments)  # type: ignore[no-any-return]


def torch_twin(model: Module) -> torch.nn.Module:
    """The same network in PyTorch, holding ``model``'s weights and buffers (same dtype).

    Raises
    ------
    TypeError
        For a layer that has no PyTorch module of the same name.
    """
    twin = _twin_layer(model)
    state = {key: torch.from_numpy(numpy.array(value)) for key, value in model.state_dict().items()}
    twin.to(torch.from_numpy(numpy.array(model.parameters()[0].data)).dtype)
    twin.load_state_dict(state, strict=True)
    return twin


def torch_batch(x: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's NumPy batch as PyTorch tensors (shared memory, labels int64)."""
    return torch.from_numpy(x), torch.from_numpy(numpy.asarray(labels, dtype=numpy.int64))
