"""PyTorch's own OpInfo samples for the convolutions, fed through convprop.nn.functional.

Every sample of ``op_db`` for conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d and
conv_transpose3d (each has one OpInfo, variant "") runs through convprop's graph and through
torch's autograd (float64, ``sample_inputs("cpu", float64, requires_grad=True)``): the
outputs must agree (rtol 1e-10, atol 1e-12), and so must the gradients of x, weight and bias
for the same seeded random upstream gradient. The samples cover the padding strings "same"
(even kernels and dilation included) and "valid", one-element and full tuples, groups
(depthwise included), output_padding with dilation, unbatched inputs and bias None.

No sample is refused: the list of samples convprop does not take is empty, and the test
asserts exactly that (every sample must run and agree). The one argument form where the two
libraries differ is not drawn by op_db: padding="same" with a stride above 1, which PyTorch
refuses and convprop computes by TensorFlow's rule (output ceil(H / stride)).

Beyond the samples, PyTorch's forms op_db does not draw, against torch as well: an empty
batch (N = 0) for the six ops, at the Tensor level and for the array pairs of conv2d and
conv_transpose2d with every algorithm (dw and db are then empty sums, zeros: B1, B2), and
one-element per-axis arguments ((2,) for (2, 2) or (2, 2, 2)) for the 2-D and 3-D ops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop.errors import ParameterError
from convprop.functional.conv2d import ALGORITHMS, conv2d_backward, conv2d_forward
from convprop.functional.conv_transpose2d import (
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from convprop.nn import functional as F

pytestmark = pytest.mark.xdist_group("opinfo")  # one worker imports op_db once

OPS: dict[str, Callable[..., Any]] = {
    "nn.functional.conv1d": F.conv1d,
    "nn.functional.conv2d": F.conv2d,
    "nn.functional.conv3d": F.conv3d,
    "nn.functional.conv_transpose1d": F.conv_transpose1d,
    "nn.functional.conv_transpose2d": F.conv_transpose2d,
    "nn.functional.conv_transpose3d": F.conv_transpose3d,
}
SAMPLES = {  # how many samples torch==2.13.0 (pinned in the test extra) draws for each op
    "nn.functional.conv1d": 10,
    "nn.functional.conv2d": 30,
    "nn.functional.conv3d": 20,
    "nn.functional.conv_transpose1d": 10,
    "nn.functional.conv_transpose2d": 12,
    "nn.functional.conv_transpose3d": 10,
}
RTOL, ATOL = 1e-10, 1e-12
EVEN_SAME = "ignore:Using padding='same' with even kernel lengths:UserWarning"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@cache
def _op_infos() -> dict[tuple[str, str], Any]:
    from torch.testing._internal.common_methods_invocations import op_db

    return {(op.name, op.variant_test_name): op for op in op_db}


def _to_ours(value: Any, tensors: list[tuple[torch.Tensor, convprop.Tensor]]) -> Any:
    """torch values as convprop's: Tensors keep requires_grad and are remembered in pairs."""
    if isinstance(value, torch.Tensor):
        ours = convprop.tensor(value.detach().numpy().copy(), requires_grad=value.requires_grad)
        tensors.append((value, ours))
        return ours
    if isinstance(value, (list, tuple)):
        return type(value)(_to_ours(v, tensors) for v in value)
    return value


