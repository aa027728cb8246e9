"""Tests of Module and the containers: composition, gradients, names, state, modes and dtypes.

* Sequential applies its modules in order and the graph runs their pairs' backwards in
  reverse, bit for bit the explicit chain of array-level pairs; Residual computes
  y = x + f(x) and the graph sends dx = dy + (f's dx) (GR2); both against PyTorch's
  autograd in float64;
* parameter and state_dict names and order are PyTorch's (attribute order, BatchNorm buffers,
  ModuleList / ModuleDict / Identity, Sequential from an OrderedDict and its slices), so that
  weights move between the two libraries by name and by position;
* train()/eval() reach every descendant; load_state_dict checks keys and shapes and copies,
  or returns the keys it could not match; to()/double()/float() move and cast the state;
* a frozen parameter gets no gradient; a module called twice sums its calls' gradients;
  summary lists each call and counts shared parameters once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop import nn
from convprop.backend import cupy_available
from convprop.errors import BackendError, ParameterError, ShapeError
from convprop.functional import (
    batch_norm2d_backward,
    batch_norm2d_forward,
    conv2d_backward,
    conv2d_forward,
    flatten_backward,
    flatten_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    linear_backward,
    linear_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
    tanh_backward,
    tanh_forward,
)
from convprop.nn import Module, Parameter
from convprop.nn import functional as F

F64 = "float64"
RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TorchResidual(torch.nn.Module):
    """y = x + body(x) in PyTorch, the body under convprop's name for it ("body")."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def block_pair(seed: int) -> tuple[nn.Residual, torch.nn.Module]:
    """A residual block conv → BN → ReLU → conv in both libraries, same random state (float64)."""
    rng = np.random.default_rng(seed)
    ours = nn.Residual(
        nn.Sequential(
            nn.Conv2d(3, 3, 3, padding=1, bias=False, rng=rng, dtype=F64),
            nn.BatchNorm2d(3, dtype=F64),
            nn.ReLU(),
            nn.Conv2d(3, 3, 3, padding=1, rng=rng, dtype=F64),
        )
    )
    for param in ours.parameters():  # BN's gamma and beta away from their 1 and 0
        param.data[...] = rng.standard_normal(param.shape) * 0.5
    theirs = TorchResidual(
        torch.nn.Sequential(
            torch.nn.Conv2d(3, 3, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(3),
            torch.nn.ReLU(),
            torch.nn.Conv2d(3, 3, 3, padding=1),
        )
    ).double()
    theirs.load_state_dict(to_torch(ours.state_dict()), strict=True)
    return ours, theirs


def to_torch(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.array(value)) for name, value in state.items()}


def compare_with_torch(ours: Module, theirs: torch.nn.Module, x: np.ndarray, seed: int) -> None:
    """Forward, dx, every parameter gradient and the state after the pass agree."""
    x_ours = convprop.tensor(x, requires_grad=True)
    y = ours(x_ours)
    x_torch = torch.from_numpy(x.copy()).requires_grad_(True)
    y_torch = theirs(x_torch)
    np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=RTOL, atol=ATOL)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(dy)
    y_torch.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(x_ours.grad, x_torch.grad.numpy(), rtol=RTOL, atol=ATOL)
    theirs_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(theirs_params)
    for name, param in ours.named_parameters():
        expected = theirs_params[name].grad.numpy()
        np.testing.assert_allclose(param.grad, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_state[name].numpy(), rtol=RTOL, err_msg=name)


def parameter_gradients(module: Module) -> dict[str, np.ndarray]:
    return {name: param.grad.copy() for name, param in module.named_parameters()}


# ---------------------------------------------------------------------------------------------
# Residual: y = x + f(x); the graph sends dx = dy + (f's dx) (GR2).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_residual_block_matches_torch_autograd(training: bool) -> None:
    ours, theirs = block_pair(0)
    ours.train(training)
    theirs.train(training)
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 4))
    compare_with_torch(ours, theirs, x, seed=2)


def test_residual_gradient_is_dy_plus_the_body_gradient_GR2() -> None:
    ours, _ = block_pair(3)
    twin, _ = block_pair(3)  # the same body, run on its own
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    x_block = convprop.tensor(x, requires_grad=True)
    x_body = convprop.tensor(x, requires_grad=True)
    y = ours(x_block)
    body_y = twin.body(x_body)
    np.testing.assert_array_equal(y.data, x + body_y.data)
    y.backward(dy)
    body_y.backward(dy)
    np.testing.assert_array_equal(x_block.grad, dy + x_body.grad)  # (GR2), bit for bit
    for (name, param), (_, expected) in zip(
        ours.named_parameters(), twin.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(param.grad, expected.grad, err_msg=name)


def test_residual_of_the_identity_sends_twice_dy() -> None:
    x = convprop.tensor(np.random.default_rng(5).standard_normal((2, 3)), requires_grad=True)
    dy = np.random.default_rng(6).standard_normal((2, 3))
    y = nn.Residual(nn.Identity())(x)
    np.testing.assert_array_equal(y.data, 2 * x.data)
    y.backward(dy)
    np.testing.assert_array_equal(x.grad, dy + dy)  # both readers of x send dy (GR2)


def test_residual_on_an_array_input_keeps_the_parameter_gradients() -> None:
    ours, _ = block_pair(5)
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4))
    dy = np.random.default_rng(7).standard_normal(x.shape)
    ours(convprop.tensor(x, requires_grad=True)).backward(dy)
    expected = parameter_gradients(ours)
    ours.zero_grad()
    ours(x).backward(dy)  # an array needs no gradient: dx is not computed
    for name, param in ours.named_parameters():
        np.testing.assert_array_equal(param.grad, expected[name], err_msg=name)


