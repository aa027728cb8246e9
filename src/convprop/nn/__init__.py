"""Modules that own Parameters and call convprop.nn.functional; they contain no math.

Names, arguments and ``state_dict`` keys are PyTorch's; the backward pass is the recorded
graph's (convprop.autograd), which calls each op's hand-written backward.
"""

from convprop.nn import functional
from convprop.nn import utils as utils  # convprop.nn.utils.clip_grad_norm_, as in torch
from convprop.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from convprop.nn.containers import Identity, ModuleDict, ModuleList, Residual, Sequential
from convprop.nn.conv import Conv2d, ConvTranspose2d
from convprop.nn.conv_nd import Conv1d, Conv3d, ConvTranspose1d, ConvTranspose3d
from convprop.nn.linear import Flatten, Linear
from convprop.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from convprop.nn.module import Module
from convprop.nn.normalization import GroupNorm, LayerNorm
from convprop.nn.parameter import Parameter
from convprop.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    LPPool1d,
    LPPool2d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    MaxUnpool2d,
)
from convprop.nn.registry import register
from convprop.nn.regularization import BatchNorm1d, BatchNorm2d, Dropout, Dropout2d
from convprop.nn.upsampling import Upsample

__all__ = [
    "ELU",
    "GELU",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "CrossEntropyLoss",
    "Dropout",
    "Dropout2d",
    "Flatten",
    "GroupNorm",
    "Identity",
    "LPPool1d",
    "LPPool2d",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Upsample",
    "functional",
    "register",
]
