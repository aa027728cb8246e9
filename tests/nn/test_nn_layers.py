"""Tests of the layer modules of convprop.nn: each layer is its functional op plus state.

A layer holds Parameters and hyperparameters and has no backward of its own: calling it
records its op pair in the graph, and ``y.backward(dy)`` runs the pair's backward (GR1).
What is checked, layer by layer:

* forward and the gradients that reach ``x.grad`` and every Parameter's ``.grad`` equal the
  functional op pair called with the layer's own arrays and hyperparameters (bit for bit: a
  layer contains no math);
* forward, dx and every parameter gradient equal PyTorch's module holding the same weights, in
  float64 (an extra witness; the ops' own tests hold the naive references);
* the graph *adds* into ``Parameter.grad`` (two forward/backward rounds leave the sum, as does a
  layer called twice in one forward), ``zero_grad`` resets;
* the graph is released by backward (a second one raises unless ``retain_graph=True``), and
  nothing is recorded under ``no_grad()``;
* PyTorch's initialisation rule (Kaiming-uniform, bound 1/sqrt(fan_in)), seeded;
* constructor validation, dtype following the arrays, Dropout and BatchNorm2d train/eval
  behaviour, and the losses.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

import convprop
from convprop import functional, nn
from convprop.errors import DTypeError, ParameterError
from convprop.functional import view
from convprop.nn import Module

F64 = "float64"
RTOL, ATOL = 1e-10, 1e-12  # float64, PyTorch vs convprop (different summation orders)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def to_torch(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.array(value)) for name, value in state.items()}


def randomise_state(module: Module, seed: int) -> None:
    """Give every parameter and float buffer random values (running_var positive), in place."""
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    for name, buffer in module.named_buffers():
        if name.endswith("running_var"):
            buffer[...] = rng.uniform(0.5, 2.0, buffer.shape)
        elif name.endswith("running_mean"):
            buffer[...] = rng.standard_normal(buffer.shape)


def grads(module: Module) -> dict[str, np.ndarray]:
    return {name: param.grad.copy() for name, param in module.named_parameters()}


# ---------------------------------------------------------------------------------------------
# The layers, each paired with the PyTorch module of the same configuration.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    ours: Callable[[], Module]
    theirs: Callable[[], torch.nn.Module]
    x_shape: tuple[int, ...]
    training: bool = True


CASES: dict[str, Case] = {
    "conv2d": Case(
        lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0, dtype=F64),
        lambda: torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
        (2, 3, 7, 6),
    ),
    "conv2d-groups-dilation": Case(
        lambda: nn.Conv2d(
            4, 6, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2, rng=1, dtype=F64
        ),
        lambda: torch.nn.Conv2d(
            4, 6, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2
        ),
        (2, 4, 7, 8),
    ),
    "conv2d-same-no-bias": Case(
        lambda: nn.Conv2d(2, 3, 3, padding="same", bias=False, algorithm="fft", rng=2, dtype=F64),
        lambda: torch.nn.Conv2d(2, 3, 3, padding="same", bias=False),
        (1, 2, 5, 5),
    ),
    "conv_transpose2d": Case(
        lambda: nn.ConvTranspose2d(
            4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=3, dtype=F64
        ),
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        (2, 4, 4, 5),
    ),
    "conv_transpose2d-dilation-no-bias": Case(
        lambda: nn.ConvTranspose2d(
            3, 2, (2, 3), stride=(1, 2), dilation=(2, 1), bias=False, rng=4, dtype=F64
        ),
        lambda: torch.nn.ConvTranspose2d(3, 2, (2, 3), stride=(1, 2), dilation=(2, 1), bias=False),
        (1, 3, 4, 3),
    ),
    "max_pool2d": Case(lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (2, 3, 6, 7)),
    "max_pool2d-stride-padding-ceil": Case(
        lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        lambda: torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        (2, 2, 8, 7),
    ),
    "avg_pool2d": Case(lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2), (2, 3, 6, 6)),
    "avg_pool2d-exclude-pad-ceil": Case(
        lambda: nn.AvgPool2d(
            (3, 2), stride=(2, 1), padding=1, ceil_mode=True, count_include_pad=False
        ),
        lambda: torch.nn.AvgPool2d(
            (3, 2), stride=(2, 1), padding=1, ceil_mode=True, count_include_pad=False
        ),
        (2, 2, 7, 5),
    ),
    "adaptive_avg_pool2d-global": Case(
        lambda: nn.AdaptiveAvgPool2d(1), lambda: torch.nn.AdaptiveAvgPool2d(1), (2, 3, 5, 4)
    ),
    "adaptive_avg_pool2d-uneven": Case(
        lambda: nn.AdaptiveAvgPool2d((3, 2)),
        lambda: torch.nn.AdaptiveAvgPool2d((3, 2)),
        (2, 3, 7, 5),
    ),
    "linear": Case(
        lambda: nn.Linear(5, 3, rng=5, dtype=F64), lambda: torch.nn.Linear(5, 3), (4, 5)
    ),
    "linear-no-bias": Case(
        lambda: nn.Linear(6, 2, bias=False, rng=6, dtype=F64),
        lambda: torch.nn.Linear(6, 2, bias=False),
        (3, 6),
    ),
    "relu": Case(nn.ReLU, torch.nn.ReLU, (2, 3, 4, 5)),
    "leaky_relu": Case(lambda: nn.LeakyReLU(0.2), lambda: torch.nn.LeakyReLU(0.2), (2, 3, 4, 5)),
    "sigmoid": Case(nn.Sigmoid, torch.nn.Sigmoid, (2, 3, 4, 5)),
    "tanh": Case(nn.Tanh, torch.nn.Tanh, (2, 3, 4, 5)),
    "flatten": Case(nn.Flatten, torch.nn.Flatten, (2, 3, 2, 2)),
    "flatten-start2": Case(
        lambda: nn.Flatten(start_dim=2), lambda: torch.nn.Flatten(start_dim=2), (2, 3, 2, 4)
    ),
    "dropout-eval": Case(
        lambda: nn.Dropout(0.5, rng=0), lambda: torch.nn.Dropout(0.5), (2, 3, 4), training=False
    ),
    "dropout-p0": Case(lambda: nn.Dropout(0.0, rng=0), lambda: torch.nn.Dropout(0.0), (4, 5)),
    "batch_norm2d-train": Case(
        lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=0.2, dtype=F64),
        lambda: torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.2),
        (4, 3, 3, 2),
    ),
    "batch_norm2d-eval": Case(
        lambda: nn.BatchNorm2d(3, dtype=F64),
        lambda: torch.nn.BatchNorm2d(3),
        (2, 3, 4, 3),
        training=False,
    ),
    "batch_norm2d-no-affine": Case(
        lambda: nn.BatchNorm2d(2, affine=False, dtype=F64),
        lambda: torch.nn.BatchNorm2d(2, affine=False),
        (3, 2, 2, 3),
    ),
}
PARAMETRIC = [name for name, case in CASES.items() if case.ours().parameters()]


def twins(name: str, seed: int = 0) -> tuple[Module, torch.nn.Module, Case]:
    """convprop's layer with random state, and PyTorch's in float64 holding the same state."""
    case = CASES[name]
    ours = case.ours()
    randomise_state(ours, seed)
    theirs = case.theirs().double()
    theirs.load_state_dict(to_torch(ours.state_dict()), strict=True)
    ours.train(case.training)
    theirs.train(case.training)
    return ours, theirs, case


def forward_backward(module: Module, x: np.ndarray, dy_seed: int) -> tuple[Any, Any, np.ndarray]:
    """x as a Tensor that needs its gradient, y = module(x), and y.backward(dy), dy random."""
    x_tensor = convprop.tensor(x, requires_grad=True)
    y = module(x_tensor)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape)
    y.backward(dy)
    return x_tensor, y, dy


@pytest.mark.parametrize("name", CASES)
def test_layer_matches_torch_forward_dx_and_parameter_grads(name: str) -> None:
    ours, theirs, case = twins(name)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.x_shape)
    x_tensor = convprop.tensor(x, requires_grad=True)
    y = ours(x_tensor)
    x_torch = torch.from_numpy(x.copy()).requires_grad_(True)
    y_torch = theirs(x_torch)
    assert isinstance(y, convprop.Tensor) and y.requires_grad
    np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert y.dtype == np.float64

    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    y_torch.backward(torch.from_numpy(dy))
    dx = x_tensor.grad
    assert dx is not None and dx.shape == x.shape and dx.dtype == np.float64
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=RTOL, atol=ATOL)
    theirs_params = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(theirs_params)
    for param_name, param in ours.named_parameters():
        expected = theirs_params[param_name].grad.numpy()
        np.testing.assert_allclose(param.grad, expected, rtol=RTOL, atol=ATOL, err_msg=param_name)
    # The state after the step (BatchNorm's running statistics and batch count) agrees too.
    theirs_state = theirs.state_dict()
    assert list(ours.state_dict()) == list(theirs_state)
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_state[key].numpy(), rtol=RTOL, atol=0, err_msg=key)


@pytest.mark.parametrize("name", CASES)
def test_backward_adds_into_grad_and_zero_grad_resets(name: str) -> None:
    """Two forward/backward rounds leave the sum in each Parameter's .grad (GR2); the input
    Tensor of each round gets only its own dx."""
    module = CASES[name].ours()
    randomise_state(module, 3)
    module.train(CASES[name].training)
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((2, *CASES[name].x_shape))
    assert all(not param.grad.any() for param in module.parameters())  # zeros from the start

    first_x, _, _ = forward_backward(module, x1, 20)
    first = grads(module)
    module.zero_grad()
    assert all(not param.grad.any() for param in module.parameters())
    forward_backward(module, x2, 21)
    second = grads(module)
    module.zero_grad()

    again_x, _, _ = forward_backward(module, x1, 20)
    forward_backward(module, x2, 21)
    for param_name, param in module.named_parameters():
        np.testing.assert_allclose(
            param.grad, first[param_name] + second[param_name], rtol=1e-13, atol=1e-13
        )
    assert first_x.grad is not None
    np.testing.assert_array_equal(again_x.grad, first_x.grad)  # a fresh leaf: its own dx only
    module.zero_grad()
    assert all(not param.grad.any() for param in module.parameters())


@pytest.mark.parametrize("name", CASES)
def test_layer_called_twice_in_one_forward_gets_the_sum_of_both_gradients(name: str) -> None:
    """Shared weights: one layer called on x1 and on x2, outputs added; each Parameter receives
    the sum of what both calls send back (GR2), each input its own dx."""
    module = CASES[name].ours()
    randomise_state(module, 7)
    module.train(CASES[name].training)
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((2, *CASES[name].x_shape))
    dy = rng.standard_normal(module(x1).shape)  # the shape probe records a graph nobody runs

    alone = []
    for x in (x1, x2):
        x_tensor = convprop.tensor(x, requires_grad=True)
        module(x_tensor).backward(dy)
        alone.append((x_tensor.grad, grads(module)))
        module.zero_grad()

    t1, t2 = convprop.tensor(x1, requires_grad=True), convprop.tensor(x2, requires_grad=True)
    (module(t1) + module(t2)).backward(dy)
    for param_name, param in module.named_parameters():
        expected = alone[0][1][param_name] + alone[1][1][param_name]
        np.testing.assert_allclose(param.grad, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(t1.grad, alone[0][0])
    np.testing.assert_array_equal(t2.grad, alone[1][0])


@pytest.mark.parametrize("name", CASES)
def test_second_backward_raises_once_released_and_retain_graph_adds_again(name: str) -> None:
    """The graph holds the pair's cache, not the layer (which has no backward): backward
    releases it, unless retain_graph=True keeps it for a second backward that adds again."""
    module = CASES[name].ours()
    randomise_state(module, 4)
    module.train(CASES[name].training)
    assert not hasattr(module, "backward") and not hasattr(module, "_cache")
    rng = np.random.default_rng(4)
    x = convprop.tensor(rng.standard_normal(CASES[name].x_shape), requires_grad=True)
    y = module(x)
    dy = rng.standard_normal(y.shape)
    y.backward(dy, retain_graph=True)
    first_dx, first = x.grad.copy(), grads(module)
    y.backward(dy)  # kept: the same gradients again, added (GR2); released now
    np.testing.assert_array_equal(x.grad, 2 * first_dx)
    for param_name, param in module.named_parameters():
        np.testing.assert_array_equal(param.grad, 2 * first[param_name], err_msg=param_name)
    with pytest.raises(RuntimeError, match="already released"):
        y.backward(dy)

    fresh = convprop.tensor(x.data, requires_grad=True)
    y = module(fresh)
    y.backward(dy)
    with pytest.raises(RuntimeError, match="already released"):
        y.backward(dy)  # one backward per forward without retain_graph


@pytest.mark.parametrize("name", CASES)
def test_under_no_grad_the_layer_records_nothing(name: str) -> None:
    module = CASES[name].ours()
    randomise_state(module, 5)
    module.train(CASES[name].training)
    rng = np.random.default_rng(5)
    x = convprop.tensor(rng.standard_normal(CASES[name].x_shape), requires_grad=True)
    with convprop.no_grad():
        y = module(x)
    assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_array_equal(y.data, module(x).data)  # the same values, recorded or not
    with pytest.raises(RuntimeError, match="does not need a gradient"):
        y.backward(rng.standard_normal(y.shape))
    assert x.grad is None
    assert all(not param.grad.any() for param in module.parameters())


# ---------------------------------------------------------------------------------------------
# A layer is its functional op: same arrays in, same arrays out, bit for bit.
# ---------------------------------------------------------------------------------------------

PairRun = tuple[Any, Callable[..., tuple[Any, dict[str, Any]]]]
"""The pair's y, and ``dy -> (dx, {"weight": dw, "bias": db})`` (None for an absent
Parameter, {} for a layer without any; keywords go to the pair's backward)."""


