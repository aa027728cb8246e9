"""Stateful modules that own Parameters and call convprop.functional; they contain no math."""

from convprop.nn.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from convprop.nn.conv import Conv2d, ConvTranspose2d
from convprop.nn.linear import Flatten, Linear
from convprop.nn.loss import CrossEntropyLoss, MSELoss
from convprop.nn.module import Module, Residual, Sequential
from convprop.nn.parameter import Parameter
from convprop.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from convprop.nn.regularization import BatchNorm2d, Dropout

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Tanh",
]
