"""The op contract of conv2d for every algorithm: dtypes, shapes, purity, views, skips."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from convprop.backend import to_host
from convprop.functional import conv2d_backward, conv2d_forward
from reference import ALGORITHM_NAMES, CASES, ConvCase, random_inputs

# winograd needs 3x3 / stride 1, depthwise one channel per group; the other
# algorithms get a strided case
WINOGRAD_CASE = next(c for c in CASES if c.name == "groups2_3x3")
DEPTHWISE_CASE = next(c for c in CASES if c.name == "depthwise_strided_dilated")
STRIDED_CASE = next(c for c in CASES if c.name == "stride_and_dilation_remainder")


def _case(algorithm: str) -> ConvCase:
    special = {"winograd": WINOGRAD_CASE, "winograd4": WINOGRAD_CASE, "depthwise": DEPTHWISE_CASE}
    return special.get(algorithm, STRIDED_CASE)


def _inputs(xp: ModuleType, case: ConvCase, dtype: str) -> tuple[Any, Any, Any, Any]:
    x, w, b, dy = random_inputs(case, dtype, seed=51)
    b = np.random.default_rng(52).standard_normal(case.K).astype(dtype) if b is None else b
    return xp.asarray(x), xp.asarray(w), xp.asarray(b), xp.asarray(dy)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_and_gradients_keep_dtype_and_shape(
    xp: ModuleType, algorithm: str, dtype: str
) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(xp, case, dtype)
    y, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    assert y.shape == case.y_shape and y.dtype == x.dtype
    assert y.flags.c_contiguous
    dx, dw, db = conv2d_backward(dy, cache)
    for grad, original in ((dx, x), (dw, w), (db, b)):
        assert grad.shape == original.shape
        assert grad.dtype == original.dtype
        assert grad.flags.c_contiguous
        assert type(grad) is type(original)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_backward_twice_gives_identical_fresh_arrays(xp: ModuleType, algorithm: str) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(xp, case, "float64")
    _, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    first = conv2d_backward(dy, cache)
    second = conv2d_backward(dy, cache)
    for a, b_ in zip(first, second, strict=True):
        np.testing.assert_array_equal(to_host(a), to_host(b_))
        assert a is not b_
        for other in (x, w, b, dy, b_):
            assert not xp.shares_memory(a, other)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_inputs_dy_and_cache_are_not_mutated(xp: ModuleType, algorithm: str) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(xp, case, "float64")
    before = [to_host(a).copy() for a in (x, w, b, dy)]
    y, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    fields = (cache.x, cache.w, cache.has_bias, cache.geom, cache.algorithms, cache.saved)
    cache_arrays = [to_host(cache.x).copy(), to_host(cache.w).copy()]
    saved = None if cache.saved is None else to_host(cache.saved).copy()
    dx, dw, db = conv2d_backward(dy, cache)
    for original, copy in zip((x, w, b, dy), before, strict=True):
        np.testing.assert_array_equal(to_host(original), copy)
    now = (cache.x, cache.w, cache.has_bias, cache.geom, cache.algorithms, cache.saved)
    assert all(a is b_ for a, b_ in zip(now, fields, strict=True))
    if saved is not None:  # forward work kept for the weight gradient is read, not written
        np.testing.assert_array_equal(to_host(cache.saved), saved)
    np.testing.assert_array_equal(to_host(cache.x), cache_arrays[0])
    np.testing.assert_array_equal(to_host(cache.w), cache_arrays[1])
    # writing into the results must reach neither the inputs, the cache nor a later call
    saved = [to_host(a).copy() for a in (dx, dw, db)]
    for result in (y, dx, dw, db):
        result[...] = 0
    for again, copy in zip(conv2d_backward(dy, cache), saved, strict=True):
        np.testing.assert_array_equal(to_host(again), copy)
    np.testing.assert_array_equal(to_host(cache.x), cache_arrays[0])
    np.testing.assert_array_equal(to_host(cache.w), cache_arrays[1])


def _views(a: np.ndarray) -> dict[str, np.ndarray]:
    """The same values as ``a`` in non-contiguous layouts."""
    return {
        "transposed": np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2),
        "strided": np.repeat(a, 2, axis=-1)[..., ::2],
        "reversed": np.ascontiguousarray(a[..., ::-1])[..., ::-1],
        "fortran": np.asfortranarray(a),
    }


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
@pytest.mark.parametrize("layout", ["transposed", "strided", "reversed", "fortran"])
def test_non_contiguous_inputs_are_accepted_and_correct(algorithm: str, layout: str) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(np, case, "float64")
    x_v, w_v, dy_v = (_views(a)[layout] for a in (x, w, dy))
    b_v = np.repeat(b, 2)[::2]
    assert not any(a.flags.c_contiguous for a in (x_v, w_v, dy_v, b_v))
    y, cache = conv2d_forward(x_v, w_v, b_v, algorithm=algorithm, **case.hyper)
    y_ref, cache_ref = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-13)
    for got, want in zip(conv2d_backward(dy_v, cache), conv2d_backward(dy, cache_ref), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_need_dx_false_returns_none_for_dx(xp: ModuleType, algorithm: str) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(xp, case, "float64")
    _, cache = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    dx, dw, db = conv2d_backward(dy, cache, need_dx=False)
    assert dx is None
    _, full_dw, full_db = conv2d_backward(dy, cache)
    np.testing.assert_allclose(to_host(dw), to_host(full_dw), rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(to_host(db), to_host(full_db))


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_absent_bias_gives_db_none(xp: ModuleType, algorithm: str) -> None:
    case = _case(algorithm)
    x, w, b, dy = _inputs(xp, case, "float64")
    y_without, cache = conv2d_forward(x, w, None, algorithm=algorithm, **case.hyper)
    dx, dw, db = conv2d_backward(dy, cache)
    assert db is None and dx is not None and dw is not None
    y_with, _ = conv2d_forward(x, w, b, algorithm=algorithm, **case.hyper)
    np.testing.assert_allclose(
        to_host(y_with - y_without),
        np.broadcast_to(to_host(b).reshape(1, -1, 1, 1), case.y_shape),
        rtol=1e-12,
        atol=1e-12,
    )


def test_auto_records_a_concrete_algorithm_per_pass() -> None:
    for case in CASES:
        x, w, b, _ = random_inputs(case, "float32", seed=51)
        _, cache = conv2d_forward(x, w, b, algorithm="auto", **case.hyper)
        assert len(cache.algorithms) == 3
        assert set(cache.algorithms) <= set(ALGORITHM_NAMES) - {"auto"}
        assert all(case.applies(name) for name in cache.algorithms)
