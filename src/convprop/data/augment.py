"""Seeded augmentation of whole batches: random crop with padding, horizontal flip, normalise.

Notation  x (B,C,H,W) a batch, (h, w) the crop size, pad_h, pad_w the padding on each side,
          x_pad (B, C, H + 2*pad_h, W + 2*pad_w): x surrounded by the value ``fill``
  i_b uniform in {0, ..., H + 2*pad_h - h},  j_b uniform in {0, ..., W + 2*pad_w - w}
  y[b, c, r, s] = x_pad[b, c, i_b + r, j_b + s]                        RandomCrop      (AUG1)
  f_b = [u_b < p] with u_b uniform in [0, 1)
  y[b, c, r, s] = x[b, c, r, W - 1 - s] if f_b else x[b, c, r, s]     RandomHorizontalFlip (AUG2)
  y[b, c, r, s] = (x[b, c, r, s] - mean[c]) / std[c]                   Normalize       (D1)
  the generator of batch k of epoch e:  numpy.random.default_rng([seed, e, k])          (AUG3)

Each transform acts on a whole batch at once (one gather for the crop, one select for the
flip): no Python loop over images. The random draws come from the generator passed in, in a
fixed order (the crop draws i then j, B values each; the flip draws u), and (AUG3) derives
that generator from the run's seed, the epoch and the batch index alone, so a resumed run
draws exactly what an uninterrupted one did. ``DataLoader(..., transform=...)`` applies a
transform this way to every batch, on the host, before the batch is moved to the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy

from convprop.backend import Array, get_xp
from convprop.data.dataset import require_int
from convprop.errors import ParameterError, ShapeError

AUGMENTATIONS = ("crop", "flip")
"""The names ``standard_augmentation`` (and ``convprop train --augment``) accept."""


class Transform(Protocol):
    """A batch transform: ``transform(x (B,C,H,W), rng) -> y (B,C,h,w)``, x left unchanged."""

    def __call__(self, x: Array, rng: numpy.random.Generator) -> Array: ...


def batch_generator(seed: int, epoch: int, batch_index: int) -> numpy.random.Generator:
    """The generator of batch ``batch_index`` of epoch ``epoch`` in a run seeded ``seed`` (AUG3).

    Examples
    --------
    >>> a = batch_generator(0, 3, 5).integers(0, 1000, 4)
    >>> b = batch_generator(0, 3, 5).integers(0, 1000, 4)
    >>> bool((a == b).all())
    True
    """
    keys = [
        require_int("batch_generator", name, value, minimum=0)
        for name, value in (("seed", seed), ("epoch", epoch), ("batch_index", batch_index))
    ]
    return numpy.random.default_rng(keys)  # (AUG3) a SeedSequence of the three numbers


def _pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as (height, width)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ParameterError(
            f"{op}: {name} must be an int or a pair of ints; expected (height, width), "
            f"got {value!r}"
        )
    first, second = (require_int(op, name, v, minimum=minimum) for v in values)
    return first, second


def _check_batch(op: str, x: Array) -> None:
    if getattr(x, "ndim", None) != 4:
        raise ShapeError(
            f"{op}: x must be a batch of images; expected 4-D (B, C, H, W), "
            f"got shape {getattr(x, 'shape', type(x).__name__)}"
        )


class RandomCrop:
    """Pad each image with ``fill`` and cut a window of ``size`` at a random place (AUG1).

    Parameters
    ----------
    size : int or (int, int)
        (h, w), the output image size, >= 1.
    padding : int or (int, int), default 0
        (pad_h, pad_w) added on each side (top and bottom, left and right), >= 0.
    fill : float, default 0.0
        The value of the padding.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    >>> y = RandomCrop(3, padding=1)(x, batch_generator(0, 0, 0))
    >>> y.shape, y.dtype
    ((2, 1, 3, 3), dtype('float32'))
    """

    def __init__(
        self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0, fill: float = 0.0
    ) -> None:
        self.size = _pair("RandomCrop", "size", size, 1)
        self.padding = _pair("RandomCrop", "padding", padding, 0)
        is_number = isinstance(fill, (int, float)) and not isinstance(fill, bool)
        if not (is_number and math.isfinite(fill)):
            raise ParameterError(
                f"RandomCrop: fill must be a finite number; expected a float, got {fill!r}"
            )
        self.fill = float(fill)

    def __call__(self, x: Array, rng: numpy.random.Generator) -> Array:
        """Crop the batch x (B,C,H,W) to (B,C,h,w); draws i (B,), then j (B,) from ``rng``."""
        op = "RandomCrop"
        _check_batch(op, x)
        xp = get_xp(x)
        B, C, H, W = x.shape
        (h, w), (pad_h, pad_w) = self.size, self.padding
        if h > H + 2 * pad_h or w > W + 2 * pad_w:
            raise ShapeError(
                f"{op}: the crop is larger than the padded image; expected h <= H + 2*pad_h and "
                f"w <= W + 2*pad_w, got size=({h}, {w}) for x.shape={tuple(x.shape)} and "
                f"padding=({pad_h}, {pad_w})"
            )
        tops = rng.integers(0, H + 2 * pad_h - h + 1, size=B)  # (B,) the i_b of (AUG1)
        lefts = rng.integers(0, W + 2 * pad_w - w + 1, size=B)  # (B,) the j_b of (AUG1)
        widths = ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w))
        x_pad = xp.pad(x, widths, constant_values=x.dtype.type(self.fill))  # (B,C,H+2pad_h,..)
        rows = xp.asarray(tops)[:, None] + xp.arange(h)  # (B, h) rows i_b + r
        cols = xp.asarray(lefts)[:, None] + xp.arange(w)  # (B, w) columns j_b + s
        batch = xp.arange(B)[:, None, None, None]  # (B, 1, 1, 1)
        channel = xp.arange(C)[None, :, None, None]  # (1, C, 1, 1)
        return x_pad[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]  # (AUG1)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (AUG2).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(3.0).reshape(1, 1, 1, 3)
    >>> RandomHorizontalFlip(p=1.0)(x, batch_generator(0, 0, 0)).ravel().tolist()
    [2.0, 1.0, 0.0]
    """

    def __init__(self, p: float = 0.5) -> None:
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= 1.0):
            raise ParameterError(
                f"RandomHorizontalFlip: p must be a probability; expected 0 <= p <= 1, got {p!r}"
            )
        self.p = float(p)

    def __call__(self, x: Array, rng: numpy.random.Generator) -> Array:
        """Flip the images of x (B,C,H,W) where u_b < p; draws u (B,) from ``rng``."""
        _check_batch("RandomHorizontalFlip", x)
        xp = get_xp(x)
        flips = xp.asarray(rng.random(x.shape[0]) < self.p)  # (B,) the f_b of (AUG2)
        return xp.where(flips[:, None, None, None], x[:, :, :, ::-1], x)  # (AUG2)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Standardise each channel with given statistics, (D1); draws nothing.

    Parameters
    ----------
    mean, std : sequence of float (C,)
        Per-channel values, finite; std > 0 (e.g. ``convprop.data.normalize``'s
        statistics of the training set).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = numpy.asarray(mean, dtype=numpy.float64).reshape(-1)  # (C,)
        self.std = numpy.asarray(std, dtype=numpy.float64).reshape(-1)  # (C,)
        if self.mean.shape != self.std.shape:
            raise ShapeError(
                f"Normalize: mean and std need one value per channel each; expected equal "
                f"lengths, got mean.shape={self.mean.shape}, std.shape={self.std.shape}"
            )
        finite = bool(numpy.isfinite(self.mean).all() and numpy.isfinite(self.std).all())
        if not finite or not bool((self.std > 0).all()):
            raise ParameterError(
                "Normalize: mean must be finite and std finite and > 0; expected e.g. the "
                f"training set's statistics, got mean={self.mean.tolist()}, "
                f"std={self.std.tolist()}"
            )

    def __call__(self, x: Array, rng: numpy.random.Generator | None = None) -> Array:
        """(x - mean) / std per channel of x (B,C,H,W); same shape and dtype."""
        _check_batch("Normalize", x)
        if x.shape[1] != self.mean.shape[0]:
            raise ShapeError(
                f"Normalize: x has C={x.shape[1]} channels but mean and std have "
                f"{self.mean.shape[0]}; expected equal, got x.shape={tuple(x.shape)}"
            )
        xp = get_xp(x)
        shift = xp.asarray(self.mean.astype(x.dtype)).reshape(1, -1, 1, 1)  # (C,) -> (1,C,1,1)
        spread = xp.asarray(self.std.astype(x.dtype)).reshape(1, -1, 1, 1)  # (C,) -> (1,C,1,1)
        return (x - shift) / spread  # (D1)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply transforms in order, each drawing from the same generator.

    Examples
    --------
    >>> import numpy as np
    >>> augment = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
    >>> augment(np.zeros((8, 1, 4, 4)), batch_generator(1, 2, 3)).shape
    (8, 1, 4, 4)
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for i, transform in enumerate(self.transforms):
            if not callable(transform):
                raise TypeError(
                    f"Compose: transforms[{i}] is not callable; expected a transform such as "
                    f"RandomCrop, got {type(transform).__name__}"
                )

    def __call__(self, x: Array, rng: numpy.random.Generator) -> Array:
        for transform in self.transforms:
            x = transform(x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def standard_augmentation(names: Sequence[str], sample_shape: tuple[int, int, int]) -> Compose:
    """The augmentation ``convprop train --augment`` uses for images of ``sample_shape``.

    Parameters
    ----------
    names : sequence of {"crop", "flip"}
        "crop": RandomCrop to (H, W) with max(1, min(H, W) // 8) pixels of zero padding
        (4 for 32x32, 3 for 28x28, 1 for 8x8); "flip": RandomHorizontalFlip(0.5).
    sample_shape : (C, H, W)

    Raises
    ------
    ParameterError
        For an unknown or repeated name, or none.
    """
    op = "standard_augmentation"
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown or not names or len(set(names)) != len(names):
        raise ParameterError(
            f"{op}: unknown or repeated augmentation; expected one or more of "
            f"{list(AUGMENTATIONS)}, each once, got {list(names)}"
        )
    _, H, W = sample_shape
    transforms: list[Transform] = []
    for name in names:
        if name == "crop":
            transforms.append(RandomCrop((H, W), padding=max(1, min(H, W) // 8)))
        else:
            transforms.append(RandomHorizontalFlip(0.5))
    return Compose(transforms)
