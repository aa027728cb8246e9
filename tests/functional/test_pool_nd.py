"""Max and average pooling in 1-3 dimensions, max pooling with dilation: (PN1)-(PN4),
(MPN1)-(MPN3), (MPI1), (APN1)-(APN3).

Witnesses: the naive loops of reference_pooling (forward, backward, indices), central finite
differences, adjoint identities for average pooling, the compiled 2-D path against the
N-d pair, hypothesis properties, the tie and NaN rules, and PyTorch as an extra witness.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convprop import _native
from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional import pool1d, pool2d, pool3d, pool_nd
from reference_pooling import (
    avg_pool_backward_ref,
    avg_pool_ref,
    max_pool_ref,
    out_size,
    scatter_ref,
)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (tiny tensors; two threads per test worker oversubscribe the CPU)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TOL = {"float64": 1e-12, "float32": 1e-5}
MAX_FORWARD = {
    1: pool1d.max_pool1d_forward,
    2: pool2d.max_pool2d_forward,
    3: pool3d.max_pool3d_forward,
}
MAX_BACKWARD = {
    1: pool1d.max_pool1d_backward, 2: pool2d.max_pool2d_backward, 3: pool3d.max_pool3d_backward,
}  # fmt: skip
AVG_FORWARD = {
    1: pool1d.avg_pool1d_forward,
    2: pool2d.avg_pool2d_forward,
    3: pool3d.avg_pool3d_forward,
}
AVG_BACKWARD = {
    1: pool1d.avg_pool1d_backward, 2: pool2d.avg_pool2d_backward, 3: pool3d.avg_pool3d_backward,
}  # fmt: skip
TORCH_MAX = {
    1: torch.nn.functional.max_pool1d, 2: torch.nn.functional.max_pool2d,
    3: torch.nn.functional.max_pool3d,
}  # fmt: skip
TORCH_AVG = {
    1: torch.nn.functional.avg_pool1d, 2: torch.nn.functional.avg_pool2d,
    3: torch.nn.functional.avg_pool3d,
}  # fmt: skip


class Case(NamedTuple):
    name: str
    x_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    @property
    def dims(self) -> int:
        return len(self.kernel)

    def max_kwargs(self) -> dict[str, Any]:
        return {
            "stride": self.stride, "padding": self.padding, "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }  # fmt: skip

    def avg_kwargs(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "ceil_mode": self.ceil_mode}


MAX_CASES = [
    Case("1d-k3-s2", (2, 3, 11), (3,), (2,), (0,), (1,), False),
    Case("1d-dil2-pad1-ceil", (1, 2, 10), (3,), (2,), (1,), (2,), True),
    Case("1d-stride-not-dividing", (1, 2, 9), (2,), (3,), (1,), (1,), False),
    Case("1d-ceil-last-window-in-padding-dropped", (1, 2, 5), (3,), (3,), (1,), (1,), True),
    Case("1d-ceil-window-reads-padding-and-overhang", (1, 1, 4), (3,), (2,), (1,), (1,), True),
    Case("1d-dil3-stride1-overlap", (2, 1, 9), (2,), (1,), (1,), (3,), False),
    Case("2d-dil2", (2, 2, 7, 8), (3, 3), (1, 1), (1, 1), (2, 2), False),
    Case("2d-dil-nonsquare-ceil", (1, 2, 9, 7), (2, 3), (2, 1), (1, 1), (3, 1), True),
    Case("2d-dil-stride3-remainder", (1, 1, 10, 11), (2, 2), (3, 3), (0, 1), (2, 4), False),
    Case("3d-k2", (2, 2, 4, 5, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1), False),
    Case("3d-mixed-dil-ceil", (1, 2, 5, 6, 7), (3, 2, 3), (2, 1, 2), (1, 1, 0), (1, 2, 1), True),
    Case("3d-ceil-drop", (1, 1, 5, 4, 5), (3, 2, 3), (3, 2, 3), (1, 0, 1), (1, 1, 1), True),
]
MAX_IDS = [case.name for case in MAX_CASES]
AVG_CASES = [case for case in MAX_CASES if set(case.dilation) == {1}] + [
    Case("2d-ceil-pad", (1, 2, 6, 7), (3, 2), (2, 2), (1, 1), (1, 1), True),
]
AVG_IDS = [case.name for case in AVG_CASES]


def with_overrides(overrides: tuple[int | None, ...]) -> list[Any]:
    """(case, divisor_override) pairs; avg_pool1d has no divisor_override (as PyTorch)."""
    return [
        pytest.param(case, override, id=f"{case.name}-override{override}")
        for case in AVG_CASES
        for override in overrides
        if case.dims > 1 or override is None
    ]


def distinct_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values at least 0.01 apart, so no two cells tie and no max sits near a kink."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 0.3


def assert_close(actual: Any, expected: np.ndarray, dtype: str) -> None:
    actual = to_host(actual)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[dtype] * scale)


def max_indices(cache: Any) -> Any:
    if isinstance(cache, pool1d.LiftedMaxPool1dCache):
        return pool1d.max_pool1d_indices(cache)
    if isinstance(cache, pool_nd.MaxPoolNdCache):
        return pool_nd.max_pool_nd_indices(cache)
    return pool2d.max_pool2d_indices(cache)


# ------------------------------------------------------------------- reference agreement


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_matches_MPN1_MPN3_MPI1_reference(xp: ModuleType, case: Case, dtype: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    args = (case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode)
    y_ref, winner = max_pool_ref(x.astype(np.float64), *args)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    y, cache = MAX_FORWARD[case.dims](xp.asarray(x), case.kernel, **case.max_kwargs())
    dx = MAX_BACKWARD[case.dims](xp.asarray(dy), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype)
    assert_close(dx, scatter_ref(dy.astype(np.float64), winner, x.shape), dtype)
    indices = to_host(max_indices(cache))
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, winner)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("case", "override"), with_overrides((None, 3, -2)))
def test_avg_pool_matches_APN1_APN3_reference(
    xp: ModuleType, case: Case, dtype: str, count_include_pad: bool, override: int | None
) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    ref_args = (case.kernel, case.stride, case.padding)
    y_ref = avg_pool_ref(
        x.astype(np.float64), *ref_args, case.ceil_mode, count_include_pad, override
    )
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    kwargs = {**case.avg_kwargs(), "count_include_pad": count_include_pad}
    if case.dims > 1:
        kwargs["divisor_override"] = override
    y, cache = AVG_FORWARD[case.dims](xp.asarray(x), case.kernel, **kwargs)
    dx = AVG_BACKWARD[case.dims](xp.asarray(dy), cache)
    assert y.dtype == dx.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype)
    dx_ref = avg_pool_backward_ref(
        dy.astype(np.float64), x.shape, *ref_args, count_include_pad, override
    )
    assert_close(dx, dx_ref, dtype)


def test_one_shot_functions_equal_forward() -> None:
    x1 = np.random.default_rng(3).standard_normal((2, 3, 9))
    x3 = np.random.default_rng(3).standard_normal((1, 2, 4, 5, 6))
    np.testing.assert_array_equal(
        pool1d.max_pool1d(x1, 3, dilation=2), pool1d.max_pool1d_forward(x1, 3, dilation=2)[0]
    )
    np.testing.assert_array_equal(pool1d.avg_pool1d(x1, 2), pool1d.avg_pool1d_forward(x1, 2)[0])
    np.testing.assert_array_equal(pool3d.max_pool3d(x3, 2), pool3d.max_pool3d_forward(x3, 2)[0])
    np.testing.assert_array_equal(
        pool3d.avg_pool3d(x3, 2, divisor_override=5),
        pool3d.avg_pool3d_forward(x3, 2, divisor_override=5)[0],
    )
    x2 = x3[0]
    np.testing.assert_array_equal(
        pool2d.max_pool2d(x2, 2, dilation=2), pool2d.max_pool2d_forward(x2, 2, dilation=2)[0]
    )


# -------------------------------------------------------------------- finite differences


@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_MPN3_matches_finite_differences(case: Case) -> None:
    x = distinct_input(case.x_shape, seed=5)
    forward = MAX_FORWARD[case.dims]
    y, cache = forward(x, case.kernel, **case.max_kwargs())
    dy = np.random.default_rng(6).standard_normal(y.shape)
    numeric = numerical_gradient(
        lambda v: float(np.sum(forward(v, case.kernel, **case.max_kwargs())[0] * dy)), x
    )
    np.testing.assert_allclose(MAX_BACKWARD[case.dims](dy, cache), numeric, atol=1e-8)


@pytest.mark.parametrize(("case", "override"), with_overrides((None, -2)))
def test_avg_pool_APN3_matches_finite_differences(case: Case, override: int | None) -> None:
    x = np.random.default_rng(7).standard_normal(case.x_shape)
    kwargs = {**case.avg_kwargs(), "count_include_pad": False}
    if case.dims > 1:
        kwargs["divisor_override"] = override
    forward = AVG_FORWARD[case.dims]
    y, cache = forward(x, case.kernel, **kwargs)
    dy = np.random.default_rng(8).standard_normal(y.shape)
    numeric = numerical_gradient(
        lambda v: float(np.sum(forward(v, case.kernel, **kwargs)[0] * dy)), x
    )
    np.testing.assert_allclose(AVG_BACKWARD[case.dims](dy, cache), numeric, atol=1e-8)


@pytest.mark.parametrize(("case", "override"), with_overrides((None, 3)))
def test_avg_pool_APN3_is_the_adjoint_of_APN2(case: Case, override: int | None) -> None:
    rng = np.random.default_rng(9)
    u = rng.standard_normal(case.x_shape)
    kwargs: dict[str, Any] = case.avg_kwargs()
    if case.dims > 1:
        kwargs["divisor_override"] = override
    Au, cache = AVG_FORWARD[case.dims](u, case.kernel, **kwargs)
    v = rng.standard_normal(Au.shape)
    lhs, rhs = np.vdot(Au, v), np.vdot(u, AVG_BACKWARD[case.dims](v, cache))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


# --------------------------------------------- the compiled 2-D path against the N-d pair


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding"), [(2, 2, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))]
)
def test_2d_pairs_equal_the_nd_pairs(
    kernel: Any, stride: Any, padding: Any, ceil_mode: bool
) -> None:
    rng = np.random.default_rng(10)
    x = rng.integers(0, 4, (2, 3, 9, 8)).astype(np.float64)  # ties: the same first maximum
    hyper = (kernel, stride, padding)
    y2, cache2 = pool2d.max_pool2d_forward(
        x, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode
    )
    y_nd, cache_nd = pool_nd.max_pool_nd_forward("max_pool2d", x, 2, *hyper, 1, ceil_mode)
    np.testing.assert_array_equal(y2, y_nd)
    np.testing.assert_array_equal(cache2.argmax, cache_nd.argmax)
    np.testing.assert_array_equal(
        pool2d.max_pool2d_indices(cache2), pool_nd.max_pool_nd_indices(cache_nd)
    )
    dy = rng.standard_normal(y2.shape)
    # the compiled backward adds a cell's shares in another order: equal to rounding
    np.testing.assert_allclose(
        pool2d.max_pool2d_backward(dy, cache2),
        pool_nd.max_pool_nd_backward(dy, cache_nd),
        rtol=1e-15,
        atol=1e-15,
    )
    a2, acache2 = pool2d.avg_pool2d_forward(
        x, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode
    )
    a_nd, acache_nd = pool_nd.avg_pool_nd_forward("avg_pool2d", x, 2, *hyper, ceil_mode, True, None)
    np.testing.assert_allclose(a2, a_nd, rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        pool2d.avg_pool2d_backward(dy, acache2),
        pool_nd.avg_pool_nd_backward(dy, acache_nd),
        atol=1e-15,
    )


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 2, 1), (4, 3, 2)])
def test_max_pool1d_PL1_PL2_on_the_compiled_2d_pair_equals_the_nd_pair(
    kernel: int, stride: int, padding: int, ceil_mode: bool
) -> None:
    rng = np.random.default_rng(16)
    x = rng.integers(0, 4, (2, 3, 23)).astype(np.float64)  # ties: the same first maximum
    hyper = {"stride": stride, "padding": padding, "ceil_mode": ceil_mode}
    y, cache = pool1d.max_pool1d_forward(x, kernel, **hyper)
    assert isinstance(cache, pool1d.LiftedMaxPool1dCache)
    with _native.disabled():
        y_nd, cache_nd = pool1d.max_pool1d_forward(x, kernel, **hyper)
    assert isinstance(cache_nd, pool_nd.MaxPoolNdCache)
    np.testing.assert_array_equal(y, y_nd)
    np.testing.assert_array_equal(
        pool1d.max_pool1d_indices(cache), pool1d.max_pool1d_indices(cache_nd)
    )
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        pool1d.max_pool1d_backward(dy, cache),
        pool1d.max_pool1d_backward(dy, cache_nd),
        rtol=1e-15,
        atol=1e-15,
    )
    with pytest.raises(ShapeError, match=r"^max_pool1d_backward: dy.shape=\(2, 3\) does not"):
        pool1d.max_pool1d_backward(dy[:, :, 0], cache)


def test_max_pool2d_dilation_one_takes_the_compiled_pair_and_above_one_the_nd_pair() -> None:
    x = np.random.default_rng(11).standard_normal((1, 2, 6, 6))
    assert isinstance(pool2d.max_pool2d_forward(x, 2, dilation=(1, 1))[1], pool2d.MaxPool2dCache)
    assert isinstance(pool2d.max_pool2d_forward(x, 2, dilation=(1, 2))[1], pool_nd.MaxPoolNdCache)


# ---------------------------------------------------------------------------- properties


@st.composite
def geometries(draw: st.DrawFn) -> dict[str, Any]:
    """Valid pooling geometries in 1-3 dimensions with dilation, small sizes."""
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    span = [d * (k - 1) + 1 - 2 * p for k, d, p in zip(kernel, dilation, padding, strict=True)]
    size = tuple(draw(st.integers(max(s, 1), max(s, 1) + 4)) for s in span)
    return {
        "x_shape": (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size),
        "kernel": kernel,
        "stride": tuple(draw(st.integers(1, 3)) for _ in range(dims)),
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": draw(st.booleans()),
    }


def _pn4_holds(g: dict[str, Any]) -> bool:
    """(PN4) from the reference's sizes: every window reads a cell of x on every axis."""
    for n, k, s, p, d in zip(
        g["x_shape"][2:], g["kernel"], g["stride"], g["padding"], g["dilation"], strict=True
    ):
        for o in range(out_size(n, k, s, p, d, g["ceil_mode"])):
            if not any(0 <= o * s - p + r * d < n for r in range(k)):
                return False
    return True


