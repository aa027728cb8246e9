"""The names of a data set's classes, for plots, reports and ``convprop predict``."""

from __future__ import annotations

import os
from pathlib import Path

from convprop.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR


def class_names(dataset: str | os.PathLike[str], num_classes: int) -> tuple[str, ...]:
    """Names of classes 0 … num_classes − 1 of ``dataset``.

    Parameters
    ----------
    dataset : str or path-like
        A data set's name (``"digits"``, ``"fashion-mnist"``) or directory, as ``convprop
        train`` stores it with the model.
    num_classes : int
        How many names to return.

    Returns
    -------
    tuple of str
        Fashion-MNIST's names ("T-shirt/top", …, "Ankle boot") for ``"fashion-mnist"`` or the
        directory Debian installs it in; the labels' numbers ("0", "1", …) otherwise, and for
        classes beyond the named ones.

    Examples
    --------
    >>> class_names("fashion-mnist", 10)[9]
    'Ankle boot'
    >>> class_names("digits", 3)
    ('0', '1', '2')
    """
    name = os.fspath(dataset)
    fashion = name == "fashion-mnist" or (
        bool(name) and Path(name).resolve() == FASHION_MNIST_DIR.resolve()
    )
    named = FASHION_MNIST_CLASSES if fashion else ()
    return tuple(named[k] if k < len(named) else str(k) for k in range(num_classes))
