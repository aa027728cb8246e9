"""A pooling window far larger than x costs what x costs: taps that read only padding are
skipped and no padded copy is built, which changes no result (PS3, PN5).

Peak memory is measured with tracemalloc (NumPy reports its buffers to it), never time.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import convprop.functional as functional
import convprop.nn.functional as F
from convprop import _native
from convprop.functional import pool2d
from convprop.functional import pool_windows as windows_module
from convprop.functional.pool2d import pool2d_geometry
from reference_pooling import (
    avg_pool_backward_ref,
    avg_pool_ref,
    lp_pool_backward_ref,
    lp_pool_ref,
    max_pool_ref,
    scatter_ref,
)


def test_a_window_of_3001_on_a_1x1_input_visits_one_tap() -> None:
    geom = pool2d_geometry("avg_pool2d", np.ones((1, 1, 1, 1)), 3001, None, 1500, False)
    assert [(r, s) for _, r, s in geom.taps()] == [(1500, 1500)]


@pytest.mark.parametrize("op", ["avg_pool2d", "max_pool2d"])
@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding"),
    [((2, 3, 1, 1), 301, 1, 150), ((1, 2, 5, 4), 41, 3, 20), ((1, 1, 7, 2), (9, 5), 2, (4, 2))],
)
def test_huge_windows_equal_pytorch_forward_and_backward(
    op: str, shape: tuple[int, ...], kernel: object, stride: int, padding: object
) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    ours_x = convprop.tensor(x, requires_grad=True)
    y = getattr(F, op)(ours_x, kernel, stride, padding)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, op)(theirs_x, kernel, stride, padding)
    theirs.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert theirs_x.grad is not None
    np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("op", "shape", "kernel", "padding", "dilation"),
    [
        ("avg_pool1d", (1, 2, 3), 2001, 1000, None),
        ("max_pool1d", (1, 2, 3), 2001, 1000, 1),
        ("max_pool1d", (2, 1, 9), 5, 2, 2),
        ("avg_pool3d", (1, 1, 5, 7, 3), (5, 7, 3), (2, 3, 1), None),
        ("max_pool3d", (1, 1, 3, 4, 2), (5, 7, 3), (2, 3, 1), 1),
    ],
)
def test_huge_windows_in_1d_3d_and_with_dilation_equal_pytorch(
    op: str, shape: tuple[int, ...], kernel: object, padding: object, dilation: object
) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    extra = {} if dilation is None else {"dilation": dilation}
    ours_x = convprop.tensor(x, requires_grad=True)
    y = getattr(F, op)(ours_x, kernel, 1, padding, **extra)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs = getattr(torch.nn.functional, op)(theirs_x, kernel, 1, padding, **extra)
    theirs.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert theirs_x.grad is not None
    np.testing.assert_allclose(ours_x.grad, theirs_x.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------- memory follows x and y (PN5)


def _peak(run: Callable[[], object]) -> int:
    """Peak bytes traced while ``run`` runs (NumPy reports its buffers to tracemalloc), after
    one warm-up call (geometry caches)."""
    run()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _forward_backward(op: str, x: np.ndarray, *args: Any, **kwargs: Any) -> None:
    y, cache = getattr(functional, f"{op}_forward")(x, *args, **kwargs)
    getattr(functional, f"{op}_backward")(np.ones_like(y), cache)


# (op, x shape, kernel, keywords): windows of 10^7 to 2.7·10^9 cells on inputs of a few cells
HUGE = [
    ("avg_pool2d", (2, 3, 1, 1), 3001, dict(stride=1, padding=1500)),
    ("avg_pool2d", (2, 3, 2, 3), 3001, dict(stride=1000, padding=1500, ceil_mode=True)),
    (
        "avg_pool2d",
        (1, 2, 3, 2),
        (3001, 4001),
        dict(stride=(2, 3), padding=(1500, 2000), count_include_pad=False),
    ),
    ("max_pool2d", (2, 3, 1, 1), 3001, dict(stride=1, padding=1500)),
    ("max_pool2d", (2, 3, 2, 3), 3001, dict(stride=1000, padding=1500, ceil_mode=True)),
    ("max_pool2d", (1, 2, 1, 1), 46341, dict(stride=1, padding=23170)),  # 2^31 + 4634 taps
    ("avg_pool1d", (2, 3, 3), 20_000_001, dict(stride=1, padding=10_000_000)),
    ("max_pool1d", (2, 3, 3), 20_000_001, dict(stride=7, padding=10_000_000, dilation=1)),
    ("avg_pool3d", (1, 2, 1, 2, 1), 1401, dict(stride=1, padding=700)),
    (
        "max_pool3d",
        (1, 2, 2, 1, 1),
        (1401, 1401, 1401),
        dict(stride=700, padding=700, ceil_mode=True),
    ),
]


def _window_cells(kernel: object, dims: int) -> int:
    return int(np.prod(kernel)) if isinstance(kernel, tuple) else int(kernel) ** dims


@pytest.mark.parametrize("native", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize(("op", "shape", "kernel", "kwargs"), HUGE, ids=[h[0] for h in HUGE])
def test_huge_windows_allocate_what_x_and_y_need_PN5(
    op: str, shape: tuple[int, ...], kernel: object, kwargs: dict, native: bool
) -> None:
    x = np.random.default_rng(2).standard_normal(shape)
    with contextlib.nullcontext() if native else _native.disabled():
        y = getattr(functional, op)(x, kernel, **kwargs)
        peak = _peak(lambda: _forward_backward(op, x, kernel, **kwargs))
    bound = 16 * (x.nbytes + y.nbytes) + 64 * 1024
    window_bytes = _window_cells(kernel, x.ndim - 2) * shape[0] * shape[1] * x.itemsize
    assert bound * 1000 < window_bytes  # the bound is far below the window's memory
    assert peak < bound, (peak, bound)


TORCH_HUGE = [h for h in HUGE if h[0] != "avg_pool3d"]  # PyTorch's wants x at least the window


@pytest.mark.parametrize(
    ("op", "shape", "kernel", "kwargs"), TORCH_HUGE, ids=[h[0] for h in TORCH_HUGE]
)
def test_huge_windows_equal_pytorch_PN5(
    op: str, shape: tuple[int, ...], kernel: object, kwargs: dict
) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    y, cache = getattr(functional, f"{op}_forward")(x, kernel, **kwargs)
    dy = rng.standard_normal(y.shape)
    dx = getattr(functional, f"{op}_backward")(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(torch.nn.functional, op)(xt, kernel, **kwargs)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-300)
    assert xt.grad is not None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-300)
    if op.startswith("max"):
        index = getattr(functional, f"{op}_indices", functional.max_pool_nd_indices)(cache)
        _, theirs = getattr(torch.nn.functional, op)(xt, kernel, **kwargs, return_indices=True)
        np.testing.assert_array_equal(index, theirs.numpy())


def test_a_huge_3d_average_window_by_hand_APN1_APN3() -> None:
    """x (1, 2, 1, 2, 1), window 1401^3, padding 700, stride 1: both windows along the axis of
    size 2 hold both cells, and count_include_pad divides by all 1401^3 cells (APN1)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 1, 2, 1))
    y, cache = functional.avg_pool3d_forward(x, 1401, stride=1, padding=700)
    dy = rng.standard_normal(y.shape)
    dx = functional.avg_pool3d_backward(dy, cache)
    cells = 1401.0**3
    np.testing.assert_allclose(y, np.repeat(x.sum(axis=3, keepdims=True), 2, axis=3) / cells)
    np.testing.assert_allclose(dx, np.repeat(dy.sum(axis=3, keepdims=True), 2, axis=3) / cells)


