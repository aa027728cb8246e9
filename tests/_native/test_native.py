"""The compiled kernels (convprop._native) against the NumPy code, and the dispatch between them.

Every op that uses a kernel keeps its NumPy code for CuPy arrays and for installs
without a C compiler; both paths compute the same equations, and the op's one dispatch
point (``@_native.accelerated``) picks between them. Here the dispatch is checked on its
own (which path each kind of call takes), and each kernel is checked
against the NumPy path element by element (exactly where the arithmetic is the same
copy or comparison, to rounding where sums run in another order), against the naive
references, over the conv grid of tests/reference.py and the pooling grid of
tests/reference_layers.py, with any number of threads; and its argument checks are checked.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import pytest

from convprop import _native
from convprop._native import _compiled, bias, depthwise, layout, winograd
from convprop._native import im2col as native_im2col
from convprop._shapes import conv_geometry
from convprop.functional import (
    conv2d_backward,
    conv2d_depthwise,
    conv2d_direct,
    conv2d_forward,
    conv2d_im2col,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
)
from convprop.nn import Parameter
from convprop.optim import Adam, AdamW
from reference import CASES, ConvCase, assert_close, expected, random_inputs
from reference_layers import POOL_CASES, PoolCase

pytestmark = pytest.mark.skipif(
    not _native.AVAILABLE and os.environ.get("CONVPROP_ALLOW_NUMPY_ONLY") == "1",
    reason="the compiled kernels are not built (CONVPROP_ALLOW_NUMPY_ONLY=1)",
)

DEPTHWISE_CASES = [c for c in CASES if c.depthwise_applies]


def _geom(case: ConvCase) -> object:
    return conv_geometry("test", case.x_shape, case.w_shape, None, **case.hyper)


def test_compiled_kernels_are_built() -> None:
    """`pip install` builds convprop._native's extensions wherever a C compiler exists; a
    missing build would silently run the slower NumPy code, so the suite says so."""
    assert _native.AVAILABLE, (
        "convprop._native's compiled kernels did not build: install a C compiler and the "
        "Python headers, "
        "then reinstall (pip install -e .); CONVPROP_ALLOW_NUMPY_ONLY=1 skips this check"
    )
    assert _native.enabled()


def test_disabled_turns_the_kernels_off_in_a_block() -> None:
    x = np.zeros((1, 1, 2, 2))
    assert _native.serves(x)
    with _native.disabled():
        assert not _native.enabled() and not _native.serves(x)
        with _native.disabled():
            pass
        assert not _native.enabled()
    assert _native.serves(x)


def test_serves_only_float_numpy_arrays() -> None:
    assert _native.serves(np.zeros(3, np.float32), np.zeros(3, np.float64))
    assert not _native.serves(np.zeros(3, np.int64))
    assert not _native.serves(np.zeros(3, np.float16))
    assert not _native.serves([1.0, 2.0])
    assert _native.serves_complex(np.zeros(3, np.complex64), np.zeros(3, np.complex128))
    assert not _native.serves_complex(np.zeros(3, np.float64))
    assert _native.runs_compiled(np.zeros(3)) and _native.runs_compiled()
    with _native.disabled():
        assert not _native.runs_compiled() and not _native.serves_complex(np.zeros(3, "c8"))


# ------------------------------------------------------------------------------ dispatch


def _recorded_pair(ran: list[str], requires: Any = None, when: Any = None) -> Any:
    """An op whose twin and reference record which of them ran: twin(x, w, b=None, scale=1)
    with x and w real arrays, b a real array or None."""

    @_native.twin(arrays="x, w", optional="b", requires=requires)
    def compiled(x: Any, w: Any, b: Any = None, scale: int = 1) -> str:
        ran.append("compiled")
        return "compiled"

    @_native.accelerated(compiled, when=when)
    def op(x: Any, w: Any, b: Any = None, scale: int = 1) -> str:
        """The reference."""
        ran.append("reference")
        return "reference"

    return op


def test_dispatch_runs_the_twin_exactly_where_it_serves_the_call() -> None:
    ran: list[str] = []
    op = _recorded_pair(ran)
    x, w = np.zeros((2, 3)), np.zeros(4, np.float32)
    assert op(x, w) == "compiled"  # b omitted: its default None is served
    assert op(x, w, np.zeros(2)) == "compiled"
    assert op(x, w, b=np.zeros(2), scale=3) == "compiled"  # by keyword too
    assert op(w=w, x=x) == "compiled"
    assert op(x, w, np.zeros(2, np.int32)) == "reference"  # b of a dtype the kernels lack
    assert op(x, w, b=[1.0]) == "reference"
    assert op(x, np.zeros(4, np.float16)) == "reference"
    assert op([0.0], w) == "reference"  # not an ndarray (CuPy arrays are not either)
    assert op(x.astype(">f8"), w) == "reference"  # another byte order
    assert op(x, w, None, "not an array") == "compiled"  # only the named arrays are checked
    with _native.disabled():
        assert op(x, w) == "reference"
    assert op.__doc__ == "The reference." and op.__name__ == "op"
    assert ran.count("compiled") == 5 and ran.count("reference") == 6


def test_dispatch_asks_the_twins_requirement_and_the_ops_cost_model() -> None:
    ran: list[str] = []
    asked: list[tuple[Any, ...]] = []

    def small(x: Any, w: Any, b: Any = None, scale: int = 1) -> bool:
        asked.append((x.size, scale))
        return bool(x.size < 4)

    def even(x: Any, w: Any, b: Any = None, scale: int = 1) -> bool:
        return scale % 2 == 0

    op = _recorded_pair(ran, requires=small, when=even)
    z = np.zeros(3)
    assert op(z, z, None, 2) == "compiled"
    assert op(z, z, None, 3) == "reference"  # the cost model declines
    assert op(np.zeros(5), z, None, 2) == "reference"  # the kernel cannot
    assert op(z, z, scale=4) == "compiled"
    assert op([0.0], z, None, 2) == "reference"
    assert asked == [(3, 2), (3, 3), (5, 2), (3, 4)]  # never asked for arrays not served


def test_dispatch_refuses_a_reference_unlike_its_twin() -> None:
    @_native.twin(arrays="x")
    def compiled(x: Any, geom: Any, wide: bool = False) -> Any:
        return x

    with pytest.raises(TypeError, match=r"must take the same parameters; expected \(x, geom, "
                       r"wide\), got \(x, geom, wide=False\)"):  # fmt: skip

        @_native.accelerated(compiled)
        def reference(x: Any, geom: Any, wide: bool) -> Any:
            return x

    with pytest.raises(TypeError, match="twin: compiled has no parameter 'y'"):
        _native.twin(arrays="x, y")(compiled.run)


def test_relu_has_one_reference_and_one_compiled_twin() -> None:
    """relu_forward/backward call one dispatch point each, whose twins are the compiled
    kernels (convprop._native.elementwise) and whose references are the NumPy code."""
    from convprop._native import elementwise
    from convprop.functional import activation

    x = np.array([-1.0, 0.0, 2.0])
    assert activation._relu.__wrapped__(x).tolist() == [0.0, 0.0, 2.0]  # the reference
    assert elementwise.relu_forward(x).tolist() == [0.0, 0.0, 2.0]  # the twin, called
    assert elementwise.relu_forward.__name__ == "relu_forward"
    dy = np.array([5.0, 6.0, 7.0])
    y = np.maximum(x, 0)  # the cache keeps y (A3)
    assert activation._relu_gradient.__wrapped__(dy, y).tolist() == [0.0, 0.0, 7.0]
    assert elementwise.relu_backward(dy, y).tolist() == [0.0, 0.0, 7.0]


def test_compiled_modules_load_all_or_none_and_name_each_function_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    kernels, available = _compiled.load(("convprop._no_such_extension",))
    assert not available and not vars(kernels)
    first, second = types.ModuleType("fake_first"), types.ModuleType("fake_second")
    for module, names in ((first, ("scale", "team_info")), (second, ("shift", "team_info"))):
        for name in names:
            function = types.FunctionType((lambda: None).__code__, {}, name)
            function.__module__ = module.__name__
            setattr(module, name, function)
        module.imported = np.zeros  # another module's function: not the module's kernel
        monkeypatch.setitem(sys.modules, module.__name__, module)
    kernels, available = _compiled.load(("fake_first",))
    assert available and sorted(vars(kernels)) == ["scale", "team_info"]
    with pytest.raises(RuntimeError, match="two compiled modules define 'team_info'"):
        _compiled.load(("fake_first", "fake_second"))


# ------------------------------------------------------------------------- im2col, col2im


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_im2col_I1_and_col2im_I5_equal_the_numpy_code(case: ConvCase, dtype: str) -> None:
    x, _, _, _ = random_inputs(case, dtype, seed=3)
    geom = _geom(case)
    with _native.disabled():
        cols_numpy = conv2d_im2col.im2col(x, geom)
    cols = conv2d_im2col.im2col(x, geom)
    np.testing.assert_array_equal(cols, cols_numpy)  # (I1) is a copy: exactly equal
    dcols = np.random.default_rng(4).standard_normal(cols.shape).astype(dtype)
    with _native.disabled():
        dx_numpy = conv2d_im2col.col2im(dcols, geom)
    dx = conv2d_im2col.col2im(dcols, geom)
    assert dx.shape == case.x_shape and dx.dtype == dtype
    assert_close(dx, np.asarray(dx_numpy), dtype, "col2im (I5)")
    # (I5) is the adjoint of (I1): <im2col(x), dcols> = <x, col2im(dcols)>
    lhs = float(np.vdot(cols.astype(np.float64), dcols.astype(np.float64)))
    rhs = float(np.vdot(x.astype(np.float64), dx.astype(np.float64)))
    assert abs(lhs - rhs) <= (1e-10 if dtype == "float64" else 1e-4) * max(1.0, abs(lhs))


# ----------------------------------------------------------------------------- depthwise


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=lambda c: c.name)
def test_depthwise_kernels_equal_the_direct_sums(case: ConvCase, dtype: str) -> None:
    x, w, _, dy = random_inputs(case, dtype, seed=5)
    geom = _geom(case)
    y = conv2d_depthwise.forward(x, w, geom)[0]
    dx = conv2d_depthwise.backward_data(dy, w, geom)
    dw = conv2d_depthwise.backward_weight(dy, x, geom)
    assert (y.dtype, dx.dtype, dw.dtype) == (np.dtype(dtype),) * 3
    assert_close(y, conv2d_direct.forward(x, w, geom)[0], dtype, "y (F1)")
    assert_close(dx, conv2d_direct.backward_data(dy, w, geom), dtype, "dx (B3)")
    assert_close(dw, conv2d_direct.backward_weight(dy, x, geom), dtype, "dw (B2)")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "case", [c for c in DEPTHWISE_CASES if c.hyper.get("stride", 1) == 1], ids=lambda c: c.name
)
def test_depthwise_backward_in_one_pass_equals_the_two_passes(case: ConvCase, dtype: str) -> None:
    """With stride 1, dx (DW2) and dw (DW3) from one pass over dy: the bits of the two
    separate kernels, and what the algorithm's backward returns when dx is wanted."""
    x, w, _, dy = random_inputs(case, dtype, seed=13)
    geom = _geom(case)
    dx, dw = depthwise.depthwise_backward(dy, x, w, geom)
    np.testing.assert_array_equal(dx, depthwise.depthwise_backward_data(dy, w, geom))
    np.testing.assert_array_equal(dw, depthwise.depthwise_backward_weight(dy, x, geom))
    both = conv2d_depthwise.backward(dy, x, w, geom, None, need_dx=True)
    np.testing.assert_array_equal(both[0], dx)
    np.testing.assert_array_equal(both[1], dw)


