"""Geometry far beyond the input in the N-d convolution: the dead end taps dropped (CN7).

Witnesses: the untrimmed im2col computation of the same geometry (float64, shapes small
enough that its padded input is cheap) and the naive loops of tests/reference_convnd.py,
for the convolution and its transpose; a tracemalloc bound where the padded input would
take gigabytes.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

import reference_convnd as ref
from convprop.functional import convnd
from convprop.functional.conv_transpose_nd import (
    conv_transpose_nd_backward,
    conv_transpose_nd_forward,
)
from convprop.functional.convnd import conv_nd_backward, conv_nd_forward

# (x shape, w shape, stride, padding, dilation, groups): every case drops taps on some axis
FAR = [
    ((1, 1, 4, 4, 4), (1, 1, 3, 3, 3), 1, 6, 6, 1),  # the middle tap alone is live
    ((2, 2, 4, 5, 3), (2, 2, 3, 2, 3), 1, 6, 6, 1),  # two live taps on the second axis
    ((2, 2, 4, 5, 3), (2, 2, 3, 2, 3), 2, 7, 5, 1),  # stride with a remainder
    ((1, 4, 5, 4, 6), (4, 2, 3, 3, 2), (1, 2, 3), (2, 6, 5), (4, 5, 6), 2),  # groups, per axis
    ((1, 1, 8, 3, 3), (1, 1, 3, 1, 1), 7, (3, 0, 0), 5, 1),  # lo·d > before: x cropped at the start
    ((1, 1, 3, 3, 3), (1, 1, 2, 2, 2), 1, ((4, 0), (0, 4), (2, 2)), 4, 1),  # one end only
]


def _hyper(case: tuple[Any, ...]) -> dict[str, Any]:
    _, _, stride, padding, dilation, groups = case
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def _arrays(case: tuple[Any, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x_shape, w_shape = case[0], case[1]
    return (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )


@pytest.mark.parametrize("case", FAR)
def test_trimmed_conv_equals_the_untrimmed_computation_and_the_naive_loops(
    case: tuple[Any, ...],
) -> None:
    x, w, b = _arrays(case, 0)
    hyper = _hyper(case)
    y, cache = conv_nd_forward(x, w, b, **hyper)
    reduced = convnd.trim(cache.geom)
    assert reduced is not None and reduced.geom is not None  # (CN7) applies
    assert reduced.geom.taps < cache.geom.taps
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx, dw, db = conv_nd_backward(dy, cache)
    assert dx is not None and db is not None

    geom = cache.geom
    y_full = convnd._apply(x, w, geom) + b.reshape(1, -1, 1, 1, 1)
    np.testing.assert_allclose(y, y_full, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, convnd._input_grad(dy, w, geom), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dw, convnd._weight_grad(x, dy, geom), rtol=0, atol=1e-12)

    np.testing.assert_allclose(y, ref.conv_nd_ref(x, w, b, **hyper), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, ref.conv_nd_dx_ref(dy, w, x.shape, **hyper), atol=1e-12)
    np.testing.assert_allclose(dw, ref.conv_nd_dw_ref(x, dy, w.shape, **hyper), atol=1e-12)
    np.testing.assert_allclose(db, ref.conv_nd_db_ref(dy), atol=1e-12)
    dead = np.ones(w.shape, dtype=bool)
    dead[reduced.w_index] = False
    assert np.all(dw[dead] == 0.0)  # the dropped taps read only zeros


def test_the_x_crop_case_crops_x() -> None:
    x, w, _ = _arrays(FAR[4], 0)
    _, cache = conv_nd_forward(x, w, **_hyper(FAR[4]))
    reduced = convnd.trim(cache.geom)
    assert reduced is not None and reduced.rows[0] == slice(2, 8)  # (CN7) start = 1·5 − 3


def test_an_axis_without_a_live_tap_gives_the_bias_and_zero_gradients() -> None:
    # stride 9 on 4 rows with padding 5: the one window reads rows -5, -4 (dilation 1)
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((1, 2, 4, 3)), rng.standard_normal((3, 2, 2, 1)), np.ones(3)
    hyper: dict[str, Any] = {"stride": 9, "padding": ((5, 0), (0, 0))}
    y, cache = conv_nd_forward(x, w, b, **hyper)
    reduced = convnd.trim(cache.geom)
    assert reduced is not None and reduced.geom is None
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv_nd_backward(dy, cache)
    np.testing.assert_array_equal(y, ref.conv_nd_ref(x, w, b, **hyper))
    np.testing.assert_array_equal(dx, np.zeros_like(x))
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_allclose(db, ref.conv_nd_db_ref(dy), atol=1e-12)


def test_ordinary_geometry_is_not_trimmed() -> None:
    x, w = np.ones((1, 1, 5, 5, 5)), np.ones((1, 1, 3, 3, 3))
    for hyper in ({"padding": 1}, {"padding": 2, "dilation": 2}, {"stride": 2}):
        _, cache = conv_nd_forward(x, w, **hyper)
        assert convnd.trim(cache.geom) is None


def test_transposed_conv_with_far_geometry_equals_the_naive_loops() -> None:
    # transposed out = (4 − 1) − 2·6 + 6·2 + 1 = 4: the conv direction drops taps 0 and 2
    rng = np.random.default_rng(3)
    x, w, b = (
        rng.standard_normal((1, 2, 4, 4, 4)),
        rng.standard_normal((2, 1, 3, 3, 3)),
        rng.standard_normal(1),
    )
    hyper: dict[str, Any] = {"padding": 6, "dilation": 6}
    y, cache = conv_transpose_nd_forward(x, w, b, **hyper)
    assert convnd.trim(cache.geom) is not None
    np.testing.assert_allclose(y, ref.conv_transpose_nd_ref(x, w, b, **hyper), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv_transpose_nd_backward(dy, cache)
    dx_ref, dw_ref, db_ref = ref.conv_transpose_nd_backward_ref(dy, x, w, **hyper)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-12)
    np.testing.assert_allclose(db, db_ref, atol=1e-12)


def test_padding_and_dilation_300_cost_what_the_input_costs() -> None:
    # untrimmed, x_pad is 604³ and the columns 27·4³ of it: 1.7 GiB
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 1, 4, 4, 4)), rng.standard_normal((1, 1, 3, 3, 3))
    tracemalloc.start()
    try:
        y, cache = conv_nd_forward(x, w, padding=300, dilation=300)
        dx, dw, _ = conv_nd_backward(np.ones_like(y), cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.shape == (1, 1, 4, 4, 4)
    assert peak < 1 << 20  # bytes; the untrimmed computation needs over 10⁹
    np.testing.assert_allclose(y[0, 0], w[0, 0, 1, 1, 1] * x[0, 0], atol=1e-12)
    assert dx is not None
    np.testing.assert_allclose(dx[0, 0], np.full((4, 4, 4), w[0, 0, 1, 1, 1]), atol=1e-12)
    expected = np.zeros_like(w)
    expected[0, 0, 1, 1, 1] = x.sum()
    np.testing.assert_allclose(dw, expected, atol=1e-12)