# (op, x shape, kernel, keywords): windows far larger than x, small enough for the naive loops
LARGE = [
    ("avg_pool2d", (2, 2, 2, 3), 41, dict(stride=1, padding=20)),
    ("avg_pool2d", (1, 2, 3, 2), (41, 31), dict(stride=(13, 9), padding=(20, 15), ceil_mode=True)),
    ("avg_pool2d", (1, 2, 3, 4), 31, dict(stride=2, padding=15, count_include_pad=False)),
    (
        "avg_pool2d",
        (1, 1, 2, 2),
        21,
        dict(stride=8, padding=10, ceil_mode=True, count_include_pad=False),
    ),
    ("max_pool2d", (2, 2, 2, 3), 41, dict(stride=1, padding=20)),
    ("max_pool2d", (1, 2, 3, 2), (41, 31), dict(stride=(13, 9), padding=(20, 15), ceil_mode=True)),
    ("max_pool2d", (1, 2, 3, 5), (41, 3), dict(stride=(2, 1), padding=(20, 1), dilation=(1, 2))),
    ("avg_pool1d", (2, 3, 3), 401, dict(stride=7, padding=200, ceil_mode=True)),
    ("max_pool1d", (2, 3, 5), 401, dict(stride=3, padding=200, ceil_mode=True)),
    ("max_pool1d", (1, 2, 9), 5, dict(stride=1, padding=2, dilation=2)),
    ("avg_pool3d", (1, 2, 1, 2, 3), (21, 11, 9), dict(stride=(5, 1, 2), padding=(10, 5, 4))),
    (
        "max_pool3d",
        (1, 2, 2, 1, 3),
        (21, 11, 9),
        dict(stride=(5, 4, 3), padding=(10, 5, 4), ceil_mode=True),
    ),
]


