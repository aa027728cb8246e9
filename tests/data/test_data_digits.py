"""The embedded digits data set and the stratified split that names its train/test sets."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convprop.data.digits as digits_module
from convprop.data import DataError, load_digits, stratified_split
from convprop.errors import ParameterError, ShapeError

DIGITS_PER_CLASS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def _embedded() -> tuple[np.ndarray, np.ndarray]:
    with np.load(digits_module.DIGITS_FILE, allow_pickle=False) as archive:
        return archive["images"], archive["labels"]


def test_embedded_file_equals_scikit_learn_load_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    images, labels = _embedded()
    np.testing.assert_array_equal(images, reference.images)  # uint8 vs float64 0..16: exact
    np.testing.assert_array_equal(labels, reference.target)


def test_write_digits_file_reproduces_the_embedded_arrays(tmp_path):
    pytest.importorskip("sklearn.datasets")
    digits_module.write_digits_file(tmp_path / "digits.npz")
    with np.load(tmp_path / "digits.npz", allow_pickle=False) as archive:
        rebuilt = archive["images"], archive["labels"]
    for new, old in zip(rebuilt, _embedded(), strict=True):
        assert new.dtype == old.dtype == np.uint8
        np.testing.assert_array_equal(new, old)


def test_embedded_file_shapes_types_and_class_counts():
    images, labels = _embedded()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == DIGITS_PER_CLASS


def test_default_split_is_fixed():
    train, test = load_digits()
    assert (len(train), len(test)) == (1438, 359)
    assert train.labels[:12].tolist() == [0, 1, 4, 5, 6, 7, 8, 9, 0, 2, 4, 6]
    assert test.labels[:12].tolist() == [2, 3, 1, 3, 5, 0, 1, 5, 0, 8, 0, 3]
    digest = hashlib.sha256(test.images.tobytes()).hexdigest()
    assert digest == "84a93e0731dd6819270a912751221843b5e470faf1d93581e5fcec276c2cfc81"
    digest = hashlib.sha256(train.labels.tobytes()).hexdigest()
    assert digest == "8d39a184505621e34ca36ebd11427013ff1686891a5dbc156f897ca78513aba6"


def test_default_split_is_stratified():
    train, test = load_digits()
    expected_test = [math.floor(0.2 * n + 0.5) for n in DIGITS_PER_CLASS]
    assert np.bincount(test.labels).tolist() == expected_test
    assert (np.bincount(train.labels) + np.bincount(test.labels)).tolist() == DIGITS_PER_CLASS


def test_digits_shapes_types_and_ranges():
    for ds in load_digits():
        assert ds.images.shape[1:] == (1, 8, 8) and ds.images.dtype == np.float32
        assert ds.labels.dtype == np.int64 and set(ds.labels.tolist()) == set(range(10))
        assert ds.images.min() == 0.0 and ds.images.max() == 1.0
        np.testing.assert_array_equal(ds.images * 16, np.round(ds.images * 16))  # k/16 exactly


def test_train_and_test_together_are_the_whole_data_set():
    images, labels = _embedded()
    train, test = load_digits(seed=3)
    got_images = np.concatenate([train.images, test.images]).reshape(1797, 64) * 16
    got_labels = np.concatenate([train.labels, test.labels])
    got = sorted(map(tuple, np.column_stack([got_images.astype(np.int64), got_labels]).tolist()))
    expected = np.column_stack([images.reshape(1797, 64), labels]).astype(np.int64)
    assert got == sorted(map(tuple, expected.tolist()))


def test_seed_names_the_split():
    first, second = load_digits(seed=1), load_digits(seed=1)
    other = load_digits(seed=2)
    np.testing.assert_array_equal(first[1].images, second[1].images)
    assert len(other[1]) == len(first[1])
    assert not np.array_equal(first[1].images, other[1].images)


def test_test_fraction_sets_the_sizes():
    train, test = load_digits(test_fraction=0.5)
    assert len(test) == sum(math.floor(0.5 * n + 0.5) for n in DIGITS_PER_CLASS)
    assert len(train) + len(test) == 1797


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_load_digits_refuses_fractions_outside_the_open_interval(fraction):
    with pytest.raises(ParameterError, match=r"test_fraction out of range; expected 0 < "):
        load_digits(test_fraction=fraction)


@pytest.mark.parametrize("fraction", ["0.2", None, True])
def test_load_digits_refuses_non_numeric_fractions(fraction):
    with pytest.raises(ParameterError, match=r"test_fraction must be a number"):
        load_digits(test_fraction=fraction)


@pytest.mark.parametrize(
    ("seed", "message"),
    [(-1, r"seed is too small; expected an int >= 0, got -1"), (1.5, r"seed must be an integer")],
)
def test_load_digits_refuses_bad_seeds(seed, message):
    with pytest.raises(ParameterError, match=message):
        load_digits(seed=seed)


# ---------------------------------------------------------------- stratified_split


@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=60),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32),
)
def test_stratified_split_partitions_each_class(labels, fraction, seed):
    labels = np.array(labels)
    counts = np.bincount(labels, minlength=5)
    expected_test = [math.floor(fraction * n + 0.5) for n in counts]
    if sum(expected_test) in (0, len(labels)):
        with pytest.raises(DataError, match=r"the split leaves an empty set"):
            stratified_split(labels, test_fraction=fraction, seed=seed)
        return
    train_index, test_index = stratified_split(labels, test_fraction=fraction, seed=seed)
    assert np.array_equal(
        np.sort(np.concatenate([train_index, test_index])), np.arange(len(labels))
    )
    assert np.all(np.diff(train_index) > 0) and np.all(np.diff(test_index) > 0)
    assert np.bincount(labels[test_index], minlength=5).tolist() == expected_test
    again = stratified_split(labels, test_fraction=fraction, seed=seed)
    assert np.array_equal(again[1], test_index)


def test_stratified_split_known_answer():
    # The keys come from NumPy's PCG64 bit stream, which NumPy keeps identical across versions.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    keys = np.random.PCG64(42).random_raw(10)
    expected = sorted(
        [i for i in np.argsort(keys[:4], kind="stable")[:2]]
        + [4 + i for i in np.argsort(keys[4:], kind="stable")[:3]]
    )
    _, test_index = stratified_split(labels, test_fraction=0.5, seed=42)
    assert test_index.tolist() == expected


def test_stratified_split_refuses_an_empty_test_set():
    message = r"the split leaves an empty set; expected at least one train and one test sample, "
    with pytest.raises(DataError, match=message + r"got 3 train and 0 test"):
        stratified_split(np.array([0, 1, 2]), test_fraction=0.1)


def test_stratified_split_refuses_labels_of_another_rank():
    with pytest.raises(ShapeError, match=r"labels must be 1-D; expected \(N,\), got .*\(2, 2\)"):
        stratified_split(np.zeros((2, 2), dtype=int))


# ---------------------------------------------------------------- a damaged installation


class _Files:
    """Stands in for importlib.resources.files, pointing at a directory of our choosing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, package: str) -> Path:
        return self.directory


