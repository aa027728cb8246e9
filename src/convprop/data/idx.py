"""The IDX file format (MNIST, Fashion-MNIST): a checked reader, an atomic writer, loaders.

Layout of an IDX file (all numbers big-endian), optionally gzip-compressed (``.gz`` names)::

    bytes 0-1   0x00 0x00                         the magic number's zero bytes
    byte  2     type code: 0x08 ubyte, 0x09 byte, 0x0B short (int16), 0x0C int (int32),
                0x0D float (float32), 0x0E double (float64)
    byte  3     ndim >= 1
    4*ndim      the sizes d_1 ... d_ndim as unsigned 32-bit integers
    payload     d_1 * ... * d_ndim values of the type, row-major; nothing may follow

``read_idx`` checks every part of this and raises ``DataError`` (naming the file, what was
expected and what came) for a bad magic number, an unknown type, a truncated header, a short
payload, trailing bytes or a corrupt gzip stream, so that a damaged download never becomes a
silently short data set.

The MNIST-style directories hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly ending in ``.gz``.
Debian's ``dataset-fashion-mnist`` package installs the four ``.gz`` files in
``/usr/share/datasets/fashion-mnist/``.
"""

from __future__ import annotations

import gzip
import io
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy
from numpy.typing import NDArray

from convprop.data.dataset import ArrayDataset
from convprop.data.errors import DataError
from convprop.errors import DTypeError, ParameterError, ShapeError

IDX_TYPES: dict[int, numpy.dtype[Any]] = {
    0x08: numpy.dtype(">u1"),
    0x09: numpy.dtype(">i1"),
    0x0B: numpy.dtype(">i2"),
    0x0C: numpy.dtype(">i4"),
    0x0D: numpy.dtype(">f4"),
    0x0E: numpy.dtype(">f8"),
}
"""The IDX type codes and their big-endian dtypes."""

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the files."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The names of Fashion-MNIST's labels 0..9."""

_CHUNK = 1 << 20  # read payloads in 1 MiB pieces: memory grows with the data actually present

MAX_PAYLOAD_BYTES = 1 << 30
"""The largest payload ``read_idx`` accepts by default (1 GiB; MNIST's training images are
47 MB): a header asking for more is refused before anything is read or inflated."""

_DEFLATE_RATIO = 1032
"""The most bytes deflate can produce per compressed byte (its longest match per symbol)."""


def _open(path: Path) -> io.BufferedIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_exactly(stream: io.BufferedIOBase, count: int) -> bytearray:
    """Read up to ``count`` bytes, fewer only at the end of the stream."""
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(min(count - len(data), _CHUNK))
        if not chunk:
            break
        data += chunk
    return data


def _count_rest(stream: io.BufferedIOBase) -> tuple[int, bool]:
    """The bytes left in ``stream`` counted up to one chunk, and whether more follow (a gzip
    stream may inflate to far more than its file: the count stops rather than inflate it)."""
    count = len(stream.read(_CHUNK))
    return count, bool(stream.read(1))


