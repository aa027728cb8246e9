"""Products that add into their output through NumPy's own BLAS (convprop._blas), and the
weight gradient (I3) that uses them: the same sums as NumPy's ``@`` followed by a sum,
and the same gradient as with the calls turned off.

Where NumPy was built without the OpenBLAS library its wheels bundle, the calls are not
made (``available()`` is False) and the tests that need them are skipped; the fallback is
then what every other test exercises.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from convprop import _blas, _native
from convprop._native import products
from convprop.functional import conv2d_backward, conv2d_forward, conv2d_im2col, conv2d_select

needs_blas = pytest.mark.skipif(
    not _blas.available(), reason="NumPy's bundled OpenBLAS was not found in this process"
)


def _stack(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


@needs_blas
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_add_products_adds_the_sum_of_products_into_c(dtype: str) -> None:
    rng = np.random.default_rng(0)
    a, b = _stack(rng, (3, 5, 7), dtype), _stack(rng, (3, 4, 7), dtype)
    c = _stack(rng, (5, 4), dtype)
    expected = c.astype(np.float64) + np.einsum("iml,inl->mn", a, b, dtype=np.float64)
    assert _blas.add_products(c, a, b)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol)
    assert c.dtype == np.dtype(dtype)


@needs_blas
def test_add_products_reads_rows_spaced_wider_than_they_are_long() -> None:
    """Slices of larger arrays (leading dimensions past the row length) on all three."""
    rng = np.random.default_rng(1)
    big_a, big_b = _stack(rng, (2, 6, 11), "float64"), _stack(rng, (2, 9, 11), "float64")
    a, b = big_a[:, 1:5, 2:9], big_b[:, :3, 2:9]
    c_big = np.zeros((7, 8))
    c = c_big[2:6, 1:4]
    assert _blas.add_products(c, a, b)
    np.testing.assert_allclose(c, np.einsum("iml,inl->mn", a, b), rtol=1e-12, atol=1e-12)
    untouched = np.ones(c_big.shape, dtype=bool)
    untouched[2:6, 1:4] = False
    assert not c_big[untouched].any()  # nothing written outside the view


@needs_blas
def test_add_products_declines_what_it_cannot_call_and_leaves_c_untouched() -> None:
    rng = np.random.default_rng(2)
    a, b = _stack(rng, (2, 5, 7), "float32"), _stack(rng, (2, 4, 7), "float32")
    c = np.ones((5, 4), np.float32)
    declined = [
        (c, a.astype(np.float64), b),  # mixed dtypes
        (c, a.transpose(0, 2, 1).copy().transpose(0, 2, 1), b),  # columns not contiguous
        (c.T.copy().T, a, b),  # c by columns
        (c.astype(np.float16), a.astype(np.float16), b.astype(np.float16)),  # no half gemm
        (c, a[:, :, :0], b[:, :, :0]),  # empty inner size
    ]
    for cc, aa, bb in declined:
        before = cc.copy()
        assert not _blas.add_products(cc, aa, bb)
        np.testing.assert_array_equal(cc, before)
    np.testing.assert_array_equal(c, np.ones((5, 4), np.float32))


@needs_blas
def test_add_products_declines_a_c_it_may_not_or_cannot_safely_write() -> None:
    """A read-only c, or a c that shares memory with a factor (gemm would read sums it has
    already written): declined, c untouched."""
    rng = np.random.default_rng(6)
    a, b = _stack(rng, (2, 5, 7), "float64"), _stack(rng, (2, 4, 7), "float64")
    frozen = np.zeros((5, 4))
    frozen.flags.writeable = False
    assert not _blas.add_products(frozen, a, b)
    assert not frozen.any()
    square = _stack(rng, (3, 6, 6), "float64")
    before = square.copy()
    assert not _blas.add_products(square[0], square, square)
    np.testing.assert_array_equal(square, before)


def test_only_numpys_own_bundled_library_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Among the OpenBLAS libraries mapped into the process, only one in NumPy's own
    numpy.libs directory: another package's copy (SciPy's) is never picked."""
    import io
    import os

    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    scipy_copy = os.path.join(site, "scipy.libs", "libscipy_openblas-0000.so")
    numpy_copy = os.path.join(site, "numpy.libs", "libscipy_openblas64_-0000.so")
    elsewhere = os.path.join("/home/u/numpy-work/lib", "libscipy_openblas64_-0000.so")

    def maps(*lines: str) -> io.StringIO:
        return io.StringIO("".join(f"7f00-7f01 r-xp 0 08:01 1 {line}\n" for line in lines))

    real_open = open

    def fake_open(lines: tuple[str, ...]):  # type: ignore[no-untyped-def]
        def opener(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            return maps(*lines) if path == "/proc/self/maps" else real_open(path, *args, **kwargs)

        return opener

    monkeypatch.setattr("builtins.open", fake_open((scipy_copy, elsewhere)))
    assert _blas._numpy_blas_path() is None
    monkeypatch.setattr("builtins.open", fake_open((scipy_copy, numpy_copy)))
    assert _blas._numpy_blas_path() == numpy_copy


@needs_blas
def test_add_products_names_mismatched_shapes() -> None:
    c = np.zeros((5, 4), np.float32)
    a, b = np.zeros((2, 5, 7), np.float32), np.zeros((2, 4, 6), np.float32)
    with pytest.raises(ValueError, match=r"add_products.*\(5, 4\).*\(2, 5, 7\).*\(2, 4, 6\)"):
        _blas.add_products(c, a, b)


def test_the_check_rejects_a_library_whose_products_are_wrong() -> None:
    """A stand-in gemm that writes nothing fails the check made when the library is found."""

    def writes_nothing(*args: object) -> None:
        del args

    assert not _blas._passes_check({np.dtype(np.float32): writes_nothing})


@needs_blas
def test_the_library_found_is_the_one_numpy_loaded() -> None:
    path = _blas._numpy_blas_path()
    assert path is not None and "numpy" in path
    with open("/proc/self/maps", encoding="utf-8") as handle:
        assert path in handle.read()
    library = ctypes.CDLL(path)
    assert any(hasattr(library, single) for single, _ in _blas._SYMBOLS)


@needs_blas
def test_native_add_products_declines_small_products_and_inside_disabled() -> None:
    rng = np.random.default_rng(3)
    side = 128  # 128 * 128 * 64 = 2**20 multiply-adds per product: just large enough
    a, b = _stack(rng, (2, side, 64), "float32"), _stack(rng, (2, side, 64), "float32")
    c = np.zeros((side, side), np.float32)
    assert products.add_products(c, a, b)
    small = np.zeros((side, side - 1), np.float32)
    assert not products.add_products(small, a, b[:, 1:])
    with _native.disabled():
        assert not products.add_products(c, a, b)


def _count_blas_sums(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record what each products.add_products call returned (True: BLAS added the sum)."""
    calls: list[bool] = []
    real = products.add_products

    def spy(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
        calls.append(real(c, a, b))
        return calls[-1]

    monkeypatch.setattr(products, "add_products", spy)
    return calls


def _pointwise_x_w(groups: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    C = K = 64 * groups  # each group's product: 64 x 256 by 256 x 64 = 2**20 multiply-adds
    x = _stack(rng, (3, C, 16, 16), dtype)
    w = _stack(rng, (K, C // groups, 1, 1), dtype)
    dy = _stack(rng, (3, K, 16, 16), dtype)
    return x, w, dy


@needs_blas
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise_weight_gradient_I3_by_blas_equals_the_sum_over_images(
    monkeypatch: pytest.MonkeyPatch, dtype: str, groups: int
) -> None:
    """(I3) for a 1×1 layer, whose columns are x itself: dw[k, c] = Σ_n,p dy[n,k,p]·x[n,c,p]
    within each group (float64 einsum as the witness), and the NumPy-only code's dw (the
    stack of products and its sum) to float rounding."""
    x, w, dy = _pointwise_x_w(groups, dtype)
    calls = _count_blas_sums(monkeypatch)
    _, cache = conv2d_forward(x, w, None, algorithm="im2col", groups=groups)
    dw = conv2d_backward(dy, cache)[1]
    assert calls == [True] * groups  # one sum per group, added by BLAS
    Kg, Cg = w.shape[0] // groups, w.shape[1]
    xg = x.reshape(3, groups, Cg, -1).astype(np.float64)
    dyg = dy.reshape(3, groups, Kg, -1).astype(np.float64)
    expected = np.einsum("ngkp,ngcp->gkc", dyg, xg).reshape(w.shape)
    tol = 2e-5 if dtype == "float32" else 1e-12
    scale = np.abs(expected).max()
    assert np.abs(dw - expected).max() <= tol * scale
    with _native.disabled():
        _, cache_off = conv2d_forward(x, w, None, algorithm="im2col", groups=groups)
        dw_off = conv2d_backward(dy, cache_off)[1]
    assert np.abs(dw - dw_off).max() <= tol * scale


@needs_blas
@pytest.mark.parametrize("images_per_chunk", [None, 1, 2])
def test_weight_gradient_by_image_and_by_chunk_adds_every_chunk_once(
    monkeypatch: pytest.MonkeyPatch, images_per_chunk: int | None
) -> None:
    """A 3×3 layer with the images as separate products (not the batch as columns), the
    batch whole or cut into chunks: BLAS adds each image's product into dw, across chunks
    too, and the result equals the NumPy stack-and-sum."""
    monkeypatch.setattr(conv2d_select, "im2col_batch_as_columns", lambda *args, **kw: False)
    rng = np.random.default_rng(5)
    x = _stack(rng, (3, 16, 16, 16), "float64")
    w = _stack(rng, (32, 16, 3, 3), "float64")
    dy = _stack(rng, (3, 32, 16, 16), "float64")
    if images_per_chunk is not None:
        per_image = 16 * 9 * 16 * 16 * 8
        monkeypatch.setattr(conv2d_im2col, "WORKSPACE_BYTES", images_per_chunk * per_image)
    calls = _count_blas_sums(monkeypatch)
    _, cache = conv2d_forward(x, w, None, algorithm="im2col", padding=1)
    dw = conv2d_backward(dy, cache)[1]
    chunks = 1 if images_per_chunk is None else -(-3 // images_per_chunk)
    assert calls == [True] * chunks
    with _native.disabled():
        _, cache_off = conv2d_forward(x, w, None, algorithm="im2col", padding=1)
        dw_off = conv2d_backward(dy, cache_off)[1]
    np.testing.assert_allclose(dw, dw_off, rtol=1e-12, atol=1e-12 * np.abs(dw_off).max())
