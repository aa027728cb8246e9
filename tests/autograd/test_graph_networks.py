"""Networks as a PyTorch user writes them, run by the recorded graph (GR1)-(GR3).

Five networks are written twice, once from convprop.nn / convprop.nn.functional and once
from torch.nn with the same classes, attribute names and call order, so that the two
``state_dict``s have the same keys (checked) and convprop's weights load into PyTorch:

1. a ResNet whose blocks have projection shortcuts (strided 1×1 conv + BN) or identities;
2. an Inception block: four branches joined by ``cat`` along the channels;
3. a small U-Net: two max-pool levels down, transposed convs up, skips by ``cat``;
4. a net that calls one Conv2d twice and one Linear twice (shared weights, GR2);
5. a net with a user's ``convprop.autograd.Function`` (Swish with a learnable β).

For each, in float64 and training mode (BatchNorm on batch statistics):

(a) the loss, every parameter's gradient and the input's gradient equal PyTorch's to
    1e-10 relative, and so do the BatchNorm running statistics after the forward;
(b) finite differences agree with the graph: ``convprop.gradcheck`` (G1) of the loss on a
    tiny instance (input and every parameter), and the directional derivative (G2) of the
    loss of the full-size instance along random directions of the input and each parameter;
(c) ten SGD steps with momentum 0.9 follow PyTorch's trajectory: the losses and the final
    weights and buffers agree to 1e-9 relative.

Finally, on the shipped ``convprop.models.lenet`` and ``resnet_mini``, the graph's gradients
equal, bit for bit, the explicit chain of ``convprop.functional`` pairs written out here by
hand: forward layer by layer keeping the caches, then backward in reverse from
``softmax_cross_entropy_backward(1.0, cache)`` (CE4), with the residual blocks summing the
skip's ``dy`` and the body's ``dx`` (GR2). The graph adds no arithmetic of its own.

PyTorch is an extra witness here; the per-op references and finite differences live in the
op tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import convprop.nn as nn
import convprop.nn.functional as F
from convprop import optim
from convprop.finite_differences import directional_derivative_check
from convprop.functional.activation import relu_backward, relu_forward
from convprop.functional.adaptive_pool2d import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
)
from convprop.functional.conv2d import conv2d_backward, conv2d_forward
from convprop.functional.dropout import dropout_backward, dropout_forward
from convprop.functional.linear import linear_backward, linear_forward
from convprop.functional.loss import (
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from convprop.functional.normalization import batch_norm2d_backward, batch_norm2d_forward
from convprop.functional.pool2d import max_pool2d_backward, max_pool2d_forward
from convprop.functional.reshape import flatten_backward, flatten_forward

RTOL, ATOL = 1e-10, 1e-12  # (a): one forward and backward against PyTorch
TRAJECTORY_RTOL = 1e-9  # (c): ten SGD steps against PyTorch
STEPS, DISTINCT, LR, MOMENTUM = 10, 3, 0.05, 0.9
FD_RTOL, FD_ATOL = 1e-6, 1e-8  # (G2): central differences with eps = 1e-6 in float64
F64 = "float64"


# ---------------------------------------------------------------------------------------------
# 1. ResNet with projection shortcuts
# ---------------------------------------------------------------------------------------------


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut: a strided 1×1 conv + BN when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False, rng=rng, dtype=F64)
        self.bn1 = nn.BatchNorm2d(cout, dtype=F64)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False, rng=rng, dtype=F64)
        self.bn2 = nn.BatchNorm2d(cout, dtype=F64)
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False, rng=rng, dtype=F64),
                nn.BatchNorm2d(cout, dtype=F64),
            )
        else:
            self.short = nn.Identity()

    def forward(self, x: Any) -> Any:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.short(x))


class ResNet(nn.Module):
    """stem conv-BN-ReLU → identity block → downsampling block → global pool → linear."""

    def __init__(self, cin: int, width: int, classes: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cin, width, 3, padding=1, bias=False, rng=rng, dtype=F64)
        self.bn = nn.BatchNorm2d(width, dtype=F64)
        self.layer1 = Block(width, width, 1, rng=rng)
        self.layer2 = Block(width, 2 * width, 2, rng=rng)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(F.flatten(self.pool(x), 1))


class TorchBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.short: torch.nn.Module = torch.nn.Sequential(
                torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout)
            )
        else:
            self.short = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.nn.functional.relu
        return relu(self.bn2(self.conv2(relu(self.bn1(self.conv1(x))))) + self.short(x))


class TorchResNet(torch.nn.Module):
    def __init__(self, cin: int, width: int, classes: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)
        self.layer1 = TorchBlock(width, width, 1)
        self.layer2 = TorchBlock(width, 2 * width, 2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


# ---------------------------------------------------------------------------------------------
# 2. Inception block
# ---------------------------------------------------------------------------------------------


class Inception(nn.Module):
    """1×1 | 1×1→3×3 | 1×1→5×5 | 3×3 max-pool→1×1, joined along the channels."""

    def __init__(
        self, cin: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], cp: int, *, rng: Any
    ) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(cin, c1, 1, rng=rng, dtype=F64)
        self.branch3_reduce = nn.Conv2d(cin, c3[0], 1, rng=rng, dtype=F64)
        self.branch3 = nn.Conv2d(c3[0], c3[1], 3, padding=1, rng=rng, dtype=F64)
        self.branch5_reduce = nn.Conv2d(cin, c5[0], 1, rng=rng, dtype=F64)
        self.branch5 = nn.Conv2d(c5[0], c5[1], 5, padding=2, rng=rng, dtype=F64)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.pool_proj = nn.Conv2d(cin, cp, 1, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        b1 = F.relu(self.branch1(x))
        b3 = F.relu(self.branch3(F.relu(self.branch3_reduce(x))))
        b5 = F.relu(self.branch5(F.relu(self.branch5_reduce(x))))
        bp = F.relu(self.pool_proj(self.pool(x)))
        return convprop.cat([b1, b3, b5, bp], dim=1)


class InceptionNet(nn.Module):
    """stem conv-BN-ReLU → Inception → global pool → linear."""

    def __init__(self, cin: int, width: int, classes: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cin, width, 3, padding=1, bias=False, rng=rng, dtype=F64)
        self.bn = nn.BatchNorm2d(width, dtype=F64)
        self.mixed = Inception(width, 2, (2, 3), (1, 2), 2, rng=rng)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 + 3 + 2 + 2, classes, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        x = self.mixed(F.relu(self.bn(self.stem(x))))
        return self.fc(F.flatten(self.pool(x), 1))


class TorchInception(torch.nn.Module):
    def __init__(self, cin: int, c1: int, c3: tuple[int, int], c5: tuple[int, int], cp: int):
        super().__init__()
        self.branch1 = torch.nn.Conv2d(cin, c1, 1)
        self.branch3_reduce = torch.nn.Conv2d(cin, c3[0], 1)
        self.branch3 = torch.nn.Conv2d(c3[0], c3[1], 3, padding=1)
        self.branch5_reduce = torch.nn.Conv2d(cin, c5[0], 1)
        self.branch5 = torch.nn.Conv2d(c5[0], c5[1], 5, padding=2)
        self.pool = torch.nn.MaxPool2d(3, stride=1, padding=1)
        self.pool_proj = torch.nn.Conv2d(cin, cp, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.nn.functional.relu
        b1 = relu(self.branch1(x))
        b3 = relu(self.branch3(relu(self.branch3_reduce(x))))
        b5 = relu(self.branch5(relu(self.branch5_reduce(x))))
        bp = relu(self.pool_proj(self.pool(x)))
        return torch.cat([b1, b3, b5, bp], dim=1)


class TorchInceptionNet(torch.nn.Module):
    def __init__(self, cin: int, width: int, classes: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)
        self.mixed = TorchInception(width, 2, (2, 3), (1, 2), 2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(2 + 3 + 2 + 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixed(torch.nn.functional.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


# ---------------------------------------------------------------------------------------------
# 3. U-Net
# ---------------------------------------------------------------------------------------------


class UNet(nn.Module):
    """Two levels down (max-pool), two up (transposed conv, stride 2), skips by cat; 1×1 head."""

    def __init__(self, cin: int, width: int, cout: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        w = width
        self.enc0 = nn.Conv2d(cin, w, 3, padding=1, rng=rng, dtype=F64)
        self.enc1 = nn.Conv2d(w, 2 * w, 3, padding=1, rng=rng, dtype=F64)
        self.bottom = nn.Conv2d(2 * w, 4 * w, 3, padding=1, rng=rng, dtype=F64)
        self.up1 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2, rng=rng, dtype=F64)
        self.dec1 = nn.Conv2d(4 * w, 2 * w, 3, padding=1, rng=rng, dtype=F64)
        self.up0 = nn.ConvTranspose2d(2 * w, w, 2, stride=2, rng=rng, dtype=F64)
        self.dec0 = nn.Conv2d(2 * w, w, 3, padding=1, rng=rng, dtype=F64)
        self.head = nn.Conv2d(w, cout, 1, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        e0 = F.relu(self.enc0(x))
        e1 = F.relu(self.enc1(F.max_pool2d(e0, 2)))
        b = F.relu(self.bottom(F.max_pool2d(e1, 2)))
        d1 = F.relu(self.dec1(convprop.cat([self.up1(b), e1], dim=1)))
        d0 = F.relu(self.dec0(convprop.cat([self.up0(d1), e0], dim=1)))
        return self.head(d0)


class TorchUNet(torch.nn.Module):
    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        w = width
        self.enc0 = torch.nn.Conv2d(cin, w, 3, padding=1)
        self.enc1 = torch.nn.Conv2d(w, 2 * w, 3, padding=1)
        self.bottom = torch.nn.Conv2d(2 * w, 4 * w, 3, padding=1)
        self.up1 = torch.nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec1 = torch.nn.Conv2d(4 * w, 2 * w, 3, padding=1)
        self.up0 = torch.nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec0 = torch.nn.Conv2d(2 * w, w, 3, padding=1)
        self.head = torch.nn.Conv2d(w, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu, pool = torch.nn.functional.relu, torch.nn.functional.max_pool2d
        e0 = relu(self.enc0(x))
        e1 = relu(self.enc1(pool(e0, 2)))
        b = relu(self.bottom(pool(e1, 2)))
        d1 = relu(self.dec1(torch.cat([self.up1(b), e1], dim=1)))
        d0 = relu(self.dec0(torch.cat([self.up0(d1), e0], dim=1)))
        return self.head(d0)


# ---------------------------------------------------------------------------------------------
# 4. Shared weights: one Conv2d and one Linear, each called twice
# ---------------------------------------------------------------------------------------------


class SharedNet(nn.Module):
    """stem → conv → conv (the same layer) → pool → fc → mix → mix (the same layer) → out."""

    def __init__(
        self, cin: int, width: int, classes: int, side: int, *, rng: np.random.Generator
    ) -> None:
        super().__init__()
        hidden = 6
        self.stem = nn.Conv2d(cin, width, 3, padding=1, rng=rng, dtype=F64)
        self.conv = nn.Conv2d(width, width, 3, padding=1, rng=rng, dtype=F64)
        self.fc = nn.Linear(width * (side // 2) ** 2, hidden, rng=rng, dtype=F64)
        self.mix = nn.Linear(hidden, hidden, rng=rng, dtype=F64)
        self.out = nn.Linear(hidden, classes, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        h = F.relu(self.stem(x))
        h = F.tanh(self.conv(h))
        h = F.relu(self.conv(h))  # the same weights again: their gradients add (GR2)
        h = F.flatten(F.max_pool2d(h, 2), 1)
        z = F.relu(self.fc(h))
        z = self.mix(F.tanh(self.mix(z)))
        return self.out(F.relu(z))


class TorchSharedNet(torch.nn.Module):
    def __init__(self, cin: int, width: int, classes: int, side: int) -> None:
        super().__init__()
        hidden = 6
        self.stem = torch.nn.Conv2d(cin, width, 3, padding=1)
        self.conv = torch.nn.Conv2d(width, width, 3, padding=1)
        self.fc = torch.nn.Linear(width * (side // 2) ** 2, hidden)
        self.mix = torch.nn.Linear(hidden, hidden)
        self.out = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.nn.functional.relu
        h = relu(self.stem(x))
        h = torch.tanh(self.conv(h))
        h = relu(self.conv(h))
        h = torch.flatten(torch.nn.functional.max_pool2d(h, 2), 1)
        z = relu(self.fc(h))
        z = self.mix(torch.tanh(self.mix(z)))
        return self.out(relu(z))


# ---------------------------------------------------------------------------------------------
# 5. A user's Function: Swish with a learnable β per channel
# ---------------------------------------------------------------------------------------------


class SwishFunction(convprop.autograd.Function):
    """y = x·s with s = σ(βx); dx = dy·(s + βx·s(1−s)), dβ = Σ dy·x²·s(1−s) (β broadcast)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, beta: np.ndarray) -> np.ndarray:
        s = 1.0 / (1.0 + np.exp(-beta * x))
        ctx.save_for_backward(x, beta, s)
        return x * s

    @staticmethod
    def backward(ctx: Any, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, beta, s = ctx.saved_tensors
        d_arg = dy * x * s * (1.0 - s)  # ∂L/∂(βx)
        dx = dy * s + d_arg * beta
        dbeta = (d_arg * x).sum(axis=(0, 2, 3)).reshape(beta.shape)  # β is (C, 1, 1)
        return dx, dbeta


class Swish(nn.Module):
    def __init__(self, channels: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        self.beta = nn.Parameter(rng.uniform(0.5, 1.5, size=(channels, 1, 1)))

    def forward(self, x: Any) -> Any:
        return SwishFunction.apply(x, self.beta)


class SwishNet(nn.Module):
    """conv-BN-Swish → max-pool → conv-Swish → global pool → linear."""

    def __init__(self, cin: int, width: int, classes: int, *, rng: np.random.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, padding=1, bias=False, rng=rng, dtype=F64)
        self.bn1 = nn.BatchNorm2d(width, dtype=F64)
        self.act1 = Swish(width, rng=rng)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, rng=rng, dtype=F64)
        self.act2 = Swish(2 * width, rng=rng)
        self.fc = nn.Linear(2 * width, classes, rng=rng, dtype=F64)

    def forward(self, x: Any) -> Any:
        h = F.max_pool2d(self.act1(self.bn1(self.conv1(x))), 2)
        h = F.adaptive_avg_pool2d(self.act2(self.conv2(h)), 1)
        return self.fc(F.flatten(h, 1))


class TorchSwish(torch.nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.beta = torch.nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class TorchSwishNet(torch.nn.Module):
    def __init__(self, cin: int, width: int, classes: int) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.act1 = TorchSwish(width)
        self.conv2 = torch.nn.Conv2d(width, 2 * width, 3, padding=1)
        self.act2 = TorchSwish(2 * width)
        self.fc = torch.nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.max_pool2d(self.act1(self.bn1(self.conv1(x))), 2)
        h = torch.nn.functional.adaptive_avg_pool2d(self.act2(self.conv2(h)), 1)
        return self.fc(torch.flatten(h, 1))


# ---------------------------------------------------------------------------------------------
# The cases: each builds the pair (full size or tiny) and its data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A network pair, its input shape, and its target: class labels or an image (MSE)."""

    name: str
    build: Callable[[int, int, int, np.random.Generator], tuple[nn.Module, torch.nn.Module]]
    input_shape: tuple[int, int, int, int]  # (N, C, H, W) of the full-size instance
    tiny_shape: tuple[int, int, int, int]  # for gradcheck (G1) over every coordinate
    width: int
    tiny_width: int
    classes: int  # 0: the target is an image of the output's shape (mse_loss)


def _resnet(cin: int, width: int, side: int, rng: Any) -> tuple[nn.Module, torch.nn.Module]:
    return ResNet(cin, width, 4, rng=rng), TorchResNet(cin, width, 4)


def _inception(cin: int, width: int, side: int, rng: Any) -> tuple[nn.Module, torch.nn.Module]:
    return InceptionNet(cin, width, 4, rng=rng), TorchInceptionNet(cin, width, 4)


def _unet(cin: int, width: int, side: int, rng: Any) -> tuple[nn.Module, torch.nn.Module]:
    return UNet(cin, width, 1, rng=rng), TorchUNet(cin, width, 1)


def _shared(cin: int, width: int, side: int, rng: Any) -> tuple[nn.Module, torch.nn.Module]:
    return SharedNet(cin, width, 4, side, rng=rng), TorchSharedNet(cin, width, 4, side)


def _swish(cin: int, width: int, side: int, rng: Any) -> tuple[nn.Module, torch.nn.Module]:
    return SwishNet(cin, width, 4, rng=rng), TorchSwishNet(cin, width, 4)


CASES = [
    Case("resnet", _resnet, (3, 3, 12, 12), (2, 1, 6, 6), 4, 2, 4),
    Case("inception", _inception, (3, 3, 10, 10), (2, 1, 5, 5), 4, 2, 4),
    Case("unet", _unet, (2, 2, 16, 16), (2, 1, 8, 8), 3, 1, 0),
    Case("shared", _shared, (4, 2, 8, 8), (2, 1, 4, 4), 3, 2, 4),
    Case("swish", _swish, (3, 3, 10, 10), (2, 1, 6, 6), 3, 2, 4),
]
CASE_IDS = [case.name for case in CASES]


def build(case: Case, *, tiny: bool = False) -> tuple[nn.Module, torch.nn.Module]:
    """The convprop network (random BatchNorm γ, β) and PyTorch's twin with its weights."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    shape = case.tiny_shape if tiny else case.input_shape
    ours, theirs = case.build(shape[1], case.tiny_width if tiny else case.width, shape[2], rng)
    for module in ours.modules():  # γ ≠ 1, β ≠ 0, so that their gradients are not special
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data = rng.uniform(0.5, 1.5, module.weight.shape)
            module.bias.data = rng.uniform(-0.5, 0.5, module.bias.shape)
    theirs = theirs.double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)
    return ours, theirs


def batch(case: Case, rng: np.random.Generator, *, tiny: bool = False) -> tuple[Any, Any]:
    """A random input and its target (labels (N,) int64, or an image (N, 1, H, W))."""
    shape = case.tiny_shape if tiny else case.input_shape
    x = rng.standard_normal(shape)
    if case.classes:
        return x, rng.integers(0, case.classes, size=shape[0])
    return x, rng.standard_normal((shape[0], 1, shape[2], shape[3]))


def our_loss(case: Case, output: Any, target: Any) -> Any:
    return F.cross_entropy(output, target) if case.classes else F.mse_loss(output, target)


def their_loss(case: Case, output: torch.Tensor, target: Any) -> torch.Tensor:
    target = torch.from_numpy(target)
    if case.classes:
        return torch.nn.functional.cross_entropy(output, target)
    return torch.nn.functional.mse_loss(output, target)


def assert_close(ours: Any, theirs: Any, what: str, rtol: float = RTOL) -> None:
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=rtol, atol=ATOL, err_msg=what)


# ---------------------------------------------------------------------------------------------
# (a) one step: loss, gradients, running statistics against PyTorch
# ---------------------------------------------------------------------------------------------


def test_state_dict_keys_equal_pytorch_for_shared_and_user_parameters() -> None:
    ours, theirs = build(CASES[3])
    assert [name for name, _ in ours.named_parameters()] == [
        name for name, _ in theirs.named_parameters()
    ]
    ours, theirs = build(CASES[4])
    assert "act1.beta" in ours.state_dict()
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_loss_and_every_gradient_equal_pytorch_GR1_GR2(case: Case) -> None:
    ours, theirs = build(case)
    x, target = batch(case, np.random.default_rng(1))
    x_ours = convprop.tensor(x.copy(), requires_grad=True)
    x_theirs = torch.tensor(x, requires_grad=True)

    loss = our_loss(case, ours(x_ours), target)
    loss.backward()
    torch_loss = their_loss(case, theirs(x_theirs), target)
    torch_loss.backward()

    assert_close(loss.item(), torch_loss.item(), "loss")
    assert_close(x_ours.grad, x_theirs.grad, "input gradient")
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert_close(param.grad, torch_params[name].grad, f"gradient of {name}")
    torch_buffers = dict(theirs.named_buffers())
    for name, buffer in ours.named_buffers():  # running_mean/var after one training forward
        assert_close(buffer, torch_buffers[name], f"buffer {name}")


# ---------------------------------------------------------------------------------------------
# (b) finite differences
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradcheck_G1_of_a_tiny_instance_wrt_input_and_every_parameter(case: Case) -> None:
    ours, _ = build(case, tiny=True)
    x, target = batch(case, np.random.default_rng(2), tiny=True)
    x_tensor = convprop.tensor(x, requires_grad=True)

    def loss_of(x: Any, *params: Any) -> Any:  # the parameters are read through the model
        return our_loss(case, ours(x), target)

    assert convprop.gradcheck(loss_of, (x_tensor, *ours.parameters()), atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_directional_derivative_G2_wrt_input_and_each_parameter(case: Case) -> None:
    ours, _ = build(case)
    x, target = batch(case, np.random.default_rng(3))
    x_tensor = convprop.tensor(x.copy(), requires_grad=True)
    our_loss(case, ours(x_tensor), target).backward()
    rng = np.random.default_rng(4)

    def loss_at_input(values: np.ndarray) -> float:
        with convprop.no_grad():
            return float(our_loss(case, ours(values), target).item())

    numeric, analytic = directional_derivative_check(loss_at_input, x_tensor.grad, x, rng=rng)
    assert abs(numeric - analytic) <= FD_ATOL + FD_RTOL * abs(analytic), "input"

    for name, param in ours.named_parameters():
        original = param.data

        def loss_at_param(
            values: np.ndarray, param: Any = param, original: Any = original
        ) -> float:
            param.data = values
            try:
                return loss_at_input(x)
            finally:
                param.data = original

        grad = param.grad.copy()
        numeric, analytic = directional_derivative_check(loss_at_param, grad, original, rng=rng)
        assert abs(numeric - analytic) <= FD_ATOL + FD_RTOL * abs(analytic), name


def test_swish_function_gradcheck_G1_with_random_upstream() -> None:
    rng = np.random.default_rng(5)
    x = convprop.tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True)
    beta = convprop.tensor(rng.uniform(0.5, 1.5, size=(3, 1, 1)), requires_grad=True)
    assert convprop.gradcheck(SwishFunction.apply, (x, beta), atol=1e-8, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# (c) a training trajectory: SGD with momentum, step for step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sgd_momentum_trajectory_equals_pytorch_SGD3_SGD6(case: Case) -> None:
    ours, theirs = build(case)
    rng = np.random.default_rng(6)
    batches = [batch(case, rng) for _ in range(DISTINCT)]
    optimizer = optim.SGD(ours.parameters(), LR, momentum=MOMENTUM)
    torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=LR, momentum=MOMENTUM)
    ours_losses, their_losses = [], []
    for step in range(STEPS):
        x, target = batches[step % DISTINCT]
        optimizer.zero_grad()
        loss = our_loss(case, ours(x), target)
        loss.backward()
        optimizer.step()
        ours_losses.append(loss.item())

        torch_optimizer.zero_grad()
        torch_loss = their_loss(case, theirs(torch.from_numpy(x)), target)
        torch_loss.backward()
        torch_optimizer.step()
        their_losses.append(torch_loss.item())

    assert_close(ours_losses, their_losses, "losses", rtol=TRAJECTORY_RTOL)
    torch_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        assert_close(value, torch_state[name], f"final {name}", rtol=TRAJECTORY_RTOL)


# ---------------------------------------------------------------------------------------------
# 6. The graph equals the explicit chain of functional pairs, bit for bit
# ---------------------------------------------------------------------------------------------

Backward = Callable[[Any, bool], Any]
"""``backward(dy, need_dx) -> dx`` (None when need_dx is False); stores parameter grads."""


def chain_forward(
    module: nn.Module, x: np.ndarray, prefix: str, grads: dict[str, np.ndarray]
) -> tuple[np.ndarray, Backward]:
    """Run ``module`` by its layers' functional pairs, keeping the caches for the backward."""
    if isinstance(module, nn.Sequential):
        backwards = []
        for name, layer in module.named_children():
            x, layer_backward = chain_forward(layer, x, f"{prefix}{name}.", grads)
            backwards.append(layer_backward)

        def sequential_backward(dy: Any, need_dx: bool) -> Any:
            for index in reversed(range(len(backwards))):  # the chain rule, last layer first
                dy = backwards[index](dy, need_dx or index > 0)
            return dy

        return x, sequential_backward
    if isinstance(module, nn.Residual):
        body_y, body_backward = chain_forward(module.body, x, prefix + "body.", grads)

        def residual_backward(dy: Any, need_dx: bool) -> Any:
            return dy + body_backward(dy, True)  # the skip's dy plus the body's dx (GR2)

        return x + body_y, residual_backward
    return layer_forward(module, x, prefix, grads)


def layer_forward(
    layer: nn.Module, x: np.ndarray, prefix: str, grads: dict[str, np.ndarray]
) -> tuple[np.ndarray, Backward]:
    """One layer's pair: ``y, cache = NAME_forward(...)``; backward calls NAME_backward."""
    if isinstance(layer, (nn.Conv2d, nn.Linear)):
        bias = None if layer.bias is None else layer.bias.data
        if isinstance(layer, nn.Conv2d):
            y, cache = conv2d_forward(
                x, layer.weight.data, bias, stride=layer.stride, padding=layer.padding,
                dilation=layer.dilation, groups=layer.groups, algorithm=layer.algorithm,
            )  # fmt: skip
            pair_backward: Any = conv2d_backward
        else:
            y, cache = linear_forward(x, layer.weight.data, bias)
            pair_backward = linear_backward

        def affine_backward(dy: Any, need_dx: bool) -> Any:
            dx, grads[prefix + "weight"], db = pair_backward(dy, cache, need_dx=need_dx)
            if db is not None:
                grads[prefix + "bias"] = db
            return dx

        return y, affine_backward
    if isinstance(layer, nn.BatchNorm2d):
        y, cache = batch_norm2d_forward(
            x, layer.weight.data, layer.bias.data, layer.running_mean, layer.running_var,
            training=layer.training, momentum=layer.momentum, eps=layer.eps,
        )  # fmt: skip

        def batch_norm_backward(dy: Any, need_dx: bool) -> Any:
            dx, grads[prefix + "weight"], grads[prefix + "bias"] = batch_norm2d_backward(dy, cache)
            return dx

        return y, batch_norm_backward
    if isinstance(layer, nn.ReLU):
        y, cache = relu_forward(x)
        one_backward: Any = relu_backward
    elif isinstance(layer, nn.MaxPool2d):
        y, cache = max_pool2d_forward(
            x, layer.kernel_size, stride=layer.stride, padding=layer.padding,
            ceil_mode=layer.ceil_mode,
        )  # fmt: skip
        one_backward = max_pool2d_backward
    elif isinstance(layer, nn.AdaptiveAvgPool2d):
        y, cache = adaptive_avg_pool2d_forward(x, layer.output_size)
        one_backward = adaptive_avg_pool2d_backward
    elif isinstance(layer, nn.Flatten):
        y, cache = flatten_forward(x, start_dim=layer.start_dim)
        one_backward = flatten_backward
    elif isinstance(layer, nn.Dropout):
        y, cache = dropout_forward(x, p=layer.p, training=layer.training, rng=layer.rng)
        one_backward = dropout_backward
    else:
        raise TypeError(f"chain_forward: no pair written for {type(layer).__name__}")
    return y, lambda dy, need_dx: one_backward(dy, cache)


MODEL_BUILDERS = {"lenet": convprop.models.lenet, "resnet_mini": convprop.models.resnet_mini}


@pytest.mark.parametrize("input_grad", [False, True], ids=["x-no-grad", "x-grad"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("model_name", list(MODEL_BUILDERS))
def test_graph_gradients_equal_hand_chain_of_pairs_bit_for_bit(
    model_name: str, mode: str, input_grad: bool
) -> None:
    model = MODEL_BUILDERS[model_name](5, 2, 8, rng=7, dtype=F64)
    model.train(mode == "train")
    rng = np.random.default_rng(8)
    for module in model.modules():  # inference reads the running statistics: make them real
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean = rng.standard_normal(module.num_features)
            module.running_var = rng.uniform(0.5, 2.0, module.num_features)
            module.weight.data = rng.uniform(0.5, 1.5, module.num_features)
            module.bias.data = rng.uniform(-0.5, 0.5, module.num_features)
    x = rng.standard_normal((3, 2, 8, 8))
    labels = rng.integers(0, 5, size=3)
    dropout_states = [m.rng.bit_generator.state for m in model.modules() if hasattr(m, "rng")]

    grads: dict[str, np.ndarray] = {}
    logits, chain_backward = chain_forward(model, x, "", grads)
    loss, loss_cache = softmax_cross_entropy_forward(logits, labels)
    dx = chain_backward(softmax_cross_entropy_backward(1.0, loss_cache), input_grad)  # (CE4)

    dropouts = [m for m in model.modules() if hasattr(m, "rng")]
    for module, state in zip(dropouts, dropout_states, strict=True):
        module.rng.bit_generator.state = state  # the graph's forward draws the same masks
    model.zero_grad()
    x_tensor = convprop.tensor(x, requires_grad=True) if input_grad else x
    graph_loss = F.cross_entropy(model(x_tensor), labels)
    graph_loss.backward()

    assert np.array_equal(graph_loss.data, loss)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(grads) == sorted(names)
    for name, param in model.named_parameters():
        assert np.array_equal(param.grad, grads[name]), name
    if input_grad:
        assert np.array_equal(x_tensor.grad, dx)
    else:
        assert dx is None