def _fallback_params() -> list[object]:
    return [
        pytest.param(case, algorithm, id=f"{case.name}-{algorithm}")
        for algorithm in ("im2col", "winograd", "winograd4", "depthwise", "fft")
        for case in CASES
        if case.applies(algorithm)
    ]


@pytest.mark.parametrize(("case", "algorithm"), _fallback_params())
def test_algorithms_without_kernels_match_reference(case: ConvCase, algorithm: str) -> None:
    """The NumPy code of every algorithm that has compiled kernels (the path of CuPy arrays
    and of installs without a compiler) against the naive float64 loops."""
    data = expected(case, "float64")
    with _native.disabled():
        y, cache = conv2d_forward(data["x"], data["w"], data["b"], algorithm=algorithm,
                                  **case.hyper)  # fmt: skip
        dx, dw, _ = conv2d_backward(data["dy"], cache)
    assert_close(y, data["y"], "float64", "y (F1)")
    assert_close(dx, data["dx"], "float64", "dx (B3)")
    assert_close(dw, data["dw"], "float64", "dw (B2)")


@pytest.mark.parametrize("algorithm", ["winograd", "winograd4"])
@pytest.mark.parametrize("case", [c for c in CASES if c.winograd_applies], ids=lambda c: c.name)
def test_winograd_switching_paths_between_passes_is_safe(case: ConvCase, algorithm: str) -> None:
    """A forward with the kernels and a backward without them (or the reverse) recompute
    the tiles the other layout kept, and still agree with the reference."""
    data = expected(case, "float64")
    _, cache = conv2d_forward(data["x"], data["w"], data["b"], algorithm=algorithm, **case.hyper)
    with _native.disabled():
        dx, dw, _ = conv2d_backward(data["dy"], cache)
        _, cache_numpy = conv2d_forward(data["x"], data["w"], data["b"], algorithm=algorithm,
                                        **case.hyper)  # fmt: skip
    dx2, dw2, _ = conv2d_backward(data["dy"], cache_numpy)
    for got in (dx, dx2):
        assert_close(got, data["dx"], "float64", "dx (WG6)")
    for got in (dw, dw2):
        assert_close(got, data["dw"], "float64", "dw (WG7)")


