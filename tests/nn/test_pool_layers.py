"""Pooling at the Tensor level: convprop.nn.functional's ops and the convprop.nn layers.

Each op runs its pair and records the pair's backward (GR1); these tests check, through the
graph, PyTorch's forward and gradients for batched and unbatched inputs, the indices, the
argument forms PyTorch accepts, the layers' hyperparameter checks and config round trips, and
model files that hold the new layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import convprop.nn.functional as F
from convprop import nn
from convprop.errors import ParameterError
from convprop.io import load_model, save_model


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TF = torch.nn.functional

# (name, call, batched input shape): one call, made with convprop's F and with torch's
OPS: list[tuple[str, Any, tuple[int, ...]]] = [
    ("max_pool1d", lambda f, x: f.max_pool1d(x, 3, 2, 1, 2, True), (2, 3, 11)),
    ("max_pool2d", lambda f, x: f.max_pool2d(x, 3, 2, 1, 1, True), (2, 3, 9, 8)),
    ("max_pool2d-dilated", lambda f, x: f.max_pool2d(x, (2, 3), (1, 2), 1, (2, 1)), (2, 2, 8, 9)),
    ("max_pool3d", lambda f, x: f.max_pool3d(x, 2, (1, 2, 2), 1, (1, 1, 2), True), (1, 2, 4, 6, 7)),
    ("avg_pool1d", lambda f, x: f.avg_pool1d(x, 3, 2, 1, True, False), (2, 3, 10)),
    ("avg_pool2d", lambda f, x: f.avg_pool2d(x, 3, 2, 1, True, True, -3), (2, 3, 7, 8)),
    ("avg_pool3d", lambda f, x: f.avg_pool3d(x, (2, 3, 2), 2, (1, 1, 0), False, False, 5),
     (1, 2, 5, 6, 5)),
    ("lp_pool1d", lambda f, x: f.lp_pool1d(x, 2, 3, 2, True), (2, 3, 10)),
    ("lp_pool2d", lambda f, x: f.lp_pool2d(x, 2, (2, 3), (1, 2)), (2, 2, 6, 7)),
    ("adaptive_avg_pool1d", lambda f, x: f.adaptive_avg_pool1d(x, 4), (2, 3, 10)),
    ("adaptive_avg_pool2d", lambda f, x: f.adaptive_avg_pool2d(x, (3, None)), (2, 2, 7, 5)),
    ("adaptive_max_pool2d", lambda f, x: f.adaptive_max_pool2d(x, (3, 4)), (2, 2, 7, 9)),
]  # fmt: skip
OP_IDS = [name for name, _, _ in OPS]


def run_both(call: Any, x: np.ndarray, dy_seed: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """y and dx from convprop's graph and from torch's autograd, with one random dy."""
    x_c = convprop.tensor(x.copy(), requires_grad=True)
    y_c = call(F, x_c)
    dy = np.random.default_rng(dy_seed).standard_normal(y_c.shape)
    y_c.backward(dy)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = call(TF, x_t)
    y_t.backward(torch.tensor(dy))
    return y_c, y_t, x_c.grad, x_t.grad.numpy()


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize(("name", "call", "shape"), OPS, ids=OP_IDS)
def test_functional_op_agrees_with_torch_through_the_graph(
    name: str, call: Any, shape: tuple[int, ...], batched: bool
) -> None:
    x = np.random.default_rng(1).standard_normal(shape if batched else shape[1:])
    if name.startswith("lp_pool"):
        x = np.abs(x) + 0.1
    y_c, y_t, dx_c, dx_t = run_both(call, x, dy_seed=2)
    assert y_c.shape == tuple(y_t.shape)
    np.testing.assert_allclose(y_c.numpy(), y_t.detach().numpy(), rtol=1e-10, atol=1e-14)
    assert dx_c.shape == x.shape
    np.testing.assert_allclose(dx_c, dx_t, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("name", "call", "shape"), OPS, ids=OP_IDS)
def test_an_unbatched_call_is_the_batched_call_on_one_sample(
    name: str, call: Any, shape: tuple[int, ...]
) -> None:
    x = np.abs(np.random.default_rng(3).standard_normal((1, *shape[1:]))) + 0.1
    one = convprop.tensor(x[0].copy(), requires_grad=True)
    batch = convprop.tensor(x.copy(), requires_grad=True)
    y_one, y_batch = call(F, one), call(F, batch)
    np.testing.assert_array_equal(y_one.numpy(), y_batch.numpy()[0])
    dy = np.random.default_rng(4).standard_normal(y_one.shape)
    y_one.backward(dy)
    y_batch.backward(dy[None])
    np.testing.assert_array_equal(one.grad, batch.grad[0])
    assert y_one._node is not None and y_one._node.name == name.split("-")[0]


@pytest.mark.parametrize(
    ("op", "args", "shape"),
    [
        ("max_pool1d", (3, 1, 1, 2), (2, 3, 9)),
        ("max_pool2d", (2,), (2, 3, 6, 7)),
        ("max_pool2d", (3, 1, 1, 2), (2, 3, 7, 7)),
        ("max_pool3d", (2, 1), (1, 2, 4, 5, 3)),
    ],
)
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_return_indices_gives_torch_indices_as_an_int64_tensor(
    op: str, args: tuple[Any, ...], shape: tuple[int, ...], batched: bool
) -> None:
    x = np.random.default_rng(5).integers(0, 3, shape if batched else shape[1:]) * 1.0
    y, indices = getattr(F, op)(convprop.tensor(x), *args, return_indices=True)
    y_t, indices_t = getattr(TF, op)(torch.tensor(x), *args, return_indices=True)
    assert isinstance(indices, convprop.Tensor) and indices.dtype == np.int64
    assert not indices.requires_grad
    np.testing.assert_array_equal(indices.numpy(), indices_t.numpy())
    np.testing.assert_array_equal(y.numpy(), y_t.numpy())


def test_adaptive_max_pool2d_returns_indices_batched_and_unbatched() -> None:
    x = np.random.default_rng(6).standard_normal((2, 5, 7))
    for sample in (x, x[None]):
        y, indices = F.adaptive_max_pool2d(convprop.tensor(sample), (3, 2), True)
        y_t, indices_t = TF.adaptive_max_pool2d(torch.tensor(sample), (3, 2), True)
        np.testing.assert_array_equal(indices.numpy(), indices_t.numpy())
        np.testing.assert_array_equal(y.numpy(), y_t.numpy())


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_max_pool2d_then_max_unpool2d_agrees_with_torch_and_finite_differences(
    batched: bool,
) -> None:
    shape = (2, 3, 6, 6) if batched else (3, 6, 6)
    x = np.random.default_rng(7).standard_normal(shape)
    x_c = convprop.tensor(x.copy(), requires_grad=True)
    y, indices = F.max_pool2d(x_c, 2, return_indices=True)
    u = F.max_unpool2d(y * 2.0, indices, 2, output_size=shape[-2:])
    dy = np.random.default_rng(8).standard_normal(u.shape)
    u.backward(dy)
    x_t = torch.tensor(x, requires_grad=True)
    y_t, indices_t = TF.max_pool2d(x_t, 2, return_indices=True)
    u_t = TF.max_unpool2d(y_t * 2.0, indices_t, 2, output_size=shape[-2:])
    u_t.backward(torch.tensor(dy))
    np.testing.assert_array_equal(u.numpy(), u_t.detach().numpy())
    np.testing.assert_allclose(x_c.grad, x_t.grad.numpy(), rtol=1e-12)
    assert convprop.gradcheck(
        lambda v: F.max_unpool2d(F.max_pool2d(v, 2, return_indices=True)[0], indices, 2),
        (convprop.tensor(x.copy(), requires_grad=True),),
    )


def test_max_unpool2d_takes_the_output_size_of_one_sample_with_its_channels() -> None:
    x = np.random.default_rng(9).standard_normal((3, 7, 5))
    y, indices = F.max_pool2d(convprop.tensor(x), 2, return_indices=True)
    u = F.max_unpool2d(y, indices, 2, output_size=x.shape)  # (C, H, W)
    u_t = TF.max_unpool2d(
        *TF.max_pool2d(torch.tensor(x[None]), 2, return_indices=True), 2, output_size=x.shape[1:]
    )
    np.testing.assert_array_equal(u.numpy(), u_t.numpy()[0])


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "lp_pool2d", "adaptive_max_pool2d"])
def test_gradcheck_through_the_graph(op: str) -> None:
    rng = np.random.default_rng(10)
    x = convprop.tensor(
        rng.permutation(2 * 3 * 36).reshape(2, 3, 6, 6) * 0.01 + 0.5, requires_grad=True
    )
    call = {
        "max_pool2d": lambda v: F.max_pool2d(v, 3, 2, 1, 2),
        "avg_pool2d": lambda v: F.avg_pool2d(v, 3, 2, 1, True, False, 4),
        "lp_pool2d": lambda v: F.lp_pool2d(v, 3, 2, 1),
        "adaptive_max_pool2d": lambda v: F.adaptive_max_pool2d(v, (4, 5)),
    }[op]
    assert convprop.gradcheck(call, (x,))


def test_pytorch_argument_forms_length_one_sequences_and_an_empty_stride() -> None:
    x = np.random.default_rng(11).standard_normal((1, 3, 9, 9))
    y = F.avg_pool2d(x, (4, 4), (), (1,), True, False, 2)
    y_t = TF.avg_pool2d(torch.tensor(x), (4, 4), (), (1,), True, False, 2)
    np.testing.assert_allclose(y.numpy(), y_t.numpy(), rtol=1e-12)
    y = F.max_pool3d(x[None], (2,), (1,), (1,), (2,))
    np.testing.assert_array_equal(
        y.numpy(), TF.max_pool3d(torch.tensor(x[None]), 2, 1, 1, 2).numpy()
    )


def test_functional_ops_refuse_a_non_bool_return_indices() -> None:
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ParameterError, match=r"^max_pool2d: return_indices must be a bool"):
        F.max_pool2d(x, 2, return_indices=1)
    with pytest.raises(
        ParameterError, match=r"^adaptive_max_pool2d: return_indices must be a bool"
    ):
        F.adaptive_max_pool2d(x, 2, "yes")


# ------------------------------------------------------------------------------- layers

LAYERS: list[tuple[Any, tuple[int, ...]]] = [
    (lambda m: m.MaxPool1d(3, 2, 1, 2, False, True), (2, 3, 11)),
    (lambda m: m.MaxPool2d(3, 2, 1, (2, 1), False, True), (2, 3, 9, 8)),
    (lambda m: m.MaxPool3d((2, 2, 3), 2, (1, 0, 1)), (1, 2, 5, 4, 6)),
    (lambda m: m.AvgPool1d(3, 2, 1, True, False), (2, 3, 10)),
    (lambda m: m.AvgPool2d(3, 2, 1, True, True, 7), (2, 3, 7, 8)),
    (lambda m: m.AvgPool3d(2, (1, 2, 2), 1, False, False, -4), (1, 2, 4, 5, 5)),
    (lambda m: m.LPPool1d(2, 3, 2, True), (2, 3, 10)),
    (lambda m: m.LPPool2d(3, (2, 3), (1, 2)), (2, 2, 6, 7)),
    (lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 10)),
    (lambda m: m.AdaptiveAvgPool2d((None, 3)), (2, 2, 5, 7)),
    (lambda m: m.AdaptiveMaxPool2d((3, 4)), (2, 2, 7, 9)),
]  # fmt: skip
LAYER_IDS = [
    "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "LPPool1d",
    "LPPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
]  # fmt: skip


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize(("build", "shape"), LAYERS, ids=LAYER_IDS)
def test_layer_agrees_with_torch_and_rebuilds_from_its_config(
    build: Any, shape: tuple[int, ...], batched: bool
) -> None:
    layer, layer_t = build(nn), build(torch.nn)
    x = np.abs(np.random.default_rng(12).standard_normal(shape if batched else shape[1:])) + 0.1
    y_c, y_t, dx_c, dx_t = run_both(lambda f, v: (layer if f is F else layer_t)(v), x, dy_seed=13)
    np.testing.assert_allclose(y_c.numpy(), y_t.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dx_c, dx_t, rtol=1e-10, atol=1e-14)
    rebuilt = type(layer)(**layer.config())
    assert rebuilt.config() == layer.config()
    assert repr(layer).startswith(type(layer).__name__ + "(")
    assert type(layer).__name__ in nn.__all__


def test_max_pool_layer_with_indices_and_max_unpool_layer_invert_it() -> None:
    x = np.random.default_rng(14).standard_normal((2, 3, 6, 7))
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, indices = pool(x)
    u = unpool(y, indices, output_size=x.shape)
    pool_t, unpool_t = torch.nn.MaxPool2d(2, return_indices=True), torch.nn.MaxUnpool2d(2)
    u_t = unpool_t(*pool_t(torch.tensor(x)), output_size=x.shape)
    np.testing.assert_array_equal(u.numpy(), u_t.numpy())
    assert nn.MaxUnpool2d(**unpool.config()).config() == unpool.config() == {
        "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0],
    }  # fmt: skip
    assert pool.config()["return_indices"] is True
    assert "dilation" not in nn.MaxPool2d(2).config()  # defaults stay out, as before


def test_model_file_holds_the_new_layers(tmp_path: Path) -> None:
    model = nn.Sequential(
        nn.MaxPool2d(3, 1, 1, dilation=2, ceil_mode=True),
        nn.AvgPool2d(2, divisor_override=3),
        nn.LPPool2d(2, 2),
        nn.AdaptiveMaxPool2d((None, 2)),
        nn.Flatten(),
    )
    path = tmp_path / "pools.safetensors"
    save_model(path, model)
    loaded = load_model(path)
    x = np.random.default_rng(15).standard_normal((2, 3, 12, 12))
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert [type(m).__name__ for m in loaded.children()] == [
        "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveMaxPool2d", "Flatten",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: nn.MaxPool1d(0), r"MaxPool1d: kernel_size must be >= 1"),
        (lambda: nn.MaxPool2d(2, dilation=0), r"MaxPool2d: dilation must be >= 1"),
        (lambda: nn.MaxPool3d(2, padding=2), r"MaxPool3d: padding is more than half the window"),
        (lambda: nn.MaxPool3d((2, 2)), r"MaxPool3d: kernel_size must be an int or 3 ints"),
        (lambda: nn.AvgPool1d(2, stride=0), r"AvgPool1d: stride must be >= 1"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), r"AvgPool2d: divisor_override must be"),
        (lambda: nn.AvgPool3d(2, divisor_override=1.5), r"AvgPool3d: divisor_override must be"),
        (lambda: nn.LPPool1d(0, 2), r"LPPool1d: norm_type must be finite and nonzero"),
        (lambda: nn.LPPool2d(2, (2, 2, 2)), r"LPPool2d: kernel_size must be an int or a pair"),
        (lambda: nn.AdaptiveAvgPool1d(0), r"AdaptiveAvgPool1d: output_size must be >= 1"),
        (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), r"AdaptiveAvgPool2d: output_size must be an"),
        (lambda: nn.AdaptiveMaxPool2d("2"), r"AdaptiveMaxPool2d: output_size must be an int"),
        (lambda: nn.MaxUnpool2d(2, padding=-1), r"MaxUnpool2d: padding must be >= 0"),
    ],
)
def test_layers_reject_bad_hyperparameters_when_built(build: Any, match: str) -> None:
    with pytest.raises(ParameterError, match=f"^{match}"):
        build()