@settings(max_examples=40, deadline=None)
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_max_pool_shape_follows_PN1_PN2_and_backward_sends_each_dy_to_one_cell(
    geometry: dict[str, Any], seed: int
) -> None:
    g = geometry
    dims = len(g["kernel"])
    hyper = {k: g[k] for k in ("stride", "padding", "dilation", "ceil_mode")}
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x_shape"])
    if not _pn4_holds(g):
        with pytest.raises(ShapeError, match="reads only padding"):
            MAX_FORWARD[dims](x, g["kernel"], **hyper)
        return
    y, cache = MAX_FORWARD[dims](x, g["kernel"], **hyper)
    outs = tuple(
        out_size(n, k, s, p, d, g["ceil_mode"])
        for n, k, s, p, d in zip(
            g["x_shape"][2:], g["kernel"], g["stride"], g["padding"], g["dilation"], strict=True
        )
    )
    assert y.shape == (*g["x_shape"][:2], *outs)
    dy = rng.standard_normal(y.shape)
    dx = MAX_BACKWARD[dims](dy, cache)
    assert np.isclose(dx.sum(), dy.sum(), rtol=0, atol=1e-12)  # (MPN3): Σ dx = Σ dy
    flat = x.reshape(*x.shape[:2], -1)
    chosen = np.take_along_axis(flat, max_indices(cache).reshape(*y.shape[:2], -1), axis=2)
    np.testing.assert_array_equal(chosen.reshape(y.shape), y)  # (MPI1) names the maximum


