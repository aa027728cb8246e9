"""The compiled sum of two arrays of one shape (AR1) and its backward (AR2), against NumPy:
the same bits (one addition per element, or a copy), fresh gradients, and the broadcasting
cases left to NumPy."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from convprop import _native
from convprop._native import _compiled, elementwise
from convprop.functional.arithmetic import add_arrays, add_backward, add_forward

pytestmark = pytest.mark.skipif(not _native.AVAILABLE, reason="the compiled kernels are not built")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 5, 33, 2), (64, 16, 32, 32)])
def test_compiled_sum_is_numpys_ar1(shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    a[..., 0] = np.nan  # NaN and infinities pass through the addition as NumPy's
    b.flat[1] = np.inf
    y = elementwise.add(a, b)
    np.testing.assert_array_equal(y, a + b)
    assert y.dtype == dtype and y.shape == shape


def test_sum_of_non_contiguous_operands_and_broadcasting_is_numpys() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 6, 5)).transpose(2, 0, 1)  # (5, 4, 6), not contiguous
    b = rng.standard_normal((5, 4, 6))
    np.testing.assert_array_equal(add_arrays(a, b), a + b)
    bias = rng.standard_normal(6)
    assert not elementwise.add.serves_call((b, bias), {})  # broadcasting: NumPy's own sum
    np.testing.assert_array_equal(add_arrays(b, bias), b + bias)
    mixed = b.astype(np.float32)
    assert not elementwise.add.serves_call((b, mixed), {})  # two dtypes: NumPy promotes
    np.testing.assert_array_equal(add_arrays(b, mixed), b + mixed)


@pytest.mark.parametrize("compiled", [True, False])
def test_residual_sum_backward_gives_two_fresh_copies_of_dy_ar2(compiled: bool) -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((2, 3, 8, 8))
    dy = rng.standard_normal(a.shape)
    with nullcontext() if compiled else _native.disabled():
        _, cache = add_forward(a, b)
        da, db = add_backward(dy, cache)
    np.testing.assert_array_equal(da, dy)
    np.testing.assert_array_equal(db, dy)
    assert not np.shares_memory(da, dy) and not np.shares_memory(db, dy)
    assert not np.shares_memory(da, db)


def test_sum_kernels_refuse_arrays_of_other_sizes() -> None:
    a, b = np.zeros(6), np.zeros(5)
    with pytest.raises(ValueError, match=r"add_forward: .*b"):
        _compiled.kernels.add_forward(a, b, np.empty(6), 0, 6)
    with pytest.raises(ValueError, match=r"add_backward: .*db"):
        _compiled.kernels.add_backward(a, np.empty(6), np.empty(5), 0, 6)