def _agree(ours: convprop.Tensor, theirs: torch.Tensor, pairs: list[Any], seed: int, where: str):
    """Forward equal, then every differentiable input's gradient for one random dy."""
    assert ours.shape == tuple(theirs.shape), where
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=RTOL, atol=ATOL,
                               err_msg=f"{where}: forward")  # fmt: skip
    needs = [(t, o) for t, o in pairs if t.requires_grad]
    assert needs, where
    dy = np.random.default_rng(seed).standard_normal(ours.shape)
    expected = torch.autograd.grad(theirs, [t for t, _ in needs], torch.tensor(dy))
    ours.backward(dy)
    for (_, o), wanted in zip(needs, expected, strict=True):
        assert o.grad is not None, where
        np.testing.assert_allclose(o.grad, wanted.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{where}: gradient of {o.shape}")  # fmt: skip


def test_the_ops_run_here_are_every_conv_opinfo_of_op_db() -> None:
    names = {key for key in _op_infos() if key[0] in OPS}
    assert names == {(name, "") for name in OPS}


@pytest.mark.filterwarnings(EVEN_SAME)
@pytest.mark.parametrize("name", list(OPS), ids=lambda n: n.rsplit(".", 1)[1])
def test_every_opinfo_sample_matches_pytorch_and_none_is_refused(name: str) -> None:
    op_info = _op_infos()[(name, "")]
    samples = list(op_info.sample_inputs("cpu", torch.float64, requires_grad=True))
    assert len(samples) == SAMPLES[name]
    for number, sample in enumerate(samples):
        pairs: list[tuple[torch.Tensor, convprop.Tensor]] = []
        x = _to_ours(sample.input, pairs)
        args = _to_ours(tuple(sample.args), pairs)
        kwargs = {key: _to_ours(value, pairs) for key, value in sample.kwargs.items()}
        where = f"{name} sample {number}: input {tuple(sample.input.shape)}, kwargs {kwargs}"
        ours = OPS[name](x, *args, **kwargs)  # any refusal fails here: none is expected
        theirs = op_info.op(sample.input, *sample.args, **sample.kwargs)
        _agree(ours, theirs, pairs, number, where)


EMPTY_BATCH = {  # op: (x shape with N = 0, weight shape, bias size, hyperparameters)
    "conv1d": ((0, 4, 7), (6, 2, 4), 6, {"padding": "same", "dilation": 3, "groups": 2}),
    "conv2d": ((0, 3, 6, 5), (4, 3, 3, 2), 4, {"stride": (2, 1), "padding": (1, 0)}),
    "conv3d": ((0, 2, 4, 5, 3), (3, 2, 2, 2, 2), 3, {"padding": "same", "dilation": 2}),
    "conv_transpose1d": ((0, 4, 5), (4, 3, 3), 6, {"stride": 2, "output_padding": 1,
                                                    "groups": 2}),
    "conv_transpose2d": ((0, 2, 4, 3), (2, 3, 3, 2), 3, {"stride": 2, "padding": (1, 0),
                                                          "dilation": (1, 2)}),
    "conv_transpose3d": ((0, 2, 3, 2, 3), (2, 2, 2, 3, 2), 2, {"stride": (1, 2, 1),
                                                               "output_padding": (0, 1, 0)}),
}  # fmt: skip


@pytest.mark.filterwarnings(EVEN_SAME)
@pytest.mark.parametrize("name", list(EMPTY_BATCH))
def test_an_empty_batch_gives_pytorch_s_empty_output_and_zero_weight_gradients(name: str) -> None:
    x_shape, w_shape, bias_size, hyper = EMPTY_BATCH[name]
    rng = np.random.default_rng(3)
    torch_ins = [torch.tensor(rng.standard_normal(shape), requires_grad=True)
                 for shape in (x_shape, w_shape, (bias_size,))]  # fmt: skip
    pairs: list[tuple[torch.Tensor, convprop.Tensor]] = []
    ours_ins = _to_ours(torch_ins, pairs)
    theirs = getattr(torch.nn.functional, name)(*torch_ins, **hyper)
    ours = getattr(F, name)(*ours_ins, **hyper)
    assert ours.shape[0] == 0 and ours.shape == tuple(theirs.shape)
    _agree(ours, theirs, pairs, 0, f"{name} on an empty batch")
    assert not ours_ins[1].grad.any() and not ours_ins[2].grad.any()  # (B2), (B1): empty sums


@pytest.mark.parametrize("algorithm", ["auto", *ALGORITHMS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_pairs_take_an_empty_batch_with_every_algorithm(algorithm: str, dtype) -> None:
    x = np.zeros((0, 2, 6, 6), dtype)  # depthwise 3x3 at stride 1: every algorithm applies
    w = np.random.default_rng(4).standard_normal((2, 1, 3, 3)).astype(dtype)
    b = np.ones(2, dtype)
    hyper = {"padding": 1, "groups": 2, "algorithm": algorithm}
    y, cache = conv2d_forward(x, w, b, **hyper)
    assert y.shape == (0, 2, 6, 6) and y.dtype == dtype
    dx, dw, db = conv2d_backward(np.zeros_like(y), cache)
    assert dx is not None and db is not None
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)
    assert dx.dtype == dw.dtype == db.dtype == dtype and not dw.any() and not db.any()
    assert conv2d_backward(np.zeros_like(y), cache, need_dx=False)[0] is None
    t, t_cache = conv_transpose2d_forward(x, w, None, **hyper)
    assert t.shape == (0, 2, 6, 6) and t.dtype == dtype
    tdx, tdw, tdb = conv_transpose2d_backward(np.zeros_like(t), t_cache)
    assert tdx is not None and tdx.shape == x.shape and tdb is None
    assert tdw.shape == w.shape and not tdw.any()


def test_an_empty_batch_still_checks_the_algorithm_and_the_upstream_gradient() -> None:
    x, w = np.zeros((0, 2, 6, 6)), np.ones((4, 2, 3, 3))
    with pytest.raises(NotImplementedError, match="algorithm 'winograd' cannot compute"):
        conv2d_forward(x, w, stride=2, algorithm="winograd")
    with pytest.raises(NotImplementedError, match="algorithm 'depthwise' cannot compute"):
        conv_transpose2d_forward(x, np.ones((2, 4, 3, 3)), algorithm="depthwise")
    with pytest.raises(ParameterError, match="unknown algorithm"):
        conv2d_forward(x, w, algorithm="gemm")
    _, cache = conv2d_forward(x, w)
    with pytest.raises(ValueError, match=r"conv2d_backward: dy.shape=\(1, 4, 4, 4\)"):
        conv2d_backward(np.zeros((1, 4, 4, 4)), cache)


ONE_ELEMENT = {  # op: (x shape, weight shape, one-element hyperparameters)
    "conv2d": ((2, 2, 7, 6), (3, 2, 2, 3), {"stride": (2,), "padding": [1], "dilation": (2,)}),
    "conv3d": ((1, 2, 5, 4, 6), (2, 2, 2, 2, 3), {"stride": [2], "padding": (1,),
                                                  "dilation": (1,)}),
    "conv_transpose2d": ((2, 2, 4, 3), (2, 3, 2, 3), {"stride": (2,), "padding": (1,),
                                                      "output_padding": [1], "dilation": (2,)}),
    "conv_transpose3d": ((1, 2, 3, 2, 3), (2, 2, 2, 2, 3), {"stride": [3], "padding": (1,),
                                                            "output_padding": (2,),
                                                            "dilation": [1]}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ONE_ELEMENT))
def test_one_element_per_axis_arguments_are_expanded_as_pytorch_does(name: str) -> None:
    x_shape, w_shape, hyper = ONE_ELEMENT[name]
    rng = np.random.default_rng(5)
    torch_ins = [torch.tensor(rng.standard_normal(shape), requires_grad=True)
                 for shape in (x_shape, w_shape)]  # fmt: skip
    pairs: list[tuple[torch.Tensor, convprop.Tensor]] = []
    ours = getattr(F, name)(*_to_ours(torch_ins, pairs), **hyper)
    theirs = getattr(torch.nn.functional, name)(*torch_ins, **hyper)
    _agree(ours, theirs, pairs, 1, f"{name} with {hyper}")


@pytest.mark.parametrize(
    ("name", "hyper", "message"),
    [
        ("conv2d", {"stride": (0,)}, r"conv2d: stride must be >= 1; .*got \(0, 0\)"),
        ("conv2d", {"dilation": (1.5,)}, r"conv2d: dilation must be an int or a pair of ints"),
        ("conv3d", {"padding": (-1,)}, r"conv_nd: padding must be >= 0"),
        ("conv_transpose2d", {"output_padding": (2,)}, r"output_padding must be smaller"),
    ],
)
def test_one_element_arguments_are_still_validated(name: str, hyper: Any, message: str) -> None:
    dims = 3 if name.endswith("3d") else 2
    x, w = np.ones((1, 2) + (4,) * dims), np.ones((2, 2) + (2,) * dims)
    with pytest.raises(ParameterError, match=message):
        getattr(F, name)(x, w, **hyper)
