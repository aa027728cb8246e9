"""Data sets by name: the one place that maps a name or a directory to (train, test)."""

from __future__ import annotations

import os
from pathlib import Path

from convprop.data.dataset import ArrayDataset
from convprop.data.digits import load_digits
from convprop.data.errors import DataError
from convprop.data.folder import class_folders, load_image_folders
from convprop.data.idx import load_fashion_mnist, load_mnist_dir

DATASETS = ("digits", "fashion-mnist")
"""The data sets known by name; any directory of MNIST-format IDX files or of class
sub-folders of images works as well."""


def _holds_idx_files(directory: Path) -> bool:
    """Whether ``directory`` has any MNIST-style IDX file (``*-idx<d>-ubyte``, maybe .gz)."""
    return any("-idx" in entry.name and "-ubyte" in entry.name for entry in directory.iterdir())


def load_dataset(name_or_dir: str | os.PathLike[str]) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a data set by name, or from a directory of IDX files or of image folders.

    Parameters
    ----------
    name_or_dir : str or path-like
        ``"digits"`` (the embedded default, ``load_digits()``), ``"fashion-mnist"``
        (``load_fashion_mnist()``), or a directory: one holding IDX files (``train-*`` and
        ``t10k-*``, read by ``load_mnist_dir``), or one holding a sub-folder of PNG/JPEG
        images per class, or ``train/`` and ``test/`` folders of them (read by
        ``load_image_folders``). A directory with IDX files is read as IDX; one without,
        but with sub-folders, as images. A name is matched before a directory of the same
        name.

    Returns
    -------
    train, test : ArrayDataset

    Raises
    ------
    DataError
        For an unknown name that is not a directory either, an empty directory (the
        messages list the choices), or as the chosen loader raises.

    Examples
    --------
    >>> train, test = load_dataset("digits")
    >>> len(train) + len(test)
    1797
    """
    if isinstance(name_or_dir, str) and name_or_dir == "digits":
        return load_digits()
    if isinstance(name_or_dir, str) and name_or_dir == "fashion-mnist":
        return load_fashion_mnist()
    directory = Path(name_or_dir)
    choices = ", ".join(repr(name) for name in DATASETS)
    if not directory.is_dir():
        raise DataError(
            f"load_dataset: unknown data set; expected one of {choices} or a directory of "
            f"MNIST-format IDX files or of image folders, got {os.fspath(name_or_dir)!r} "
            "(no such directory)"
        )
    if not _holds_idx_files(directory) and class_folders(directory):
        return load_image_folders(directory)
    if not any(directory.iterdir()):
        raise DataError(
            f"load_dataset: the directory is empty; expected MNIST-format IDX files "
            f"(train-images-idx3-ubyte[.gz], ...) or one sub-folder of PNG/JPEG images per "
            f"class, got nothing in '{directory}'"
        )
    return load_mnist_dir(directory, kind="train"), load_mnist_dir(directory, kind="test")
