"""The IDX reader/writer, MNIST-format directories, Fashion-MNIST and ``load_dataset``."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convprop.data.idx as idx_module
from convprop.data import (
    DATASETS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    DataError,
    load_dataset,
    load_fashion_mnist,
    load_mnist_dir,
    read_idx,
    write_idx,
)
from convprop.errors import DTypeError, ParameterError, ShapeError

IDX_DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]
TYPE_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}
TYPE_CODES["float64"] = 0x0E


def _sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Integers spanning the dtype's range (extremes included); floats of both signs."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        flat = values.reshape(-1)
        if flat.size >= 2:
            flat[0], flat[1] = info.min, info.max
        return values
    return (rng.standard_normal(shape) * 1e3).astype(dtype)


def _header(code: int, *sizes: int) -> bytes:
    return bytes([0, 0, code, len(sizes)]) + np.asarray(sizes, dtype=">u4").tobytes()


def _put(path: Path, content: bytes) -> Path:
    """Write raw bytes, gzip-compressed when the name ends in .gz."""
    path.write_bytes(gzip.compress(content, mtime=0) if path.name.endswith(".gz") else content)
    return path


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), (2, 0, 3), (1, 2, 1, 3)])
def test_write_then_read_round_trips_every_type(tmp_path, dtype, suffix, shape):
    array = _sample(dtype, shape)
    path = tmp_path / f"data-idx{len(shape)}{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable and back.flags.c_contiguous


@pytest.mark.parametrize("dtype", IDX_DTYPES)
def test_write_idx_header_and_big_endian_payload_known_answer(tmp_path, dtype):
    array = _sample(dtype, (2, 3), seed=1)
    write_idx(tmp_path / "a", array)
    content = (tmp_path / "a").read_bytes()
    assert content[:12] == bytes([0, 0, TYPE_CODES[dtype], 2, 0, 0, 0, 2, 0, 0, 0, 3])
    assert content[12:] == array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def test_write_idx_known_bytes_for_ubyte_labels(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 030104")


def test_write_idx_accepts_any_byte_order_and_non_contiguous_input(tmp_path):
    array = _sample("int32", (4, 6), seed=2)
    write_idx(tmp_path / "native", array)
    write_idx(tmp_path / "swapped", array.astype(">i4"))
    write_idx(tmp_path / "strided", np.asfortranarray(array))
    reference = (tmp_path / "native").read_bytes()
    assert (tmp_path / "swapped").read_bytes() == reference
    assert (tmp_path / "strided").read_bytes() == reference


def test_write_idx_gzip_is_deterministic_and_decompresses_to_the_raw_file(tmp_path):
    array = _sample("float32", (3, 4), seed=3)
    write_idx(tmp_path / "raw", array)
    write_idx(tmp_path / "one.gz", array)
    write_idx(tmp_path / "two.gz", array)
    compressed = (tmp_path / "one.gz").read_bytes()
    assert gzip.decompress(compressed) == (tmp_path / "raw").read_bytes()
    assert gzip.decompress((tmp_path / "two.gz").read_bytes()) == (tmp_path / "raw").read_bytes()
    assert compressed[4:8] == b"\x00\x00\x00\x00"  # mtime 0


def test_write_idx_replaces_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "x-idx1-ubyte"
    write_idx(path, np.arange(5, dtype=np.uint8))

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(idx_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.arange(9, dtype=np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_idx(path), np.arange(5))  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-idx1-ubyte"]


def test_write_idx_file_mode_follows_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        write_idx(tmp_path / "m", np.zeros(2, np.uint8))
    finally:
        os.umask(umask)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o644


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from(IDX_DTYPES),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple),
    gz=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(tmp_path_factory, dtype, shape, gz, seed):
    array = _sample(dtype, shape, seed)
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if gz else "f")
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


# ---------------------------------------------------------------- write errors


@pytest.mark.parametrize("dtype", ["int64", "uint16", "bool", "complex64", "float16"])
def test_write_idx_refuses_types_idx_cannot_hold(tmp_path, dtype):
    with pytest.raises(DTypeError, match=rf"IDX cannot hold this dtype.*got {dtype}"):
        write_idx(tmp_path / "f", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


def test_write_idx_refuses_zero_dimensional_arrays(tmp_path):
    with pytest.raises(ShapeError, match=r"expected 1 <= ndim <= 255.*array.shape=\(\)"):
        write_idx(tmp_path / "f", np.uint8(3))


# ---------------------------------------------------------------- read errors

GOOD_PAYLOAD = _header(0x08, 2, 3) + bytes(range(6))


def _corrupt_cases() -> list[tuple[str, bytes, str]]:
    return [
        ("empty", b"", r"truncated header; expected 4 magic-number bytes, got 0"),
        ("short-magic", b"\x00\x00", r"truncated header; expected 4 magic-number bytes, got 2"),
        ("bad-magic", b"\x01\x02\x08\x01" + bytes(5), r"not an IDX file.*got 01 02"),
        ("unknown-type", _header(0x0A, 3) + bytes(3), r"unknown IDX type code.*got 0x0A"),
        ("zero-ndim", b"\x00\x00\x08\x00", r"bad IDX header; expected ndim >= 1, got ndim=0"),
        (
            "truncated-sizes",
            _header(0x08, 2, 3, 4)[:9],
            r"truncated header; expected 12 bytes of sizes for ndim=3, got 5",
        ),
        (
            "short-payload",
            GOOD_PAYLOAD[:-2],
            r"short payload; expected 6 bytes for shape \(2, 3\) of uint8, got 4",
        ),
        (
            "short-float-payload",
            _header(0x0E, 4) + bytes(31),
            r"short payload; expected 32 bytes for shape \(4,\) of float64, got 31",
        ),
        (
            "trailing-bytes",
            GOOD_PAYLOAD + b"abc",
            r"trailing bytes after the payload; expected 6 bytes.*got 9",
        ),
    ]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    ("name", "content", "message"), _corrupt_cases(), ids=[c[0] for c in _corrupt_cases()]
)
def test_read_idx_refuses_corrupt_content_naming_the_file(tmp_path, name, content, message, suffix):
    path = _put(tmp_path / f"{name}{suffix}", content)
    with pytest.raises(DataError, match=rf"^read_idx: {message} \(file '{re.escape(str(path))}'\)"):
        read_idx(path)


def test_read_idx_hints_at_a_gzip_file_without_gz_name(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(GOOD_PAYLOAD))
    with pytest.raises(DataError, match=r"not an IDX file.*got 1f 8b.*give it a \.gz name"):
        read_idx(path)


def _gzip_cases() -> list[tuple[str, bytes]]:
    good = gzip.compress(GOOD_PAYLOAD * 50, mtime=0)  # payload too long, but never reached
    flipped_crc = bytearray(good)
    flipped_crc[-6] ^= 0xFF
    flipped_data = bytearray(gzip.compress(GOOD_PAYLOAD, mtime=0))
    flipped_data[12] ^= 0xFF
    return [
        ("not-gzip", GOOD_PAYLOAD),
        ("cut-stream", gzip.compress(GOOD_PAYLOAD, mtime=0)[:-12]),
        ("cut-trailer", gzip.compress(GOOD_PAYLOAD, mtime=0)[:-3]),
        ("bad-crc-after-trailing-bytes", bytes(flipped_crc)),
        ("bad-deflate-data", bytes(flipped_data)),
    ]


@pytest.mark.parametrize(("name", "content"), _gzip_cases(), ids=[c[0] for c in _gzip_cases()])
def test_read_idx_refuses_corrupt_gzip_with_a_data_error(tmp_path, name, content):
    path = tmp_path / f"{name}.gz"
    path.write_bytes(content)
    where = rf"\(file '{re.escape(str(path))}'\)$"
    message = rf"^read_idx: corrupt gzip data; expected a complete gzip stream, got .+ {where}"
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_read_idx_bad_crc_is_reported_as_corrupt_gzip(tmp_path):
    content = bytearray(gzip.compress(GOOD_PAYLOAD, mtime=0))
    content[-8] ^= 0x01  # the CRC-32 field of the gzip trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(content))
    with pytest.raises(DataError, match=r"corrupt gzip data; expected a complete gzip stream.*CRC"):
        read_idx(path)


def test_read_idx_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")


# ---------------------------------------------------------------- MNIST directories


def _mnist_dir(root: Path, *, gz: bool = True, train: int = 7, test: int = 3) -> Path:
    rng = np.random.default_rng(5)
    suffix = ".gz" if gz else ""
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 5, 4), dtype=np.uint8)
        images.reshape(-1)[: min(2, images.size)] = (0, 255)[: images.size]
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(count, dtype=np.uint8))
    return root


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(("kind", "prefix", "count"), [("train", "train", 7), ("test", "t10k", 3)])
def test_load_mnist_dir_reads_both_splits(tmp_path, gz, kind, prefix, count):
    _mnist_dir(tmp_path, gz=gz)
    ds = load_mnist_dir(tmp_path, kind=kind)
    raw = read_idx(tmp_path / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}")
    assert ds.images.shape == (count, 1, 5, 4) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == list(range(count))
    np.testing.assert_array_equal(ds.images[:, 0], raw.astype(np.float32) / np.float32(255))
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0


def test_load_mnist_dir_prefers_the_raw_file_when_both_exist(tmp_path):
    _mnist_dir(tmp_path, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(7, 9, dtype=np.uint8))
    assert load_mnist_dir(tmp_path).labels.tolist() == [9] * 7


def test_load_mnist_dir_accepts_wider_label_types(tmp_path):
    _mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(7, dtype=np.int32) * 1000)
    assert load_mnist_dir(tmp_path).labels.tolist() == [i * 1000 for i in range(7)]


def test_load_mnist_dir_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(
        ParameterError, match=r"unknown kind; expected 'train' or 'test', got 'val'"
    ):
        load_mnist_dir(tmp_path, kind="val")


def test_load_mnist_dir_refuses_a_missing_directory(tmp_path):
    with pytest.raises(DataError, match=r"not a directory.*got '.*absent'"):
        load_mnist_dir(tmp_path / "absent")


def test_load_mnist_dir_names_the_missing_file(tmp_path):
    _mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    message = r"missing IDX file; expected one of \['t10k-labels-idx1-ubyte', 't10k-labels-idx1"
    with pytest.raises(DataError, match=message):
        load_mnist_dir(tmp_path, kind="test")


@pytest.mark.parametrize(
    ("file", "array", "message"),
    [
        ("train-labels-idx1-ubyte.gz", np.arange(6, dtype=np.uint8), r"counts differ.*7 images"),
        ("train-images-idx3-ubyte.gz", np.zeros((7, 20), np.uint8), r"images must be \(N, H, W\)"),
        ("train-images-idx3-ubyte.gz", np.zeros((7, 5, 4), np.int16), r"got shape.*of int16"),
        ("train-labels-idx1-ubyte.gz", np.zeros(7, np.float32), r"labels must be \(N,\) integers"),
        ("train-labels-idx1-ubyte.gz", np.zeros((7, 1), np.uint8), r"got shape \(7, 1\)"),
        ("train-labels-idx1-ubyte.gz", np.array([0, 1, -1, 2, 3, 4, 5], np.int8), r">= 0.*-1"),
    ],
)
def test_load_mnist_dir_refuses_inconsistent_files(tmp_path, file, array, message):
    _mnist_dir(tmp_path)
    write_idx(tmp_path / file, array)
    with pytest.raises(DataError, match=rf"^load_mnist_dir: .*{message}"):
        load_mnist_dir(tmp_path)


def test_load_mnist_dir_refuses_an_empty_split(tmp_path):
    _mnist_dir(tmp_path, test=0)
    with pytest.raises(DataError, match=r"empty split; expected N >= 1, got 0"):
        load_mnist_dir(tmp_path, kind="test")


def test_load_mnist_dir_passes_on_a_corrupt_file_error(tmp_path):
    _mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"^read_idx: corrupt gzip data"):
        load_mnist_dir(tmp_path)


# ---------------------------------------------------------------- Fashion-MNIST, load_dataset


def test_load_fashion_mnist_names_the_directory_and_the_apt_command(tmp_path):
    missing = tmp_path / "no-fashion"
    message = rf"not found; expected the IDX files in '{re.escape(str(missing))}'.*apt-get install"
    with pytest.raises(DataError, match=message + r" dataset-fashion-mnist"):
        load_fashion_mnist(missing)


def test_load_fashion_mnist_reads_a_given_directory(tmp_path):
    train, test = load_fashion_mnist(_mnist_dir(tmp_path))
    assert (len(train), len(test)) == (7, 3)


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR} "
    "(apt-get install dataset-fashion-mnist)",
)
def test_load_fashion_mnist_from_the_debian_package():
    train, test = load_fashion_mnist()
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.float32 and 0.0 <= train.images.min() < train.images.max() <= 1
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert len(FASHION_MNIST_CLASSES) == 10


def test_load_dataset_dispatches_names_and_directories(tmp_path, monkeypatch):
    assert DATASETS == ("digits", "fashion-mnist")
    train, test = load_dataset("digits")
    assert (len(train), len(test)) == (1438, 359)
    (tmp_path / "mnist-like").mkdir()
    directory = _mnist_dir(tmp_path / "mnist-like", gz=False)
    train, test = load_dataset(directory)
    assert (len(train), len(test)) == (7, 3)
    train, test = load_dataset(str(directory))
    assert (len(train), len(test)) == (7, 3)
    monkeypatch.setattr(idx_module, "FASHION_MNIST_DIR", directory)
    train, test = load_dataset("fashion-mnist")
    assert (len(train), len(test)) == (7, 3)


@pytest.mark.parametrize("name", ["mnist", "Digits", "/no/such/dir"])
def test_load_dataset_lists_the_choices_for_an_unknown_name(name):
    message = rf"unknown data set; expected one of 'digits', 'fashion-mnist' or a directory.*{name}"
    with pytest.raises(DataError, match=message):
        load_dataset(name)
