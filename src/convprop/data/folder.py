"""Data sets from folders of images: one sub-folder per class, PNG or JPEG files.

Layout (as torchvision's ImageFolder)::

    DIR/cat/001.png  DIR/cat/002.jpg  ...  DIR/dog/001.png  ...

The classes are the sub-folders in sorted order (label 0 for the first); the images of a
class are its ``.png``, ``.jpg`` and ``.jpeg`` files (any case) in sorted order; other files
and hidden entries are ignored. Every image is read with Pillow, converted to 8-bit grey
("L") or, when any image of the set has colour, to RGB (a grey image then repeats its one
channel three times, as Pillow's conversion does), resized to one size (by default the
first image's) with Pillow's default filter, and scaled to float32 in [0, 1] (the bytes
divided by 255), exactly as ``convprop predict`` reads an image file.

``load_image_folders`` gives a train and a test set: from ``DIR/train`` and ``DIR/test``
when both exist (the test classes must be train classes), otherwise from ``DIR`` split per
class by ``stratified_split`` (a fifth of each class, seed 0, the same on every machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy
from numpy.typing import NDArray

from convprop.data.dataset import ArrayDataset, require_int
from convprop.data.errors import DataError
from convprop.data.split import stratified_split
from convprop.errors import ParameterError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
"""Pillow modes read as grey; every other mode (RGB, RGBA, P, CMYK, ...) is read as colour."""


def class_folders(directory: str | os.PathLike[str]) -> list[str]:
    """The class names: the visible sub-folders of ``directory``, sorted."""
    return sorted(
        entry.name
        for entry in Path(directory).iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        entry
        for entry in folder.iterdir()
        if entry.is_file()
        and not entry.name.startswith(".")
        and entry.suffix.lower() in IMAGE_SUFFIXES
    )


def _read(path: Path, size: tuple[int, int] | None) -> tuple[NDArray[numpy.uint8], bool]:
    """One image as uint8 (H, W) grey or (H, W, 3) colour, resized to ``size`` = (H, W)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = image.mode in GREY_MODES
            converted = image.convert("L" if grey else "RGB")
            if size is not None and converted.size != (size[1], size[0]):
                converted = converted.resize((size[1], size[0]))  # Pillow takes (W, H)
            return numpy.asarray(converted, dtype=numpy.uint8), grey
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise DataError(
            f"load_image_folder: cannot read an image; expected a PNG or JPEG file, got "
            f"'{path}' ({error})"
        ) from None