def test_depthwise_is_chosen_by_auto_for_a_depthwise_layer() -> None:
    x = np.random.default_rng(0).standard_normal((8, 64, 28, 28)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((64, 1, 3, 3)).astype(np.float32)
    _, cache = conv2d_forward(x, w, None, padding=1, groups=64)
    assert cache.algorithms == ("depthwise",) * 3


# --------------------------------------------------------------------------- max pooling


def _pool_inputs(case: PoolCase, values: str, dtype: str) -> np.ndarray:
    rng = np.random.default_rng(8)
    if values == "normal":
        return rng.standard_normal(case.x_shape).astype(dtype)
    x = rng.integers(0, 3, case.x_shape).astype(dtype)  # many ties
    if values == "nan-and-inf":
        x[rng.random(case.x_shape) < 0.3] = -np.inf
        x[rng.random(case.x_shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("values", ["normal", "ties", "nan-and-inf"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.name)
def test_max_pool_MP1_MP3_kernels_equal_the_numpy_code(
    case: PoolCase, values: str, dtype: str
) -> None:
    x = _pool_inputs(case, values, dtype)
    with _native.disabled():
        y_numpy, cache_numpy = max_pool2d_forward(x, case.kernel, **case.kwargs)
    y, cache = max_pool2d_forward(x, case.kernel, **case.kwargs)
    np.testing.assert_array_equal(y, y_numpy)  # NaN in the same places
    np.testing.assert_array_equal(cache.argmax, cache_numpy.argmax)  # (MP2) same taps
    assert cache.argmax.dtype == np.int32 and y.dtype == dtype
    dy = np.random.default_rng(9).standard_normal(y.shape).astype(dtype)
    with _native.disabled():
        dx_numpy = max_pool2d_backward(dy, cache)
    dx = max_pool2d_backward(dy, cache)
    assert dx.shape == case.x_shape and dx.dtype == dtype
    assert_close(dx, dx_numpy, dtype, "dx (MP3)")


def test_max_pool_backward_refuses_an_argmax_outside_the_window() -> None:
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4))
    _, cache = max_pool2d_forward(x, 2)
    cache.argmax[0, 1, 1, 0] = 7  # taps of a 2x2 window are 0..3
    with pytest.raises(ValueError, match="1 arg-max entries point outside their windows"):
        max_pool2d_backward(np.ones((1, 2, 2, 2)), cache)


# ------------------------------------------------------------------------- activations

SPECIAL = [0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3e38]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(0,), (), (7,), (3, 5, 4, 7), (64, 32, 28, 28)])
def test_relu_kernels_equal_the_numpy_code_bit_for_bit_A1_A3(
    shape: tuple[int, ...], dtype: str
) -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    if x.size >= len(SPECIAL):  # every special value meets every kind of dy
        x.flat[: len(SPECIAL) ** 2] = np.repeat(SPECIAL, len(SPECIAL))[: x.size]
        dy.flat[: len(SPECIAL) ** 2] = np.tile(SPECIAL, len(SPECIAL))[: x.size]
    with _native.disabled(), np.errstate(invalid="ignore"):  # inf * 0 is NaN, as intended
        y_numpy, cache = relu_forward(x)
        dx_numpy = relu_backward(dy, cache)
    y, cache = relu_forward(x)
    dx = relu_backward(dy, cache)
    assert y.shape == dx.shape == shape and y.dtype == dx.dtype == dtype
    # the same bits: NaN stays NaN, max(-0, 0) is +0, dy * 0 keeps its sign and NaN
    np.testing.assert_array_equal(y.view(f"u{y.itemsize}"), y_numpy.view(f"u{y.itemsize}"))
    np.testing.assert_array_equal(dx.view(f"u{dx.itemsize}"), dx_numpy.view(f"u{dx.itemsize}"))