def test_residual_body_must_keep_the_shape() -> None:
    block = nn.Residual(nn.Conv2d(2, 3, 3, padding=1, rng=0))
    with pytest.raises(
        ShapeError,
        match=r"^Residual: the body must keep the shape; expected \(1, 2, 4, 4\), "
        r"got \(1, 3, 4, 4\)$",
    ):
        block(np.zeros((1, 2, 4, 4), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"expected \(1, 2, 4, 4\), got \(1, 2, 2, 2\)"):
        nn.Residual(nn.MaxPool2d(2))(np.zeros((1, 2, 4, 4), dtype=np.float32))


def test_a_second_backward_through_a_released_graph_raises() -> None:
    block = nn.Residual(nn.Sequential(nn.Linear(3, 3, rng=0, dtype=F64), nn.ReLU()))
    x = np.random.default_rng(8).standard_normal((2, 3))
    dy = np.random.default_rng(9).standard_normal((2, 3))
    y = block(x)
    y.backward(dy)
    with pytest.raises(
        RuntimeError,
        match=r"^backward: the graph of add was already released by an earlier backward; "
        r"expected a fresh forward, got a second backward \(pass retain_graph=True",
    ):
        y.backward(dy)
    # with retain_graph the second backward adds the same gradients again (GR2)
    block.zero_grad()
    y = block(x)
    y.backward(dy, retain_graph=True)
    once = parameter_gradients(block)
    y.backward(dy)
    for name, param in block.named_parameters():
        np.testing.assert_array_equal(param.grad, once[name] + once[name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# Sequential.
# ---------------------------------------------------------------------------------------------


def sequential_pair(seed: int) -> tuple[nn.Sequential, torch.nn.Module]:
    rng = np.random.default_rng(seed)
    ours = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=rng, dtype=F64),
        nn.BatchNorm2d(4, dtype=F64),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5, rng=rng, dtype=F64),
        nn.Tanh(),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.LeakyReLU(0.1),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 3, 5),
        torch.nn.Tanh(),
    ).double()
    theirs.load_state_dict(to_torch(ours.state_dict()), strict=True)
    return ours, theirs


def test_sequential_matches_torch_autograd() -> None:
    ours, theirs = sequential_pair(9)
    compare_with_torch(ours, theirs, np.random.default_rng(10).standard_normal((3, 2, 6, 7)), 11)