def load_image_folder(
    directory: str | os.PathLike[str],
    *,
    classes: list[str] | None = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> tuple[ArrayDataset, list[str]]:
    """Read every image of the class sub-folders of ``directory`` into one data set.

    Parameters
    ----------
    directory : str or path-like
        Holds one sub-folder of PNG/JPEG images per class.
    classes : list of str, optional
        The class names in label order (default: the sub-folders, sorted). Every sub-folder
        must be one of them (a test set may lack some); each sub-folder needs an image.
    image_size : int or (int, int), optional
        (H, W) of every image; default: the size of the first image read.
    channels : {1, 3}, optional
        Grey or RGB; default: 3 when any image has colour, 1 otherwise.

    Returns
    -------
    dataset : ArrayDataset
        Images (N, C, H, W) float32 in [0, 1], labels (N,) int64 in class order.
    classes : list of str
        The class names; label k is ``classes[k]``.

    Raises
    ------
    DataError
        For a missing directory, no class folder, a class folder without images, an image
        Pillow cannot read (the message names the file), or a sub-folder that is not one of
        ``classes``.
    ParameterError
        For a bad ``image_size`` or ``channels``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, value in [("dark", 10), ("light", 240)]:
    ...     (root / name).mkdir()
    ...     Image.fromarray(np.full((6, 4), value, np.uint8)).save(root / name / "a.png")
    >>> dataset, classes = load_image_folder(root)
    >>> dataset.images.shape, dataset.labels.tolist(), classes
    ((2, 1, 6, 4), [0, 1], ['dark', 'light'])
    """
    op = "load_image_folder"
    root = Path(directory)
    if not root.is_dir():
        raise DataError(
            f"{op}: not a directory; expected a folder of class sub-folders, got '{root}'"
        )
    found = class_folders(root)
    names = found if classes is None else list(classes)
    if not names:
        raise DataError(
            f"{op}: no class folders; expected one sub-folder of PNG/JPEG images per class, "
            f"got none in '{root}'"
        )
    strangers = sorted(set(found) - set(names))
    if strangers:
        raise DataError(
            f"{op}: unknown classes; expected only the classes {names}, got the sub-folders "
            f"{strangers} in '{root}'"
        )
    size = None if image_size is None else _size(op, image_size)
    if channels is not None and channels not in (1, 3):
        raise ParameterError(f"{op}: channels must be 1 or 3; expected 1 or 3, got {channels!r}")
    images: list[NDArray[numpy.uint8]] = []
    labels: list[int] = []
    all_grey = True
    for label, name in enumerate(names):
        if name not in found:
            continue  # a class of the training set that this (test) folder lacks
        files = _image_files(root / name)
        if not files:
            raise DataError(
                f"{op}: the class folder '{root / name}' holds no image; expected at least one "
                f"{'/'.join(IMAGE_SUFFIXES)} file per class, got none"
            )
        for path in files:
            pixels, grey = _read(path, size)
            size = size or (int(pixels.shape[0]), int(pixels.shape[1]))
            all_grey = all_grey and grey
            images.append(pixels)
            labels.append(label)
    if not images:
        raise DataError(
            f"{op}: no images; expected class sub-folders {names} holding PNG/JPEG files, "
            f"got no class folder in '{root}'"
        )
    colour = (not all_grey) if channels is None else channels == 3
    x = numpy.stack([_as_chw(pixels, colour) for pixels in images]).astype(numpy.float32)
    x /= numpy.float32(255)  # in place: one float32 copy
    return ArrayDataset(x, numpy.asarray(labels, dtype=numpy.int64)), names


def _size(op: str, image_size: Any) -> tuple[int, int]:
    values = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size,) * 2
    if len(values) != 2:
        raise ParameterError(
            f"{op}: image_size must be an int or (H, W); expected two sizes, got {image_size!r}"
        )
    height, width = (require_int(op, "image_size", value, minimum=1) for value in values)
    return height, width


def _as_chw(pixels: NDArray[numpy.uint8], colour: bool) -> NDArray[numpy.uint8]:
    """(H, W) or (H, W, 3) uint8 -> (C, H, W) with C = 3 when ``colour``, else 1."""
    if pixels.ndim == 2:
        chw: NDArray[numpy.uint8] = (
            numpy.repeat(pixels[None], 3, axis=0) if colour else pixels[None]
        )
        return chw
    if colour:
        chw = pixels.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        return chw
    from PIL import Image  # a colour image in a grey set (channels=1): Pillow's RGB -> L

    chw = numpy.asarray(Image.fromarray(pixels, "RGB").convert("L"), dtype=numpy.uint8)[None]
    return chw


def load_image_folders(
    directory: str | os.PathLike[str], *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    """The train and test sets of a folder data set (see the module docstring).

    Parameters
    ----------
    directory : str or path-like
        Either holds ``train/`` and ``test/``, each with the class sub-folders, or the class
        sub-folders themselves.
    test_fraction, seed
        For the split of a folder without ``train/`` and ``test/`` (``stratified_split``).

    Returns
    -------
    train, test : ArrayDataset
        With the same classes, image size and channels (the training set's).

    Raises
    ------
    DataError
        As ``load_image_folder`` raises, or when a split leaves the test set empty.
    """
    root = Path(directory)
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, classes = load_image_folder(root / "train")
        C, H, W = train.sample_shape
        test, _ = load_image_folder(root / "test", classes=classes, image_size=(H, W), channels=C)
        return train, test
    dataset, _ = load_image_folder(root)
    train_index, test_index = stratified_split(
        dataset.labels, test_fraction=test_fraction, seed=seed
    )
    return dataset[train_index], dataset[test_index]
