"""convprop.data.augment: RandomCrop (AUG1), RandomHorizontalFlip (AUG2), Normalize (D1) and
the per-batch generators (AUG3), alone and inside DataLoader.

Witnesses: the one-image-at-a-time references of tests/reference_training.py fed the same
draws, and properties (identity cases, the range of offsets, flip frequencies).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import reference_training as ref
from convprop.data import (
    Compose,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    batch_generator,
    from_arrays,
    normalize,
    standard_augmentation,
)
from convprop.errors import ParameterError, ShapeError


def batch(shape: tuple[int, ...], dtype: Any = np.float64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize(
    ("shape", "size", "padding", "fill"),
    [
        ((5, 2, 6, 6), 6, 2, 0.0),
        ((4, 1, 7, 5), (7, 5), (1, 3), 0.0),
        ((3, 3, 6, 8), (4, 5), 0, 0.0),
        ((6, 1, 5, 5), (3, 6), (0, 2), -1.5),
        ((1, 2, 4, 4), 4, 4, 0.25),
        ((2, 1, 3, 3), (9, 9), 3, 0.0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_crop_matches_reference_aug1(
    shape: tuple[int, ...], size: Any, padding: Any, fill: float, dtype: Any
) -> None:
    x = batch(shape, dtype)
    before = x.copy()
    y = RandomCrop(size, padding, fill)(x, np.random.default_rng(5))
    h, w = (size, size) if isinstance(size, int) else size
    pad = (padding, padding) if isinstance(padding, int) else padding
    draws = np.random.default_rng(5)  # the same draws, in the documented order
    tops = draws.integers(0, shape[2] + 2 * pad[0] - h + 1, size=shape[0])
    lefts = draws.integers(0, shape[3] + 2 * pad[1] - w + 1, size=shape[0])
    want = ref.random_crop(x, tops.tolist(), lefts.tolist(), (h, w), pad, fill)
    assert y.shape == (shape[0], shape[1], h, w) and y.dtype == dtype
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(x, before)  # the input is left alone


def test_random_crop_reaches_every_offset_and_is_the_identity_without_padding() -> None:
    x = batch((400, 1, 4, 4))
    np.testing.assert_array_equal(RandomCrop(4)(x, np.random.default_rng(0)), x)
    y = RandomCrop(4, padding=2)(x, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    tops, lefts = rng.integers(0, 5, 400), rng.integers(0, 5, 400)
    assert set(tops.tolist()) == set(range(5)) and set(lefts.tolist()) == set(range(5))
    centred = (tops == 2) & (lefts == 2)
    np.testing.assert_array_equal(y[centred], x[centred])  # offset (pad, pad): the image itself


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_horizontal_flip_matches_reference_aug2(p: float) -> None:
    x = batch((300, 2, 3, 5), np.float32)
    y = RandomHorizontalFlip(p)(x, np.random.default_rng(2))
    flips = np.random.default_rng(2).random(300) < p
    np.testing.assert_array_equal(y, ref.horizontal_flip(x, flips.tolist()))
    assert y.dtype == np.float32
    if p in (0.0, 1.0):
        assert flips.all() == (p == 1.0) and flips.any() == (p == 1.0)
    else:
        assert 0.2 < flips.mean() < 0.4


def test_normalize_is_d1_with_the_given_statistics() -> None:
    x = batch((4, 3, 2, 2), np.float32)
    train = from_arrays(x, np.zeros(4, np.int64))
    normalised, stats = normalize(train)
    y = Normalize(stats.mean, stats.std)(x)
    np.testing.assert_array_equal(y, normalised.images)
    assert y.dtype == np.float32
    mean, std = [0.5, -1.0, 2.0], [2.0, 0.5, 1.0]
    want = (x.astype(np.float64) - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    np.testing.assert_allclose(Normalize(mean, std)(x, None), want, rtol=1e-6)


def test_compose_draws_in_order_from_one_generator() -> None:
    x = batch((6, 1, 5, 5))
    crop, flip = RandomCrop(5, 1), RandomHorizontalFlip(0.5)
    both = Compose([crop, flip, Normalize([1.0], [2.0])])(x, batch_generator(3, 1, 4))
    rng = batch_generator(3, 1, 4)
    want = Normalize([1.0], [2.0])(flip(crop(x, rng), rng))
    np.testing.assert_array_equal(both, want)


def test_batch_generators_are_keyed_by_seed_epoch_and_batch_aug3() -> None:
    def draws(*key: int) -> list[int]:
        return batch_generator(*key).integers(0, 2**31, 8).tolist()

    assert draws(0, 1, 2) == draws(0, 1, 2)
    assert len({tuple(draws(*key)) for key in [(0, 1, 2), (1, 1, 2), (0, 2, 2), (0, 1, 3)]}) == 4
    assert draws(0, 1, 2) == np.random.default_rng([0, 1, 2]).integers(0, 2**31, 8).tolist()


def test_loader_applies_the_transform_per_batch_reproducibly() -> None:
    images = batch((23, 1, 6, 6), np.float32)
    dataset = from_arrays(images, np.arange(23) % 3)
    augment = standard_augmentation(["crop", "flip"], dataset.sample_shape)
    loader = DataLoader(dataset, 5, shuffle=True, seed=4, transform=augment)
    plain = DataLoader(dataset, 5, shuffle=True, seed=4)
    epoch = list(loader.iter_epoch(3))
    again = DataLoader(dataset, 5, shuffle=True, seed=4, transform=augment)  # e.g. a resumed run
    for k, ((x, y), (x_plain, y_plain), (x_again, _)) in enumerate(
        zip(epoch, plain.iter_epoch(3), again.iter_epoch(3), strict=True)
    ):
        np.testing.assert_array_equal(y, y_plain)  # the same samples, in the same order
        np.testing.assert_array_equal(x, augment(x_plain, batch_generator(4, 3, k)))
        np.testing.assert_array_equal(x, x_again)
    assert not all(
        np.array_equal(a, b) for (a, _), (b, _) in zip(epoch, loader.iter_epoch(4), strict=True)
    )
    np.testing.assert_array_equal(dataset.images, images)  # the data set is never written


def test_standard_augmentation_padding_follows_the_image_size() -> None:
    for shape, padding in [((1, 28, 28), 3), ((3, 32, 32), 4), ((1, 8, 8), 1), ((1, 4, 30), 1)]:
        crop = standard_augmentation(["crop"], shape).transforms[0]
        assert isinstance(crop, RandomCrop)
        assert crop.padding == (padding, padding) and crop.size == shape[1:]
    flip = standard_augmentation(["flip"], (1, 8, 8)).transforms
    assert len(flip) == 1 and isinstance(flip[0], RandomHorizontalFlip) and flip[0].p == 0.5


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: RandomCrop(0),
            ParameterError,
            r"RandomCrop: size is too small; expected an "
            r"int >= 1, got 0",
        ),
        (
            lambda: RandomCrop((2, 2, 2)),
            ParameterError,
            r"RandomCrop: size must be an int or a "
            r"pair of ints; expected \(height, width\), got \(2, 2, 2\)",
        ),
        (lambda: RandomCrop(2, -1), ParameterError, r"RandomCrop: padding is too small"),
        (lambda: RandomCrop(2, 1.5), ParameterError, r"RandomCrop: padding must be an integer"),
        (
            lambda: RandomCrop(2, fill=float("nan")),
            ParameterError,
            r"RandomCrop: fill must be a "
            r"finite number",
        ),
        (
            lambda: RandomCrop(7, 1)(np.zeros((2, 1, 4, 4)), np.random.default_rng()),
            ShapeError,
            r"RandomCrop: the crop is larger than the padded image; expected h <= H \+ 2\*pad_h "
            r"and w <= W \+ 2\*pad_w, got size=\(7, 7\) for x.shape=\(2, 1, 4, 4\)",
        ),
        (
            lambda: RandomCrop(2)(np.zeros((4, 4)), np.random.default_rng()),
            ShapeError,
            r"RandomCrop: x must be a batch of images; expected 4-D \(B, C, H, W\), got shape "
            r"\(4, 4\)",
        ),
        (
            lambda: RandomHorizontalFlip(1.5),
            ParameterError,
            r"RandomHorizontalFlip: p must be a "
            r"probability; expected 0 <= p <= 1, got 1.5",
        ),
        (
            lambda: RandomHorizontalFlip()(np.zeros(3), np.random.default_rng()),
            ShapeError,
            r"RandomHorizontalFlip: x must be a batch",
        ),
        (
            lambda: Normalize([0.0, 1.0], [1.0]),
            ShapeError,
            r"Normalize: mean and std need one "
            r"value per channel each",
        ),
        (
            lambda: Normalize([0.0], [0.0]),
            ParameterError,
            r"Normalize: mean must be finite and "
            r"std finite and > 0",
        ),
        (lambda: Normalize([float("inf")], [1.0]), ParameterError, r"mean must be finite"),
        (
            lambda: Normalize([0.0], [1.0])(np.zeros((1, 2, 2, 2))),
            ShapeError,
            r"Normalize: x has "
            r"C=2 channels but mean and std have 1",
        ),
        (
            lambda: Compose([RandomCrop(2), 3]),
            TypeError,
            r"Compose: transforms\[1\] is not "
            r"callable",
        ),
        (
            lambda: standard_augmentation(["rotate"], (1, 8, 8)),
            ParameterError,
            r"standard_augmentation: unknown or repeated augmentation; expected one or more of "
            r"\['crop', 'flip'\], each once, got \['rotate'\]",
        ),
        (lambda: standard_augmentation([], (1, 8, 8)), ParameterError, r"unknown or repeated"),
        (
            lambda: standard_augmentation(["flip", "flip"], (1, 8, 8)),
            ParameterError,
            r"unknown or repeated",
        ),
        (lambda: batch_generator(-1, 0, 0), ParameterError, r"batch_generator: seed is too small"),
        (lambda: batch_generator(0, 0, 1.0), ParameterError, r"batch_index must be an integer"),
        (
            lambda: DataLoader(from_arrays(np.zeros((2, 2, 2)), [0, 1]), 1, transform=3),
            TypeError,
            r"DataLoader: transform must be callable; expected transform\(x, rng\), got int",
        ),
    ],
)
def test_errors(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


class FixedDraws:
    """A stand-in generator whose ``integers`` and ``random`` return given values in turn."""

    def __init__(self, *draws: list[float]) -> None:
        self.draws = [np.asarray(d) for d in draws]

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        return self.draws.pop(0)

    def random(self, size: int) -> np.ndarray:
        return self.draws.pop(0)


def test_worked_example_of_the_derivations_aug1_aug2() -> None:
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = RandomCrop(3, padding=1)(x, FixedDraws([0], [2]))  # type: ignore[arg-type]
    assert y[0, 0].tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]
    flipped = RandomHorizontalFlip(0.5)(x, FixedDraws([0.1]))  # type: ignore[arg-type]
    assert flipped[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
