"""PyTorch's own test samples (OpInfo) for the pooling ops, fed through convprop.nn.functional.

Every sample of ``op_db`` for each op convprop has (float64, requires_grad) is run through
convprop's graph and through torch's autograd with the same seeded random dy: the outputs,
the indices and the input gradients must agree (1e-10 relative). Nothing is left out; the
one place where the comparison changes witness is max_unpool2d's main variant where
max_pool2d named one cell twice in a plane: there (MU3) gives the gradient only to the entry
written, PyTorch to every entry (docs/derivations.md, section 23), so the gradient is checked
against finite differences of convprop's forward instead, as PyTorch's own gradcheck skips
those samples (its "grad" variant keeps only distinct indices, and matches PyTorch in full).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch.testing._internal.common_methods_invocations import op_db

import convprop
import convprop.nn.functional as F
from convprop.finite_differences import numerical_gradient


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


OURS = {
    "nn.functional.max_pool1d": F.max_pool1d,
    "nn.functional.max_pool2d": F.max_pool2d,
    "nn.functional.max_pool3d": F.max_pool3d,
    "nn.functional.avg_pool1d": F.avg_pool1d,
    "nn.functional.avg_pool2d": F.avg_pool2d,
    "nn.functional.avg_pool3d": F.avg_pool3d,
    "nn.functional.adaptive_avg_pool1d": F.adaptive_avg_pool1d,
    "nn.functional.adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "nn.functional.adaptive_max_pool2d": F.adaptive_max_pool2d,
    "nn.functional.max_unpool2d": F.max_unpool2d,
}
VARIANTS = [(name, "") for name in OURS] + [("nn.functional.max_unpool2d", "grad")]


def _op_info(name: str, variant: str) -> Any:
    (info,) = [op for op in op_db if op.name == name and op.variant_test_name == variant]
    return info


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, list):
        return [_numpy(v) for v in value]
    if isinstance(value, tuple) and not isinstance(value, torch.Size):
        return tuple(_numpy(v) for v in value)
    return value


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def _repeats_an_index(indices: np.ndarray) -> bool:
    planes = indices.reshape(-1, int(np.prod(indices.shape[-2:])))
    return any(len(np.unique(plane)) < plane.size for plane in planes)


@pytest.mark.parametrize(("name", "variant"), VARIANTS, ids=[f"{n}{v}" for n, v in VARIANTS])
def test_every_opinfo_sample_agrees_with_torch(name: str, variant: str) -> None:
    info = _op_info(name, variant)
    samples = list(info.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert samples
    finite_difference_witness = 0
    for number, sample in enumerate(samples):
        args, kwargs = _numpy(sample.args), _numpy(sample.kwargs)
        where = f"{name} sample {number}: input {tuple(sample.input.shape)}, args {args!r}, "
        where += f"kwargs {kwargs!r}"
        x = convprop.tensor(sample.input.detach().numpy().copy(), requires_grad=True)
        out = OURS[name](x, *args, **kwargs)
        x_t = sample.input.detach().clone().requires_grad_(True)
        expected = info.op(x_t, *sample.args, **sample.kwargs)
        y, y_t = _first(out), _first(expected)
        np.testing.assert_allclose(
            y.numpy(), y_t.detach().numpy(), rtol=1e-10, atol=1e-14, err_msg=where
        )
        if isinstance(expected, tuple):  # return_indices
            np.testing.assert_array_equal(out[1].numpy(), expected[1].numpy(), err_msg=where)
        dy = np.random.default_rng(number).standard_normal(y.shape)
        y.backward(dy)
        y_t.backward(torch.tensor(dy))
        indices = args[0] if name.endswith("max_unpool2d") else None
        if indices is not None and _repeats_an_index(indices):
            finite_difference_witness += 1
            numeric = numerical_gradient(
                lambda v, a=args, k=kwargs, d=dy: float(np.sum(OURS[name](v, *a, **k).numpy() * d)),
                sample.input.detach().numpy().copy(),
            )
            np.testing.assert_allclose(x.grad, numeric, atol=1e-8, err_msg=where)
            continue
        np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=where)
    if name.endswith("max_unpool2d"):
        assert (finite_difference_witness > 0) == (variant == "")
