"""scikit-learn's handwritten digits, shipped inside the package: the default data set.

1797 grayscale images of 8×8 pixels with values 0..16, ten classes (the digits 0-9), from
the UCI "Optical Recognition of Handwritten Digits" test set as ``sklearn.datasets.load_digits``
provides it. Small enough to train a CNN on in seconds, on any machine, with no download.

The embedded file ``digits.npz`` (next to this module) holds two uint8 arrays, ``images``
(1797, 8, 8) and ``labels`` (1797,), in sample order, written by ``numpy.savez_compressed``
and read with ``allow_pickle=False``. It was produced once from scikit-learn with::

    python -c "from convprop.data.digits import write_digits_file; write_digits_file()"

and ``tests/data/test_data_digits.py`` checks it against ``load_digits`` whenever scikit-learn is
installed. Only producing or checking the file needs scikit-learn; loading it needs NumPy.
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy
from numpy.typing import NDArray

from convprop.data.dataset import ArrayDataset
from convprop.data.errors import DataError
from convprop.data.split import stratified_split

DIGITS_FILE = Path(__file__).with_name("digits.npz")
"""The embedded file's location in a source checkout (used when rebuilding it)."""

NUM_SAMPLES, IMAGE_SIZE, MAX_VALUE, NUM_CLASSES = 1797, 8, 16, 10


def write_digits_file(path: str | os.PathLike[str] = DIGITS_FILE) -> None:
    """Convert ``sklearn.datasets.load_digits`` into the embedded ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        Where to write; defaults to the package's own ``digits.npz``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch: Any = sklearn_load_digits()
    images = numpy.asarray(bunch.images).astype(numpy.uint8)  # float 0..16 -> (1797, 8, 8) uint8
    labels = numpy.asarray(bunch.target).astype(numpy.uint8)  # (1797,)
    numpy.savez_compressed(path, images=images, labels=labels)


def _read_embedded() -> tuple[NDArray[numpy.uint8], NDArray[numpy.uint8]]:
    """The embedded arrays, checked: images (1797, 8, 8) uint8 in 0..16, labels (1797,) in 0..9."""
    source = resources.files("convprop.data").joinpath("digits.npz")
    try:
        with source.open("rb") as file, numpy.load(file, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(
            "load_digits: the embedded digits file is missing or corrupt; expected "
            f"{source} with arrays 'images' and 'labels', got {type(error).__name__}: {error} "
            "(reinstall convprop, or rebuild it with convprop.data.digits.write_digits_file())"
        ) from None
    expected = ((NUM_SAMPLES, IMAGE_SIZE, IMAGE_SIZE), (NUM_SAMPLES,))
    if (images.shape, labels.shape) != expected or not (
        images.dtype == labels.dtype == numpy.uint8
        and images.max() <= MAX_VALUE
        and labels.max() < NUM_CLASSES
    ):
        raise DataError(
            f"load_digits: the embedded digits file is corrupt; expected uint8 images "
            f"{expected[0]} in 0..{MAX_VALUE} and labels {expected[1]} in 0..{NUM_CLASSES - 1}, "
            f"got images {images.shape} {images.dtype}, labels {labels.shape} {labels.dtype} "
            f"({source})"
        )
    return images, labels


def load_digits(*, test_fraction: float = 0.2, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """The embedded digits, split into a training and a test set.

    The split is stratified (each class keeps its share) and fixed by ``seed`` through
    ``convprop.data.stratified_split``, identically on every machine: with the defaults,
    1438 training and 359 test images.

    Parameters
    ----------
    test_fraction : float
        The share of each class held out for testing, 0 < test_fraction < 1.
    seed : int
        A non-negative seed that names the split.

    Returns
    -------
    train, test : ArrayDataset
        Images (N, 1, 8, 8) float32 in [0, 1] (the values divided by 16) and labels (N,)
        int64 in 0..9, each set in the original sample order.

    Raises
    ------
    ParameterError
        For a fraction outside (0, 1) or a negative seed.
    DataError
        If the embedded file is missing or corrupt.

    Examples
    --------
    >>> train, test = load_digits()
    >>> len(train), len(test), train.sample_shape, train.num_classes
    (1438, 359, (1, 8, 8), 10)
    >>> float(train.images.min()), float(train.images.max())
    (0.0, 1.0)
    """
    images, labels = _read_embedded()
    train_index, test_index = stratified_split(labels, test_fraction=test_fraction, seed=seed)
    x = images.astype(numpy.float32)[:, None, :, :] / numpy.float32(MAX_VALUE)  # (N,1,8,8)
    y = labels.astype(numpy.int64)
    return (
        ArrayDataset(x[train_index], y[train_index]),
        ArrayDataset(x[test_index], y[test_index]),
    )