def _as_tuple(value: object, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (int(value),) * dims  # type: ignore[call-overload]


def _reference(op: str, x: np.ndarray, dy: np.ndarray, kernel: object, kwargs: dict
               ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The naive loops of reference_pooling (PN1-PN4, MPN1-MPN3, APN1-APN3)."""
    dims = x.ndim - 2
    k = _as_tuple(kernel, dims)
    stride = _as_tuple(kwargs.get("stride", kernel), dims)
    pad = _as_tuple(kwargs.get("padding", 0), dims)
    ceil_mode = kwargs.get("ceil_mode", False)
    if op.startswith("max"):
        dil = _as_tuple(kwargs.get("dilation", 1), dims)
        y, winner = max_pool_ref(x, k, stride, pad, dil, ceil_mode)
        return y, scatter_ref(dy, winner, x.shape)
    include = kwargs.get("count_include_pad", True)
    y = avg_pool_ref(x, k, stride, pad, ceil_mode, include)
    return y, avg_pool_backward_ref(dy, x.shape, k, stride, pad, include)


@pytest.mark.parametrize("native", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize(("op", "shape", "kernel", "kwargs"), LARGE, ids=[c[0] for c in LARGE])
def test_large_windows_equal_the_naive_reference_PN5(
    op: str, shape: tuple[int, ...], kernel: object, kwargs: dict, native: bool
) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    x.ravel()[1] = x.ravel()[0]  # a tie: the first tap in row-major order wins (MP2)
    with contextlib.nullcontext() if native else _native.disabled():
        y, cache = getattr(functional, f"{op}_forward")(x, kernel, **kwargs)
        dy = rng.standard_normal(y.shape)
        dx = getattr(functional, f"{op}_backward")(dy, cache)
    y_ref, dx_ref = _reference(op, x, dy, kernel, kwargs)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    if op == "avg_pool3d":
        return  # PyTorch's 3-D average pooling wants x at least the window
    yt = getattr(torch.nn.functional, op)(xt, kernel, **kwargs)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    assert xt.grad is not None
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.fixture
def read_padded_up_to(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set the largest x_pad the pooling loops build (in cells of x), fresh plans each time."""

    def use(limit: int) -> None:
        monkeypatch.setattr(windows_module, "READ_PADDED_UP_TO", limit)
        _forget_plans()

    yield use
    _forget_plans()


def _forget_plans() -> None:
    windows_module.pool_windows.cache_clear()
    pool2d._windows.cache_clear()


def _all_results(op: str, x: np.ndarray, kernel: object, kwargs: dict) -> list[np.ndarray]:
    with _native.disabled():
        y, cache = getattr(functional, f"{op}_forward")(x, kernel, **kwargs)
        dy = np.random.default_rng(5).standard_normal(y.shape).astype(x.dtype)
        results = [y, getattr(functional, f"{op}_backward")(dy, cache)]
        if op.startswith("max"):
            results.append(
                getattr(functional, f"{op}_indices", functional.max_pool_nd_indices)(cache)
            )
    return results


ORDINARY = [
    ("avg_pool2d", (2, 3, 7, 6), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 5, 5), (3, 2), dict(stride=1, padding=(1, 1), count_include_pad=False)),
    ("max_pool2d", (2, 3, 7, 6), 3, dict(stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (2, 3, 6, 7), (5, 3), dict(stride=(1, 2), padding=(2, 1), dilation=(1, 2))),
    ("avg_pool1d", (2, 3, 8), 5, dict(stride=3, padding=2, ceil_mode=True)),
    ("max_pool3d", (1, 2, 3, 4, 5), 3, dict(stride=2, padding=1, ceil_mode=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("op", "shape", "kernel", "kwargs"), ORDINARY + LARGE, ids=[c[0] for c in ORDINARY + LARGE]
)
def test_reading_x_or_x_pad_gives_the_same_bits_PN5(
    op: str, shape: tuple[int, ...], kernel: object, kwargs: dict, dtype: type,
    read_padded_up_to: Callable[[int], None],
) -> None:  # fmt: skip
    """Every tap reads x_pad (PN3) or x itself (PN5): the same values in the same order."""
    x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    x.ravel()[0], x.ravel()[-1] = np.nan, -0.0  # NaN wins a maximum and spreads in sums
    x.ravel()[1] = np.inf
    read_padded_up_to(0)  # never build x_pad
    direct = _all_results(op, x, kernel, kwargs)
    read_padded_up_to(10**30)  # always build x_pad
    padded = _all_results(op, x, kernel, kwargs)
    for a, b in zip(direct, padded, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def test_ordinary_padding_keeps_x_pad_and_huge_windows_skip_it() -> None:
    """Paths: x_pad for every ordinary layer (no change), x itself for windows far larger."""
    ordinary = pool2d_geometry("max_pool2d", np.ones((8, 64, 56, 56)), 3, 2, 1, False)
    assert windows_module.pool_windows(pool2d._nd(ordinary)).padded
    huge = pool2d_geometry("avg_pool2d", np.ones((1, 1, 1, 1)), 3001, None, 1500, False)
    windows = windows_module.pool_windows(pool2d._nd(huge))
    assert not windows.padded and len(list(windows.cuts())) == 1


@pytest.mark.parametrize(
    ("kernel", "out", "stride", "pad", "size", "dil"),
    [(3001, 1, 1, 1500, 1, 1), (7, 4, 3, 3, 5, 1), (5, 2, 9, 2, 3, 1), (9, 3, 2, 4, 10, 2),
     (4001, 2, 1000, 2000, 2, 1), (3, 1, 5, 1, 1, 1), (2001, 2, 1999, 1000, 3, 1)],
)  # fmt: skip
def test_live_taps_are_the_taps_that_read_x_PN5(
    kernel: int, out: int, stride: int, pad: int, size: int, dil: int
) -> None:
    """(PN5) against its definition: some window o reads a cell of x through tap r."""
    expected = [
        r for r in range(kernel)
        if any(0 <= o * stride - pad + r * dil < size for o in range(out))
    ]  # fmt: skip
    assert windows_module.live_taps(kernel, out, stride, pad, size, dil) == expected
    for r, outputs, cells in windows_module.axis_cuts(kernel, out, stride, pad, size, dil):
        reads = [o for o in range(out) if 0 <= o * stride - pad + r * dil < size]
        assert list(range(out)[outputs]) == reads
        assert list(range(size)[cells]) == [o * stride - pad + r * dil for o in reads]


def test_lp_pooling_with_a_window_as_large_as_x_equals_the_reference() -> None:
    """LP pooling has no padding: its window is at most x, and its ceil_mode overhang is read
    as x_pad (LPP1-LPP4 over APN1-APN3)."""
    x = np.abs(np.random.default_rng(7).standard_normal((1, 2, 601)))
    y, cache = functional.lp_pool1d_forward(x, 2, 600, stride=300, ceil_mode=True)
    dy = np.random.default_rng(8).standard_normal(y.shape)
    dx = functional.lp_pool1d_backward(dy, cache)
    y_ref, _ = lp_pool_ref(x, 2.0, (600,), (300,), True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)
    np.testing.assert_allclose(dx, lp_pool_backward_ref(dy, x, 2.0, (600,), (300,), True),
                               rtol=1e-10, atol=1e-15)  # fmt: skip
    peak = _peak(lambda: functional.lp_pool1d_backward(dy, cache))
    assert peak < 8 * x.nbytes + 64 * 1024