def _parse(
    stream: io.BufferedIOBase, where: str, max_bytes: int, available: tuple[int, bool] | None
) -> NDArray[Any]:
    """Read and check one IDX stream; ``where`` names the file in messages.

    ``max_bytes`` bounds the payload the header may declare; ``available`` is (the most the
    stream can hold after the 4 magic bytes, whether that is exact) or None when unknown, so
    that a header asking for more is refused before the payload is read (the payload is
    prod(d_i) * itemsize bytes).
    """
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise DataError(
            f"read_idx: truncated header; expected 4 magic-number bytes, got {len(magic)} ({where})"
        )
    if magic[0] != 0 or magic[1] != 0:
        hint = (
            " (the file is gzip-compressed; give it a .gz name)" if magic[:2] == b"\x1f\x8b" else ""
        )
        raise DataError(
            "read_idx: not an IDX file; expected the magic number to start with bytes 00 00, "
            f"got {magic[:2].hex(' ')} ({where}){hint}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise DataError(
            f"read_idx: unknown IDX type code; expected one of {known}, got 0x{code:02X} ({where})"
        )
    if ndim < 1:
        raise DataError(f"read_idx: bad IDX header; expected ndim >= 1, got ndim=0 ({where})")
    header = _read_exactly(stream, 4 * ndim)
    if len(header) < 4 * ndim:
        raise DataError(
            f"read_idx: truncated header; expected {4 * ndim} bytes of sizes for ndim={ndim}, "
            f"got {len(header)} ({where})"
        )
    shape = tuple(int(size) for size in numpy.frombuffer(header, dtype=">u4"))
    dtype = IDX_TYPES[code]
    expected = dtype.itemsize * int(numpy.prod(shape, dtype=object))
    name = dtype.newbyteorder("=").name
    if expected > max_bytes:
        raise DataError(
            f"read_idx: payload too large; expected at most {max_bytes} bytes (max_bytes), got "
            f"a header declaring {expected} bytes for shape {shape} of {name} ({where})"
        )
    if available is not None and expected > available[0] - 4 * ndim:
        present = max(available[0] - 4 * ndim, 0)
        got = str(present) if available[1] else f"a gzip file that inflates to at most {present}"
        raise DataError(
            f"read_idx: short payload; expected {expected} bytes for shape {shape} of {name}, "
            f"got {got} ({where})"
        )
    payload = _read_exactly(stream, expected + 1)
    if len(payload) < expected:
        raise DataError(
            f"read_idx: short payload; expected {expected} bytes for shape {shape} of "
            f"{dtype.newbyteorder('=').name}, got {len(payload)} ({where})"
        )
    if len(payload) > expected:
        rest, more_follow = _count_rest(stream)
        extra = len(payload) - expected + rest
        more = "more than " if more_follow else ""
        raise DataError(
            f"read_idx: trailing bytes after the payload; expected {expected} bytes for shape "
            f"{shape} of {name}, got {more}{expected + extra} ({where})"
        )
    # The array owns the writable bytearray; astype converts multi-byte types to native order.
    values = numpy.frombuffer(payload, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
    return values.reshape(shape)


def read_idx(path: str | os.PathLike[str], *, max_bytes: int = MAX_PAYLOAD_BYTES) -> NDArray[Any]:
    """Read an IDX file (gzip-compressed when the name ends in ``.gz``).

    The header is checked before the payload is read: a payload larger than ``max_bytes``,
    or larger than the file can hold (a raw file's size; for gzip, 1032 times the compressed
    size, deflate's limit), is refused at once. The gzip stream is inflated in 1 MiB pieces
    and never past the payload's end, so a compressed file that inflates to far more than
    its header says (a "gzip bomb") costs one piece, not its whole size.

    Parameters
    ----------
    path : str or path-like
        The file.
    max_bytes : int
        The largest payload accepted (default ``MAX_PAYLOAD_BYTES``, 1 GiB).

    Returns
    -------
    numpy.ndarray (d_1, ..., d_ndim)
        uint8, int8, int16, int32, float32 or float64 in native byte order.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    DataError
        For a bad magic number, an unknown type code, ndim = 0, a truncated header, a
        payload over ``max_bytes``, a short payload, trailing bytes or a corrupt gzip
        stream; the message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    path = Path(path)
    where = f"file '{path}'"
    try:
        size = path.stat().st_size
        gzipped = path.name.endswith(".gz")
        available = (size * _DEFLATE_RATIO, False) if gzipped else (size - 4, True)
        with _open(path) as stream:
            return _parse(stream, where, max_bytes, available)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(
            f"read_idx: corrupt gzip data; expected a complete gzip stream, got {error!s} ({where})"
        ) from None


def write_idx(path: str | os.PathLike[str], array: NDArray[Any]) -> None:
    """Write ``array`` as an IDX file, atomically (a temporary file, then ``os.replace``).

    The file is gzip-compressed when its name ends in ``.gz`` (with a zero time stamp, so
    equal arrays give equal files).

    Parameters
    ----------
    path : str or path-like
        The destination; its directory must exist.
    array : numpy.ndarray (d_1, ..., d_ndim)
        1 <= ndim <= 255, each size < 2**32; dtype uint8, int8, int16, int32, float32 or
        float64 (any byte order).

    Raises
    ------
    DTypeError
        For a dtype IDX cannot hold (hint: convert int64 labels with ``astype(numpy.uint8)``).
    ShapeError
        For ndim = 0, ndim > 255 or a size >= 2**32.
    """
    path = Path(path)
    array = numpy.asarray(array)
    native = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    code = native.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DTypeError(
            "write_idx: IDX cannot hold this dtype; expected uint8, int8, int16, int32, "
            f"float32 or float64, got {array.dtype} (array.shape={array.shape}; convert "
            "first, e.g. array.astype(numpy.uint8))"
        )
    if not 1 <= array.ndim <= 255 or any(size >= 2**32 for size in array.shape):
        raise ShapeError(
            "write_idx: IDX cannot hold this shape; expected 1 <= ndim <= 255 and sizes "
            f"< 2**32, got array.shape={array.shape}"
        )
    header = bytes([0, 0, code, array.ndim]) + numpy.asarray(array.shape, dtype=">u4").tobytes()
    payload = numpy.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()
    # O_EXCL with a random name instead of tempfile.mkstemp: mkstemp's mode 0600 would survive
    # os.replace, while mode 0666 here is trimmed by the umask like any newly written file.
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, mtime=0) as z:
                    z.write(header)
                    z.write(payload)
            else:
                raw.write(header)
                raw.write(payload)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _find(directory: Path, stem: str) -> Path:
    candidates = [stem, stem + ".gz"]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise DataError(
        f"load_mnist_dir: missing IDX file; expected one of {candidates} in '{directory}', got none"
    )


def load_mnist_dir(
    directory: str | os.PathLike[str], *, kind: str = "train", max_bytes: int = MAX_PAYLOAD_BYTES
) -> ArrayDataset:
    """Load one split of an MNIST-format directory.

    Parameters
    ----------
    directory : str or path-like
        Holds ``{train,t10k}-images-idx3-ubyte`` and ``{train,t10k}-labels-idx1-ubyte``,
        each raw or with a ``.gz`` suffix (the raw file is used when both exist).
    kind : {"train", "test"}
        Which split: ``train-*`` or ``t10k-*`` files.
    max_bytes : int
        The largest payload of each file (``read_idx``); the float32 images then take four
        times their file's payload.

    Returns
    -------
    ArrayDataset
        Images (N, 1, H, W) float32 in [0, 1] (the bytes divided by 255), labels (N,) int64.

    Raises
    ------
    ParameterError
        For an unknown ``kind``.
    DataError
        For a missing directory or file, a file ``read_idx`` refuses, images that are not
        (N, H, W) ubyte, labels that are not (N,) non-negative integers, differing counts
        or an empty split.
    """
    if kind not in ("train", "test"):
        raise ParameterError(
            f"load_mnist_dir: unknown kind; expected 'train' or 'test', got {kind!r}"
        )
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(
            f"load_mnist_dir: not a directory; expected a directory of IDX files, got '{directory}'"
        )
    prefix = "train" if kind == "train" else "t10k"
    images_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, max_bytes=max_bytes)
    labels = read_idx(labels_path, max_bytes=max_bytes)
    if images.ndim != 3 or images.dtype != numpy.uint8:
        raise DataError(
            f"load_mnist_dir: images must be (N, H, W) ubyte; expected ndim=3 of uint8, got "
            f"shape {images.shape} of {images.dtype} (file '{images_path}')"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise DataError(
            f"load_mnist_dir: labels must be (N,) integers; expected ndim=1 of an integer type, "
            f"got shape {labels.shape} of {labels.dtype} (file '{labels_path}')"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"load_mnist_dir: image and label counts differ; expected equal N, got "
            f"{images.shape[0]} images and {labels.shape[0]} labels "
            f"(files '{images_path}', '{labels_path}')"
        )
    if images.shape[0] == 0:
        raise DataError(
            f"load_mnist_dir: empty split; expected N >= 1, got 0 (file '{images_path}')"
        )
    if labels.min() < 0:
        raise DataError(
            f"load_mnist_dir: labels must be class indices; expected values >= 0, got minimum "
            f"{labels.min()} (file '{labels_path}')"
        )
    x = images.astype(numpy.float32)
    x /= numpy.float32(255)  # in place: one float32 copy of the images, not two
    return ArrayDataset(x[:, None, :, :], labels.astype(numpy.int64))  # (N,H,W) -> (N,1,H,W)


def load_fashion_mnist(
    directory: str | os.PathLike[str] | None = None,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Load Fashion-MNIST: 60000 training and 10000 test images (1, 28, 28), 10 classes.

    Parameters
    ----------
    directory : str or path-like, optional
        Defaults to ``FASHION_MNIST_DIR`` (``/usr/share/datasets/fashion-mnist``), where
        ``apt-get install dataset-fashion-mnist`` puts the files on Debian and Ubuntu.

    Returns
    -------
    train, test : ArrayDataset
        As ``load_mnist_dir`` returns them; ``FASHION_MNIST_CLASSES`` names the labels.

    Raises
    ------
    DataError
        If the directory does not exist (with the command that installs it), or as
        ``load_mnist_dir`` raises.
    """
    directory = FASHION_MNIST_DIR if directory is None else Path(directory)
    if not directory.is_dir():
        raise DataError(
            "load_fashion_mnist: Fashion-MNIST not found; expected the IDX files in "
            f"'{directory}', got no such directory (on Debian or Ubuntu: "
            "sudo apt-get install dataset-fashion-mnist; or pass the directory holding "
            "the four *-ubyte.gz files)"
        )
    return load_mnist_dir(directory, kind="train"), load_mnist_dir(directory, kind="test")