def sequential_by_pairs(
    net: nn.Sequential, x: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The pass of ``sequential_pair``'s network as the explicit chain of array-level pairs:
    each forward in order, then each backward in reverse order.

    Returns y, dx, the parameter gradients and the BatchNorm running statistics after the pass.
    """
    conv, norm, leaky, pool, _, fc, _ = list(net)
    h1, conv_cache = conv2d_forward(
        x, conv.weight.data, conv.bias.data, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, algorithm=conv.algorithm,
    )  # fmt: skip
    h2, norm_cache = batch_norm2d_forward(
        h1, norm.weight.data, norm.bias.data, norm.running_mean, norm.running_var,
        training=norm.training, momentum=norm.momentum, eps=norm.eps,
    )  # fmt: skip
    h3, leaky_cache = leaky_relu_forward(h2, negative_slope=leaky.negative_slope)
    h4, pool_cache = max_pool2d_forward(
        h3, pool.kernel_size, stride=pool.stride, padding=pool.padding, ceil_mode=pool.ceil_mode
    )
    h5, flatten_cache = flatten_forward(h4, start_dim=1)
    h6, fc_cache = linear_forward(h5, fc.weight.data, fc.bias.data)
    y, tanh_cache = tanh_forward(h6)
    grad = tanh_backward(dy, tanh_cache)
    grad, dw_fc, db_fc = linear_backward(grad, fc_cache)
    grad = flatten_backward(grad, flatten_cache)
    grad = max_pool2d_backward(grad, pool_cache)
    grad = leaky_relu_backward(grad, leaky_cache)
    grad, dgamma, dbeta = batch_norm2d_backward(grad, norm_cache)
    dx, dw_conv, db_conv = conv2d_backward(grad, conv_cache)
    grads = {
        "0.weight": dw_conv,
        "0.bias": db_conv,
        "1.weight": dgamma,
        "1.bias": dbeta,
        "5.weight": dw_fc,
        "5.bias": db_fc,
    }
    running = {
        "1.running_mean": norm_cache.new_running_mean,
        "1.running_var": norm_cache.new_running_var,
    }
    return y, dx, grads, running


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_sequential_graph_runs_the_chain_of_pairs_in_reverse(training: bool) -> None:
    ours, _ = sequential_pair(12)
    chain, _ = sequential_pair(12)
    ours.train(training)
    chain.train(training)
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 2, 6, 6))
    dy = rng.standard_normal((2, 5))
    y_pairs, dx_pairs, grads, running = sequential_by_pairs(chain, x, dy)
    x_ours = convprop.tensor(x, requires_grad=True)
    y = ours(x_ours)
    np.testing.assert_array_equal(y.data, y_pairs)
    y.backward(dy)
    np.testing.assert_array_equal(x_ours.grad, dx_pairs)
    assert [name for name, _ in ours.named_parameters()] == list(grads)
    for name, param in ours.named_parameters():
        np.testing.assert_array_equal(param.grad, grads[name], err_msg=name)
    state = ours.state_dict()
    for name, value in running.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)
    assert int(state["1.num_batches_tracked"]) == int(training)


def test_sequential_on_an_array_input_keeps_the_parameter_gradients() -> None:
    ours, _ = sequential_pair(15)
    x = np.random.default_rng(16).standard_normal((2, 2, 6, 6))
    dy = np.random.default_rng(17).standard_normal((2, 5))
    ours(convprop.tensor(x, requires_grad=True)).backward(dy)
    expected = parameter_gradients(ours)
    ours.zero_grad()
    ours(x).backward(dy)  # an array needs no gradient: the first conv skips dx
    for name, param in ours.named_parameters():
        np.testing.assert_array_equal(param.grad, expected[name], err_msg=name)


def test_sequential_behaves_as_a_list_of_modules() -> None:
    layers = [nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1)]
    net = nn.Sequential(*layers)
    assert len(net) == 3
    assert list(net) == layers
    assert net[0] is layers[0] and net[-1] is layers[2]
    assert list(net.modules()) == [net, *layers]
    assert net.parameters() == [
        layers[0].weight,
        layers[0].bias,
        layers[2].weight,
        layers[2].bias,
    ]
    assert repr(net).splitlines() == [
        "Sequential(",
        "  (0): Linear(in_features=3, out_features=4, bias=True)",
        "  (1): ReLU()",
        "  (2): Linear(in_features=4, out_features=2, bias=True)",
        ")",
    ]
    empty = nn.Sequential()
    x = np.ones((2, 3))
    t = convprop.tensor(x)
    assert empty(x) is x and empty(t) is t


def test_sequential_refuses_what_is_not_a_module() -> None:
    with pytest.raises(
        TypeError, match=r"^Sequential: item 1 must be a Module; expected a Module, got function$"
    ):
        nn.Sequential(nn.ReLU(), lambda x: x)  # type: ignore[arg-type]


def test_base_module_has_no_computation() -> None:
    module = Module()
    with pytest.raises(NotImplementedError, match=r"Module\.forward is not implemented"):
        module(np.ones(2))
    assert not hasattr(module, "backward")  # no per-module backward: the graph runs it
    assert not hasattr(module, "_cache")
    assert module.config() == {} and repr(module) == "Module()"


# ---------------------------------------------------------------------------------------------
# Names and order: PyTorch's.
# ---------------------------------------------------------------------------------------------


def every_layer_pair() -> tuple[nn.Sequential, torch.nn.Module]:
    """Every layer type once, nested containers, absent biases and a BN without affine."""
    ours = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Residual(
            nn.Sequential(
                nn.Conv2d(4, 4, 3, padding=1, bias=False, rng=1),
                nn.BatchNorm2d(4, affine=False),
                nn.Sigmoid(),
            )
        ),
        nn.ConvTranspose2d(4, 2, 2, stride=2, rng=2),
        nn.AvgPool2d(2),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1, rng=3),
        nn.Linear(8, 6, bias=False, rng=4),
        nn.Tanh(),
        nn.Linear(6, 3, rng=5),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        TorchResidual(
            torch.nn.Sequential(
                torch.nn.Conv2d(4, 4, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(4, affine=False),
                torch.nn.Sigmoid(),
            )
        ),
        torch.nn.ConvTranspose2d(4, 2, 2, stride=2),
        torch.nn.AvgPool2d(2),
        torch.nn.MaxPool2d(2),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(8, 6, bias=False),
        torch.nn.Tanh(),
        torch.nn.Linear(6, 3),
    )
    return ours, theirs


def test_parameter_and_state_names_and_order_are_pytorchs() -> None:
    ours, theirs = every_layer_pair()
    assert [name for name, _ in ours.named_parameters()] == [
        name for name, _ in theirs.named_parameters()
    ]
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    # state_dict: each module's parameters, then its buffers, then its children — by position
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, value), tensor in zip(
        ours.state_dict().items(), theirs.state_dict().values(), strict=True
    ):
        assert tuple(value.shape) == tuple(tensor.shape), name
    assert [name for name, _ in ours.named_buffers()] == [
        name for name, _ in theirs.named_buffers()
    ]
    # and the whole state loads into PyTorch's network, strictly, and runs the same
    ours.eval()
    theirs.eval()
    theirs.load_state_dict(to_torch(ours.state_dict()), strict=True)
    x = np.random.default_rng(18).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ours(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=2e-5, atol=2e-6
    )


def test_torch_state_dict_loads_into_convprop() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ours, theirs = every_layer_pair()
    theirs.train()
    theirs(torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)))  # BN statistics
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name], value.numpy(), err_msg=name)
    assert int(ours.state_dict()["1.num_batches_tracked"]) == 1


# ---------------------------------------------------------------------------------------------
# train() / eval() reach every descendant.
# ---------------------------------------------------------------------------------------------


def test_train_and_eval_propagate_to_every_descendant() -> None:
    net, _ = every_layer_pair()
    assert all(module.training for module in net.modules())
    assert net.eval() is net
    assert not any(module.training for module in net.modules())
    assert net.train() is net
    assert all(module.training for module in net.modules())
    net.train(False)
    assert not any(module.training for module in net.modules())


def test_nested_dropout_and_batch_norm_follow_the_mode() -> None:
    rng = np.random.default_rng(19)
    norm = nn.BatchNorm2d(2, dtype=F64)
    net = nn.Sequential(nn.Residual(nn.Sequential(nn.Dropout(0.5, rng=0), norm)))
    x = rng.standard_normal((4, 2, 3, 3)) + 3.0
    net(x)  # training: a random mask, batch statistics, running statistics updated
    assert int(norm.state_dict()["num_batches_tracked"]) == 1
    running = {k: np.array(v) for k, v in norm.state_dict().items()}
    net.eval()
    y = net(x)
    # eval: dropout is the identity and BN normalises with the running statistics
    mean = running["running_mean"].reshape(1, 2, 1, 1)
    var = running["running_var"].reshape(1, 2, 1, 1)
    np.testing.assert_allclose(y, x + (x - mean) / np.sqrt(var + norm.eps), rtol=1e-12)
    np.testing.assert_array_equal(net(x), y)  # no randomness left
    for key, value in norm.state_dict().items():
        np.testing.assert_array_equal(value, running[key])


def test_zero_grad_reaches_nested_parameters() -> None:
    ours, _ = block_pair(20)
    x = np.random.default_rng(21).standard_normal((2, 3, 4, 4))
    ours(x).backward(np.random.default_rng(22).standard_normal(x.shape))
    assert all(param.grad.any() for param in ours.parameters())
    ours.zero_grad()
    assert not any(param.grad.any() for param in ours.parameters())


# ---------------------------------------------------------------------------------------------
# load_state_dict and to().
# ---------------------------------------------------------------------------------------------


def test_load_state_dict_copies_arrays_and_takes_their_dtype() -> None:
    source, _ = sequential_pair(23)  # float64
    target = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=99),
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5, rng=98),
        nn.Tanh(),
    )  # float32
    state = source.state_dict()
    target.load_state_dict(state)
    for name, value in target.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
        assert value.dtype == state[name].dtype
        assert value is not state[name]  # a copy: later changes to the source do not leak
    assert all(param.grad.dtype == np.float64 for param in target.parameters())
    x = np.random.default_rng(24).standard_normal((2, 2, 6, 6))
    np.testing.assert_array_equal(target(x), source(x))


def test_load_state_dict_with_wrong_keys_or_shapes_changes_nothing() -> None:
    net = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm2d(2))
    before = {k: np.array(v) for k, v in net.state_dict().items()}
    good = {k: np.array(v) for k, v in before.items()}

    missing = dict(good)
    del missing["1.running_var"]
    with pytest.raises(
        KeyError, match=r"load_state_dict: keys do not match; .*missing \['1.running_var'\]"
    ):
        net.load_state_dict(missing)
    extra = {**good, "2.weight": np.zeros(2, dtype=np.float32)}
    with pytest.raises(KeyError, match=r"unexpected \['2.weight'\]"):
        net.load_state_dict(extra)
    renamed = {k.replace("0.", "first."): v for k, v in good.items()}
    with pytest.raises(KeyError, match=r"missing \['0.bias', '0.weight'\], unexpected"):
        net.load_state_dict(renamed)
    wrong_shape = {**good, "0.weight": np.zeros((3, 2), dtype=np.float32)}
    wrong_shape["1.bias"] = np.zeros(5, dtype=np.float32)  # later keys are left alone too
    with pytest.raises(
        ShapeError,
        match=r"^load_state_dict: 0.weight has the wrong shape; expected \(2, 3\), got \(3, 2\)$",
    ):
        net.load_state_dict(wrong_shape)
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_to_cpu_keeps_numpy_arrays_and_a_pending_backward() -> None:
    net, _ = sequential_pair(25)
    twin, _ = sequential_pair(25)
    x = np.random.default_rng(26).standard_normal((1, 2, 6, 6))
    dy = np.random.default_rng(27).standard_normal((1, 5))
    y = net(x)
    assert net.to("cpu") is net
    assert all(isinstance(value, np.ndarray) for value in net.state_dict().values())
    np.testing.assert_array_equal(net(x).data, y.data)
    y.backward(dy)  # the caches live in the graph, not in the modules
    twin(x).backward(dy)
    for (name, param), expected in zip(net.named_parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(param.grad, expected.grad, err_msg=name)


def test_to_an_unknown_device_is_refused_even_without_arrays() -> None:
    for module in (nn.ReLU(), nn.Linear(2, 2, rng=0)):
        with pytest.raises(
            ParameterError,
            match=r"\.to: unknown target; expected 'cpu', 'cuda', 'float32' or 'float64', "
            r"got 'tpu'$",
        ):
            module.to("tpu")


@pytest.mark.skipif(cupy_available(), reason="needs a machine without CuPy")
def test_to_cuda_without_cupy_says_what_to_install() -> None:
    with pytest.raises(BackendError, match=r"needs CuPy"):
        nn.Linear(2, 2, rng=0).to("cuda")


def test_double_float_and_to_a_dtype_cast_the_floating_state() -> None:
    net, _ = every_layer_pair()  # float32, with BatchNorm's int64 counter
    before = {name: np.array(value) for name, value in net.state_dict().items()}
    assert net.double() is net
    for name, value in net.state_dict().items():
        expected = np.float64 if before[name].dtype == np.float32 else np.int64
        assert value.dtype == expected, name
        np.testing.assert_array_equal(value, before[name], err_msg=name)  # exact widening
    assert all(param.grad.dtype == np.float64 for param in net.parameters())
    net.eval()
    x = np.random.default_rng(28).standard_normal((2, 1, 8, 8))
    assert net(x).dtype == np.float64
    assert net.float() is net
    for name, value in net.state_dict().items():
        assert value.dtype == before[name].dtype, name
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert all(param.grad.dtype == np.float32 for param in net.parameters())
    assert net.to("float64") is net
    assert {value.dtype for value in net.state_dict().values()} == {
        np.dtype(np.float64),
        np.dtype(np.int64),
    }
    with pytest.raises(ParameterError, match=r"^Sequential\.to: unknown target; .*'float16'$"):
        net.to("float16")


# ---------------------------------------------------------------------------------------------
# ModuleList, ModuleDict, Identity; Sequential from an OrderedDict; slicing.
# ---------------------------------------------------------------------------------------------


class Tower(Module):
    """Identity stem → a ModuleList of blocks → two heads in a ModuleDict, summed."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Identity(54, unused="ignored")  # PyTorch's Identity takes any arguments
        self.blocks = nn.ModuleList(
            [nn.Conv2d(2, 2, 3, padding=1, rng=i, dtype=F64) for i in (0, 1)]
        )
        self.blocks.append(nn.BatchNorm2d(2, dtype=F64))
        self.heads = nn.ModuleDict(
            {
                "logits": nn.Linear(8, 3, rng=2, dtype=F64),
                "shift": nn.Linear(8, 1, bias=False, rng=3, dtype=F64),
            }
        )

    def forward(self, x: Any) -> Any:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = F.flatten(h, 1)
        return self.heads["logits"](h) + self.heads["shift"](h)  # (N, 3) + (N, 1)


class TorchTower(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Identity(54, unused="ignored")
        self.blocks = torch.nn.ModuleList([torch.nn.Conv2d(2, 2, 3, padding=1) for _ in (0, 1)])
        self.blocks.append(torch.nn.BatchNorm2d(2))
        self.heads = torch.nn.ModuleDict(
            {"logits": torch.nn.Linear(8, 3), "shift": torch.nn.Linear(8, 1, bias=False)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        h = torch.flatten(h, 1)
        return self.heads["logits"](h) + self.heads["shift"](h)


def test_module_list_dict_and_identity_register_as_pytorchs() -> None:
    ours, theirs = Tower(), TorchTower().double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.state_dict())[:4] == [
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
    ]
    assert [name for name, _ in ours.named_modules()] == [
        name for name, _ in theirs.named_modules()
    ]
    assert [name for name, _ in ours.named_buffers()] == [
        name for name, _ in theirs.named_buffers()
    ]
    theirs.load_state_dict(to_torch(ours.state_dict()), strict=True)
    x = np.random.default_rng(29).standard_normal((3, 2, 2, 2))
    compare_with_torch(ours, theirs, x, seed=30)


def test_identity_returns_its_input_itself() -> None:
    x = np.ones((2, 3))
    t = convprop.tensor(x)
    identity = nn.Identity()
    assert identity(x) is x and identity(t) is t
    assert identity.parameters() == [] and identity.state_dict() == {}


def test_module_list_behaves_as_a_list() -> None:
    layers = [nn.Linear(2, 2, rng=i) for i in range(3)]
    modules = nn.ModuleList(layers[:2])
    assert modules.extend([layers[2]]) is modules
    assert len(modules) == 3 and list(modules) == layers
    assert modules[-1] is layers[2]
    assert list(modules[1:]) == layers[1:]
    assert [name for name, _ in modules[1:].named_children()] == ["0", "1"]  # renumbered
    replacement = nn.Linear(2, 2, rng=9)
    modules[1] = replacement
    assert modules[1] is replacement and modules.parameters()[2] is replacement.weight
    assert list(modules.state_dict())[2:4] == ["1.weight", "1.bias"]
    with pytest.raises(TypeError, match=r"^ModuleList: item 3 must be a Module"):
        modules.append(np.ones(2))  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match=r"ModuleList\.forward is not implemented"):
        modules(np.ones((1, 2)))


def test_module_dict_behaves_as_a_dict() -> None:
    first, second = nn.Linear(2, 2, rng=0), nn.ReLU()
    modules = nn.ModuleDict({"first": first})
    modules["second"] = second
    assert list(modules) == ["first", "second"] and len(modules) == 2
    assert list(modules.keys()) == ["first", "second"]
    assert list(modules.values()) == [first, second]
    assert list(modules.items()) == [("first", first), ("second", second)]
    assert "first" in modules and "third" not in modules
    assert modules["first"] is first and modules.first is first
    with pytest.raises(TypeError, match=r"^ModuleDict: item third must be a Module"):
        modules["third"] = "relu"  # type: ignore[assignment]


def test_sequential_from_an_ordered_dict_keeps_the_names_and_slices_as_pytorchs() -> None:
    ours = nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(1, 2, 3, rng=0, dtype=F64)),
                ("act", nn.ReLU()),
                ("flat", nn.Flatten()),
                ("fc", nn.Linear(8, 3, rng=1, dtype=F64)),
            ]
        )
    )
    theirs = torch.nn.Sequential(
        OrderedDict(
            [
                ("conv", torch.nn.Conv2d(1, 2, 3)),
                ("act", torch.nn.ReLU()),
                ("flat", torch.nn.Flatten()),
                ("fc", torch.nn.Linear(8, 3)),
            ]
        )
    )
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.state_dict()) == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert ours.conv is ours[0] and ours.fc is ours[-1]
    head = ours[2:]
    assert isinstance(head, nn.Sequential)
    assert list(head.state_dict()) == list(theirs[2:].state_dict()) == ["fc.weight", "fc.bias"]
    assert list(ours[::2]) == [ours.conv, ours.flat]
    assert head.fc is ours.fc  # a slice shares the modules
    x = np.random.default_rng(31).standard_normal((2, 1, 4, 4))
    np.testing.assert_array_equal(head(ours[:2](x)).data, ours(x).data)


