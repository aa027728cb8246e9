"""convprop: convolutional networks with every gradient written by hand from the derivations."""

from convprop import data, functional, models, nn, optim
from convprop.errors import BackendError, DTypeError, ParameterError, ShapeError

__version__ = "0.1.0"
__all__ = [
    "BackendError",
    "DTypeError",
    "ParameterError",
    "ShapeError",
    "__version__",
    "data",
    "functional",
    "models",
    "nn",
    "optim",
]
