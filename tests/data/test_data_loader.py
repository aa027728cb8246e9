"""ArrayDataset, from_arrays, normalize (D1-D3) and the DataLoader's batching and shuffling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convprop.backend import cupy_available
from convprop.data import ArrayDataset, DataError, DataLoader, from_arrays, normalize
from convprop.errors import BackendError, DTypeError, ParameterError, ShapeError


def _ids_dataset(N: int, dtype: str = "float32") -> ArrayDataset:
    """Sample n has label n and an image filled with n, so batches show which samples came."""
    images = np.broadcast_to(np.arange(N, dtype=dtype)[:, None, None, None], (N, 2, 3, 2))
    return ArrayDataset(np.ascontiguousarray(images), np.arange(N))


# ---------------------------------------------------------------- ArrayDataset


def test_array_dataset_holds_read_only_views_and_int64_labels():
    images = np.zeros((4, 1, 2, 2), np.float64)
    labels = np.array([1, 0, 3, 2], dtype=np.uint8)
    ds = ArrayDataset(images, labels)
    assert ds.labels.dtype == np.int64 and ds.images.dtype == np.float64
    assert not ds.images.flags.writeable and not ds.labels.flags.writeable
    assert images.flags.writeable  # the caller's array is untouched
    assert (len(ds), ds.sample_shape, ds.num_classes) == (4, (1, 2, 2), 4)
    assert repr(ds) == "ArrayDataset(N=4, sample_shape=(1, 2, 2), dtype=float64, num_classes=4)"


def test_array_dataset_indexing():
    ds = _ids_dataset(5)
    image, label = ds[3]
    assert image.shape == (2, 3, 2) and label == 3 and isinstance(label, int)
    assert ds[-1][1] == 4 and ds[np.int64(2)][1] == 2
    assert ds[1:4].labels.tolist() == [1, 2, 3]
    assert ds[np.array([4, 0])].labels.tolist() == [4, 0]
    assert len(ds[5:]) == 0 and ds[5:].num_classes == 0


@pytest.mark.parametrize("index", [5, -6])
def test_array_dataset_index_out_of_range(index):
    with pytest.raises(IndexError, match=r"index out of range; expected -5 <= index < 5"):
        _ids_dataset(5)[index]


@pytest.mark.parametrize("index", [1.0, True, [0, 1], np.array([[0]]), np.array([0.0])])
def test_array_dataset_refuses_other_indices(index):
    with pytest.raises(TypeError, match=r"unsupported index; expected an int, a slice"):
        _ids_dataset(5)[index]


@pytest.mark.parametrize(
    ("images", "labels", "error", "message"),
    [
        ([[[[0.0]]]], np.zeros(1, int), DTypeError, r"images must be a NumPy array.*got list"),
        (np.zeros((1, 1, 1, 1)), [0], DTypeError, r"labels must be a NumPy array.*got list"),
        (np.zeros((2, 3, 3)), np.zeros(2, int), ShapeError, r"images must be 4-D.*\(2, 3, 3\)"),
        (np.zeros((2, 1, 3, 3)), np.zeros((2, 1), int), ShapeError, r"labels must be 1-D"),
        (np.zeros((2, 1, 3, 3)), np.zeros(3, int), ShapeError, r"got 2 images and 3 labels"),
        (np.zeros((2, 1, 3, 3), np.uint8), np.zeros(2, int), DTypeError, r"expected float32 or"),
        (
            np.zeros((2, 1, 3, 3)),
            np.zeros(2),
            DTypeError,
            r"expected an integer dtype, got float64",
        ),
        (np.zeros((2, 1, 3, 3)), np.array([0, -2]), DataError, r"values >= 0, got minimum -2"),
    ],
)
def test_array_dataset_validation(images, labels, error, message):
    with pytest.raises(error, match=r"^ArrayDataset: .*" + message):
        ArrayDataset(images, labels)


# ---------------------------------------------------------------- from_arrays


def test_from_arrays_adds_a_channel_axis_and_converts_integers_to_float32():
    ds = from_arrays(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), [0, 1])
    assert ds.images.shape == (2, 1, 3, 4) and ds.images.dtype == np.float32
    assert ds.images.max() == 23.0  # no implicit scaling


def test_from_arrays_keeps_float64_and_four_dimensional_input():
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    ds = from_arrays(x, np.array([2, 0, 1], dtype=np.int32))
    assert ds.images.dtype == np.float64
    np.testing.assert_array_equal(ds.images, x)
    assert ds.labels.dtype == np.int64


def test_from_arrays_scale_and_float16():
    ds = from_arrays(np.full((1, 2, 2), 255, np.uint8), [0], scale=1 / 255)
    assert ds.images.dtype == np.float32 and np.all(ds.images == 1.0)
    ds = from_arrays(np.ones((1, 2, 2), np.float16), [0])
    assert ds.images.dtype == np.float32


@pytest.mark.parametrize(
    ("x", "y", "error", "message"),
    [
        (np.zeros((4, 4)), [0] * 4, ShapeError, r"x must be 3-D or 4-D.*x.shape=\(4, 4\)"),
        (np.zeros((1, 2, 2), bool), [0], DTypeError, r"expected real numbers, got bool"),
        (np.zeros((1, 2, 2), complex), [0], DTypeError, r"expected real numbers, got complex128"),
        (np.zeros((1, 2, 2)), [0.5], DTypeError, r"expected an integer dtype, got float64"),
    ],
)
def test_from_arrays_validation(x, y, error, message):
    with pytest.raises(error, match=message):
        from_arrays(x, y)


# ---------------------------------------------------------------- normalize (D1-D3)


def _reference_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """(D2), (D3) as loops in float64."""
    N, C, H, W = images.shape
    means, stds = [], []
    for c in range(C):
        total = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    total += float(images[n, c, h, w])
        mean = total / (N * H * W)
        squares = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    squares += (float(images[n, c, h, w]) - mean) ** 2
        means.append(mean)
        stds.append((squares / (N * H * W)) ** 0.5)
    return means, stds


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normalize_statistics_match_D2_D3_reference(dtype):
    rng = np.random.default_rng(1)
    images = (rng.standard_normal((5, 3, 4, 3)) * [[[[2.0]], [[0.5]], [[7.0]]]] + 3).astype(dtype)
    train = ArrayDataset(images, np.arange(5))
    normalized, stats = normalize(train)
    means, stds = _reference_stats(images)
    tolerance = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(stats.mean, means, rtol=tolerance)
    np.testing.assert_allclose(stats.std, stds, rtol=tolerance)
    assert stats.mean.dtype == stats.std.dtype == np.float64
    assert normalized.images.dtype == np.dtype(dtype)
    assert normalized.labels is train.labels or np.shares_memory(normalized.labels, train.labels)
    np.testing.assert_allclose(normalized.images.mean(axis=(0, 2, 3)), 0, atol=10 * tolerance)
    np.testing.assert_allclose(normalized.images.std(axis=(0, 2, 3)), 1, rtol=10 * tolerance)


def test_normalize_applies_given_statistics_by_D1():
    rng = np.random.default_rng(2)
    test = ArrayDataset(rng.standard_normal((3, 2, 2, 2)), np.arange(3))
    normalized, stats = normalize(test, mean=[1.0, -2.0], std=np.array([2.0, 4.0]))
    for n in range(3):
        for c, (mean, std) in enumerate([(1.0, 2.0), (-2.0, 4.0)]):
            for h in range(2):
                for w in range(2):
                    expected = (test.images[n, c, h, w] - mean) / std  # (D1)
                    assert abs(normalized.images[n, c, h, w] - expected) < 1e-14
    assert stats.mean.tolist() == [1.0, -2.0] and stats.std.tolist() == [2.0, 4.0]


def test_normalize_test_set_with_training_statistics():
    rng = np.random.default_rng(3)
    train = from_arrays(rng.uniform(0, 1, (8, 3, 3)).astype(np.float32), np.arange(8))
    test = from_arrays(rng.uniform(0, 1, (4, 3, 3)).astype(np.float32), np.arange(4))
    _, stats = normalize(train)
    test_n, test_stats = normalize(test, *stats)
    np.testing.assert_array_equal(test_stats.mean, stats.mean)
    expected = (test.images - np.float32(stats.mean[0])) / np.float32(stats.std[0])
    np.testing.assert_allclose(test_n.images, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("mean", "std", "error", "message"),
    [
        ([0.0], None, DataError, r"mean and std go together; expected both or neither"),
        (None, [1.0], DataError, r"got mean=None, std=given"),
        ([0.0, 0.0], [1.0], ShapeError, r"mean needs one value per channel; expected shape \(1,\)"),
        ([0.0], [[1.0, 2.0]], ShapeError, r"std needs one value per channel.*got \(1, 2\)"),
        ([np.nan], [1.0], DataError, r"mean must be finite"),
        ([0.0], [np.inf], DataError, r"std must be finite"),
        ([0.0], [0.0], DataError, r"expected std > 0 for every channel, got std=\[0.0\]"),
        ([0.0], [-1.0], DataError, r"zero spread"),
    ],
)
def test_normalize_validation(mean, std, error, message):
    with pytest.raises(error, match=r"^normalize: .*" + message):
        normalize(from_arrays(np.ones((2, 2, 2)), [0, 1]), mean, std)


def test_normalize_refuses_a_constant_channel_and_an_empty_data_set():
    with pytest.raises(DataError, match=r"zero spread.*pass mean and std explicitly"):
        normalize(from_arrays(np.ones((2, 2, 2)), [0, 1]))
    with pytest.raises(DataError, match=r"cannot compute statistics of an empty data set"):
        normalize(_ids_dataset(3)[3:])


# ---------------------------------------------------------------- DataLoader


@pytest.mark.parametrize(
    ("N", "batch_size", "drop_last", "sizes"),
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (9, 3, True, [3, 3, 3]),
        (4, 10, False, [4]),
        (1, 1, True, [1]),
    ],
)
def test_loader_batch_sizes_and_length(N, batch_size, drop_last, sizes):
    loader = DataLoader(_ids_dataset(N), batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes)
    assert [len(y) for _, y in batches] == sizes
    assert [x.shape for x, _ in batches] == [(s, 2, 3, 2) for s in sizes]


def test_loader_unshuffled_order_batches_and_types():
    loader = DataLoader(_ids_dataset(7, "float64"), 3)
    batches = list(loader)
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(7))
    for x, y in batches:
        assert x.dtype == np.float64 and y.dtype == np.int64
        assert x.flags.c_contiguous and x.flags.writeable and y.flags.writeable
        np.testing.assert_array_equal(x[:, 0, 0, 0], y)  # images travel with their labels


def test_loader_batches_are_fresh_copies():
    ds = _ids_dataset(4)
    x, _ = next(iter(DataLoader(ds, 4)))
    x[...] = -1
    assert ds.images.min() == 0.0


def test_loader_shuffle_follows_default_rng_of_seed_plus_epoch():
    loader = DataLoader(_ids_dataset(11), 4, shuffle=True, seed=5)
    for epoch in range(3):
        order = np.concatenate([y for _, y in loader.iter_epoch(epoch)])
        assert order.tolist() == np.random.default_rng(5 + epoch).permutation(11).tolist()
        assert loader.epoch_order(epoch).tolist() == order.tolist()


def test_loader_epochs_are_reproducible_and_differ():
    first = DataLoader(_ids_dataset(20), 6, shuffle=True, seed=3)
    second = DataLoader(_ids_dataset(20), 6, shuffle=True, seed=3)
    orders = [np.concatenate([y for _, y in first]) for _ in range(3)]
    assert first.epoch == 3
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    second.set_epoch(2)  # a resumed run reproduces epoch 2
    np.testing.assert_array_equal(np.concatenate([y for _, y in second]), orders[2])
    assert second.epoch == 3
    np.testing.assert_array_equal(np.concatenate([y for _, y in second.iter_epoch(1)]), orders[1])
    assert second.epoch == 3  # iter_epoch does not move the epoch
    other_seed = DataLoader(_ids_dataset(20), 6, shuffle=True, seed=4)
    assert not np.array_equal(np.concatenate([y for _, y in other_seed]), orders[0])


def test_loader_without_shuffle_repeats_the_same_order_every_epoch():
    loader = DataLoader(_ids_dataset(5), 2)
    assert [np.concatenate([y for _, y in loader]).tolist() for _ in range(2)] == [
        [0, 1, 2, 3, 4]
    ] * 2


@settings(max_examples=30, deadline=None)
@given(
    N=st.integers(1, 40),
    batch_size=st.integers(1, 12),
    seed=st.integers(0, 10**6),
    epoch=st.integers(0, 50),
    drop_last=st.booleans(),
)
def test_loader_visits_every_sample_once_per_epoch(N, batch_size, seed, epoch, drop_last):
    if drop_last and batch_size > N:
        return
    loader = DataLoader(_ids_dataset(N), batch_size, shuffle=True, seed=seed, drop_last=drop_last)
    seen = [y for _, y in loader.iter_epoch(epoch)]
    assert len(seen) == len(loader)
    visited = np.concatenate(seen)
    assert len(np.unique(visited)) == len(visited)
    if drop_last:
        assert len(visited) == (N // batch_size) * batch_size
    else:
        assert sorted(visited.tolist()) == list(range(N))


def test_loader_repr():
    loader = DataLoader(_ids_dataset(3), 2, shuffle=True)
    assert repr(loader) == (
        "DataLoader(N=3, batch_size=2, shuffle=True, seed=0, drop_last=False, device='cpu', "
        "epoch=0)"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"batch_size": 0},
            ParameterError,
            r"batch_size is too small; expected an int >= 1, got 0",
        ),
        ({"batch_size": 2.0}, ParameterError, r"batch_size must be an integer.*got 2.0 \(float\)"),
        ({"batch_size": True}, ParameterError, r"batch_size must be an integer"),
        ({"batch_size": 2, "seed": -1}, ParameterError, r"seed is too small"),
        ({"batch_size": 2, "device": "tpu"}, ParameterError, r"unknown device.*got 'tpu'"),
        ({"batch_size": 9, "drop_last": True}, DataError, r"batch_size=9 and N=5"),
    ],
)
def test_loader_validation(kwargs, error, message):
    with pytest.raises(error, match=r"^DataLoader: .*" + message):
        DataLoader(_ids_dataset(5), **kwargs)


def test_loader_refuses_empty_data_sets_and_other_objects():
    with pytest.raises(DataError, match=r"the data set is empty; expected N >= 1"):
        DataLoader(_ids_dataset(3)[3:], 1)
    with pytest.raises(TypeError, match=r"dataset must be an ArrayDataset.*got tuple"):
        DataLoader((np.zeros((2, 1, 2, 2)), np.zeros(2)), 1)


def test_loader_refuses_negative_epochs():
    loader = DataLoader(_ids_dataset(3), 1)
    with pytest.raises(ParameterError, match=r"set_epoch: epoch is too small"):
        loader.set_epoch(-1)
    with pytest.raises(ParameterError, match=r"epoch_order: epoch is too small"):
        next(loader.iter_epoch(-2))


@pytest.mark.skipif(cupy_available(), reason="a GPU is present")
def test_loader_cuda_without_a_gpu_is_a_backend_error():
    with pytest.raises(BackendError, match=r"device 'cuda' needs CuPy and an NVIDIA GPU"):
        DataLoader(_ids_dataset(3), 1, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and an NVIDIA GPU")
def test_loader_moves_each_batch_to_the_gpu():
    import cupy

    loader = DataLoader(_ids_dataset(5), 2, shuffle=True, device="cuda")
    for x, y in loader:
        assert isinstance(x, cupy.ndarray) and isinstance(y, cupy.ndarray)
        assert x.dtype == cupy.float32 and y.dtype == cupy.int64
        np.testing.assert_array_equal(cupy.asnumpy(x)[:, 0, 0, 0], cupy.asnumpy(y))