def test_relu_kernels_read_strided_views_and_refuse_mismatches() -> None:
    x = np.random.default_rng(15).standard_normal((6, 10))
    view = x[:, ::2]  # not contiguous: copied first
    np.testing.assert_array_equal(relu_forward(view)[0], np.maximum(view, 0))
    kernels = _compiled.kernels
    message = "relu_forward: y holds 3 elements; expected the size of x = 4"
    with pytest.raises(ValueError, match=message):
        kernels.relu_forward(np.zeros(4), np.zeros(3), 0, 4)
    with pytest.raises(TypeError, match="relu_backward: y has the wrong element type"):
        kernels.relu_backward(np.zeros(4), np.zeros(4, np.float32), np.zeros(4), 0, 4)
    with pytest.raises(TypeError, match="relu_forward: y must be an array, got NoneType"):
        kernels.relu_forward(np.zeros(4), None, 0, 4)
    with pytest.raises(ValueError, match=r"relu_backward: range \[0, 5\) outside \[0, 4\)"):
        kernels.relu_backward(np.zeros(4), np.zeros(4), np.zeros(4), 0, 5)


# ------------------------------------------------------------------------ optimisers


def _adam_run(cls: type[Adam], options: dict[str, Any], dtype: str, compiled: bool) -> list[Any]:
    """Five steps of cls on two parameters with fresh gradients; p and state after each."""
    rng = np.random.default_rng(16)
    params = [Parameter(rng.standard_normal(shape).astype(dtype)) for shape in ((40, 3), (7,))]
    optimizer = cls(params, **options)
    trace = []
    for step in range(5):
        for p in params:
            p.grad[...] = rng.standard_normal(p.data.shape) * 10.0 ** (step - 2)
        with contextlib.ExitStack() as stack:
            if not compiled:
                stack.enter_context(_native.disabled())
            optimizer.step()
        trace.append([p.data.copy() for p in params])
        state = optimizer.state_dict()
        trace.append([state[k] for k in sorted(state) if k.startswith("state.")])
    return trace


ADAM_OPTIONS = [
    {"lr": 1e-3},
    {"lr": 0.1, "betas": (0.5, 0.9), "eps": 1e-3},  # (ADAM4)'s other lerp form
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "amsgrad": True, "maximize": True},
    {"lr": 1e-2, "weight_decay": 0.3, "amsgrad": True},
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cls", [Adam, AdamW], ids=lambda c: c.__name__)
@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=str)
def test_adam_kernel_gives_the_numpy_code_bits_ADAM2_ADAM7(
    options: dict[str, Any], cls: type[Adam], dtype: str
) -> None:
    compiled = _adam_run(cls, options, dtype, compiled=True)
    numpy_code = _adam_run(cls, options, dtype, compiled=False)
    for ours, theirs in zip(compiled, numpy_code, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)  # same operations, same order: same bits