def _bias(module: Any) -> Any:
    return None if module.bias is None else module.bias.data


def _with_params(backward: Callable[..., Any], cache: Any) -> Callable[..., Any]:
    def run(dy: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        dx, dw, db = backward(dy, cache, **kwargs)
        return dx, {"weight": dw, "bias": db}

    return run


def _conv(m: Any, x: Any) -> PairRun:
    y, cache = functional.conv2d_forward(
        x,
        m.weight.data,
        _bias(m),
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        groups=m.groups,
        algorithm=m.algorithm,
    )
    return y, _with_params(functional.conv2d_backward, cache)


def _conv_transpose(m: Any, x: Any) -> PairRun:
    y, cache = functional.conv_transpose2d_forward(
        x,
        m.weight.data,
        _bias(m),
        stride=m.stride,
        padding=m.padding,
        output_padding=m.output_padding,
        dilation=m.dilation,
        groups=m.groups,
        algorithm=m.algorithm,
    )
    return y, _with_params(functional.conv_transpose2d_backward, cache)


def _linear(m: Any, x: Any) -> PairRun:
    y, cache = functional.linear_forward(x, m.weight.data, _bias(m))
    return y, _with_params(functional.linear_backward, cache)


def _max_pool(m: Any, x: Any) -> PairRun:
    y, cache = functional.max_pool2d_forward(
        x, m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode
    )
    return y, lambda dy: (functional.max_pool2d_backward(dy, cache), {})


def _avg_pool(m: Any, x: Any) -> PairRun:
    y, cache = functional.avg_pool2d_forward(
        x,
        m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        ceil_mode=m.ceil_mode,
        count_include_pad=m.count_include_pad,
    )
    return y, lambda dy: (functional.avg_pool2d_backward(dy, cache), {})


def _adaptive(m: Any, x: Any) -> PairRun:
    y, cache = functional.adaptive_avg_pool2d_forward(x, m.output_size)
    return y, lambda dy: (functional.adaptive_avg_pool2d_backward(dy, cache), {})


def _batch_norm(m: Any, x: Any) -> PairRun:
    # Before the layer's call, which replaces the running statistics by the updated ones.
    channels = x.shape[1]
    y, cache = functional.batch_norm2d_forward(
        x,
        m.weight.data if m.affine else np.ones(channels, dtype=x.dtype),
        m.bias.data if m.affine else np.zeros(channels, dtype=x.dtype),
        m.running_mean,
        m.running_var,
        training=m.training,
        momentum=m.momentum,
        eps=m.eps,
    )

    def backward(dy: Any) -> tuple[Any, dict[str, Any]]:
        dx, dgamma, dbeta = functional.batch_norm2d_backward(dy, cache)
        if not m.affine:  # gamma = 1 and beta = 0 are constants, not Parameters
            return dx, {"weight": None, "bias": None}
        return dx, {"weight": dgamma, "bias": dbeta}

    return y, backward


def _flatten(m: Any, x: Any) -> PairRun:
    # Flatten is a reshape (RS1, RS2) of the axes start_dim … end_dim into one.
    start, end = m.start_dim % x.ndim, m.end_dim % x.ndim
    shape = (*x.shape[:start], math.prod(x.shape[start : end + 1]), *x.shape[end + 1 :])
    y, cache = view.reshape_forward(x, shape)
    return y, lambda dy: (view.reshape_backward(dy, cache), {})


def _dropout(m: Any, x: Any) -> PairRun:
    # A copy of the layer's generator draws the mask the layer will draw (DO1).
    y, cache = functional.dropout_forward(x, p=m.p, training=m.training, rng=copy.deepcopy(m.rng))
    return y, lambda dy: (functional.dropout_backward(dy, cache), {})


def _unary(forward: Callable[..., Any], backward: Callable[..., Any], **kw: Any) -> Any:
    def run(m: Any, x: Any) -> PairRun:
        y, cache = forward(x, **{k: getattr(m, v) for k, v in kw.items()})
        return y, lambda dy: (backward(dy, cache), {})

    return run


FUNCTIONAL: dict[str, Callable[[Any, Any], PairRun]] = {
    "conv2d": _conv,
    "conv2d-groups-dilation": _conv,
    "conv2d-same-no-bias": _conv,
    "conv_transpose2d": _conv_transpose,
    "conv_transpose2d-dilation-no-bias": _conv_transpose,
    "max_pool2d": _max_pool,
    "max_pool2d-stride-padding-ceil": _max_pool,
    "avg_pool2d": _avg_pool,
    "avg_pool2d-exclude-pad-ceil": _avg_pool,
    "adaptive_avg_pool2d-global": _adaptive,
    "adaptive_avg_pool2d-uneven": _adaptive,
    "linear": _linear,
    "linear-no-bias": _linear,
    "relu": _unary(functional.relu_forward, functional.relu_backward),
    "leaky_relu": _unary(
        functional.leaky_relu_forward,
        functional.leaky_relu_backward,
        negative_slope="negative_slope",
    ),
    "sigmoid": _unary(functional.sigmoid_forward, functional.sigmoid_backward),
    "tanh": _unary(functional.tanh_forward, functional.tanh_backward),
    "flatten": _flatten,
    "flatten-start2": _flatten,
    "dropout-eval": _dropout,
    "dropout-p0": _dropout,
    "batch_norm2d-train": _batch_norm,
    "batch_norm2d-eval": _batch_norm,
    "batch_norm2d-no-affine": _batch_norm,
}


def test_every_layer_case_has_its_functional_pair() -> None:
    assert list(FUNCTIONAL) == list(CASES)


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_layer_forward_and_backward_equal_the_functional_op(name: str) -> None:
    module: Any = CASES[name].ours()
    randomise_state(module, 5)
    module.train(CASES[name].training)
    rng = np.random.default_rng(6)
    x = rng.standard_normal(CASES[name].x_shape)
    y_ref, pair_backward = FUNCTIONAL[name](module, x)
    dy = rng.standard_normal(y_ref.shape)
    dx_ref, param_grads = pair_backward(dy)

    x_tensor = convprop.tensor(x, requires_grad=True)
    y = module(x_tensor)
    np.testing.assert_array_equal(y.data, y_ref)
    assert y.dtype == y_ref.dtype
    y.backward(dy)
    np.testing.assert_array_equal(x_tensor.grad, dx_ref)
    assert x_tensor.grad.dtype == dx_ref.dtype
    present = [param_name for param_name, grad in param_grads.items() if grad is not None]
    assert [param_name for param_name, _ in module.named_parameters()] == present
    for param_name, expected in param_grads.items():
        param = getattr(module, param_name)
        if param is None:
            assert expected is None, param_name
        else:
            np.testing.assert_array_equal(param.grad, expected, err_msg=param_name)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d", "linear"])
def test_input_without_gradient_skips_dx_but_the_weights_still_get_theirs(name: str) -> None:
    """An input that needs no gradient (a network's first layer) makes the graph call the
    pair with need_dx=False: no dx anywhere, the weight gradients of the pair all the same."""
    module: Any = CASES[name].ours()
    rng = np.random.default_rng(7)
    x = rng.standard_normal(CASES[name].x_shape)
    y_ref, pair_backward = FUNCTIONAL[name](module, x)
    dy = rng.standard_normal(y_ref.shape)
    dx_ref, expected = pair_backward(dy, need_dx=False)
    assert dx_ref is None

    x_tensor = convprop.tensor(x)  # data: requires_grad=False
    y = module(x_tensor)
    assert y.requires_grad  # the weights need their gradients
    y.backward(dy)
    assert x_tensor.grad is None
    np.testing.assert_array_equal(module.weight.grad, expected["weight"])
    np.testing.assert_array_equal(module.bias.grad, expected["bias"])
    # the same weight gradients as when dx is computed too
    _, with_dx = FUNCTIONAL[name](module, x)[1](dy)
    np.testing.assert_array_equal(with_dx["weight"], expected["weight"])
    np.testing.assert_array_equal(with_dx["bias"], expected["bias"])


# ---------------------------------------------------------------------------------------------
# Initialisation: PyTorch's rule, from an explicit generator.
# ---------------------------------------------------------------------------------------------

INIT_CASES = {
    # name: (layer, fan_in, the PyTorch layer whose weights obey the same bound)
    "conv2d": (
        lambda rng: nn.Conv2d(16, 32, 3, rng=rng),
        16 * 9,
        lambda: torch.nn.Conv2d(16, 32, 3),
    ),
    "conv2d-groups": (
        lambda rng: nn.Conv2d(16, 64, (3, 2), groups=4, rng=rng),
        4 * 6,
        lambda: torch.nn.Conv2d(16, 64, (3, 2), groups=4),
    ),
    "conv_transpose2d": (
        lambda rng: nn.ConvTranspose2d(32, 24, 3, groups=2, rng=rng),
        12 * 9,  # PyTorch's fan_in of a transposed conv: weight.shape[1] * R * S
        lambda: torch.nn.ConvTranspose2d(32, 24, 3, groups=2),
    ),
    "linear": (lambda rng: nn.Linear(50, 80, rng=rng), 50, lambda: torch.nn.Linear(50, 80)),
}


@pytest.mark.parametrize("name", INIT_CASES)
def test_kaiming_uniform_initialisation_has_pytorch_bound_and_is_uniform(name: str) -> None:
    make, fan_in, make_torch = INIT_CASES[name]
    bound = 1 / math.sqrt(fan_in)
    layer = make(0)
    weight, bias = layer.weight.data, layer.bias.data
    assert weight.dtype == bias.dtype == np.float32  # the default dtype
    for values in (weight, bias):
        assert np.abs(values).max() <= bound
    # The spread fills the interval uniformly: Kolmogorov-Smirnov against U(-bound, bound),
    # and the extremes reach close to the bound.
    result = scipy.stats.kstest(weight.ravel().astype(np.float64), "uniform", (-bound, 2 * bound))
    assert result.pvalue > 1e-3
    assert np.abs(weight).max() > 0.99 * bound
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.05 * bound
    # PyTorch's own layer of the same configuration obeys the same bound and fills it.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = make_torch()
    torch_weight = theirs.weight.detach().numpy()
    assert np.abs(torch_weight).max() <= bound * (1 + 1e-6)
    assert np.abs(torch_weight).max() > 0.99 * bound
    assert np.abs(theirs.bias.detach().numpy()).max() <= bound * (1 + 1e-6)


@pytest.mark.parametrize("name", INIT_CASES)
def test_initialisation_is_seeded(name: str) -> None:
    make = INIT_CASES[name][0]
    a, b, c = make(7), make(7), make(8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    # A Generator is used as is: two layers drawn from it in turn differ, and repeat as a pair.
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    first, second = make(rng1), make(rng1)
    assert not np.array_equal(first.weight.data, second.weight.data)
    np.testing.assert_array_equal(make(rng2).weight.data, first.weight.data)
    np.testing.assert_array_equal(make(rng2).weight.data, second.weight.data)


def test_batch_norm_starts_as_pytorch() -> None:
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    for key, value in theirs.state_dict().items():
        mine = ours.state_dict()[key]
        np.testing.assert_array_equal(mine, value.numpy())
        assert mine.dtype == (np.int64 if key == "num_batches_tracked" else np.float32)


# ---------------------------------------------------------------------------------------------
# Constructor validation.
# ---------------------------------------------------------------------------------------------

BAD_CONSTRUCTORS = [
    (lambda: nn.Conv2d(0, 4, 3), ParameterError, r"Conv2d: in_channels must be a positive int"),
    (lambda: nn.Conv2d(3, -1, 3), ParameterError, r"Conv2d: out_channels must be a positive int"),
    (lambda: nn.Conv2d(3, 4, 3, groups=0), ParameterError, r"Conv2d: groups must be a positive"),
    (lambda: nn.Conv2d(True, 4, 3), ParameterError, r"in_channels must be a positive int"),
    (lambda: nn.Conv2d(3, 4, 0), ParameterError, r"Conv2d: kernel_size must be >= 1"),
    (lambda: nn.Conv2d(3, 4, (3, 0)), ParameterError, r"Conv2d: kernel_size must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), ParameterError, r"Conv2d: stride must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, dilation=0), ParameterError, r"Conv2d: dilation must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), ParameterError, r"Conv2d: padding must be >= 0"),
    (
        lambda: nn.Conv2d(3, 4, 3, padding="full"),
        ParameterError,
        r"Conv2d: unknown padding string; expected one of \['same', 'valid'\], got 'full'",
    ),
    (
        lambda: nn.Conv2d(4, 6, 3, groups=4),
        ParameterError,
        r"Conv2d: groups must divide in_channels and out_channels; expected both divisible by "
        r"4, got in_channels=4, out_channels=6",
    ),
    (
        lambda: nn.Conv2d(3, 6, 3, groups=2),
        ParameterError,
        r"groups must divide .* got in_channels=3, out_channels=6",
    ),
    (
        lambda: nn.Conv2d(3, 4, 3, algorithm="gemm"),
        ParameterError,
        r"Conv2d: unknown algorithm; expected one of \['auto', .*'im2col'.*\], got 'gemm'",
    ),
    (
        lambda: nn.Conv2d(3, 4, 3, dtype="float16"),
        DTypeError,
        r"Conv2d: dtype must be float32 or float64; expected one of them, got float16",
    ),
    (lambda: nn.Conv2d(3, 4, 3, dtype="int32"), DTypeError, r"got int32"),
    (
        lambda: nn.ConvTranspose2d(3, 4, 3, groups=2),
        ParameterError,
        r"ConvTranspose2d: groups must divide",
    ),
    (
        lambda: nn.ConvTranspose2d(3, 4, 3, output_padding=-1),
        ParameterError,
        r"ConvTranspose2d: output_padding must be >= 0",
    ),
    (
        lambda: nn.ConvTranspose2d(3, 4, 3, padding="same"),
        ParameterError,
        r"ConvTranspose2d: unknown padding string; expected one of \['valid'\], got 'same'",
    ),
    (
        lambda: nn.ConvTranspose2d(3, 4, 3, algorithm="x"),
        ParameterError,
        r"ConvTranspose2d: unknown algorithm",
    ),
    (lambda: nn.ConvTranspose2d(3, 4, 3, dtype="float16"), DTypeError, r"ConvTranspose2d: dtype"),
    (lambda: nn.Linear(0, 3), ParameterError, r"Linear: in_features must be a positive int"),
    (lambda: nn.Linear(3, 2.0), ParameterError, r"Linear: out_features must be a positive int"),
    (lambda: nn.Linear(3, 2, dtype="int8"), DTypeError, r"Linear: dtype must be float32"),
    (lambda: nn.MaxPool2d(0), ParameterError, r"MaxPool2d: kernel_size must be >= 1"),
    (lambda: nn.MaxPool2d(2, stride=0), ParameterError, r"MaxPool2d: stride must be >= 1"),
    (lambda: nn.MaxPool2d(2, padding=-1), ParameterError, r"MaxPool2d: padding must be >= 0"),
    (
        lambda: nn.MaxPool2d(3, padding=2),
        ParameterError,
        r"MaxPool2d: padding is more than half the window; expected padding <= \(1, 1\), "
        r"got \(2, 2\) \(kernel_size=\(3, 3\)\)",
    ),
    (lambda: nn.AvgPool2d((2, 3), stride=(1, 0)), ParameterError, r"AvgPool2d: stride"),
    (
        lambda: nn.AvgPool2d((4, 2), padding=(2, 2)),
        ParameterError,
        r"AvgPool2d: padding is more than half the window",
    ),
    (
        lambda: nn.AdaptiveAvgPool2d(0),
        ParameterError,
        r"AdaptiveAvgPool2d: output_size must be >= 1",
    ),
    (
        lambda: nn.LeakyReLU(float("nan")),
        ParameterError,
        r"LeakyReLU: negative_slope must be a finite real number",
    ),
    (lambda: nn.LeakyReLU("0.1"), ParameterError, r"LeakyReLU: negative_slope"),
    (lambda: nn.Flatten(1.0), ParameterError, r"Flatten: start_dim must be an int"),
    (
        lambda: nn.Dropout(-0.1),
        ParameterError,
        r"Dropout: p must be a probability; expected 0 <= p <= 1, got -0.1",
    ),
    (lambda: nn.Dropout(1.5), ParameterError, r"Dropout: p must be a probability.*got 1.5"),
    (lambda: nn.Dropout(float("nan")), ParameterError, r"Dropout: p must be a probability"),
    (lambda: nn.Dropout("0.5"), ParameterError, r"Dropout: p must be a probability"),
    (
        lambda: nn.BatchNorm2d(0),
        ParameterError,
        r"BatchNorm2d: num_features must be a positive int; expected >= 1, got 0",
    ),
    (lambda: nn.BatchNorm2d(True), ParameterError, r"BatchNorm2d: num_features"),
    (
        lambda: nn.BatchNorm2d(3, eps=0),
        ParameterError,
        r"BatchNorm2d: eps keeps the division finite; expected a finite number > 0, got eps=0",
    ),
    (lambda: nn.BatchNorm2d(3, eps=float("inf")), ParameterError, r"BatchNorm2d: eps"),
    (lambda: nn.BatchNorm2d(3, eps=float("nan")), ParameterError, r"BatchNorm2d: eps"),
    (
        lambda: nn.BatchNorm2d(3, momentum=1.5),
        ParameterError,
        r"BatchNorm2d: momentum is the weight of the batch statistics; expected a number in "
        r"\[0, 1\].*got momentum=1.5",
    ),
    (lambda: nn.BatchNorm2d(3, momentum=None), ParameterError, r"momentum=None"),
    (lambda: nn.BatchNorm2d(3, dtype="float16"), DTypeError, r"BatchNorm2d: dtype"),
]


@pytest.mark.parametrize(
    ("make", "error", "message"), BAD_CONSTRUCTORS, ids=[m for _, _, m in BAD_CONSTRUCTORS]
)
def test_constructor_rejects_bad_hyperparameters(
    make: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()


def test_valid_edge_hyperparameters_are_accepted() -> None:
    nn.Dropout(0.0)
    nn.Dropout(1)
    nn.BatchNorm2d(1, momentum=0.0)
    nn.BatchNorm2d(1, eps=np.float32(1e-3), momentum=1)
    nn.MaxPool2d(3, padding=1)
    nn.AvgPool2d((4, 2), padding=(2, 1))
    nn.Conv2d(2, 2, 3, padding="valid")
    nn.Conv2d(2, 2, 3, padding=((0, 1), (2, 0)))
    nn.ConvTranspose2d(2, 2, 3, padding="valid")
    nn.LeakyReLU(-0.5)
    nn.Flatten(-2)


# ---------------------------------------------------------------------------------------------
# dtype: the arrays decide.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PARAMETRIC)
def test_float32_by_default_and_float64_once_every_data_is_float64(name: str) -> None:
    case = CASES[name]
    module = case.ours()
    for param in module.parameters():  # rebuild in the default dtype
        param.data = param.data.astype(np.float32)
    module.train(case.training)
    rng = np.random.default_rng(8)
    x32 = convprop.tensor(rng.standard_normal(case.x_shape).astype(np.float32), requires_grad=True)
    y32 = module(x32)
    assert y32.dtype == np.float32
    y32.backward(rng.standard_normal(y32.shape).astype(np.float32))
    assert x32.grad is not None and x32.grad.dtype == np.float32
    assert all(param.grad.dtype == np.float32 for param in module.parameters())

    for param in module.parameters():
        old_grad = param.grad
        param.data = param.data.astype(np.float64)
        assert param.grad is not old_grad  # the setter replaced the gradient ...
        assert param.grad.dtype == np.float64 and not param.grad.any()  # ... by float64 zeros
    x64 = convprop.tensor(x32.data.astype(np.float64), requires_grad=True)
    y64 = module(x64)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64.data, y32.data, rtol=1e-4, atol=1e-5)
    y64.backward(rng.standard_normal(y64.shape))
    assert x64.grad is not None and x64.grad.dtype == np.float64
    assert all(param.grad.dtype == np.float64 for param in module.parameters())


def test_parameter_data_setter_keeps_grad_when_shape_and_dtype_match() -> None:
    param = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    param.grad[...] = 1.5
    grad = param.grad
    param.data = np.ones((2, 3), dtype=np.float32)
    assert param.grad is grad and np.all(param.grad == 1.5)
    param.data = np.ones((3, 2), dtype=np.float32)  # another shape: a fresh zero gradient
    assert param.grad.shape == (3, 2) and not param.grad.any()
    assert param.shape == (3, 2)
    assert repr(param) == "Parameter(shape=(3, 2), dtype=float32)"


def test_mixed_dtypes_are_refused() -> None:
    layer = nn.Linear(3, 2, rng=0)  # float32 weights
    with pytest.raises(DTypeError, match="float64"):
        layer(np.ones((1, 3)))


# ---------------------------------------------------------------------------------------------
# Dropout and BatchNorm2d: train() and eval().
# ---------------------------------------------------------------------------------------------


def test_dropout_in_training_drops_and_scales_with_its_own_seeded_generator() -> None:
    p = 0.25
    x_array = np.random.default_rng(9).uniform(1.0, 2.0, (40, 50))  # no zeros: the mask shows
    layer = nn.Dropout(p, rng=11)
    x = convprop.tensor(x_array, requires_grad=True)
    y = layer(x)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], x_array[kept] / (1 - p), rtol=1e-15)
    assert abs(kept.mean() - (1 - p)) < 0.03
    # backward routes dy through the same mask and scale (DO5)
    dy = np.random.default_rng(10).standard_normal(x_array.shape)
    y.backward(dy)
    np.testing.assert_allclose(x.grad, dy * kept / (1 - p), rtol=1e-15)
    # the same seed gives the same mask, as the functional op with that generator, bit for bit
    np.testing.assert_array_equal(nn.Dropout(p, rng=11)(x_array).data, y.data)
    y_ref, cache = functional.dropout_forward(x_array, p=p, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(y_ref, y.data)
    np.testing.assert_array_equal(functional.dropout_backward(dy, cache), x.grad)
    # the generator advances: the next call draws a new mask
    assert not np.array_equal(layer(x_array).data, y.data)


def test_dropout_is_the_identity_in_eval_and_p_one_drops_everything() -> None:
    x_array = np.random.default_rng(12).standard_normal((3, 4))
    layer = nn.Dropout(0.9, rng=0).eval()
    x = convprop.tensor(x_array, requires_grad=True)
    y = layer(x)
    np.testing.assert_array_equal(y.data, x_array)
    assert y.data is not x_array
    dy = np.random.default_rng(13).standard_normal(x_array.shape)
    y.backward(dy)
    np.testing.assert_array_equal(x.grad, dy)
    everything = nn.Dropout(1.0, rng=0)
    x = convprop.tensor(x_array, requires_grad=True)
    y = everything(x)
    assert not y.data.any()
    y.backward(dy)
    assert x.grad is not None and not x.grad.any()


def test_batch_norm_running_statistics_follow_torch_over_steps_then_eval_uses_them() -> None:
    ours, theirs, case = twins("batch_norm2d-train")
    rng = np.random.default_rng(14)
    for _ in range(3):
        x = rng.standard_normal(case.x_shape) * 2 + 1
        np.testing.assert_allclose(
            ours(x).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=RTOL, atol=ATOL
        )
    assert int(ours.state_dict()["num_batches_tracked"]) == 3
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=RTOL, err_msg=key)
    # eval: normalise with the running statistics, leave them alone, count nothing
    ours.eval()
    theirs.eval()
    before = {k: np.array(v) for k, v in ours.state_dict().items()}
    x = rng.standard_normal((1, 3, 1, 1))  # a single value per channel is fine in eval
    y = ours(x).data
    np.testing.assert_allclose(y, theirs(torch.from_numpy(x)).detach().numpy(), rtol=RTOL)
    mean, var = before["running_mean"], before["running_var"]
    gamma, beta = before["weight"], before["bias"]
    expected = (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + ours.eps)
    np.testing.assert_allclose(y, expected * gamma.reshape(1, 3, 1, 1) + beta.reshape(1, 3, 1, 1))
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_batch_norm_float64_input_updates_float32_buffers_in_float64() -> None:
    layer = nn.BatchNorm2d(2)
    for param in layer.parameters():
        param.data = param.data.astype(np.float64)
    x = np.random.default_rng(15).standard_normal((3, 2, 2, 2))
    assert layer(x).dtype == np.float64
    assert layer.state_dict()["running_mean"].dtype == np.float64


