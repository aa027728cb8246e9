"""A stratified train/test split that a seed names identically on every machine."""

from __future__ import annotations

import math
from typing import Any

import numpy
from numpy.typing import NDArray

from convprop.data.dataset import require_int
from convprop.data.errors import DataError
from convprop.errors import ParameterError, ShapeError


def stratified_split(
    labels: NDArray[Any], *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[NDArray[numpy.int64], NDArray[numpy.int64]]:
    """Split sample indices into train and test, keeping each class's share.

    Each class with n samples gives ``floor(test_fraction * n + 0.5)`` of them to the test
    set. Within a class, samples are ranked by 64-bit keys drawn from
    ``numpy.random.PCG64(seed).random_raw`` (one key per sample, in sample order) and the
    lowest-ranked go to the test set. NumPy guarantees the bit generator's stream on every
    machine and version, so a seed names the same split everywhere.

    Parameters
    ----------
    labels : numpy.ndarray (N,)
        Integer class labels.
    test_fraction : float
        The share of each class that goes to the test set, 0 < test_fraction < 1.
    seed : int
        A non-negative seed.

    Returns
    -------
    train_index, test_index : numpy.ndarray of int64
        Sorted, disjoint sample indices that together cover 0..N-1.

    Raises
    ------
    ParameterError
        For a fraction outside (0, 1) or a negative seed.
    ShapeError
        If ``labels`` is not 1-D.
    DataError
        If the train or the test set would be empty.

    Examples
    --------
    >>> import numpy as np
    >>> train_index, test_index = stratified_split(np.array([0, 0, 0, 0, 1, 1]), test_fraction=0.5)
    >>> len(train_index), len(test_index)
    (3, 3)
    """
    op = "stratified_split"
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ParameterError(
            f"{op}: test_fraction must be a number; expected 0 < test_fraction < 1, "
            f"got {test_fraction!r}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ParameterError(
            f"{op}: test_fraction out of range; expected 0 < test_fraction < 1, got {test_fraction}"
        )
    seed = require_int(op, "seed", seed, minimum=0)
    labels = numpy.asarray(labels)
    if labels.ndim != 1:
        raise ShapeError(
            f"{op}: labels must be 1-D; expected (N,), got labels.shape={labels.shape}"
        )
    keys: NDArray[numpy.uint64] = numpy.asarray(
        numpy.random.PCG64(seed).random_raw(labels.shape[0])  # (N,) uint64
    )
    test_parts = []
    for label in numpy.unique(labels):
        members = numpy.flatnonzero(labels == label)
        ranked = members[numpy.argsort(keys[members], kind="stable")]
        test_parts.append(ranked[: math.floor(test_fraction * len(members) + 0.5)])
    is_test = numpy.zeros(labels.shape[0], dtype=bool)
    is_test[numpy.concatenate(test_parts)] = True
    train_index = numpy.flatnonzero(~is_test).astype(numpy.int64)
    test_index = numpy.flatnonzero(is_test).astype(numpy.int64)
    if len(train_index) == 0 or len(test_index) == 0:
        raise DataError(
            f"{op}: the split leaves an empty set; expected at least one train and one test "
            f"sample, got {len(train_index)} train and {len(test_index)} test "
            f"(N={labels.shape[0]}, test_fraction={test_fraction})"
        )
    return train_index, test_index