@settings(max_examples=30, deadline=None)
@given(geometry=geometries(), seed=st.integers(0, 2**16))
def test_avg_pool_without_padded_cells_conserves_total_gradient(
    geometry: dict[str, Any], seed: int
) -> None:
    g = geometry
    dims = len(g["kernel"])
    assume(
        all(
            k + 2 * p <= n
            for k, p, n in zip(g["kernel"], g["padding"], g["x_shape"][2:], strict=True)
        )
    )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g["x_shape"])
    y, cache = AVG_FORWARD[dims](
        x, g["kernel"], stride=g["stride"], padding=g["padding"], ceil_mode=g["ceil_mode"],
        count_include_pad=False,
    )  # fmt: skip
    dy = rng.standard_normal(y.shape)
    assert np.isclose(AVG_BACKWARD[dims](dy, cache).sum(), dy.sum(), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ ties and kinks


def test_max_pool1d_MPN2_ties_go_to_the_first_tap_with_dilation() -> None:
    x = np.array([[[2.0, 0.0, 2.0, 1.0, 2.0]]])
    y, cache = pool1d.max_pool1d_forward(x, 2, stride=1, dilation=2)  # cells (0,2) (1,3) (2,4)
    np.testing.assert_array_equal(y[0, 0], [2.0, 1.0, 2.0])
    np.testing.assert_array_equal(cache.argmax[0, 0], [0, 1, 0])
    np.testing.assert_array_equal(pool_nd.max_pool_nd_indices(cache)[0, 0], [0, 3, 2])
    dx = pool1d.max_pool1d_backward(np.array([[[1.0, 10.0, 100.0]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [1.0, 0.0, 100.0, 10.0, 0.0])


def test_max_pool_a_nan_wins_and_the_last_nan_of_a_window_is_named() -> None:
    x = np.array([[[1.0, np.nan, 5.0, np.nan, 0.0]]])
    y, cache = pool1d.max_pool1d_forward(x, 5)
    assert np.isnan(y[0, 0, 0])
    np.testing.assert_array_equal(max_indices(cache)[0, 0], [3])


def test_max_pool3d_all_minus_infinity_window_points_at_its_first_real_cell() -> None:
    x = np.full((1, 1, 2, 2, 2), -np.inf)
    y, cache = pool3d.max_pool3d_forward(x, 2, stride=1, padding=1)  # (3, 3, 3) windows
    assert np.all(y == -np.inf)
    indices = pool_nd.max_pool_nd_indices(cache)[0, 0]
    assert indices[0, 0, 0] == 0 and indices[2, 2, 2] == 7  # first real cell of each window
    dx = pool3d.max_pool3d_backward(np.ones_like(y), cache)
    assert dx.sum() == y.size


def test_PN4_a_window_that_reads_only_padding_is_refused() -> None:
    x = np.zeros((1, 1, 2))
    with pytest.raises(
        ShapeError,
        match=r"^max_pool1d: window 0 along the length reads only padding \(cells -1, 2, … step "
        r"3\); expected every window to read a cell of x, got none \(length 2, padding 1",
    ):
        pool1d.max_pool1d_forward(x, 2, padding=1, dilation=3)
    with pytest.raises(ShapeError, match=r"^max_pool2d: window 0 along the width reads only"):
        pool2d.max_pool2d_forward(np.zeros((1, 1, 4, 2)), (1, 2), padding=(0, 1), dilation=(1, 3))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_an_empty_batch_gives_an_empty_output_and_gradient(dims: int) -> None:
    x = np.zeros((0, 2, *(5,) * dims))
    for forward, backward in (
        (MAX_FORWARD[dims], MAX_BACKWARD[dims]),
        (AVG_FORWARD[dims], AVG_BACKWARD[dims]),
    ):
        y, cache = forward(x, 2)
        assert y.shape == (0, 2, *(2,) * dims)
        assert backward(np.zeros(y.shape), cache).shape == x.shape
    assert max_indices(MAX_FORWARD[dims](x, 2, dilation=2)[1]).shape == (0, 2, *(2,) * dims)


# ----------------------------------------------------------------------------- contract

OPS = {
    "max1d-dil": lambda x: pool1d.max_pool1d_forward(
        x[:, :, 0], 3, stride=2, padding=1, dilation=2
    ),
    "max2d-dil": lambda x: pool2d.max_pool2d_forward(
        x, 3, stride=2, padding=1, dilation=2, ceil_mode=True
    ),
    "max3d": lambda x: pool3d.max_pool3d_forward(x[:, :, None], (1, 2, 2), ceil_mode=True),
    "avg1d": lambda x: pool1d.avg_pool1d_forward(x[:, :, 1], 2, stride=1, padding=1),
    "avg3d": lambda x: pool3d.avg_pool3d_forward(
        x[:, :, None], (1, 3, 2), padding=(0, 1, 1), divisor_override=4
    ),
}
BACKWARD = {
    "max1d-dil": pool1d.max_pool1d_backward, "max2d-dil": pool2d.max_pool2d_backward,
    "max3d": pool3d.max_pool3d_backward, "avg1d": pool1d.avg_pool1d_backward,
    "avg3d": pool3d.avg_pool3d_backward,
}  # fmt: skip


@pytest.mark.parametrize("op", list(OPS))
def test_pooling_preserves_float32_shapes_and_mutates_nothing(op: str) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 6, 7)).astype(np.float32)
    x_before = x.copy()
    y, cache = OPS[op](x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy_before = dy.copy()
    dx1 = BACKWARD[op](dy, cache)
    dx2 = BACKWARD[op](dy, cache)
    assert y.dtype == dx1.dtype == np.float32
    assert dx1.flags.c_contiguous and dx1 is not dx2
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dy, dy_before)


@pytest.mark.parametrize("op", list(OPS))
def test_pooling_accepts_non_contiguous_input(op: str) -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 5, 14, 6))[:, ::2, ::2, :].transpose(0, 1, 3, 2)  # (2, 3, 6, 7)
    y, cache = OPS[op](x)
    y_c, cache_c = OPS[op](np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, y_c)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(BACKWARD[op](dy, cache), BACKWARD[op](dy, cache_c))