def test_adam_kernel_refuses_mismatched_buffers() -> None:
    kernels = _compiled.kernels
    scalars = (1.0, 0.0, 0.1, 0.999, 0.001, 1.0, 1e-8, 1e-3, False, False, False)
    z = np.zeros(4)
    message = "adam_step: m holds 3 elements; expected the size of p = 4"
    with pytest.raises(ValueError, match=message):
        kernels.adam_step(z, z, np.zeros(3), z, None, scalars, 0, 4)
    with pytest.raises(ValueError, match="adam_step: expected vmax exactly when amsgrad is set"):
        kernels.adam_step(z, z, z, z, z, scalars, 0, 4)
    with pytest.raises(TypeError, match="adam_step: g has the wrong element type"):
        kernels.adam_step(z, np.zeros(4, np.float32), z, z, None, scalars, 0, 4)
    with pytest.raises(TypeError, match="adam_step: m must be an array, got NoneType"):
        kernels.adam_step(z, z, None, z, None, scalars, 0, 4)  # only vmax may be None


# ------------------------------------------------------------------------ threads, checks


@pytest.mark.parametrize("name", ["depthwise_dilated_asym", "one_channel_m5_5x5"])
@pytest.mark.parametrize("threads", ["1", "2", "3", "7"])
def test_results_do_not_depend_on_the_thread_count(
    threads: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = next(c for c in CASES if c.name == name)
    monkeypatch.setattr(_native, "MIN_WORK_PER_THREAD", 1)  # split however small the work
    x, w, _, dy = random_inputs(case, "float64", seed=6)
    x = np.tile(x, (40, 1, 1, 1))  # enough planes and work for several threads
    dy = np.tile(dy, (40, 1, 1, 1))
    geom = conv_geometry("test", x.shape, w.shape, None, **case.hyper)
    monkeypatch.setenv("CONVPROP_NUM_THREADS", "1")
    one = (
        depthwise.depthwise_forward(x, w, geom),
        depthwise.depthwise_backward_data(dy, w, geom),
        depthwise.depthwise_backward_weight(dy, x, geom),
        *depthwise.depthwise_backward(dy, x, w, geom),
        native_im2col.im2col(x, geom),
    )
    monkeypatch.setenv("CONVPROP_NUM_THREADS", threads)
    assert _native.num_threads() == int(threads)
    many = (
        depthwise.depthwise_forward(x, w, geom),
        depthwise.depthwise_backward_data(dy, w, geom),
        depthwise.depthwise_backward_weight(dy, x, geom),
        *depthwise.depthwise_backward(dy, x, w, geom),
        native_im2col.im2col(x, geom),
    )
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)  # each plane is computed by one thread


def test_kernels_refuse_wrong_sizes_types_and_ranges() -> None:
    kernels = _compiled.kernels
    case = CASES[0]
    geom = _native.conv_geometry_tuple(_geom(case))
    x = np.zeros(case.x_shape)
    cols_size = case.N * case.C * case.R * case.S * case.y_shape[2] * case.y_shape[3]
    message = r"im2col: cols holds 3 elements; expected N\*C\*R\*S\*P\*Q = "
    with pytest.raises(ValueError, match=message):
        kernels.im2col(x, np.zeros(3), geom, 0, 1)
    with pytest.raises(TypeError, match="im2col: cols has the wrong element type"):
        kernels.im2col(x, np.zeros(cols_size, np.float32), geom, 0, 1)
    with pytest.raises(TypeError, match="im2col: expected a float32 or float64 array"):
        kernels.im2col(np.zeros(case.x_shape, np.int64), np.zeros(cols_size), geom, 0, 1)
    with pytest.raises(ValueError, match=r"im2col: range \[0, 99\) outside"):
        kernels.im2col(x, np.zeros(cols_size), geom, 0, 99)
    with pytest.raises(ValueError, match="not C-contiguous"):  # a strided view
        kernels.im2col(np.zeros((*case.x_shape[:3], 2 * case.W))[..., ::2],
                       np.zeros(cols_size), geom, 0, 1)  # fmt: skip
    with pytest.raises(ValueError, match="invalid convolution geometry"):
        kernels.im2col(x, np.zeros(cols_size), (0,) * 15, 0, 0)
    dw_geom = _native.conv_geometry_tuple(_geom(DEPTHWISE_CASES[0]))
    dw_case = DEPTHWISE_CASES[0]
    with pytest.raises(TypeError, match="depthwise_backward_weight: only the forward pass takes"):
        kernels.depthwise_backward_weight(
            np.zeros(dw_case.y_shape), np.zeros(dw_case.x_shape), np.zeros(dw_case.K),
            np.zeros(dw_case.w_shape), dw_geom, 0, 1,
        )  # fmt: skip
    dw_x, dw_y = np.zeros(dw_case.x_shape), np.zeros(dw_case.y_shape)
    strided = _native.conv_geometry_tuple(
        conv_geometry("test", (1, 2, 5, 5), (2, 1, 3, 3), None, stride=2, padding=0, dilation=1,
                      groups=2))  # fmt: skip
    with pytest.raises(ValueError, match=r"depthwise_backward: expected K a multiple of C and "
                                         r"stride 1, got K=2, C=2, stride=\(2, 2\)"):  # fmt: skip
        kernels.depthwise_backward(np.zeros(8), np.zeros(50), np.zeros(18), np.zeros(50),
                                   np.zeros(18), strided)  # fmt: skip
    with pytest.raises(ValueError, match="depthwise_backward: dx holds 3 elements"):
        kernels.depthwise_backward(dw_y, dw_x, np.zeros(dw_case.w_shape), np.zeros(3),
                                   np.zeros(dw_case.w_shape), dw_geom)  # fmt: skip
    read_only = np.zeros(cols_size)
    read_only.flags.writeable = False
    with pytest.raises((BufferError, ValueError)):
        kernels.im2col(x, read_only, geom, 0, 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 5, 4, 7), (8, 64, 28, 28)])