def test_missing_embedded_file_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(digits_module.resources, "files", _Files(tmp_path))
    with pytest.raises(
        DataError, match=r"embedded digits file is missing or corrupt.*write_digits"
    ):
        load_digits()


@pytest.mark.parametrize(
    "arrays",
    [
        {"images": np.zeros((5, 8, 8), np.uint8), "labels": np.zeros(5, np.uint8)},
        {"images": np.full((1797, 8, 8), 17, np.uint8), "labels": np.zeros(1797, np.uint8)},
        {"images": np.zeros((1797, 8, 8), np.float32), "labels": np.zeros(1797, np.uint8)},
    ],
)
def test_embedded_file_with_wrong_contents_is_a_data_error(tmp_path, monkeypatch, arrays):
    np.savez_compressed(tmp_path / "digits.npz", **arrays)
    monkeypatch.setattr(digits_module.resources, "files", _Files(tmp_path))
    with pytest.raises(DataError, match=r"embedded digits file is corrupt; expected uint8 images"):
        load_digits()


@pytest.mark.parametrize("content", [b"not a zip file", None])
def test_unreadable_embedded_file_is_a_data_error(tmp_path, monkeypatch, content):
    if content is None:  # an object array, which allow_pickle=False refuses to load
        np.savez(tmp_path / "digits.npz", images=np.array([{}], dtype=object), labels=np.zeros(1))
    else:
        (tmp_path / "digits.npz").write_bytes(content)
    monkeypatch.setattr(digits_module.resources, "files", _Files(tmp_path))
    with pytest.raises(DataError, match=r"embedded digits file is missing or corrupt"):
        load_digits()