# -------------------------------------------------------------------------------- errors

X3 = np.zeros((1, 2, 5, 5, 5))


@pytest.mark.parametrize("forward", [pool3d.max_pool3d_forward, pool3d.avg_pool3d_forward])
@pytest.mark.parametrize(
    ("x", "kwargs", "error", "match"),
    [
        ([[1.0]], {}, DTypeError, r"x must be a numpy or cupy array"),
        (X3.astype(np.int32), {}, DTypeError, r"x has dtype int32; expected float32 or float64"),
        (np.zeros((2, 5, 5)), {}, ShapeError,
         r"x must be 5-D \(N, C, D, H, W\); expected 5 dimensions, got 3 \(x.shape=\(2, 5, 5\)\)"),
        (np.zeros((1, 2, 5, 0, 5)), {}, ShapeError,
         r"C, D, H, W must be >= 1 \(only N may be 0\); expected non-empty planes, got "
         r"\(2, 5, 0, 5\)"),
        (X3, {"kernel_size": 0}, ParameterError, r"kernel_size must be >= 1; expected values"),
        (X3, {"kernel_size": (2, 2)}, ParameterError,
         r"kernel_size must be an int or 3 ints; expected e.g. 2 or \(2, 2, 2\), got \(2, 2\)"),
        (X3, {"stride": (1, 0, 1)}, ParameterError, r"stride must be >= 1; .*got \(1, 0, 1\)"),
        (X3, {"padding": -1}, ParameterError, r"padding must be >= 0"),
        (X3, {"kernel_size": (2, 3, 2), "padding": (0, 2, 0)}, ParameterError,
         r"padding 2 is more than half the window height 3; expected padding <= 1, got 2"),
        (np.zeros((1, 1, 2, 9, 9)), {"kernel_size": 3}, ShapeError,
         r"padded input depth 2 is smaller than the window depth 3; expected an output size "
         r">= 1, got 0 \(depth 2, padding 0, kernel 3, dilation 1; x.shape=\(1, 1, 2, 9, 9\)"),
        (X3, {"ceil_mode": 1}, ParameterError, r"ceil_mode must be a bool; expected True or False"),
    ],
)  # fmt: skip
def test_pool3d_rejects_bad_input(
    forward: Any, x: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    name = "max_pool3d" if forward is pool3d.max_pool3d_forward else "avg_pool3d"
    with pytest.raises(error, match=f"^{name}: {match}"):
        forward(x, **{"kernel_size": 2, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dilation": 0}, r"max_pool1d: dilation must be >= 1; expected values >= 1, got 0"),
        ({"dilation": 2, "kernel_size": 3}, r"max_pool1d: padded input length 4 is smaller than "
         r"the window length 5; expected an output size >= 1, got 0"),
    ],
)  # fmt: skip
def test_max_pool1d_rejects_bad_dilation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((ParameterError, ShapeError), match=f"^{match}"):
        pool1d.max_pool1d_forward(np.zeros((1, 1, 4)), **{"kernel_size": 2, **kwargs})


@pytest.mark.parametrize("override", [0, 2.0, True, "4"])
def test_avg_pool_rejects_a_bad_divisor_override(override: Any) -> None:
    for forward, name in (
        (pool2d.avg_pool2d_forward, "avg_pool2d"),
        (pool3d.avg_pool3d_forward, "avg_pool3d"),
    ):
        x = np.zeros((1, 1, *(4,) * (2 if name == "avg_pool2d" else 3)))
        with pytest.raises(
            ParameterError, match=rf"^{name}: divisor_override must be a nonzero int or None"
        ):
            forward(x, 2, divisor_override=override)


def test_avg_pool1d_rejects_a_non_bool_count_include_pad() -> None:
    with pytest.raises(ParameterError, match=r"^avg_pool1d: count_include_pad must be a bool"):
        pool1d.avg_pool1d_forward(np.zeros((1, 1, 4)), 2, count_include_pad=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ("shape", ShapeError, r"dy.shape=\(1, 1\) does not match the forward output"),
        ("dtype", DTypeError, r"dy has dtype float32; expected the forward dtype float64"),
    ],
)
def test_pooling_backward_rejects_bad_dy(
    op: str, change: str, error: type[Exception], match: str
) -> None:
    y, cache = OPS[op](np.zeros((2, 3, 6, 7)))
    dy = np.zeros((1, 1)) if change == "shape" else np.zeros(y.shape, dtype=np.float32)
    name = {"max1d-dil": "max_pool1d", "max2d-dil": "max_pool2d", "max3d": "max_pool3d"}.get(
        op, "avg_pool1d" if op == "avg1d" else "avg_pool3d"
    )
    with pytest.raises(error, match=f"^{name}_backward: {match}"):
        BACKWARD[op](dy, cache)