def test_bias_kernels_equal_the_numpy_sums_F1_B1(shape: tuple[int, ...], dtype: str) -> None:
    rng = np.random.default_rng(12)
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    expected_y = y + b.reshape(1, -1, 1, 1)
    bias.add_bias(y, b)  # in place
    np.testing.assert_array_equal(y, expected_y)
    db = bias.bias_grad(y)
    assert db.shape == (shape[1],) and db.dtype == dtype
    assert_close(db, y.astype(np.float64).sum(axis=(0, 2, 3)), dtype, "db (B1)")


def test_bias_kernels_refuse_mismatched_shapes() -> None:
    kernels = _compiled.kernels
    with pytest.raises(ValueError, match=r"add_bias: y of 10 elements is not \(N, 3, 2\)"):
        kernels.add_bias(np.zeros(10), np.zeros(3), 3, 2, 0, 1)
    with pytest.raises(ValueError, match="add_bias: b holds 2 elements; expected K = 3"):
        kernels.add_bias(np.zeros(12), np.zeros(2), 3, 2, 0, 1)
    with pytest.raises(ValueError, match=r"bias_grad: range \[0, 4\) outside \[0, 3\)"):
        kernels.bias_grad(np.zeros(12), np.zeros(3), 3, 2, 0, 4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fft_layout_kernels_equal_numpy_slicing(dtype: str) -> None:
    """planes_to_spatial and spatial_to_planes are inverse strided copies."""
    rng = np.random.default_rng(13)
    planes = rng.standard_normal((37, 4, 5)).astype(dtype)
    spatial = np.full((11, 14, 37), 7.0, dtype=dtype)
    layout.planes_to_spatial(planes, spatial, (2, 1), (2, 3))
    expected = np.full((11, 14, 37), 7.0, dtype=dtype)
    expected[2:9:2, 1:14:3] = planes.transpose(1, 2, 0)
    np.testing.assert_array_equal(spatial, expected)
    back = layout.spatial_to_planes(spatial, 4, 5, (2, 1), (2, 3))
    np.testing.assert_array_equal(back, planes)
    with pytest.raises(ValueError, match="the planes do not fit the spatial array"):
        layout.spatial_to_planes(spatial, 6, 5, (2, 1), (2, 3))


@pytest.mark.parametrize("conj", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("planes", "shape", "lengths", "start", "step"),
    [(37, (5, 7), (9, 10), (2, 1), (1, 1)), (16, (3, 4), (8, 16), (0, 0), (2, 3)),
     (1, (1, 1), (1, 1), (0, 0), (1, 1)), (50, (14, 14), (18, 18), (2, 2), (1, 1)),
     (5, (34, 30), (40, 36), (3, 2), (1, 1))],
)  # fmt: skip
def test_compiled_short_transforms_equal_the_numpy_products_T7_T8(
    planes: int,
    shape: tuple[int, int],
    lengths: tuple[int, int],
    start: tuple[int, int],
    step: tuple[int, int],
    dtype: str,
    conj: bool,
) -> None:
    """(T7) and (T8) by the compiled blocks of planes against the NumPy code's products
    (with the kernels off): plane counts that leave a partial block, odd and even lengths,
    strided placement, and the conjugate both ways."""
    from convprop.functional import conv2d_fft

    rng = np.random.default_rng(planes)
    a = rng.standard_normal((planes, *shape)).astype(dtype)
    with _native.disabled():
        want = conv2d_fft._small_spectrum(a, lengths, start, step, conj=conj)
    got = conv2d_fft._small_spectrum(a, lengths, start, step, conj=conj)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    with _native.disabled():
        back_want = conv2d_fft._small_inverse(want, lengths, shape, start, step, conj=conj)
    back = conv2d_fft._small_inverse(want, lengths, shape, start, step, conj=conj)
    assert back.shape == a.shape and back.dtype == a.dtype
    np.testing.assert_allclose(back, back_want, rtol=tol, atol=tol * np.abs(back_want).max())
    np.testing.assert_allclose(back, a, rtol=tol * 10, atol=tol * 10)  # (T8) undoes (T7)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fft_lengths_between_the_two_limits_agree_with_the_library_transforms(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lengths above SMALL_DFT but within SMALL_DFT_COMPILED: the compiled products (T7, T8)
    where the kernels serve, the library FFT (T1) with them off; both equal the reference."""
    from convprop.functional import conv2d_fft

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 36, 35)).astype(dtype)
    w = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    geom = conv_geometry("t", x.shape, w.shape, None, stride=1, padding=2, dilation=1, groups=1)
    lengths = conv2d_fft._lengths(geom)
    assert conv2d_fft.SMALL_DFT < max(lengths) <= conv2d_fft.SMALL_DFT_COMPILED
    assert conv2d_fft._small(geom, lengths, x)
    dy = rng.standard_normal(geom.y_shape).astype(dtype)
    y, saved = conv2d_fft.forward(x, w, geom)
    dx, dw = conv2d_fft.backward(dy, x, w, geom, saved, True)
    with _native.disabled():
        assert not conv2d_fft._small(geom, lengths, x)
        y0, saved0 = conv2d_fft.forward(x, w, geom)
        dx0, dw0 = conv2d_fft.backward(dy, x, w, geom, saved0, True)
    tol = 1e-10 if dtype == "float64" else 1e-4
    for got, want in ((y, y0), (dx, dx0), (dw, dw0)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    y_ref = conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, padding=2,
                           algorithm="direct")[0]  # fmt: skip
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol * np.abs(y_ref).max())


def test_winograd_transforms_refuse_a_tiling_they_do_not_have() -> None:
    x = np.zeros((1, 1, 6, 6))
    geom = conv_geometry("t", x.shape, (1, 1, 3, 3), None, stride=1, padding=1, dilation=1,
                         groups=1)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"winograd: output tiles of 2x2 or 4x4; expected m in \(2, 4\), got 3"
    ):
        winograd.winograd_input(x, geom, 3)


def test_compiled_short_transforms_refuse_bad_arguments() -> None:
    kernels = _compiled.kernels
    with pytest.raises(ValueError, match="dft_small_forward: invalid dimensions"):
        kernels.dft_small_forward(np.zeros(4), np.zeros(8), np.zeros(8), (1, 2, 2, 2, 2, 3), 0, 1)
    with pytest.raises(ValueError, match="dft_small_inverse: coef holds 3 elements"):
        kernels.dft_small_inverse(np.zeros(8), np.zeros(3), np.zeros(4), (1, 2, 2, 2, 2, 0), 0, 1)


def test_kernels_run_in_a_forked_child() -> None:
    """A child forked after the thread pool started must not wait on the parent's workers."""
    import multiprocessing

    x = np.random.default_rng(14).standard_normal((64, 32, 28, 28))
    expected_y = max_pool2d_forward(x, 2)[0]  # starts the pool in this process
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_pool_in_child, (x,))
        y = result.get(timeout=30)
    np.testing.assert_array_equal(y, expected_y)


