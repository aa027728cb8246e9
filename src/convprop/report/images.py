"""Pictures for the training report, as data: URIs (the report needs no other file).

The PNGs of convprop.plots are read from the run directory; the misclassified test images
are drawn here with Pillow, each scaled to its own minimum and maximum.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy
from PIL import Image

from convprop.backend import to_host

SIDE = 96
"""Images are enlarged (nearest neighbour, by a whole factor) to about SIDE pixels a side."""


def png_uri(data: bytes) -> str:
    """A ``data:image/png;base64,…`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def file_uri(path: Path) -> str | None:
    """The data: URI of a PNG file, or None where the file does not exist."""
    return png_uri(path.read_bytes()) if path.is_file() else None


def image_png(image: numpy.ndarray) -> bytes:
    """One image (C, H, W) as PNG bytes: grey for C = 1, colour for C = 3, else the channels'
    mean; scaled to its own min/max (a constant image is mid-grey), enlarged to about SIDE."""
    picture = numpy.asarray(to_host(image), dtype=numpy.float64)
    picture = picture.transpose(1, 2, 0) if picture.shape[0] == 3 else picture.mean(axis=0)
    low, high = float(picture.min()), float(picture.max())
    scaled = (picture - low) / (high - low) if high > low else numpy.full_like(picture, 0.5)
    pixels = Image.fromarray(numpy.round(scaled * 255).astype(numpy.uint8))
    width, height = pixels.size
    scale = max(1, round(SIDE / max(width, height)))
    pixels = pixels.resize((width * scale, height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Misclassified:
    """A test image the model got wrong: its index, true and predicted class, and picture."""

    index: int
    true: int
    predicted: int
    true_name: str
    predicted_name: str
    uri: str


def misclassified(
    images: numpy.ndarray,
    labels: numpy.ndarray,
    predictions: numpy.ndarray,
    class_names: Sequence[str],
    count: int = 8,
) -> list[Misclassified]:
    """The first ``count`` test images (in data-set order) whose prediction is wrong.

    Parameters
    ----------
    images : array (N, C, H, W)
    labels, predictions : integer arrays (N,)
    class_names : sequence of str
        The name of each class.
    """
    wrong = numpy.flatnonzero(numpy.asarray(labels) != numpy.asarray(predictions))[:count]
    found = []
    for index in wrong:
        true, predicted = int(labels[index]), int(predictions[index])
        found.append(
            Misclassified(
                int(index),
                true,
                predicted,
                class_names[true],
                class_names[predicted],
                png_uri(image_png(images[index])),
            )
        )
    return found
