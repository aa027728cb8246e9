"""Sequential runs a BatchNorm or Conv2d layer and the ReLU after it as one op (BR1–BR4,
CB1–CB4): the same values, gradients and running statistics as the layers called one by one;
not for subclasses with their own forward, nor while a summary observes each module."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convprop
from convprop import nn


class _OwnBatchNorm(nn.BatchNorm2d):
    """A subclass with its own forward: Sequential must call it, not fuse past it."""

    def forward(self, x: Any) -> Any:
        return super().forward(x) * 2.0


def _block(generator: int, norm: type = nn.BatchNorm2d, act: type = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False, rng=generator, dtype="float64"),
        norm(4, dtype="float64"),
        act(),
        nn.Conv2d(4, 2, 1, rng=generator + 1, dtype="float64"),
    )


def _run(
    net: nn.Sequential, x: Any, fuse: bool, back: int | None = None
) -> tuple[Any, list[Any], str]:
    """The output, the gradients of x and every parameter, and the op that made the last
    module's input, through the Sequential (which fuses) or through its modules called one by
    one (which does not)."""
    net.zero_grad()
    tensor = convprop.Tensor(x, requires_grad=True)
    if fuse:
        out = net(tensor)
    else:
        out = tensor
        for module in net:
            out = module(out)
    node = out._node
    for _ in range((0 if len(net) == 3 else 1) if back is None else back):
        node = node.sources[0]
    (out * out).sum().backward()
    grads = [np.array(g) for g in (tensor.grad, *(p.grad for p in net.parameters()))]
    return out, grads, node.name


@pytest.mark.parametrize("training", [True, False])
def test_sequential_runs_batch_norm_and_relu_as_one_op_br1_to_br4(training: bool) -> None:
    """Sequential(..., BatchNorm2d, ReLU, ...) records one batch_norm_relu node, with the
    values, gradients and running statistics of the two layers called one by one."""
    x = np.random.default_rng(0).normal(size=(3, 3, 5, 4))
    fused_net, plain_net = _block(0), _block(0)
    for net in (fused_net, plain_net):
        net.train(training)
    out_fused, grads_fused, op_fused = _run(fused_net, x, fuse=True)
    out_plain, grads_plain, op_plain = _run(plain_net, x, fuse=False)
    assert (op_fused, op_plain) == ("batch_norm_relu", "relu")
    np.testing.assert_allclose(out_fused.data, out_plain.data, rtol=1e-13, atol=1e-14)
    for a, b in zip(grads_fused, grads_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    for key, value in plain_net.state_dict().items():
        np.testing.assert_array_equal(fused_net.state_dict()[key], value, err_msg=key)


@pytest.mark.parametrize(
    ("norm", "act"),
    [(_OwnBatchNorm, nn.ReLU), (nn.BatchNorm2d, nn.LeakyReLU), (nn.BatchNorm2d, nn.Sigmoid)],
)
def test_sequential_fuses_only_convprops_own_batch_norm_before_relu(norm: type, act: type) -> None:
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    _, _, op = _run(_block(2, norm, act), x, fuse=True)
    assert op != "batch_norm_relu"


def test_sequential_does_not_fuse_while_a_summary_observes_each_layer() -> None:
    net = _block(3)
    table = net.summary((2, 3, 4, 4))
    assert "BatchNorm2d" in table and "ReLU" in table  # a row for each layer


def test_sequential_fuses_batch_norm_1d_and_relu_on_n_c_inputs() -> None:
    net = nn.Sequential(nn.Linear(5, 4, rng=0, dtype="float64"), nn.BatchNorm1d(4, dtype="float64"),
                        nn.ReLU())  # fmt: skip
    x = np.random.default_rng(2).normal(size=(6, 5))
    out_fused, grads_fused, op = _run(net, x, fuse=True)
    out_plain, grads_plain, _ = _run(net, x, fuse=False)
    assert op == "batch_norm_relu" and out_fused.shape == (6, 4)
    np.testing.assert_allclose(out_fused.data, out_plain.data, rtol=1e-13, atol=1e-14)
    for a, b in zip(grads_fused, grads_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


class _OwnConv(nn.Conv2d):
    """A subclass with its own forward: Sequential must call it, not fuse past it."""

    def forward(self, x: Any) -> Any:
        return super().forward(x) + 1.0


def _conv_block(generator: int, conv: type = nn.Conv2d, mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(
        conv(3, 4, 3, padding=1, padding_mode=mode, rng=generator, dtype="float64"),
        nn.ReLU(),
        nn.Conv2d(4, 2, 1, rng=generator + 1, dtype="float64"),
    )


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_sequential_runs_conv2d_and_relu_as_one_op_cb1_to_cb4(mode: str) -> None:
    """Sequential(Conv2d, ReLU, ...) records one conv2d_relu node, with the values and
    gradients of the two layers called one by one, bit for bit."""
    x = np.random.default_rng(4).normal(size=(2, 3, 6, 5))
    fused_net, plain_net = _conv_block(5, mode=mode), _conv_block(5, mode=mode)
    out_fused, grads_fused, op_fused = _run(fused_net, x, fuse=True, back=1)
    out_plain, grads_plain, op_plain = _run(plain_net, x, fuse=False, back=1)
    assert (op_fused, op_plain) == ("conv2d_relu", "relu")
    np.testing.assert_array_equal(out_fused.data, out_plain.data)
    for a, b in zip(grads_fused, grads_plain, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sequential_calls_a_conv2d_subclass_with_its_own_forward() -> None:
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    _, _, op = _run(_conv_block(6, _OwnConv), x, fuse=True, back=1)
    assert op == "relu"