def _pool_in_child(x: np.ndarray) -> np.ndarray:
    return np.asarray(max_pool2d_forward(x, 2)[0])


@pytest.mark.parametrize("case", CASES[:20], ids=lambda c: c.name)
def test_fft_with_library_transforms_matches_reference(
    case: ConvCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every grid case is short enough for the DFT-matrix products (T7, T8); with them off,
    the FFT algorithm's library transforms (T1-T4) are witnessed too."""
    from convprop.functional import conv2d_fft

    monkeypatch.setattr(conv2d_fft, "SMALL_DFT", 0)
    monkeypatch.setattr(conv2d_fft, "SMALL_DFT_COMPILED", 0)
    data = expected(case, "float64")
    y, cache = conv2d_forward(data["x"], data["w"], data["b"], algorithm="fft", **case.hyper)
    dx, dw, _ = conv2d_backward(data["dy"], cache)
    assert_close(y, data["y"], "float64", "y (T2)")
    assert_close(dx, data["dx"], "float64", "dx (T3)")
    assert_close(dw, data["dw"], "float64", "dw (T4)")


def test_depthwise_weight_gradient_ignores_cells_no_tap_reads() -> None:
    """(DW3) sums only real outputs: an inf of x outside a tap's reach must not turn into
    0·inf = NaN through the wide layout's scratch columns."""
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 3] = np.inf  # read by tap (0, 1) of output (0, 2) only
    w = np.ones((1, 1, 2, 2))
    dy = np.ones((1, 1, 3, 3))
    geom = conv_geometry("test", x.shape, w.shape, None, stride=1, padding=0, dilation=1, groups=1)
    dw = conv2d_depthwise.backward_weight(dy, x, geom)
    np.testing.assert_array_equal(dw, conv2d_direct.backward_weight(dy, x, geom))
    np.testing.assert_array_equal(dw[0, 0], [[9.0, np.inf], [9.0, 9.0]])


def test_depthwise_3x3_weight_gradient_ignores_cells_no_tap_reads() -> None:
    """The same with a 3 x 3 kernel, whose nine sums take one pass over dy (DW3): an inf in
    the last column is read only by the taps s = 2 of the outputs q = 2."""
    x = np.ones((1, 1, 5, 5))
    x[0, 0, 2, 4] = np.inf
    w = np.ones((1, 1, 3, 3))
    dy = np.ones((1, 1, 3, 3))
    geom = conv_geometry("test", x.shape, w.shape, None, stride=1, padding=0, dilation=1, groups=1)
    dw = conv2d_depthwise.backward_weight(dy, x, geom)
    np.testing.assert_array_equal(dw, conv2d_direct.backward_weight(dy, x, geom))
    np.testing.assert_array_equal(dw[0, 0], [[9.0, 9.0, np.inf]] * 3)


