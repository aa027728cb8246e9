"""Tests of Module, Sequential and Residual: composition, names, state, modes and devices.

* Sequential applies its modules in order and backpropagates in reverse; Residual computes
  y = x + f(x) and dx = dy + f.backward(dy) — both against PyTorch's autograd in float64;
* parameter and state_dict names and order are PyTorch's, BatchNorm buffers included, so that
  weights move between the two libraries by name and by position;
* train()/eval() reach every descendant; load_state_dict checks keys and shapes and copies;
  Module.to moves arrays and drops caches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from convprop import nn
from convprop.backend import cupy_available
from convprop.errors import BackendError, ShapeError
from convprop.nn import Module

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
    y = ours(x)
    x_torch = torch.from_numpy(x.copy()).requires_grad_(True)
    y_torch = theirs(x_torch)
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=RTOL, atol=ATOL)
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    dx = ours.backward(dy)
    y_torch.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=RTOL, atol=ATOL)
    theirs_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(theirs_params)
    for name, param in ours.named_parameters():
        expected = theirs_params[name].grad.numpy()
        np.testing.assert_allclose(param.grad, expected, rtol=RTOL, atol=ATOL, err_msg=name)
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_state[name].numpy(), rtol=RTOL, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Residual: y = x + f(x), dx = dy + f.backward(dy).
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_residual_block_matches_torch_autograd(training: bool) -> None:
    ours, theirs = block_pair(0)
    ours.train(training)
    theirs.train(training)
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 4))
    compare_with_torch(ours, theirs, x, seed=2)


def test_residual_backward_is_dy_plus_the_body_backward() -> None:
    ours, _ = block_pair(3)
    twin, _ = block_pair(3)  # the same body, run on its own
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    y = ours(x)
    np.testing.assert_array_equal(y, x + twin.body(x))
    dx = ours.backward(dy)
    d_body = twin.body.backward(dy)
    np.testing.assert_array_equal(dx, dy + d_body)
    for (name, param), (_, expected) in zip(
        ours.named_parameters(), twin.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(param.grad, expected.grad, err_msg=name)


def test_residual_without_need_dx_returns_none_and_keeps_the_gradients() -> None:
    ours, _ = block_pair(5)
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4))
    dy = np.random.default_rng(7).standard_normal(x.shape)
    ours(x)
    ours.backward(dy)
    expected = {name: param.grad.copy() for name, param in ours.named_parameters()}
    ours.zero_grad()
    ours(x)
    assert ours.backward(dy, need_dx=False) is None
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


def test_residual_backward_before_forward_and_twice_raises() -> None:
    block = nn.Residual(nn.ReLU())
    dy = np.full((2, 3), 0.5)
    with pytest.raises(RuntimeError, match=r"^Residual\.backward called before forward$"):
        block.backward(dy)
    block(np.random.default_rng(8).standard_normal((2, 3)))
    block.backward(dy)
    with pytest.raises(RuntimeError, match=r"^Residual\.backward called before forward$"):
        block.backward(dy)


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


def test_sequential_is_the_composition_and_backward_runs_in_reverse() -> None:
    ours, _ = sequential_pair(12)
    layers, _ = sequential_pair(12)
    x = np.random.default_rng(13).standard_normal((2, 2, 6, 6))
    h = x
    for layer in layers:
        h = layer(h)
    np.testing.assert_array_equal(ours(x), h)
    dy = np.random.default_rng(14).standard_normal(h.shape)
    grad = dy
    for layer in reversed(list(layers)):
        grad = layer.backward(grad)
    np.testing.assert_array_equal(ours.backward(dy), grad)


def test_sequential_without_need_dx_returns_none_and_keeps_the_gradients() -> None:
    ours, _ = sequential_pair(15)
    x = np.random.default_rng(16).standard_normal((2, 2, 6, 6))
    dy = np.random.default_rng(17).standard_normal((2, 5))
    ours(x)
    ours.backward(dy)
    expected = {name: param.grad.copy() for name, param in ours.named_parameters()}
    ours.zero_grad()
    ours(x)
    assert ours.backward(dy, need_dx=False) is None
    for name, param in ours.named_parameters():
        np.testing.assert_array_equal(param.grad, expected[name], err_msg=name)


def test_sequential_backward_before_forward_names_the_layer_without_a_cache() -> None:
    net = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
    dy = np.full((4, 2), 0.5, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"^ReLU\.backward called before forward$"):
        net.backward(dy)
    net(np.ones((4, 3), dtype=np.float32))
    net.backward(dy)
    with pytest.raises(RuntimeError, match=r"^ReLU\.backward called before forward$"):
        net.backward(dy)


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
    assert empty(x) is x and empty.backward(x) is x


def test_sequential_refuses_what_is_not_a_module() -> None:
    with pytest.raises(
        TypeError, match=r"^Sequential: item 1 must be a Module; expected a Module, got function$"
    ):
        nn.Sequential(nn.ReLU(), lambda x: x)  # type: ignore[arg-type]


def test_base_module_has_no_computation() -> None:
    module = Module()
    with pytest.raises(NotImplementedError, match=r"Module\.forward is not implemented"):
        module(np.ones(2))
    with pytest.raises(NotImplementedError, match=r"Module\.backward is not implemented"):
        module.backward(np.ones(2))
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
    ours(x)
    ours.backward(np.random.default_rng(22).standard_normal(x.shape))
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


def test_to_cpu_keeps_numpy_arrays_and_drops_caches() -> None:
    net, _ = sequential_pair(25)
    x = np.random.default_rng(26).standard_normal((1, 2, 6, 6))
    y = net(x)
    assert net.to("cpu") is net
    assert all(isinstance(value, np.ndarray) for value in net.state_dict().values())
    with pytest.raises(RuntimeError, match=r"backward called before forward"):
        net.backward(np.ones_like(y))
    np.testing.assert_array_equal(net(x), y)


def test_to_an_unknown_device_is_refused_even_without_arrays() -> None:
    for module in (nn.ReLU(), nn.Linear(2, 2, rng=0)):
        with pytest.raises(ValueError, match=r"\.to: unknown device; expected 'cpu' or 'cuda'"):
            module.to("tpu")


@pytest.mark.skipif(cupy_available(), reason="needs a machine without CuPy")
def test_to_cuda_without_cupy_says_what_to_install() -> None:
    with pytest.raises(BackendError, match=r"needs CuPy"):
        nn.Linear(2, 2, rng=0).to("cuda")
