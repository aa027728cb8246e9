"""The compiled per-bin complex products of the FFT algorithm (T2)-(T4), products.bin_products:
the same sums as NumPy's ``@`` for every layout the FFT hands it (either factor read
through its transpose), every remainder of the register blocks (rows not a multiple of 3,
columns not a multiple of the vector), both precisions; results that do not depend on the
thread count; and clear refusals of what it cannot take.

The FFT's own passes, which now run these products, stay witnessed by the reference grid
(tests/functional/test_conv2d_reference.py) and the finite-difference checks.
"""

from __future__ import annotations

import numpy as np
import pytest

from convprop import _native
from convprop._native import _compiled, products
from convprop.functional import conv2d_fft

pytestmark = pytest.mark.skipif(not _native.AVAILABLE, reason="compiled kernels not built")

TOLERANCE = {"complex64": 2e-6, "complex128": 1e-13}


def _complex(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _assert_products_equal(got: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: str) -> None:
    expected = a.astype(np.complex128) @ b.astype(np.complex128)
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    assert got.flags.c_contiguous
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(got - expected).max()) <= TOLERANCE[dtype] * scale


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("a_turned", [False, True], ids=["A", "A-transposed"])
@pytest.mark.parametrize("b_turned", [False, True], ids=["B", "B-transposed"])
@pytest.mark.parametrize(
    "sizes",
    [(1, 1, 1, 1), (3, 7, 5, 9), (5, 64, 32, 64), (4, 8, 64, 64), (2, 2, 3, 17), (6, 13, 1, 4)],
    ids=lambda s: "I{}-M{}-L{}-N{}".format(*s),
)
def test_bin_products_equal_numpy_matmul_T2_T4(
    dtype: str, a_turned: bool, b_turned: bool, sizes: tuple[int, int, int, int]
) -> None:
    I, M, L, Nc = sizes
    rng = np.random.default_rng(sum(sizes))
    a = (
        _complex(rng, (I, L, M), dtype).transpose(0, 2, 1)
        if a_turned
        else _complex(rng, (I, M, L), dtype)
    )
    b = (
        _complex(rng, (I, Nc, L), dtype).transpose(0, 2, 1)
        if b_turned
        else _complex(rng, (I, L, Nc), dtype)
    )
    _assert_products_equal(products.bin_products(a, b), a, b, dtype)


def test_bin_products_copy_other_strided_factors() -> None:
    """A factor that is neither C-contiguous nor a transposed C-contiguous stack is copied."""
    rng = np.random.default_rng(7)
    a = _complex(rng, (3, 10, 12), "complex64")[:, ::2, :5]  # (3, 5, 5), rows two apart
    b = _complex(rng, (3, 5, 9), "complex64")
    _assert_products_equal(products.bin_products(a, b), a, b, "complex64")


def test_bin_products_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bin is summed whole by one thread, in one order: the same bits on 1 and 3."""
    rng = np.random.default_rng(8)
    a, b = _complex(rng, (40, 16, 24, 8), "complex64"), _complex(rng, (40, 16, 8, 20), "complex64")
    a, b = a.reshape(640, 24, 8), b.reshape(640, 8, 20)
    monkeypatch.setenv("CONVPROP_NUM_THREADS", "1")
    one = products.bin_products(a, b)
    monkeypatch.setenv("CONVPROP_NUM_THREADS", "3")
    assert _native.num_threads() == 3
    np.testing.assert_array_equal(products.bin_products(a, b), one)


def test_bin_products_refuse_mismatched_stacks_with_their_shapes() -> None:
    a = np.zeros((2, 3, 4), np.complex64)
    with pytest.raises(ValueError, match=r"bin_products.*\(2, 3, 4\) complex64.*\(2, 5, 6\)"):
        products.bin_products(a, np.zeros((2, 5, 6), np.complex64))
    with pytest.raises(ValueError, match=r"bin_products.*complex128"):
        products.bin_products(a, np.zeros((2, 4, 6), np.complex128))
    with pytest.raises(ValueError, match=r"bin_products.*float32"):
        products.bin_products(a.real.copy(), np.zeros((2, 4, 6), np.float32))


def test_bin_products_of_empty_stacks_are_empty_and_empty_sums_zero() -> None:
    a, b = np.zeros((0, 3, 4), np.complex64), np.zeros((0, 4, 5), np.complex64)
    assert products.bin_products(a, b).shape == (0, 3, 5)
    a, b = np.zeros((2, 3, 0), np.complex64), np.zeros((2, 0, 5), np.complex64)
    np.testing.assert_array_equal(products.bin_products(a, b), np.zeros((2, 3, 5), np.complex64))


def test_bin_products_realign_a_misaligned_stack() -> None:
    """complex128 values starting 4 bytes into a buffer: copied to aligned memory first."""
    rng = np.random.default_rng(10)
    values = _complex(rng, (2, 3, 5), "complex128")
    raw = np.zeros(values.nbytes + 8, np.uint8)
    a = np.frombuffer(raw.data, dtype=np.complex128, count=values.size, offset=4)
    a = a.reshape(values.shape)
    a[...] = values
    assert not a.flags.aligned
    b = _complex(rng, (2, 5, 4), "complex128")
    _assert_products_equal(products.bin_products(a, b), values, b, "complex128")


def test_the_compiled_entry_refuses_bad_dimensions() -> None:
    y = np.zeros(2 * 2 * 3 * 5, np.float32)
    a, b = np.zeros(2 * 2 * 3 * 4, np.float32), np.zeros(2 * 2 * 4 * 5, np.float32)
    with pytest.raises(ValueError, match="bin_products: invalid dimensions"):
        _compiled.kernels.bin_products(a, b, y, (2, 3, 4, 5, 2, 0), 0, 2)
    with pytest.raises(ValueError, match="bin_products"):
        _compiled.kernels.bin_products(a, b, y, (2, 3, 4, 6, 0, 0), 0, 2)  # b too short


def test_fft_products_take_the_kernel_for_numpy_and_matmul_without_it() -> None:
    """(T2)'s product in the FFT module: the kernel's sums where the kernels serve, NumPy's
    ``@`` inside ``_native.disabled()``; the two agree."""
    rng = np.random.default_rng(9)
    a = _complex(rng, (6, 2, 5, 7), "complex64")
    b = _complex(rng, (6, 2, 4, 7), "complex64").transpose(0, 1, 3, 2)
    compiled = conv2d_fft._bin_products(a, b)
    with _native.disabled():
        plain = conv2d_fft._bin_products(a, b)
    np.testing.assert_allclose(compiled, plain, rtol=2e-6, atol=2e-6 * np.abs(plain).max())


@pytest.mark.parametrize(
    "a_shape, b_shape, dtype",
    [((2, 3, 4), (2, 5, 6), np.complex128), ((2, 3, 4), (2, 4, 6), np.float64)],
)
def test_bin_products_refuses_mismatched_stacks(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], dtype: type
) -> None:
    a, b = np.zeros(a_shape, dtype), np.zeros(b_shape, dtype)
    with pytest.raises(
        ValueError,
        match=r"bin_products: expected complex stacks \(I, M, L\) and \(I, L, Nc\) of one dtype; "
        r"got \(2, 3, 4\) ",
    ):
        products.bin_products(a, b)