def test_kernels_still_run_during_interpreter_shutdown() -> None:
    """An atexit handler that convolves: the thread pool is gone, the work runs inline."""
    import subprocess
    import sys

    program = (
        "import atexit, numpy as np\n"
        "from convprop.functional import conv2d_forward\n"
        "def last():\n"
        "    x = np.ones((8, 16, 64, 64), np.float32); w = np.ones((16, 1, 3, 3), np.float32)\n"
        "    y, _ = conv2d_forward(x, w, None, padding=1, groups=16, algorithm='depthwise')\n"
        "    print('sum', float(y[0, 0, 1:-1, 1:-1].mean()))\n"
        "atexit.register(last)\n"
    )
    env = {**os.environ, "CONVPROP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "sum 9.0" in done.stdout and "Traceback" not in done.stderr


def test_geometries_whose_sizes_overflow_are_refused() -> None:
    kernels = _compiled.kernels
    huge = (1, 1, 2**33, 2**31, 1, 1, 1, 1000, 1, 1, 1, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="im2col: the geometry's sizes overflow"):
        kernels.im2col(np.zeros(0), np.zeros(1000), huge, 0, 1)
    pool = (1, 1, 2**40, 2**40, 2, 2, 1, 1, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="the geometry's sizes overflow"):
        kernels.maxpool_forward(np.zeros(1), np.zeros(1), np.zeros(1, np.int32), pool, 0, 1)
    # 2^30 channels and 2^30 filters pass the geometry's own checks, but the direct sums'
    # filters (K, C·R·S) would hold 2^60 values: refused before any buffer is read
    wide = (1, 2**30, 1, 1, 2**30, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
    z = np.zeros(1)
    with pytest.raises(ValueError, match="direct_forward: the geometry's sizes overflow"):
        kernels.direct_forward(z, z, None, z, wide, 1, 0, 1)
    with pytest.raises(ValueError, match="direct_weight: the geometry's sizes overflow"):
        kernels.direct_weight(z, z, z, wide, 1, 1, 0, 1)
    layout = (4, 4, 2**62, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="the planes do not fit the spatial array"):
        kernels.spatial_to_planes(np.zeros(1), np.zeros(1), layout, 0, 1)


def test_misaligned_arrays_take_the_numpy_code() -> None:
    raw = np.zeros(8 * 2 * 6 * 6 * 8 + 1, dtype=np.uint8)
    x = raw[1:].view(np.float64).reshape(8, 2, 6, 6)  # one byte off an 8-byte boundary
    assert not x.flags.aligned and not _native.serves(x)
    y, _ = max_pool2d_forward(x, 2)
    assert y.shape == (8, 2, 3, 3) and not y.any()


def test_kernel_entry_points_refuse_geometries_they_cannot_compute() -> None:
    kernels = _compiled.kernels
    with pytest.raises(ValueError, match="max_pool2d_forward: invalid pooling geometry"):
        kernels.maxpool_forward(np.zeros(1), np.zeros(1), np.zeros(1, np.int32),
                                (1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0), 0, 1)  # fmt: skip
    # C=2, K=3: a depthwise layer's K must be a multiple of C
    dw_geom = (1, 2, 4, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="depthwise_forward: K=3 is not a multiple of C=2"):
        kernels.depthwise_forward(np.zeros(32), np.zeros(27), None, np.zeros(12), dw_geom, 0, 1)
    # only (F1) adds a bias; the backward passes refuse one instead of ignoring it
    one = (1, 1, 4, 4, 1, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0)  # C = K = 1, 4x4 -> 2x2
    for name in ("depthwise_backward_data", "depthwise_backward_weight"):
        with pytest.raises(TypeError, match=f"{name}: only the forward pass takes a bias"):
            getattr(kernels, name)(np.zeros(4), np.zeros(16), np.zeros(1), np.zeros(16), one, 0, 1)
    strided = (1, 1, 5, 5, 1, 3, 3, 2, 2, 2, 2, 1, 1, 0, 0)  # stride 2
    with pytest.raises(ValueError, match="winograd_input: needs a 3x3 kernel, stride 1, dilati"):
        kernels.winograd_input(np.zeros(25), np.zeros(16), strided, 1, 1, 0, 1)
    unit = (1, 1, 5, 5, 1, 3, 3, 5, 5, 1, 1, 1, 1, 1, 1)  # 5x5 -> 5x5: 2x2 tiles of 4x4
    with pytest.raises(ValueError, match=r"winograd4_output: .* ceil\(P/4\) x ceil\(Q/4\) tiles"):
        kernels.winograd4_output(np.zeros(36 * 9), np.zeros(25), unit, 3, 3, 0, 1)


def test_the_thread_wait_policy_reads_omp_wait_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMP's variable, read by the library's one thread policy (backend)."""
    from convprop.backend import threads_wait_passive

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads_wait_passive() is False
    for value, passive in (("passive", True), (" PASSIVE ", True), ("active", False), ("", False)):
        monkeypatch.setenv("OMP_WAIT_POLICY", value)
        assert threads_wait_passive() is passive
