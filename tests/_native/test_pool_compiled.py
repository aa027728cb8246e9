"""The compiled max pooling's 2x2 / stride-2 windows (MP1, MP2), taken in blocks of 16,
against the NumPy code."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convprop import _native
from convprop.functional.pool2d import max_pool2d_backward, max_pool2d_forward

pytestmark = pytest.mark.skipif(not _native.AVAILABLE, reason="the compiled kernels are not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [2, 14, 31, 32, 34, 66])
def test_compiled_2x2_blocks_match_the_numpy_code_mp1_mp2(width: int, dtype: Any) -> None:
    """The compiled 2x2 / stride-2 windows, taken in blocks of 16 (whole blocks, remainders,
    an odd last column), against the NumPy code: the same maxima and taps with ties, NaN and
    -inf, and the same gradient."""
    rng = np.random.default_rng(width)
    x = rng.integers(0, 3, (2, 3, 6, width)).astype(dtype)  # many ties
    x[rng.random(x.shape) < 0.15] = -np.inf
    x[rng.random(x.shape) < 0.1] = np.nan
    y, cache = max_pool2d_forward(x, 2)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = max_pool2d_backward(dy, cache)
    with _native.disabled():
        y_ref, cache_ref = max_pool2d_forward(x, 2)
        dx_ref = max_pool2d_backward(dy, cache_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.argmax, cache_ref.argmax)
    np.testing.assert_array_equal(dx, dx_ref)
