"""PyTorch's own OpInfo samples fed through convprop.nn.functional.

For every op of section 25 of docs/derivations.md (and softmax, log_softmax, batch_norm,
mse_loss), the samples of ``torch.testing._internal.common_methods_invocations.op_db``
(``sample_inputs("cpu", float64, requires_grad=True)``) run through the convprop op with the
same arguments; the outputs, the gradients of every input that requires one (for a random
upstream gradient) and updated running statistics must equal PyTorch's (1e-10 relative).

Cases not taken, each with its reason; the tests assert that these, and only these, are
refused with the library's own error:

* batch_norm on a 1-D input of shape (0,): it has no channel axis (PyTorch accepts only the
  empty one); convprop asks for (N, C, …).
* batch_norm in training with momentum = -1.0: convprop keeps momentum, the weight of the
  batch statistics, in [0, 1].
* layer_norm and group_norm with eps = -0.5: convprop keeps eps > 0 (it is what keeps
  1/√(σ² + eps) finite), as batch_norm does.

Dropout2d draws its own masks, so its samples are checked for the structure of channel
dropout instead: identity at p = 0 or in evaluation, zeros at p = 1, and at p = 0.5 whole
channels kept (scaled by 2) or dropped, with the gradient through the same mask.

OpInfos of neighbouring ops not run here: interpolate "bicubic" and "area" (modes convprop
does not implement), upsample_nearest and upsample_bilinear (PyTorch's deprecated aliases
of interpolate, not provided) and silu "complex" (complex dtypes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop.nn import functional as F

pytestmark = pytest.mark.xdist_group("opinfo")  # one worker imports op_db once

OPS: dict[tuple[str, str], Callable[..., Any]] = {
    ("nn.functional.gelu", ""): F.gelu,
    ("nn.functional.silu", ""): F.silu,
    ("nn.functional.elu", ""): F.elu,
    ("softmax", ""): F.softmax,
    ("softmax", "with_dtype"): F.softmax,
    ("log_softmax", ""): F.log_softmax,
    ("log_softmax", "with_dtype"): F.log_softmax,
    ("nn.functional.layer_norm", ""): F.layer_norm,
    ("nn.functional.group_norm", ""): F.group_norm,
    ("nn.functional.batch_norm", ""): F.batch_norm,
    ("nn.functional.batch_norm", "without_cudnn"): F.batch_norm,
    ("nn.functional.pad", "constant"): F.pad,
    ("nn.functional.pad", "reflect"): F.pad,
    ("nn.functional.pad", "replicate"): F.pad,
    ("nn.functional.pad", "replicate_negative"): F.pad,
    ("nn.functional.pad", "circular"): F.pad,
    ("nn.functional.interpolate", "nearest"): F.interpolate,
    ("nn.functional.interpolate", "nearest-exact"): F.interpolate,
    ("nn.functional.interpolate", "linear"): F.interpolate,
    ("nn.functional.interpolate", "bilinear"): F.interpolate,
    ("nn.functional.interpolate", "trilinear"): F.interpolate,
    ("nn.functional.nll_loss", ""): F.nll_loss,
    ("nn.functional.cross_entropy", ""): F.cross_entropy,
    ("nn.functional.binary_cross_entropy", ""): F.binary_cross_entropy,
    ("nn.functional.binary_cross_entropy_with_logits", ""): F.binary_cross_entropy_with_logits,
    ("nn.functional.mse_loss", ""): F.mse_loss,
}
NOT_TAKEN = {  # op: the number of its samples refused by design (see the module docstring)
    ("nn.functional.batch_norm", ""): 3,
    ("nn.functional.batch_norm", "without_cudnn"): 3,
    ("nn.functional.layer_norm", ""): 1,
    ("nn.functional.group_norm", ""): 4,
}


@cache
def _op_infos() -> dict[tuple[str, str], Any]:
    from torch.testing._internal.common_methods_invocations import op_db

    return {(op.name, op.variant_test_name): op for op in op_db}


def _refusal(key: tuple[str, str], sample: Any) -> str | None:
    """Why convprop refuses this sample by design, or None."""
    kwargs = sample.kwargs
    if key[0] == "nn.functional.batch_norm":
        if sample.input.ndim == 1:
            return "a 1-D input has no channel axis"
        if kwargs.get("training") and not 0 <= kwargs.get("momentum", 0.1) <= 1:
            return "momentum outside [0, 1] in training"
    norms = ("nn.functional.layer_norm", "nn.functional.group_norm")
    if key[0] in norms and kwargs.get("eps", 1e-5) <= 0:
        return "eps <= 0"
    return None


def _to_ours(value: Any, tensors: list[tuple[Any, Any]]) -> Any:
    """torch values as convprop's: Tensors (keeping requires_grad), dtypes, sizes."""
    if isinstance(value, torch.Tensor):
        array = value.detach().numpy().copy()
        if array.dtype.kind != "f":
            return array
        ours = convprop.tensor(array, requires_grad=value.requires_grad)
        tensors.append((value, ours))
        return ours
    if isinstance(value, torch.dtype):
        return np.dtype(str(value).removeprefix("torch."))
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_ours(v, tensors) for v in value)
    return value


