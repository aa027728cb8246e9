"""Data sets by name: the one place that maps a name or a directory to (train, test)."""

from __future__ import annotations

import os
from pathlib import Path

from convprop.data.dataset import ArrayDataset
from convprop.data.digits import load_digits
from convprop.data.errors import DataError
from convprop.data.idx import load_fashion_mnist, load_mnist_dir

DATASETS = ("digits", "fashion-mnist")
"""The data sets known by name; any directory of MNIST-format IDX files works as well."""


def load_dataset(name_or_dir: str | os.PathLike[str]) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a data set by name, or from a directory of MNIST-format IDX files.

    Parameters
    ----------
    name_or_dir : str or path-like
        ``"digits"`` (the embedded default, ``load_digits()``), ``"fashion-mnist"``
        (``load_fashion_mnist()``), or a directory holding ``train-*`` and ``t10k-*`` IDX
        files (``load_mnist_dir``). A name is matched before a directory of the same name.

    Returns
    -------
    train, test : ArrayDataset

    Raises
    ------
    DataError
        For an unknown name that is not a directory either (the message lists the choices),
        or as the chosen loader raises.

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
    if not directory.is_dir():
        choices = ", ".join(repr(name) for name in DATASETS)
        raise DataError(
            f"load_dataset: unknown data set; expected one of {choices} or a directory of "
            f"MNIST-format IDX files, got {os.fspath(name_or_dir)!r} (no such directory)"
        )
    return load_mnist_dir(directory, kind="train"), load_mnist_dir(directory, kind="test")
