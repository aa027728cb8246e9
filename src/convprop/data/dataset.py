"""Data sets held on the host, and their per-channel normalisation.

Notation  images x (N,C,H,W)  labels y (N,)

* ``ArrayDataset`` holds x (float32 or float64) and y (int64, non-negative) on the host,
  as read-only views: nothing in the library writes into a data set.
* ``normalize`` standardises each channel c with statistics of the training set::

      x_norm[n,c,h,w] = (x[n,c,h,w] - mean[c]) / std[c]                           (D1)
      mean[c] = sum_{n,h,w} x[n,c,h,w] / (N*H*W)                                   (D2)
      std[c]  = sqrt(sum_{n,h,w} (x[n,c,h,w] - mean[c])^2 / (N*H*W))               (D3)

  (the population standard deviation); the test set reuses the training statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, overload

import numpy
from numpy.typing import NDArray

from convprop.backend import to_host
from convprop.data.errors import DataError
from convprop.errors import DTypeError, ParameterError, ShapeError


def require_int(op: str, name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` as an int, refusing bools, floats and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise ParameterError(
            f"{op}: {name} must be an integer; expected an int >= {minimum}, "
            f"got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ParameterError(
            f"{op}: {name} is too small; expected an int >= {minimum}, got {value}"
        )
    return int(value)


def _read_only(array: NDArray[Any]) -> NDArray[Any]:
    """A read-only view of ``array``; the caller's array stays writable."""
    view: NDArray[Any] = array.view()
    view.flags.writeable = False
    return view


