"""Dropout, Dropout2d, BatchNorm1d and BatchNorm2d: layers whose behaviour differs between
train() and eval()."""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy

from convprop.autograd.tensor import Tensor
from convprop.backend import get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_parameter_size
from convprop.nn import functional as F
from convprop.nn.init import RNGLike, check_dtype, make_rng
from convprop.nn.module import Module
from convprop.nn.parameter import Parameter


def _is_real(value: Any) -> bool:
    """A real number (Python or NumPy), not a bool; NaN fails every range check after it."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability p, scale by 1/(1-p).

    The masks come from this layer's own Generator (``rng``), so a seeded run repeats.
    In eval() mode the layer is the identity.
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        if not (_is_real(p) and 0.0 <= p <= 1.0):
            raise ParameterError(
                f"Dropout: p must be a probability; expected 0 <= p <= 1, got {p!r}"
            )
        self.p = float(p)
        self.rng: numpy.random.Generator = make_rng(rng)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.training, rng=self.rng)

    def config(self) -> dict[str, Any]:
        return {"p": self.p}


class Dropout2d(Module):
    """Channel dropout: in training, zero each channel of each sample (a whole feature map)
    with probability p and scale the others by 1/(1-p) (DO7)–(DO10).

    Input (N, C, H, W), or (N, C, L) (a 3-D input is read as PyTorch 2.13 reads it). The
    masks come from this layer's own Generator (``rng``); in eval() mode it is the identity.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rng: RNGLike = None) -> None:
        super().__init__()
        if not (_is_real(p) and 0.0 <= p <= 1.0):
            raise ParameterError(
                f"Dropout2d: p must be a probability; expected 0 <= p <= 1, got {p!r}"
            )
        if inplace:
            raise ParameterError(
                "Dropout2d: in-place ops would overwrite what the graph keeps for backward; "
                f"expected inplace=False, got {inplace!r}"
            )
        self.p = float(p)
        self.rng: numpy.random.Generator = make_rng(rng)

    def forward(self, x: Any) -> Tensor:
        return F.dropout2d(x, self.p, self.training, rng=self.rng)

    def config(self) -> dict[str, Any]:
        return {"p": self.p}


class _BatchNorm(Module):
    """Batch normalisation per channel, with running statistics (BatchNorm1d, BatchNorm2d).

    ``_layouts`` names the accepted input ranks and their layouts.

    Attributes
    ----------
    weight, bias : Parameter (C,)
        gamma and beta (present when ``affine``).
    running_mean, running_var : buffers (C,)
        Updated in training as PyTorch (running_var from the unbiased variance).
    num_batches_tracked : buffer ()
        int64 count of training batches, as in PyTorch's state_dict.
    """

    _layouts: ClassVar[dict[int, str]] = {}

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        *,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        is_int = isinstance(num_features, int) and not isinstance(num_features, bool)
        if not is_int or num_features < 1:
            raise ParameterError(
                f"{name}: num_features must be a positive int; expected >= 1, got {num_features!r}"
            )
        # The same rules as batch_norm2d_forward, checked here so a bad layer fails when built.
        if not (_is_real(eps) and 0 < eps < math.inf):
            raise ParameterError(
                f"{name}: eps keeps the division finite; expected a finite number > 0, "
                f"got eps={eps!r}"
            )
        if not (_is_real(momentum) and 0.0 <= momentum <= 1.0):
            raise ParameterError(
                f"{name}: momentum is the weight of the batch statistics; expected a number "
                f"in [0, 1] (None, a cumulative average, is not supported), got "
                f"momentum={momentum!r}"
            )
        dtype = check_dtype(name, dtype)
        check_parameter_size(name, ((num_features,),) * 4, numpy.dtype(dtype).itemsize)
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        self.affine = bool(affine)
        # registered even when None, as PyTorch, so that assigning an array is refused
        self.register_parameter(
            "weight", Parameter(numpy.ones(num_features, dtype=dtype)) if affine else None
        )
        self.register_parameter(
            "bias", Parameter(numpy.zeros(num_features, dtype=dtype)) if affine else None
        )
        self._buffers["running_mean"] = numpy.zeros(num_features, dtype=dtype)
        self._buffers["running_var"] = numpy.ones(num_features, dtype=dtype)
        self._buffers["num_batches_tracked"] = numpy.zeros((), dtype=numpy.int64)

    def forward(self, x: Any, *, relu: bool = False) -> Tensor:
        """The layer's forward; with ``relu``, followed by a ReLU in the same op (BR1–BR4:
        max(y, 0) written in y's pass, the backward through both without storing y or its
        gradient). :class:`convprop.nn.Sequential` asks for it where a ReLU follows."""
        array = x.data if isinstance(x, Tensor) else x
        ndim = getattr(array, "ndim", None)
        if ndim not in self._layouts:
            layouts = " or ".join(self._layouts.values())
            ranks = " or ".join(str(rank) for rank in self._layouts)
            raise ShapeError(
                f"{type(self).__name__}: x must be {layouts}; expected {ranks} dimensions, "
                f"got {ndim} (x.shape={tuple(getattr(array, 'shape', ()))})"
            )
        y, new_mean, new_var = F.batch_norm_with_statistics(
            x,
            self._buffers["running_mean"],
            self._buffers["running_var"],
            self.weight,
            self.bias,
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
            relu=relu,
        )
        if self.training:  # fresh arrays, so a state_dict taken earlier stays as it was
            self._buffers["running_mean"] = new_mean
            self._buffers["running_var"] = new_var
            tracked = self._buffers["num_batches_tracked"]
            self._buffers["num_batches_tracked"] = get_xp(tracked).asarray(tracked + 1)
        return y

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
        }


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) per channel, over N (and L), with running
    statistics (BN1)–(BN12).

    Attributes
    ----------
    weight, bias : Parameter (C,)
        gamma and beta (present when ``affine``).
    running_mean, running_var : buffers (C,)
        Updated in training as PyTorch (running_var from the unbiased variance).
    num_batches_tracked : buffer ()
        int64 count of training batches, as in PyTorch's state_dict.
    """

    _layouts: ClassVar[dict[int, str]] = {2: "(N, C)", 3: "(N, C, L)"}


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) over (N, H, W) per channel, with running
    statistics (BN1)–(BN12).

    Attributes
    ----------
    weight, bias : Parameter (C,)
        gamma and beta (present when ``affine``).
    running_mean, running_var : buffers (C,)
        Updated in training as PyTorch (running_var from the unbiased variance).
    num_batches_tracked : buffer ()
        int64 count of training batches, as in PyTorch's state_dict.
    """

    _layouts: ClassVar[dict[int, str]] = {4: "(N, C, H, W)"}