def _clone_stats(sample: Any) -> tuple[list[Any], list[Any]]:
    """The running statistics as fresh tensors (batch_norm updates them in place)."""
    args = [a.detach().clone() if isinstance(a, torch.Tensor) and not a.requires_grad else a
            for a in sample.args]  # fmt: skip
    stats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
    return args, [a for a in stats if not a.requires_grad]


def _run_sample(key: tuple[str, str], op_info: Any, sample: Any, rng: np.random.Generator):
    torch_args, torch_stats = _clone_stats(sample)
    tensors: list[tuple[Any, Any]] = []
    ours_input = _to_ours(sample.input, tensors)
    ours_args = _to_ours(torch_args, tensors)
    ours_kwargs = {k: _to_ours(v, tensors) for k, v in sample.kwargs.items()}
    ours = OPS[key](ours_input, *ours_args, **ours_kwargs)
    theirs = op_info.op(sample.input, *torch_args, **sample.kwargs)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-13,
                               equal_nan=True, err_msg=f"{key} forward")  # fmt: skip
    for torch_stat, ours_stat in zip(torch_stats, [a for a in ours_args if _is_stat(a)],
                                     strict=True):  # fmt: skip
        np.testing.assert_allclose(ours_stat.data, torch_stat.numpy(), rtol=1e-12,
                                   err_msg=f"{key} running statistics")  # fmt: skip
    needs = [(t, o) for t, o in tensors if t.requires_grad]
    if not needs or not theirs.requires_grad:
        return
    dy = rng.normal(size=tuple(theirs.shape))
    grads = torch.autograd.grad(theirs, [t for t, _ in needs], torch.tensor(dy),
                                allow_unused=True)  # fmt: skip
    ours.backward(dy)
    for (_, o), expected in zip(needs, grads, strict=True):
        wanted = np.zeros(o.shape) if expected is None else expected.numpy()
        got = np.zeros(o.shape) if o.grad is None else o.grad
        np.testing.assert_allclose(got, wanted, rtol=1e-10, atol=1e-13, equal_nan=True,
                                   err_msg=f"{key} gradient")  # fmt: skip


def _is_stat(value: Any) -> bool:
    return isinstance(value, convprop.Tensor) and not value.requires_grad


@pytest.mark.parametrize("key", list(OPS), ids=lambda k: f"{k[0]}-{k[1]}".strip("-"))
def test_every_opinfo_sample_matches_pytorch_or_is_refused_by_design(key) -> None:
    op_info = _op_infos()[key]
    rng = np.random.default_rng(0)
    samples = list(op_info.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert samples
    refused = 0
    for sample in samples:
        reason = _refusal(key, sample)
        if reason is not None:
            tensors: list[tuple[Any, Any]] = []
            with pytest.raises(ValueError):  # ShapeError / ParameterError
                OPS[key](_to_ours(sample.input, tensors), *_to_ours(list(sample.args), tensors),
                         **{k: _to_ours(v, tensors) for k, v in sample.kwargs.items()})  # fmt: skip
            refused += 1
            continue
        _run_sample(key, op_info, sample, rng)
    assert refused == NOT_TAKEN.get(key, 0)


def test_dropout2d_samples_have_the_structure_of_channel_dropout() -> None:
    op_info = _op_infos()[("nn.functional.dropout2d", "")]
    for sample in op_info.sample_inputs("cpu", torch.float64, requires_grad=True):
        x_array = sample.input.detach().numpy()
        x = convprop.tensor(x_array, requires_grad=True)
        p = sample.kwargs.get("p", 0.5)
        training = sample.kwargs.get("training", True)
        y = F.dropout2d(x, p, training, rng=np.random.default_rng(1))
        dy = np.random.default_rng(2).normal(size=x_array.shape)
        y.backward(dy)
        if p == 0 or not training:
            np.testing.assert_array_equal(y.data, x_array)
            np.testing.assert_array_equal(x.grad, dy)
            continue
        if p == 1:
            np.testing.assert_array_equal(y.data, np.zeros_like(x_array))
            continue
        ratio = (y.data / x_array).reshape(*x_array.shape[:2], -1)
        kept = ratio[..., 0]
        assert set(np.round(kept, 12).ravel().tolist()) <= {0.0, 2.0}
        np.testing.assert_allclose(ratio, np.broadcast_to(kept[..., None], ratio.shape))
        np.testing.assert_allclose(x.grad, dy * y.data / x_array)
