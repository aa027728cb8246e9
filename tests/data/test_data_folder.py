"""convprop.data.folder: data sets from class sub-folders of PNG/JPEG images, and the
registry's choice between IDX directories and image folders.

The expected pixels are read independently with Pillow (convert, resize, / 255), the way
``convprop predict`` reads one image file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convprop.data import DataError, load_dataset, load_image_folder, load_image_folders, write_idx
from convprop.errors import ParameterError


def save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def grey(seed: int, shape: tuple[int, int] = (6, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_folder(root: Path, counts: dict[str, int], shape: tuple[int, int] = (6, 5)) -> None:
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            save(root / name / f"{i:03d}.png", grey(10 * k + i, shape))


def test_grey_pngs_are_read_exactly_in_class_and_file_order(tmp_path: Path) -> None:
    make_folder(tmp_path, {"b_second": 2, "a_first": 3})
    (tmp_path / "a_first" / "notes.txt").write_text("not an image")
    save(tmp_path / "a_first" / ".hidden.png", grey(99))
    (tmp_path / ".cache").mkdir()
    dataset, classes = load_image_folder(tmp_path)
    assert classes == ["a_first", "b_second"]
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1]
    assert dataset.images.shape == (5, 1, 6, 5) and dataset.images.dtype == np.float32
    want = [grey(10 + i) for i in range(3)] + [grey(i) for i in range(2)]
    np.testing.assert_array_equal(dataset.images[:, 0], np.stack(want) / np.float32(255))


def test_colour_anywhere_makes_every_image_rgb_and_sizes_follow_the_first(tmp_path: Path) -> None:
    save(tmp_path / "cat" / "a.png", grey(1, (8, 6)))
    colour = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    save(tmp_path / "dog" / "b.png", colour)
    Image.fromarray(grey(3, (8, 6))).save(tmp_path / "dog" / "c.JPEG", quality=95)
    dataset, _ = load_image_folder(tmp_path)
    assert dataset.images.shape == (3, 3, 8, 6)
    first = dataset.images[0]
    np.testing.assert_array_equal(first, np.repeat(grey(1, (8, 6))[None] / np.float32(255), 3, 0))
    resized = np.asarray(Image.fromarray(colour).resize((6, 8)), np.float32) / 255
    np.testing.assert_array_equal(dataset.images[1], resized.transpose(2, 0, 1))
    with Image.open(tmp_path / "dog" / "c.JPEG") as image:
        jpeg = np.asarray(image.convert("L"), np.float32) / 255
    np.testing.assert_array_equal(dataset.images[2, 0], jpeg)


def test_image_size_and_channels_can_be_chosen(tmp_path: Path) -> None:
    colour = np.random.default_rng(4).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    save(tmp_path / "only" / "a.png", colour)
    dataset, _ = load_image_folder(tmp_path, image_size=(3, 4), channels=1)
    assert dataset.images.shape == (1, 1, 3, 4)
    want = np.asarray(Image.fromarray(colour).resize((4, 3)).convert("L"), np.float32) / 255
    np.testing.assert_array_equal(dataset.images[0, 0], want)
    square, _ = load_image_folder(tmp_path, image_size=2)
    assert square.images.shape == (1, 3, 2, 2)


def test_train_and_test_folders_share_classes_size_and_channels(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", {"x": 3, "y": 2, "z": 2})
    save(tmp_path / "test" / "z" / "a.png", grey(7, (9, 9)))  # resized to the train size
    save(tmp_path / "test" / "x" / "a.png", grey(8, (6, 5)))
    train, test = load_image_folders(tmp_path)
    assert train.images.shape == (7, 1, 6, 5) and test.images.shape == (2, 1, 6, 5)
    assert test.labels.tolist() == [0, 2]  # x and z keep the train labels; y is absent
    assert load_dataset(tmp_path)[1].labels.tolist() == [0, 2]


def test_one_folder_is_split_per_class_the_same_way_each_time(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 10, "b": 5})
    train, test = load_image_folders(tmp_path)
    assert (len(train), len(test)) == (12, 3)
    assert sorted(test.labels.tolist()) == [0, 0, 1]
    again_train, again_test = load_dataset(tmp_path)
    np.testing.assert_array_equal(test.images, again_test.images)
    np.testing.assert_array_equal(train.labels, again_train.labels)


def test_registry_keeps_idx_directories_and_names_an_empty_one(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    idx.mkdir()
    for prefix, n in (("train", 4), ("t10k", 2)):
        write_idx(idx / f"{prefix}-images-idx3-ubyte", np.zeros((n, 3, 3), np.uint8))
        write_idx(idx / f"{prefix}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    (idx / "extra").mkdir()  # a sub-folder does not turn an IDX directory into images
    train, test = load_dataset(idx)
    assert (len(train), len(test)) == (4, 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError,
        match=r"load_dataset: the directory is empty; expected "
        r"MNIST-format IDX files .* or one sub-folder of PNG/JPEG images per class",
    ):
        load_dataset(tmp_path / "empty")
    with pytest.raises(
        DataError,
        match=r"load_dataset: unknown data set; expected one of "
        r"'digits', 'fashion-mnist' or a directory of MNIST-format IDX files or "
        r"of image folders, got 'cifar' \(no such directory\)",
    ):
        load_dataset("cifar")


def test_errors_name_the_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"load_image_folder: not a directory; expected a folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    save(tmp_path / "flat" / "a.png", grey(0))
    with pytest.raises(
        DataError,
        match=r"load_image_folder: no class folders; expected one "
        r"sub-folder of PNG/JPEG images per class, got none in",
    ):
        load_image_folder(tmp_path / "flat")
    make_folder(tmp_path / "gap", {"a": 1})
    (tmp_path / "gap" / "b").mkdir()
    (tmp_path / "gap" / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(
        DataError,
        match=r"the class folder '.*b' holds no image; expected at "
        r"least one .png/.jpg/.jpeg file per class",
    ):
        load_dataset(tmp_path / "gap")
    make_folder(tmp_path / "bad", {"a": 1})
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(
        DataError,
        match=r"load_image_folder: cannot read an image; expected a "
        r"PNG or JPEG file, got '.*broken.png'",
    ):
        load_image_folder(tmp_path / "bad")
    make_folder(tmp_path / "split" / "train", {"a": 2})
    make_folder(tmp_path / "split" / "test", {"a": 1, "q": 1})
    with pytest.raises(
        DataError,
        match=r"unknown classes; expected only the classes \['a'\], "
        r"got the sub-folders \['q'\]",
    ):
        load_image_folders(tmp_path / "split")
    make_folder(tmp_path / "hollow" / "train", {"a": 2})
    (tmp_path / "hollow" / "test").mkdir()
    with pytest.raises(
        DataError,
        match=r"load_image_folder: no images; expected class "
        r"sub-folders \['a'\]",
    ):
        load_image_folders(tmp_path / "hollow")
    with pytest.raises(ParameterError, match=r"load_image_folder: channels must be 1 or 3"):
        load_image_folder(tmp_path / "gap", channels=2)
    with pytest.raises(ParameterError, match=r"load_image_folder: image_size is too small"):
        load_image_folder(tmp_path / "gap", image_size=0)
    with pytest.raises(ParameterError, match=r"image_size must be an int or \(H, W\)"):
        load_image_folder(tmp_path / "gap", image_size=(1, 2, 3))
    make_folder(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(DataError, match=r"stratified_split: the split leaves an empty set"):
        load_image_folders(tmp_path / "tiny")
