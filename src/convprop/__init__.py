"""convprop: convolutional networks with every gradient written by hand from the derivations."""

from convprop import autograd, data, functional, models, nn, optim
from convprop.autograd import (
    Function,
    Tensor,
    cat,
    enable_grad,
    gradcheck,
    is_grad_enabled,
    no_grad,
    stack,
    tensor,
)
from convprop.errors import BackendError, DTypeError, ParameterError, ShapeError
from convprop.nn.functional import manual_seed
from convprop.nn.summary import summary

__version__ = "0.1.0"
__all__ = [
    "BackendError",
    "DTypeError",
    "Function",
    "ParameterError",
    "ShapeError",
    "Tensor",
    "__version__",
    "autograd",
    "cat",
    "data",
    "enable_grad",
    "functional",
    "gradcheck",
    "is_grad_enabled",
    "manual_seed",
    "models",
    "nn",
    "no_grad",
    "optim",
    "stack",
    "summary",
    "tensor",
]
