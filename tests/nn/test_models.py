"""Tests of convprop.models: shapes, seeding, errors, and equivalence with PyTorch networks.

Each ready-made network is rebuilt layer for layer in torch.nn; convprop's state_dict loads
into it with ``strict=True`` (same names, shapes and order) and both give the same logits in
float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import convprop
from convprop import nn
from convprop.errors import ParameterError
from convprop.models import MODELS, build_model, lenet, lenet5, resnet_mini


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """PyTorch on one thread (small tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TorchResidual(torch.nn.Module):
    """y = x + body(x), the body under convprop's name for it ("body")."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def torch_lenet(num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    side = image_size // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 32, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * side * side, 128),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.25),
        torch.nn.Linear(128, num_classes),
    )


def torch_lenet5(num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    side = image_size // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * side * side, 120),
        torch.nn.ReLU(),
        torch.nn.Linear(120, 84),
        torch.nn.ReLU(),
        torch.nn.Linear(84, num_classes),
    )


def torch_resnet_mini(num_classes: int, in_channels: int, image_size: int) -> torch.nn.Module:
    def block(channels: int) -> torch.nn.Module:
        return TorchResidual(
            torch.nn.Sequential(
                torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(channels),
                torch.nn.ReLU(),
                torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(channels),
            )
        )

    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, 32, 3, padding=1),
        torch.nn.ReLU(),
        block(32),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        block(32),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, num_classes),
    )


TORCH_TWINS: dict[str, Callable[[int, int, int], torch.nn.Module]] = {
    "lenet": torch_lenet,
    "lenet5": torch_lenet5,
    "resnet-mini": torch_resnet_mini,
}


def images(shape: tuple[int, ...], dtype: Any = np.float64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, names.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [8, 28])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_for_digits_and_fashion_mnist_sizes(name: str, image_size: int) -> None:
    model = build_model(name, num_classes=10, in_channels=1, image_size=image_size, rng=0)
    x = convprop.tensor(images((2, 1, image_size, image_size), np.float32), requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10)
    assert logits.dtype == np.float32
    # and the gradient runs all the way back to the images
    logits.backward(images(logits.shape, np.float32, seed=1))
    assert x.grad is not None and x.grad.shape == (2, 1, image_size, image_size)
    assert x.grad.dtype == np.float32 and x.grad.any()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_channels_classes_and_dtype_are_honoured(name: str) -> None:
    model = build_model(name, num_classes=7, in_channels=3, image_size=12, rng=1, dtype="float64")
    assert model(images((1, 3, 12, 12))).shape == (1, 7)
    assert all(
        value.dtype == np.float64
        for value in model.state_dict().values()
        if value.dtype != np.int64
    )
    assert all(param.grad.dtype == np.float64 for param in model.parameters())


def test_builders_are_the_registered_names() -> None:
    assert {"lenet": lenet, "lenet5": lenet5, "resnet-mini": resnet_mini} == MODELS
    assert len(lenet5(image_size=8).parameters()) == 10  # 3 FC + 2 conv, weight and bias each


def test_unknown_model_name_lists_the_choices() -> None:
    with pytest.raises(
        ParameterError,
        match=r"^build_model: unknown model; expected one of \['lenet', 'lenet5', 'resnet-mini'\]"
        r", got 'vgg'$",
    ):
        build_model("vgg", num_classes=10, in_channels=1, image_size=28)


@pytest.mark.parametrize("builder", [lenet, lenet5])
def test_too_small_images_are_refused(builder: Callable[..., nn.Sequential]) -> None:
    name = builder.__name__
    with pytest.raises(
        ParameterError, match=rf"^{name}: image_size must be >= 4; expected >= 4, got 3$"
    ):
        builder(image_size=3)


def test_resnet_mini_head_does_not_depend_on_the_image_size() -> None:
    small, large = resnet_mini(image_size=8, rng=0), resnet_mini(image_size=28, rng=0)
    for (name, a), b in zip(small.state_dict().items(), large.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resnet_mini(rng=0)(images((1, 1, 10, 6), np.float32)).shape == (1, 10)


# ---------------------------------------------------------------------------------------------
# Seeding.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_network_other_seed_other_network(name: str) -> None:
    def build(rng: Any) -> nn.Sequential:
        return build_model(name, num_classes=10, in_channels=1, image_size=8, rng=rng)

    a, b, c = build(5), build(5), build(6)
    d = build(np.random.default_rng(5))  # a Generator seeded alike gives the same network
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key], err_msg=key)
        np.testing.assert_array_equal(value, d.state_dict()[key], err_msg=key)
    other = dict(c.named_parameters())
    for key, param in a.named_parameters():
        if param.data.ndim > 1:  # conv and linear weights (BN starts at 1 and 0 whatever the seed)
            assert not np.array_equal(param.data, other[key].data), key
    # training-mode forward passes (dropout masks included) repeat as well
    x = images((2, 1, 8, 8), np.float32)
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_array_equal(a(x), b(x))


def test_lenet_dropout_masks_are_seeded_and_differ_between_calls() -> None:
    model = lenet(image_size=8, rng=3)
    x = images((4, 1, 8, 8), np.float32)
    first, second = model(x), model(x)
    assert not np.array_equal(first, second)  # a new mask each call in training
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


# ---------------------------------------------------------------------------------------------
# The same networks in PyTorch.
# ---------------------------------------------------------------------------------------------


def loaded_twin(name: str, image_size: int, in_channels: int = 1) -> tuple[Any, Any]:
    ours = build_model(
        name, num_classes=10, in_channels=in_channels, image_size=image_size, rng=7, dtype="float64"
    )
    theirs = TORCH_TWINS[name](10, in_channels, image_size).double()
    state = {k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()}
    assert list(state) == list(theirs.state_dict())  # names and order are PyTorch's
    theirs.load_state_dict(state, strict=True)
    return ours, theirs


@pytest.mark.parametrize(
    ("name", "image_size"),
    [("lenet", 28), ("lenet", 8), ("lenet5", 28), ("resnet-mini", 8)],
)
def test_state_dict_loads_into_the_torch_network_and_gives_the_same_logits(
    name: str, image_size: int
) -> None:
    ours, theirs = loaded_twin(name, image_size)
    ours.eval()  # lenet has Dropout: eval makes both networks deterministic
    theirs.eval()
    x = images((3, 1, image_size, image_size), seed=2)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(x), expected, rtol=1e-10, atol=1e-12)


def test_resnet_mini_training_pass_matches_torch_logits_gradients_and_statistics() -> None:
    ours, theirs = loaded_twin("resnet-mini", 8, in_channels=2)
    x = images((4, 2, 8, 8), seed=3)
    labels = np.array([0, 3, 9, 3])
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn(ours(x), labels)
    assert loss.shape == ()
    loss.backward()
    torch_loss = torch.nn.functional.cross_entropy(
        theirs(torch.from_numpy(x)), torch.from_numpy(labels)
    )
    torch_loss.backward()
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-12)
    theirs_params = dict(theirs.named_parameters())
    for key, param in ours.named_parameters():
        np.testing.assert_allclose(
            param.grad, theirs_params[key].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=key
        )
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)
