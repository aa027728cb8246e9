"""Products that add into their output through NumPy's own BLAS (convprop._blas, found
through threadpoolctl), and the weight gradient (I3) that uses them: the same sums as NumPy's
``@`` followed by a sum, and the same gradient as with the calls turned off.

Where NumPy was built without the OpenBLAS library its wheels bundle, the calls are not
made (``available()`` is False) and the tests that need them are skipped; the fallback is
then what every other test exercises.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import threadpoolctl

from convprop import _blas, _native
from convprop._native import products
from convprop.functional import (
    conv2d_backward,
    conv2d_forward,
    conv2d_select,
    conv2d_workspace,
)

needs_blas = pytest.mark.skipif(
    not _blas.available(), reason="NumPy's own OpenBLAS was not found in this process"
)


def _stack(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


@needs_blas
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("I, M, Nc, L", [(3, 5, 4, 7), (2, 1, 4, 7), (2, 5, 1, 7), (2, 5, 4, 1)])
def test_add_products_adds_the_sum_of_products_into_c(
    dtype: str, I: int, M: int, Nc: int, L: int
) -> None:
    """c += Σ_i a[i]·b[i]ᵀ against a float64 einsum, single rows and columns included."""
    rng = np.random.default_rng(0)
    a, b = _stack(rng, (I, M, L), dtype), _stack(rng, (I, Nc, L), dtype)
    c = _stack(rng, (M, Nc), dtype)
    expected = c.astype(np.float64) + np.einsum("iml,inl->mn", a, b, dtype=np.float64)
    address = c.ctypes.data
    assert _blas.add_products(c, a, b)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol)
    assert c.dtype == np.dtype(dtype) and c.ctypes.data == address  # in place


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
        (c, list(a), b),  # not NumPy arrays
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


@needs_blas
def test_add_products_names_mismatched_shapes() -> None:
    c = np.zeros((5, 4), np.float32)
    a, b = np.zeros((2, 5, 7), np.float32), np.zeros((2, 4, 6), np.float32)
    with pytest.raises(ValueError, match=r"add_products.*\(5, 4\).*\(2, 5, 7\).*\(2, 4, 6\)"):
        _blas.add_products(c, a, b)


@needs_blas
def test_the_library_is_numpys_own_among_those_threadpoolctl_lists() -> None:
    """The controller found is an OpenBLAS that threadpoolctl lists in this process and that
    NumPy's distribution installed; its affixes name a CBLAS gemm in either precision."""
    controller = _blas._numpy_openblas()
    assert controller is not None and controller.internal_api == "openblas"
    loaded = [info["filepath"] for info in threadpoolctl.threadpool_info()]
    assert controller.filepath in loaded
    assert _blas._numpy_files() and all("blas" in path.lower() for path in _blas._numpy_files())
    affixes = _blas._affixes(controller.dynlib)
    assert affixes is not None
    prefix, suffix = affixes
    for name in _blas._GEMMS:
        assert _blas._function(controller.dynlib, f"{prefix}{name}{suffix}") is not None


def test_another_packages_openblas_is_never_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """With NumPy's distribution listing no BLAS library (a NumPy built on another BLAS), no
    loaded OpenBLAS is taken, SciPy's included: the calls are not made."""
    import scipy.linalg.blas  # noqa: F401  (loads SciPy's own OpenBLAS into the process)

    monkeypatch.setattr(_blas, "_numpy_files", lambda: frozenset())
    assert _blas._numpy_openblas() is None


class _Library:
    """A stand-in shared library exporting ``names`` (ctypes raises AttributeError for the
    rest, as a CDLL does)."""

    def __init__(self, *names: str) -> None:
        self.names = names

    def __getitem__(self, name: str) -> object:
        if name not in self.names:
            raise AttributeError(name)
        return ctypes.CFUNCTYPE(None)()


def test_affixes_are_found_on_openblas_get_config() -> None:
    assert _blas._affixes(_Library("scipy_openblas_get_config64_")) == ("scipy_", "64_")
    assert _blas._affixes(_Library("openblas_get_config")) == ("", "")
    assert _blas._affixes(_Library("cblas_sgemm")) is None  # not an OpenBLAS


def test_the_check_rejects_a_library_whose_products_are_wrong() -> None:
    """A stand-in gemm that writes nothing fails the check made when the library is found."""

    def writes_nothing(*args: object) -> None:
        del args

    assert not _blas._passes_check({np.dtype(np.float32): writes_nothing})


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
        monkeypatch.setattr(conv2d_workspace, "WORKSPACE_BYTES", images_per_chunk * per_image)
    calls = _count_blas_sums(monkeypatch)
    _, cache = conv2d_forward(x, w, None, algorithm="im2col", padding=1)
    dw = conv2d_backward(dy, cache)[1]
    chunks = 1 if images_per_chunk is None else -(-3 // images_per_chunk)
    assert calls == [True] * chunks
    with _native.disabled():
        _, cache_off = conv2d_forward(x, w, None, algorithm="im2col", padding=1)
        dw_off = conv2d_backward(dy, cache_off)[1]
    np.testing.assert_allclose(dw, dw_off, rtol=1e-12, atol=1e-12 * np.abs(dw_off).max())