# --------------------------------------------------------------------- PyTorch agreement


@pytest.mark.parametrize("values", ["normal", "ties", "nan-and-inf"])
@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_agrees_with_torch(case: Case, values: str) -> None:
    rng = np.random.default_rng(14)
    if values == "normal":
        x = rng.standard_normal(case.x_shape)
    else:
        x = rng.integers(0, 3, case.x_shape).astype(np.float64)
    if values == "nan-and-inf":
        x[rng.random(case.x_shape) < 0.2] = -np.inf
        x[rng.random(case.x_shape) < 0.1] = np.nan
    x_t = torch.tensor(x, requires_grad=True)
    y_t, indices_t = TORCH_MAX[case.dims](
        x_t, case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode, True
    )
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    y, cache = MAX_FORWARD[case.dims](x, case.kernel, **case.max_kwargs())
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    np.testing.assert_array_equal(max_indices(cache), indices_t.numpy())
    np.testing.assert_allclose(
        MAX_BACKWARD[case.dims](dy, cache), x_t.grad.numpy(), rtol=1e-10, atol=0
    )


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("case", "override"), with_overrides((None, 3, -2)))
def test_avg_pool_agrees_with_torch(
    case: Case, count_include_pad: bool, override: int | None
) -> None:
    rng = np.random.default_rng(15)
    x = rng.standard_normal(case.x_shape)
    x_t = torch.tensor(x, requires_grad=True)
    extra = () if case.dims == 1 else (override,)
    y_t = TORCH_AVG[case.dims](
        x_t, case.kernel, case.stride, case.padding, case.ceil_mode, count_include_pad, *extra
    )
    dy = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(dy))
    kwargs = {**case.avg_kwargs(), "count_include_pad": count_include_pad}
    if case.dims > 1:
        kwargs["divisor_override"] = override
    y, cache = AVG_FORWARD[case.dims](x, case.kernel, **kwargs)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        AVG_BACKWARD[case.dims](dy, cache), x_t.grad.numpy(), rtol=1e-10, atol=1e-14
    )