# ---------------------------------------------------------------------------------------------
# Registration by attribute: order, None, buffers.
# ---------------------------------------------------------------------------------------------


class Ordered(Module):
    """Parameters, modules and a buffer assigned interleaved, not in alphabetical order."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = Parameter(np.ones(3))
        self.second = nn.Linear(3, 3, rng=0)
        self.register_buffer("count", np.zeros((), np.int64))
        self.first = nn.Linear(3, 3, rng=1)
        self.offset = Parameter(np.zeros(3))


class TorchOrdered(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))
        self.second = torch.nn.Linear(3, 3)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.first = torch.nn.Linear(3, 3)
        self.offset = torch.nn.Parameter(torch.zeros(3))


def test_attributes_register_in_definition_order_as_pytorchs() -> None:
    ours, theirs = Ordered(), TorchOrdered()
    # each module's parameters, then its buffers, then its children, in assignment order
    assert (
        list(ours.state_dict())
        == list(theirs.state_dict())
        == [
            "scale",
            "offset",
            "count",
            "second.weight",
            "second.bias",
            "first.weight",
            "first.bias",
        ]
    )
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_children()] == ["second", "first"]
    assert ours.scale is ours.parameters()[0] and ours.count.dtype == np.int64


def test_reassigning_a_module_keeps_its_place_as_in_pytorch() -> None:
    ours, theirs = Ordered(), TorchOrdered()
    ours.second = nn.Linear(3, 3, rng=5)
    theirs.second = torch.nn.Linear(3, 3)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_assigning_none_to_a_parameter_removes_it_from_the_state() -> None:
    ours, theirs = nn.Linear(3, 2, rng=0, dtype=F64), torch.nn.Linear(3, 2)
    ours.bias = None
    theirs.bias = None
    assert ours.bias is None
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert ours.parameters() == [ours.weight]
    x = np.random.default_rng(32).standard_normal((4, 3))
    np.testing.assert_array_equal(ours(x).data, x @ ours.weight.data.T)  # no bias added
    with pytest.raises(
        TypeError, match=r"^Linear: bias is a Parameter; expected a Parameter or None, got ndarray$"
    ):
        ours.bias = np.zeros(2)
    ours.bias = Parameter(np.zeros(2))  # a Parameter registers again
    assert list(ours.state_dict()) == ["weight", "bias"]


def test_register_buffer_persistent_or_not() -> None:
    ours, theirs = Module(), torch.nn.Module()
    ours.register_buffer("running", np.zeros(2))
    ours.register_buffer("scratch", np.ones(2), persistent=False)
    theirs.register_buffer("running", torch.zeros(2))
    theirs.register_buffer("scratch", torch.ones(2), persistent=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["running"]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert ours.parameters() == []
    ours.running = np.full(2, 3.0)  # assigning to a buffer's name replaces the buffer
    np.testing.assert_array_equal(ours.state_dict()["running"], [3.0, 3.0])
    ours.load_state_dict({"running": np.full(2, 4.0)})  # strict: the non-persistent one is no key
    np.testing.assert_array_equal(ours.running, [4.0, 4.0])
    ours.float()
    assert ours.scratch.dtype == np.float32  # moved and cast as state, though not saved
    ours.register_buffer("wrapped", convprop.tensor(np.zeros(1)))
    assert isinstance(ours.wrapped, np.ndarray)  # a Tensor is kept as its array


def test_registering_a_buffer_again_as_persistent_saves_it() -> None:
    ours, theirs = Module(), torch.nn.Module()
    ours.register_buffer("stats", np.zeros(2), persistent=False)
    ours.register_buffer("stats", np.ones(2))
    theirs.register_buffer("stats", torch.zeros(2), persistent=False)
    theirs.register_buffer("stats", torch.ones(2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["stats"]


def test_load_state_dict_not_strict_loads_the_common_keys_and_returns_the_others() -> None:
    ours = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm2d(2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm2d(2))
    before = {k: np.array(v) for k, v in ours.state_dict().items()}
    weight = np.random.default_rng(33).standard_normal((2, 3)).astype(np.float32)
    partial = {"0.weight": weight, "2.weight": np.zeros(2, np.float32)}
    result = ours.load_state_dict(partial, strict=False)
    expected = theirs.load_state_dict(to_torch(partial), strict=False)
    missing, unexpected = result
    assert (
        missing
        == result.missing_keys
        == [
            "0.bias",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight",
        ]
    )
    # PyTorch fills a missing num_batches_tracked with 0 (for files of its older versions)
    # instead of reporting it; the other keys are the same
    assert sorted(expected.missing_keys) == [k for k in missing if k != "1.num_batches_tracked"]
    assert unexpected == result.unexpected_keys == expected.unexpected_keys == ["2.weight"]
    np.testing.assert_array_equal(ours[0].weight.data, weight)
    assert ours[0].weight.data is not weight  # copied
    for name, value in ours.state_dict().items():
        if name != "0.weight":
            np.testing.assert_array_equal(value, before[name], err_msg=name)
    with pytest.raises(ShapeError, match=r"^load_state_dict: 0.weight has the wrong shape"):
        ours.load_state_dict({"0.weight": np.zeros((3, 2), np.float32)}, strict=False)


# ---------------------------------------------------------------------------------------------
# Traversal: named_modules, children, apply.
# ---------------------------------------------------------------------------------------------


def test_named_modules_children_and_apply_visit_as_pytorchs() -> None:
    ours, theirs = every_layer_pair()
    assert [name for name, _ in ours.named_modules()] == [
        name for name, _ in theirs.named_modules()
    ]
    assert [type(m).__name__ for _, m in ours.named_modules()][:6] == [
        "Sequential",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Residual",
        "Sequential",
    ]
    assert [name for name, _ in ours.named_modules(prefix="net")][:3] == ["net", "net.0", "net.1"]
    assert list(ours.children()) == list(ours)  # the direct children only
    assert [name for name, _ in ours.named_children()] == [
        name for name, _ in theirs.named_children()
    ]
    ours_visits: list[str] = []
    theirs_visits: list[str] = []
    assert ours.apply(lambda m: ours_visits.append(type(m).__name__)) is ours
    theirs.apply(lambda m: theirs_visits.append(type(m).__name__))
    translate = {"TorchResidual": "Residual"}
    assert ours_visits == [translate.get(name, name) for name in theirs_visits]
    assert ours_visits[-1] == "Sequential" and ours_visits[0] == "Conv2d"  # children first


def test_apply_can_reinitialise_every_layer_of_a_kind() -> None:
    net, _ = every_layer_pair()

    def zero_linear_biases(module: Module) -> None:
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data[...] = 0.0

    net.apply(zero_linear_biases)
    assert not net[-1].bias.data.any()
    assert net[0].bias.data.any()  # other layers untouched


def test_a_module_registered_twice_is_one_child_as_in_pytorch() -> None:
    shared, torch_shared = nn.Linear(2, 2, rng=0), torch.nn.Linear(2, 2)
    ours = nn.Sequential(shared, nn.ReLU(), shared)
    theirs = torch.nn.Sequential(torch_shared, torch.nn.ReLU(), torch_shared)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # both names, as PyTorch
    visits: list[Module] = []
    ours.apply(visits.append)
    assert len(list(ours.children())) == len(list(theirs.children())) == 2
    assert len(visits) == 3


# ---------------------------------------------------------------------------------------------
# Gradients: frozen parameters, and a module called twice (shared weights).
# ---------------------------------------------------------------------------------------------


def test_requires_grad_false_excludes_a_layer_from_the_gradients() -> None:
    ours, _ = sequential_pair(34)
    twin, _ = sequential_pair(34)
    assert ours[0].requires_grad_(False) is ours[0]
    assert [p.requires_grad for p in ours.parameters()] == [False, False, True, True, True, True]
    x = np.random.default_rng(35).standard_normal((2, 2, 6, 6))
    dy = np.random.default_rng(36).standard_normal((2, 5))
    x_ours, x_twin = convprop.tensor(x, requires_grad=True), convprop.tensor(x, requires_grad=True)
    ours(x_ours).backward(dy)
    twin(x_twin).backward(dy)
    assert not ours[0].weight.grad.any() and not ours[0].bias.grad.any()
    for (name, param), expected in zip(ours.named_parameters(), twin.parameters(), strict=True):
        if not name.startswith("0."):
            np.testing.assert_array_equal(param.grad, expected.grad, err_msg=name)
    np.testing.assert_array_equal(x_ours.grad, x_twin.grad)  # dx still flows through it
    ours.requires_grad_(False)
    y = ours(x)
    assert not y.requires_grad and y.grad_fn is None  # nothing needs a gradient: no graph


class SharedConv(Module):
    """One conv (and one ReLU) called twice in a forward: conv → relu → conv → relu → head."""

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, rng=0, dtype=dtype)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3, rng=1, dtype=dtype))

    def forward(self, x: Any) -> Any:
        return self.head(self.act(self.conv(self.act(self.conv(x)))))


def test_a_module_called_twice_sums_the_gradients_of_its_calls_GR2() -> None:
    model = SharedConv(F64)
    rng = np.random.default_rng(37)
    x = rng.standard_normal((2, 2, 4, 4))
    dy = rng.standard_normal((2, 3))
    w, b = model.conv.weight.data, model.conv.bias.data
    fc = model.head[1]
    # the explicit chain of pairs, each call with its own cache
    h1, conv1 = conv2d_forward(x, w, b, padding=1)
    h2, relu1 = relu_forward(h1)
    h3, conv2 = conv2d_forward(h2, w, b, padding=1)
    h4, relu2 = relu_forward(h3)
    h5, flat = flatten_forward(h4, start_dim=1)
    y_pairs, linear = linear_forward(h5, fc.weight.data, fc.bias.data)
    grad, dw_fc, db_fc = linear_backward(dy, linear)
    grad = relu_backward(flatten_backward(grad, flat), relu2)
    grad, dw_second, db_second = conv2d_backward(grad, conv2)
    grad = relu_backward(grad, relu1)
    dx, dw_first, db_first = conv2d_backward(grad, conv1)

    x_ours = convprop.tensor(x, requires_grad=True)
    y = model(x_ours)
    np.testing.assert_array_equal(y.data, y_pairs)
    y.backward(dy)
    np.testing.assert_array_equal(model.conv.weight.grad, dw_second + dw_first)  # (GR2)
    np.testing.assert_array_equal(model.conv.bias.grad, db_second + db_first)
    np.testing.assert_array_equal(fc.weight.grad, dw_fc)
    np.testing.assert_array_equal(fc.bias.grad, db_fc)
    np.testing.assert_array_equal(x_ours.grad, dx)
    assert list(model.state_dict()) == [
        "conv.weight",
        "conv.bias",
        "head.1.weight",
        "head.1.bias",
    ]  # the shared weights are stored once


def test_summary_lists_each_call_and_counts_shared_parameters_once() -> None:
    model = SharedConv()
    model.train()
    table = model.summary((1, 2, 4, 4))
    assert table.splitlines() == [
        "layer   type     output shape  parameters",
        "conv    Conv2d   (1, 2, 4, 4)  38",
        "act     ReLU     (1, 2, 4, 4)  0",
        "conv    Conv2d   (1, 2, 4, 4)  38",
        "act     ReLU     (1, 2, 4, 4)  0",
        "head.0  Flatten  (1, 32)       0",
        "head.1  Linear   (1, 3)        99",
        "total parameters: 137 (trainable 137)",  # 2·2·3·3 + 2 and 32·3 + 3, once each
    ]
    assert model.training  # the mode is restored
    assert not any(param.grad.any() for param in model.parameters())  # nothing recorded
    model.conv.requires_grad_(False)
    assert model.summary((5, 2, 4, 4)).splitlines()[-1] == "total parameters: 137 (trainable 99)"
    assert "(5, 3)" in model.summary((5, 2, 4, 4)).splitlines()[-2]