# ---------------------------------------------------------------------------------------------
# Losses: modules that return a 0-d Tensor; loss.backward() runs the graph.
# ---------------------------------------------------------------------------------------------


def test_cross_entropy_loss_matches_functional_and_torch() -> None:
    """The loss is (CE1)–(CE3) and logits.grad is (CE4) of the pair, bit for bit."""
    rng = np.random.default_rng(16)
    logits_array = rng.standard_normal((6, 5)) * 3
    labels = rng.integers(0, 5, size=6)
    loss_fn = nn.CrossEntropyLoss()
    logits = convprop.tensor(logits_array, requires_grad=True)
    loss = loss_fn(logits, labels)
    assert isinstance(loss, convprop.Tensor) and loss.shape == () and loss.requires_grad
    np.testing.assert_array_equal(loss.data, functional.softmax_cross_entropy(logits_array, labels))
    loss.backward()
    _, cache = functional.softmax_cross_entropy_forward(logits_array, labels)
    np.testing.assert_array_equal(
        logits.grad, functional.softmax_cross_entropy_backward(1.0, cache)
    )
    # an upstream gradient other than 1 scales (CE4)
    scaled = convprop.tensor(logits_array, requires_grad=True)
    loss_fn(scaled, labels).backward(np.array(0.7))
    np.testing.assert_array_equal(
        scaled.grad, functional.softmax_cross_entropy_backward(0.7, cache)
    )
    logits_torch = torch.from_numpy(logits_array).requires_grad_(True)
    loss_torch = torch.nn.CrossEntropyLoss()(logits_torch, torch.from_numpy(labels))
    (0.7 * loss_torch).backward()
    assert float(loss) == pytest.approx(loss_torch.item(), rel=1e-13)
    np.testing.assert_allclose(scaled.grad, logits_torch.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_mse_loss_matches_functional_and_torch() -> None:
    """The loss is (MSE1) and pred.grad is (MSE2) of the pair, bit for bit."""
    rng = np.random.default_rng(17)
    pred_array, target = rng.standard_normal((2, 3, 4, 2))
    loss_fn = nn.MSELoss()
    pred = convprop.tensor(pred_array, requires_grad=True)
    loss = loss_fn(pred, target)
    assert isinstance(loss, convprop.Tensor) and loss.shape == () and loss.requires_grad
    np.testing.assert_array_equal(loss.data, functional.mse_loss(pred_array, target))
    loss.backward()  # the implied upstream gradient of a one-element loss is 1
    _, cache = functional.mse_loss_forward(pred_array, target)
    np.testing.assert_array_equal(pred.grad, functional.mse_loss_backward(1.0, cache))
    pred_torch = torch.from_numpy(pred_array).requires_grad_(True)
    loss_torch = torch.nn.MSELoss()(pred_torch, torch.from_numpy(target))
    loss_torch.backward()
    assert float(loss) == pytest.approx(loss_torch.item(), rel=1e-13)
    np.testing.assert_allclose(pred.grad, pred_torch.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_mse_loss_gives_a_target_that_needs_a_gradient_minus_dpred_mse6() -> None:
    """As PyTorch: the loss depends on pred − target, so dtarget = −dpred (MSE6)."""
    rng = np.random.default_rng(19)
    pred = convprop.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    target = convprop.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    nn.MSELoss()(pred, target).backward()
    np.testing.assert_array_equal(target.grad, -pred.grad)
    pred_torch = torch.from_numpy(pred.data).requires_grad_(True)
    target_torch = torch.from_numpy(target.data).requires_grad_(True)
    torch.nn.MSELoss()(pred_torch, target_torch).backward()
    np.testing.assert_allclose(target.grad, target_torch.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert nn.MSELoss()(pred, target.detach()).grad_fn is not None  # data is fine too


@pytest.mark.parametrize("loss_type", [nn.CrossEntropyLoss, nn.MSELoss])
def test_loss_graph_is_released_by_backward_unless_retained_and_no_grad_records_nothing(
    loss_type: type,
) -> None:
    loss_fn = loss_type()
    assert not hasattr(loss_fn, "backward")
    rng = np.random.default_rng(18)
    pred_array = rng.standard_normal((3, 4))
    target = np.array([0, 3, 1]) if loss_type is nn.CrossEntropyLoss else pred_array[::-1].copy()
    pred = convprop.tensor(pred_array, requires_grad=True)
    loss = loss_fn(pred, target)
    loss.backward(retain_graph=True)
    first = pred.grad.copy()
    loss.backward()  # kept: added again (GR2), then released
    np.testing.assert_array_equal(pred.grad, 2 * first)
    with pytest.raises(RuntimeError, match="already released"):
        loss.backward()
    # a fresh forward gives a fresh graph with the same gradient
    again = convprop.tensor(pred_array, requires_grad=True)
    loss_fn.forward(again, target).backward()
    np.testing.assert_array_equal(again.grad, first)
    with convprop.no_grad():
        untracked = loss_fn(pred, target)
    assert not untracked.requires_grad and untracked.shape == ()
    np.testing.assert_array_equal(untracked.data, loss.data)
    with pytest.raises(RuntimeError, match="does not need a gradient"):
        untracked.backward()


# ---------------------------------------------------------------------------------------------
# Description: config() rebuilds the layer; repr shows it.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_config_rebuilds_an_equivalent_layer(name: str) -> None:
    module = CASES[name].ours()
    rebuilt = type(module)(**module.config())
    assert rebuilt.config() == module.config()
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [
        (n, p.shape) for n, p in module.named_parameters()
    ]
    assert repr(module).startswith(type(module).__name__ + "(")


def test_repr_lists_the_settings() -> None:
    assert repr(nn.Linear(3, 2, rng=0)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.MaxPool2d(2)) == (
        "MaxPool2d(kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], ceil_mode=False)"
    )