class ArrayDataset:
    """Images and their class labels, held on the host.

    Parameters
    ----------
    images : numpy.ndarray (N, C, H, W)
        float32 or float64.
    labels : numpy.ndarray (N,)
        Any integer dtype with values >= 0; stored as int64.

    Attributes
    ----------
    images : numpy.ndarray (N, C, H, W)
        A read-only view of the images.
    labels : numpy.ndarray (N,) int64
        A read-only view (or int64 copy) of the labels.

    Raises
    ------
    DTypeError
        If ``images`` is not a float32/float64 ndarray or ``labels`` not an integer ndarray.
    ShapeError
        If the ranks are wrong or the lengths differ.
    DataError
        If a label is negative.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((3, 1, 2, 2), np.float32), np.array([0, 2, 1]))
    >>> len(ds), ds.sample_shape, ds.num_classes
    (3, (1, 2, 2), 3)
    >>> image, label = ds[1]
    >>> image.shape, label
    ((1, 2, 2), 2)
    >>> len(ds[1:])
    2
    """

    __slots__ = ("images", "labels")

    images: NDArray[Any]
    labels: NDArray[numpy.int64]

    def __init__(self, images: NDArray[Any], labels: NDArray[Any]) -> None:
        op = "ArrayDataset"
        for name, value in (("images", images), ("labels", labels)):
            if not isinstance(value, numpy.ndarray):
                raise DTypeError(
                    f"{op}: {name} must be a NumPy array; expected numpy.ndarray, "
                    f"got {type(value).__name__} (use convprop.data.from_arrays to convert)"
                )
        shapes = f"images.shape={images.shape}, labels.shape={labels.shape}"
        if images.ndim != 4:
            raise ShapeError(f"{op}: images must be 4-D; expected (N, C, H, W), got {shapes}")
        if labels.ndim != 1:
            raise ShapeError(f"{op}: labels must be 1-D; expected (N,), got {shapes}")
        if images.shape[0] != labels.shape[0]:
            raise ShapeError(
                f"{op}: images and labels differ in length; expected equal N, "
                f"got {images.shape[0]} images and {labels.shape[0]} labels ({shapes})"
            )
        if images.dtype not in (numpy.float32, numpy.float64):
            raise DTypeError(
                f"{op}: images have dtype {images.dtype}; expected float32 or float64, "
                f"got {images.dtype} ({shapes}; use convprop.data.from_arrays to convert)"
            )
        if not numpy.issubdtype(labels.dtype, numpy.integer):
            raise DTypeError(
                f"{op}: labels have dtype {labels.dtype}; expected an integer dtype, "
                f"got {labels.dtype} ({shapes})"
            )
        if labels.size and labels.min() < 0:
            raise DataError(
                f"{op}: labels must be class indices; expected values >= 0, "
                f"got minimum {labels.min()} ({shapes})"
            )
        self.images = _read_only(images)
        self.labels = _read_only(labels.astype(numpy.int64, copy=False))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @overload
    def __getitem__(self, index: int | numpy.integer[Any]) -> tuple[NDArray[Any], int]: ...

    @overload
    def __getitem__(self, index: slice | NDArray[Any]) -> ArrayDataset: ...

    def __getitem__(
        self, index: int | numpy.integer[Any] | slice | NDArray[Any]
    ) -> tuple[NDArray[Any], int] | ArrayDataset:
        """One sample ``(image (C,H,W), label)`` for an int; a new data set for a slice or
        a 1-D integer index array."""
        if isinstance(index, (int, numpy.integer)) and not isinstance(index, bool):
            if not -len(self) <= index < len(self):
                raise IndexError(
                    f"ArrayDataset: index out of range; expected -{len(self)} <= index < "
                    f"{len(self)}, got {index}"
                )
            return self.images[index], int(self.labels[index])
        if isinstance(index, slice):
            return ArrayDataset(self.images[index], self.labels[index])
        if (
            isinstance(index, numpy.ndarray)
            and index.ndim == 1
            and numpy.issubdtype(index.dtype, numpy.integer)
        ):
            return ArrayDataset(self.images[index], self.labels[index])
        raise TypeError(
            "ArrayDataset: unsupported index; expected an int, a slice or a 1-D integer "
            f"array, got {type(index).__name__}"
        )

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image."""
        _, C, H, W = self.images.shape
        return (int(C), int(H), int(W))

    @property
    def num_classes(self) -> int:
        """The largest label plus one (0 for an empty data set)."""
        return int(self.labels.max()) + 1 if len(self) else 0

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(N={len(self)}, sample_shape={self.sample_shape}, "
            f"dtype={self.images.dtype}, num_classes={self.num_classes})"
        )


def from_arrays(x: Any, y: Any, *, scale: float | None = None) -> ArrayDataset:
    """Build an ``ArrayDataset`` from NumPy arrays (or anything ``numpy.asarray`` accepts).

    Parameters
    ----------
    x : array (N, H, W) or (N, C, H, W)
        Real numbers; float32 and float64 keep their dtype, every other dtype becomes
        float32. A 3-D array gains a channel axis (C = 1).
    y : array (N,)
        Integer class labels >= 0.
    scale : float, optional
        Multiply the images by this factor after conversion (e.g. ``1 / 255`` for 8-bit
        images). By default the values are kept as they are.

    Returns
    -------
    ArrayDataset

    Raises
    ------
    ShapeError, DTypeError, DataError
        As ``ArrayDataset`` does, and for x of another rank or a non-numeric dtype.

    Examples
    --------
    >>> import numpy as np
    >>> ds = from_arrays(np.full((2, 4, 4), 255, np.uint8), [1, 0], scale=1 / 255)
    >>> ds.images.shape, ds.images.dtype, float(ds.images.max())
    ((2, 1, 4, 4), dtype('float32'), 1.0)
    """
    images = to_host(x)
    labels = to_host(y)
    if images.ndim not in (3, 4):
        raise ShapeError(
            f"from_arrays: x must be 3-D or 4-D; expected (N, H, W) or (N, C, H, W), "
            f"got x.shape={images.shape}"
        )
    if images.dtype.kind not in "uif":
        raise DTypeError(
            f"from_arrays: x has dtype {images.dtype}; expected real numbers, "
            f"got {images.dtype} (x.shape={images.shape})"
        )
    if images.dtype not in (numpy.float32, numpy.float64):
        images = images.astype(numpy.float32)
    if images.ndim == 3:
        images = images[:, None, :, :]  # (N, H, W) -> (N, 1, H, W)
    if scale is not None:
        images = images * images.dtype.type(scale)
    return ArrayDataset(images, labels)


class ChannelStats(NamedTuple):
    """Per-channel statistics of equations (D2) and (D3), each of shape (C,), float64."""

    mean: NDArray[numpy.float64]
    std: NDArray[numpy.float64]


def _channel_stats(images: NDArray[Any]) -> ChannelStats:
    """Equations (D2), (D3), accumulated in float64 one channel at a time (no float64 copy)."""
    count = images.shape[0] * images.shape[2] * images.shape[3]
    C = images.shape[1]
    mean = numpy.empty(C, dtype=numpy.float64)
    std = numpy.empty(C, dtype=numpy.float64)
    for c in range(C):
        channel = images[:, c]  # (N, H, W)
        mean[c] = channel.sum(dtype=numpy.float64) / count  # (D2)
        deviation = channel - images.dtype.type(mean[c])
        std[c] = math.sqrt(numpy.square(deviation).sum(dtype=numpy.float64) / count)  # (D3)
    return ChannelStats(mean, std)


def _as_channel_vector(name: str, value: Sequence[float] | NDArray[Any], C: int) -> NDArray[Any]:
    vector = numpy.asarray(value, dtype=numpy.float64).reshape(-1)
    if vector.shape != (C,):
        raise ShapeError(
            f"normalize: {name} needs one value per channel; expected shape ({C},), "
            f"got {numpy.shape(value)}"
        )
    if not numpy.all(numpy.isfinite(vector)):
        raise DataError(f"normalize: {name} must be finite; expected finite values, got {vector}")
    return vector


def normalize(
    dataset: ArrayDataset,
    mean: Sequence[float] | NDArray[Any] | None = None,
    std: Sequence[float] | NDArray[Any] | None = None,
) -> tuple[ArrayDataset, ChannelStats]:
    """Standardise each channel, equation (D1).

    Parameters
    ----------
    dataset : ArrayDataset
        Images (N, C, H, W).
    mean, std : sequence of float (C,), optional
        Statistics to apply. Give both (e.g. the training set's, to normalise a test set) or
        neither (they are computed from ``dataset`` by (D2) and (D3)).

    Returns
    -------
    normalized : ArrayDataset
        A new data set with images of the same shape and dtype; the labels are shared.
    stats : ChannelStats
        The statistics applied, float64 arrays of shape (C,).

    Raises
    ------
    DataError
        For an empty data set, only one of ``mean``/``std``, a non-finite value, or a
        standard deviation <= 0 (a constant channel).
    ShapeError
        If ``mean`` or ``std`` does not have one value per channel.

    Examples
    --------
    >>> import numpy as np
    >>> train = from_arrays(np.array([[[0.0, 2.0]], [[4.0, 6.0]]]), [0, 1])
    >>> train_n, stats = normalize(train)
    >>> stats.mean.tolist(), stats.std.tolist()
    ([3.0], [2.23606797749979])
    >>> test_n, _ = normalize(from_arrays(np.array([[[3.0, 3.0]]]), [0]), *stats)
    >>> test_n.images.ravel().tolist()
    [0.0, 0.0]
    """
    C = dataset.sample_shape[0]
    if (mean is None) != (std is None):
        raise DataError(
            "normalize: mean and std go together; expected both or neither, "
            f"got mean={'None' if mean is None else 'given'}, "
            f"std={'None' if std is None else 'given'}"
        )
    if mean is None or std is None:
        if len(dataset) == 0:
            raise DataError(
                "normalize: cannot compute statistics of an empty data set; expected N >= 1, "
                f"got images.shape={dataset.images.shape}"
            )
        stats = _channel_stats(dataset.images)
    else:
        stats = ChannelStats(_as_channel_vector("mean", mean, C), _as_channel_vector("std", std, C))
    if numpy.any(stats.std <= 0):
        raise DataError(
            "normalize: a channel has zero spread; expected std > 0 for every channel, "
            f"got std={stats.std.tolist()} (images.shape={dataset.images.shape}); "
            "pass mean and std explicitly for constant channels"
        )
    dtype = dataset.images.dtype
    shift = stats.mean.astype(dtype).reshape(1, C, 1, 1)  # (C,) -> (1, C, 1, 1)
    spread = stats.std.astype(dtype).reshape(1, C, 1, 1)  # (C,) -> (1, C, 1, 1)
    images = (dataset.images - shift) / spread  # (D1)
    return ArrayDataset(images, dataset.labels), stats
