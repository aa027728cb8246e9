"""convprop: convolutional networks with every gradient written by hand from the derivations."""

# _blas_env first: it sets OpenBLAS's thread timeout before anything imports NumPy
from convprop import _blas_env, data, functional, models, nn, optim  # noqa: F401
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
