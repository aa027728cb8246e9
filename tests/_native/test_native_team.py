"""The runtime the compiled kernels share (convprop._native._runtime, src/parallel.h).

A call over planes [lo, hi) on `threads` threads is cut into chunks that the calling thread
and the workers of one team (src/team.h) claim in turn. Whatever the thread count, every
plane must be computed exactly once, by one thread, so the results are the same bits as on
one thread; sums of the chunks' results (invalid arg-max entries) are complete; callers in
several Python threads get their own results; a child forked after calls on several threads
computes correctly on workers of its own; idle workers wait as the thread policy says
(OMP_WAIT_POLICY=passive: they sleep at once). Every binding checks its arguments and names
the op, the expected and the got values.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

_runtime = pytest.importorskip("convprop._native._runtime", reason="kernels not built")
from convprop._native import (  # noqa: E402  (after the skip: the modules may not be built)
    _adam,
    _bias,
    _bins,
    _depthwise,
    _dft,
    _direct,
    _elementwise,
    _im2col,
    _layout,
    _pool,
    _winograd,
)

FAMILIES = (
    _im2col,
    _depthwise,
    _direct,
    _pool,
    _winograd,
    _bias,
    _layout,
    _dft,
    _bins,
    _elementwise,
    _adam,
)


def conv_tuple(
    N: int,
    C: int,
    H: int,
    W: int,
    K: int,
    R: int,
    S: int,
    stride: tuple[int, int] = (1, 1),
    dil: tuple[int, int] = (1, 1),
    pad: tuple[int, int] = (0, 0),
) -> tuple[int, ...]:
    """The 15 integers of a convolution with symmetric padding (CONV_FIELDS)."""
    P = (H + 2 * pad[0] - dil[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + 2 * pad[1] - dil[1] * (S - 1) - 1) // stride[1] + 1
    return (N, C, H, W, K, R, S, P, Q, *stride, *dil, *pad)


def _depthwise_problem(seed: int, N: int = 6) -> tuple[Any, ...]:
    """A depthwise layer with a channel multiplier of 2, dilation and uneven padding."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 12, 9, 11))
    w = rng.standard_normal((24, 1, 3, 2))
    b = rng.standard_normal(24)
    g = conv_tuple(N, 12, 9, 11, 24, 3, 2, dil=(2, 1), pad=(1, 2))
    return x, w, b, g, (N, 24, g[7], g[8])


# ----------------------------------------------------------------------------- the runner


def test_the_public_functions_are_the_previous_extension_s() -> None:
    """The 29 kernels under their previous names, the sum of two arrays (forward and backward),
    and the queries of the direct sums' AVX-512 blocking and of their regions, each defined
    by one family module."""
    names = [
        name
        for module in FAMILIES
        for name, value in vars(module).items()
        if callable(value) and getattr(value, "__module__", None) == module.__name__
    ]
    assert len(names) == len(set(names)) == 33
    assert set(names) == {
        "im2col",
        "col2im",
        "depthwise_forward",
        "depthwise_backward_data",
        "depthwise_backward_weight",
        "depthwise_backward",
        "direct_forward",
        "direct_weight",
        "direct_blocking",
        "direct_region_rows",
        "wide_blockings_run",
        "maxpool_forward",
        "maxpool_backward",
        "winograd_input",
        "winograd_output",
        "winograd_dy",
        "winograd_dx",
        "winograd4_input",
        "winograd4_output",
        "winograd4_dy",
        "winograd4_dx",
        "add_bias",
        "bias_grad",
        "spatial_to_planes",
        "planes_to_spatial",
        "relu_forward",
        "relu_backward",
        "add_forward",
        "add_backward",
        "adam_step",
        "bin_products",
        "dft_small_forward",
        "dft_small_inverse",
    }


def test_runtime_reports_the_worker_team() -> None:
    x = np.arange(-(2**16), 2**16, dtype=np.float64)
    _elementwise.relu_forward(x, np.empty_like(x), 0, x.size, 2)  # a call on 2 threads
    info = _runtime.runtime_info()
    assert info["runner"] == "team"
    assert info["workers"] >= 1  # started by the call above (or an earlier test's)
    assert info["max_threads_per_call"] == 64 and info["chunks_per_thread"] == 8


def test_idle_workers_wait_as_the_policy_says() -> None:
    """Active (the default): spin 0.1 ms, then yield 3 ms; passive: sleep at once. The
    results do not depend on it."""
    x = np.random.default_rng(3).standard_normal(2**18)
    expected = np.empty_like(x)
    _elementwise.relu_forward(x, expected, 0, x.size, 1)
    try:
        _runtime.set_wait_policy(True)
        assert (_runtime.runtime_info()["spin_us"], _runtime.runtime_info()["yield_us"]) == (0, 0)
        for _ in range(20):  # every call wakes sleeping workers
            y = np.empty_like(x)
            _elementwise.relu_forward(x, y, 0, x.size, 2)
            np.testing.assert_array_equal(y, expected)
    finally:
        _runtime.set_wait_policy(False)
    info = _runtime.runtime_info()
    assert (info["spin_us"], info["yield_us"]) == (100, 3000)


def test_omp_wait_policy_passive_reaches_the_team_as_the_kernels_load() -> None:
    program = (
        "from convprop._native import _compiled, _runtime\n"
        "info = _runtime.runtime_info()\n"
        "print('wait', info['spin_us'], info['yield_us'])\n"
    )
    assert "wait 0 0" in _run(program, OMP_WAIT_POLICY="Passive")
    assert "wait 100 3000" in _run(program, OMP_WAIT_POLICY="active")


@pytest.mark.parametrize(
    ("lo", "hi", "threads", "align", "grain"),
    [
        (0, 10, 2, 1, 1),  # fewer planes than 2 threads x 8 chunks: one plane per chunk
        (0, 100, 3, 1, 5),  # ceil(100 / 24)
        (7, 1007, 2, 1, 63),  # ceil(1000 / 16), from plane 7 on
        (0, 100_003, 3, 64, 4224),  # ceil(100003 / 24) = 4167, rounded up to whole 64s
        (0, 50, 100, 1, 1),  # at most 64 threads (and no more than there are planes)
    ],
)
def test_calls_are_cut_into_eight_chunks_per_thread(
    lo: int, hi: int, threads: int, align: int, grain: int
) -> None:
    chunks = _runtime.chunks(lo, hi, threads, align)
    starts = [first for first, _, _ in chunks]
    assert starts == list(range(lo, hi, grain))  # every plane once, in chunks of `grain`
    assert [stop for _, stop, _ in chunks] == [min(first + grain, hi) for first in starts]
    assert all(0 <= worker < min(threads, 64, hi - lo) for _, _, worker in chunks)


def test_one_thread_runs_the_whole_range_in_one_call() -> None:
    assert _runtime.chunks(3, 1000, 1) == [(3, 1000, 0)]
    assert _runtime.chunks(5, 5, 4) == []  # nothing to do
    assert _runtime.chunks(0, 1, 8) == [(0, 1, 0)]  # one plane: one thread


def test_chunks_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="chunks: expected 0 <= lo <= hi, got lo=5, hi=3"):
        _runtime.chunks(5, 3, 1)
    with pytest.raises(ValueError, match="chunks: threads must be at least 1, got 0"):
        _runtime.chunks(0, 3, 0)
    with pytest.raises(ValueError, match="chunks: align must be at least 1, got 0"):
        _runtime.chunks(0, 3, 1, 0)


@pytest.mark.parametrize("threads", [1, 2, 3, 5, 64, 100])
def test_every_plane_is_computed_once_whatever_the_thread_count(threads: int) -> None:
    """Chunks of one plane each (72 planes, up to 100 threads asked): the same bits as one
    thread, and no plane left unwritten (the output starts as NaN)."""
    x, w, b, g, y_shape = _depthwise_problem(1)
    planes = y_shape[0] * y_shape[1]
    one = np.full(y_shape, np.nan)
    _depthwise.depthwise_forward(x, w, b, one, g, 0, planes, 1)
    many = np.full(y_shape, np.nan)
    _depthwise.depthwise_forward(x, w, b, many, g, 0, planes, threads)
    np.testing.assert_array_equal(many, one)
    assert not np.isnan(one).any()


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_one_two_three_give_the_same_bits(threads: int, dtype: str) -> None:
    """Per family, a call on 2 and 3 threads against the same call on one."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6, 13, 12)).astype(dtype)
    w = rng.standard_normal((8, 3, 3, 3)).astype(dtype)
    g = conv_tuple(8, 6, 13, 12, 8, 3, 3, stride=(2, 1), pad=(1, 1))
    N, C, K, R, S, P, Q = g[0], g[1], g[4], g[5], g[6], g[7], g[8]
    dy = rng.standard_normal((N, K, P, Q)).astype(dtype)

    def outputs(t: int) -> list[Any]:
        cols = np.full(N * C * R * S * P * Q, np.nan, dtype)
        _im2col.im2col(x, cols, g, 0, N * C, t)
        dx = np.full(x.shape, np.nan, dtype)
        _im2col.col2im(cols, dx, g, 0, N * C, t)
        y = np.full(dy.shape, np.nan, dtype)
        _direct.direct_forward(x, w, None, y, g, 2, 0, N * 2 * P, t)
        dw = np.full(w.shape, np.nan, dtype)
        _direct.direct_weight(dy, x, dw, g, 2, 16, 0, 16, t)
        r = np.full_like(x, np.nan)
        _elementwise.relu_forward(x, r, 0, x.size, t)
        db = np.full(K, np.nan, dtype)
        _bias.bias_grad(dy, db, K, P * Q, 0, K, t)
        return [cols, dx, y, dw, r, db]

    for one, many in zip(outputs(1), outputs(threads), strict=True):
        np.testing.assert_array_equal(many, one)


def test_a_sub_range_is_split_and_the_rest_left_alone() -> None:
    x, w, b, g, y_shape = _depthwise_problem(2)
    full = np.empty(y_shape)
    _depthwise.depthwise_forward(x, w, b, full, g, 0, y_shape[0] * y_shape[1], 1)
    part = np.full(y_shape, np.nan)
    _depthwise.depthwise_forward(x, w, b, part, g, 5, 50, 4)
    flat_full = full.reshape(-1, y_shape[2] * y_shape[3])
    flat_part = part.reshape(-1, y_shape[2] * y_shape[3])
    np.testing.assert_array_equal(flat_part[5:50], flat_full[5:50])
    assert np.isnan(flat_part[:5]).all() and np.isnan(flat_part[50:]).all()


def test_element_wise_calls_split_into_whole_chunks() -> None:
    """ReLU over a length that is no multiple of the chunk alignment, on 3 threads."""
    x = np.random.default_rng(3).standard_normal(100_003).astype(np.float32)
    y = np.full_like(x, np.nan)
    _elementwise.relu_forward(x, y, 0, x.size, 3)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_invalid_counts_of_every_chunk_are_summed() -> None:
    """max-pool backward returns the arg-max entries outside their windows, summed over the
    chunks that the threads took."""
    x = np.random.default_rng(4).standard_normal((4, 10, 8, 8))
    g = (4, 10, 8, 8, 2, 2, 4, 4, 2, 2, 0, 0)  # 2x2 windows, stride 2
    y, argmax = np.empty((4, 10, 4, 4)), np.empty((4, 10, 4, 4), np.int32)
    _pool.maxpool_forward(x, y, argmax, g, 0, 40, 2)
    windows = x.reshape(4, 10, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(4, 10, 4, 4, 4)
    np.testing.assert_array_equal(y, windows.max(axis=-1))  # (MP1)
    np.testing.assert_array_equal(argmax, windows.argmax(axis=-1))  # (MP2)
    bad = np.zeros(argmax.shape, bool)
    bad.reshape(-1)[::7] = True  # spread over every chunk
    argmax[bad] = 99
    dy = np.ones(argmax.shape)
    dx = np.empty_like(x)
    for threads in (1, 2, 7):
        assert _pool.maxpool_backward(dy, argmax, dx, g, 0, 40, threads) == bad.sum()


def test_callers_in_several_python_threads_get_their_own_results() -> None:
    """Calls from 4 Python threads at once, each on 2 threads: every result right."""
    problems = [_depthwise_problem(seed, N=20) for seed in range(8)]
    expected = []
    for x, w, b, g, y_shape in problems:
        y = np.empty(y_shape)
        _depthwise.depthwise_forward(x, w, b, y, g, 0, y_shape[0] * y_shape[1], 1)
        expected.append(y)

    def run(i: int) -> Any:
        x, w, b, g, y_shape = problems[i % len(problems)]
        y = np.full(y_shape, np.nan)
        _depthwise.depthwise_forward(x, w, b, y, g, 0, y_shape[0] * y_shape[1], 2)
        return y

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(200)))
    for i, y in enumerate(results):
        np.testing.assert_array_equal(y, expected[i % len(problems)])


def test_parallel_asks_for_threads_by_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from convprop import _native

    monkeypatch.setenv("CONVPROP_NUM_THREADS", "3")
    calls: list[tuple[str, int, int, int]] = []

    def kernel(tag: str, lo: int, hi: int, threads: int) -> str:
        calls.append((tag, lo, hi, threads))
        return tag

    unit = _native.MIN_WORK_PER_THREAD
    assert _native.parallel(kernel, 10, unit - 1, "a") == "a"  # too little work to share
    assert _native.parallel(kernel, 10, 2 * unit, "b") == "b"  # enough for two threads
    _native.parallel(kernel, 10, 100 * unit, "c")  # never more than CONVPROP_NUM_THREADS
    _native.parallel(kernel, 2, 100 * unit, "d")  # never more threads than planes
    assert calls == [("a", 0, 10, 1), ("b", 0, 10, 2), ("c", 0, 10, 3), ("d", 0, 2, 2)]


# ------------------------------------------------------------------------------------ fork


def _fork_problem() -> tuple[Any, ...]:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((16, 3, 28, 28)).astype(np.float32)
    w = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    return x, w, conv_tuple(16, 3, 28, 28, 8, 5, 5, pad=(2, 2))


def _convolve(x: Any, w: Any, g: tuple[int, ...], threads: int) -> tuple[Any, Any]:
    N, C, K, R, S, P, Q = g[0], g[1], g[4], g[5], g[6], g[7], g[8]
    cols = np.empty(N * C * R * S * P * Q, x.dtype)
    _im2col.im2col(x, cols, g, 0, N * C, threads)
    y = np.empty((N, K, P, Q), x.dtype)
    _direct.direct_forward(x, w, None, y, g, 1, 0, N * P, threads)
    return cols, y


def _convolve_in_child(threads: int) -> tuple[Any, Any, int, int]:
    before = _runtime.runtime_info()["workers"]
    x, w, g = _fork_problem()
    cols, y = _convolve(x, w, g, threads)
    return cols, y, before, _runtime.runtime_info()["workers"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_after_parallel_calls_computes_correctly() -> None:
    """A child made by fork() has only the forking thread: it forgets the parent's workers
    and starts its own, and computes the parent's bits, in time (a hang fails by the
    timeout, not by blocking the suite)."""
    x, w, g = _fork_problem()
    cols, y = _convolve(x, w, g, 2)  # the parent's team has run
    assert _runtime.runtime_info()["workers"] >= 1
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        try:
            outcome = pool.apply_async(_convolve_in_child, (2,)).get(60)
        except multiprocessing.TimeoutError:  # pragma: no cover - the failure this guards
            pool.terminate()
            pytest.fail("the forked child did not finish its kernel calls within 60 s")
    child_cols, child_y, workers_at_fork, workers_after = outcome
    np.testing.assert_array_equal(child_cols, cols)
    np.testing.assert_array_equal(child_y, y)
    assert workers_at_fork == 0 and workers_after >= 1  # its own team


def _run(program: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_during_another_thread_s_call_is_not_blocked() -> None:
    """fork() while a Python thread is inside a 2-thread call (the team's lock held): the
    child's lock is new, so its own calls on 2 threads run and give the parent's bits."""
    program = (
        "import os, threading, numpy as np\n"
        "from convprop._native import _elementwise, _runtime\n"
        "x = np.random.default_rng(0).standard_normal(2**22); y = np.empty_like(x)\n"
        "_elementwise.relu_forward(x, y, 0, x.size, 1)\n"
        "stop = threading.Event()\n"
        "def busy():\n"
        "    z = np.empty_like(x)\n"
        "    while not stop.is_set(): _elementwise.relu_forward(x, z, 0, x.size, 2)\n"
        "t = threading.Thread(target=busy); t.start()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    z = np.empty_like(x); _elementwise.relu_forward(x, z, 0, x.size, 2)\n"
        "    ok = _runtime.runtime_info()['workers'] >= 1 and np.array_equal(z, y)\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "stop.set(); t.join()\n"
        "print('child', os.waitstatus_to_exitcode(status))\n"
    )
    assert "child 0" in _run(program)


def test_a_call_during_interpreter_shutdown_still_runs() -> None:
    """An atexit handler that calls a kernel on 2 threads."""
    program = (
        "import atexit, numpy as np\n"
        "from convprop._native import _elementwise\n"
        "def last():\n"
        "    x = np.arange(-2**19, 2**19, dtype=np.float32); y = np.empty_like(x)\n"
        "    _elementwise.relu_forward(x, y, 0, x.size, 2)\n"
        "    print('sum', float(y.sum()))\n"
        "atexit.register(last)\n"
    )
    assert f"sum {float(sum(range(2**19))):.1f}" in _run(program)


# -------------------------------------------------------------------------- argument checks


def test_arrays_are_checked_for_type_layout_and_size() -> None:
    g = conv_tuple(1, 3, 4, 4, 2, 3, 3)  # 4x4 -> 2x2
    x, cols = np.zeros((1, 3, 4, 4)), np.zeros(108)
    pattern = (
        r"im2col: cols holds 96 elements; expected "
        r"N\*C\*R\*S\*P\*Q = 108 \(N=1, C=3, R=3, S=3, P=2, "
        r"Q=2\)$"
    )
    with pytest.raises(ValueError, match=pattern):
        _im2col.im2col(x, np.zeros(96), g, 0, 3)
    pattern = (
        r"im2col: cols has the wrong element type; expected float64, got float32 \(format 'f'\)"
    )
    with pytest.raises(TypeError, match=pattern):
        _im2col.im2col(x, cols.astype(np.float32), g, 0, 3)
    pattern = "im2col: expected a float32 or float64 array for x, got int64"
    with pytest.raises(TypeError, match=pattern):
        _im2col.im2col(x.astype(np.int64), cols, g, 0, 3)
    with pytest.raises(TypeError, match="im2col: cols must be an array, got NoneType"):
        _im2col.im2col(x, None, g, 0, 3)
    pattern = (
        r"im2col: x is not C-contiguous; expected a "
        r"C-contiguous array, got shape \(1, 3, 4, 4\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _im2col.im2col(np.zeros((1, 3, 4, 8))[..., ::2], cols, g, 0, 3)
    read_only = cols.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="im2col: cols is read-only; expected a writable array"):
        _im2col.im2col(x, read_only, g, 0, 3)
    raw = np.zeros(48 * 8 + 1, np.uint8)
    misaligned = raw[1:].view(np.float64)
    with pytest.raises(ValueError, match="im2col: x is not aligned to its 8-byte elements"):
        _im2col.im2col(misaligned, cols, g, 0, 3)
    pattern = (
        r"im2col: range \[0, 4\) outside \[0, 3\); expected 0 <= lo <= hi <= 3 \(N\*C planes\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _im2col.im2col(x, cols, g, 0, 4)
    with pytest.raises(ValueError, match="im2col: threads must be at least 1, got 0"):
        _im2col.im2col(x, cols, g, 0, 3, 0)


def test_geometries_are_checked_with_their_values() -> None:
    x, cols = np.zeros(48), np.zeros(108)
    pattern = (
        r"col2im: invalid convolution geometry; expected "
        r"positive N, C, H, W, K, R, S, P, Q, strides and "
        r"dilations and non-negative padding, got N=1, C=3, "
        r"H=4, W=4, K=2, R=3, S=3, P=2, Q=2, stride_h=1, "
        r"stride_w=1, dil_h=0, dil_w=1, pad_top=0, "
        r"pad_left=0$"
    )
    with pytest.raises(ValueError, match=pattern):
        _im2col.col2im(cols, x, (1, 3, 4, 4, 2, 3, 3, 2, 2, 1, 1, 0, 1, 0, 0), 0, 3)
    with pytest.raises(TypeError, match=r"im2col: geom holds 14 values; expected 15 \(N, C, "):
        _im2col.im2col(x, cols, (1,) * 14, 0, 1)
    with pytest.raises(TypeError, match="tuple"):
        _im2col.im2col(x, cols, [1] * 15, 0, 1)
    huge = (1, 1, 2**33, 2**31, 1, 1, 1, 1000, 1, 1, 1, 1, 1, 0, 0)
    pattern = (
        r"im2col: the geometry's sizes overflow; expected .* "
        r"got N=1, C=1, H=8589934592, W=2147483648"
    )
    with pytest.raises(ValueError, match=pattern):
        _im2col.im2col(np.zeros(1), np.zeros(1000), huge, 0, 1)
    dilated = (1, 1, 8, 8, 1, 3, 3, 8, 8, 1, 1, 2**62, 1, 0, 0)  # (R-1)*dil_h overflows
    with pytest.raises(ValueError, match="the geometry's sizes overflow"):
        _im2col.im2col(np.zeros(64), np.zeros(576), dilated, 0, 1)
    z = np.zeros(1)
    pattern = (
        r"max_pool2d_forward: invalid pooling geometry; expected .* got N=1, C=1, H=1, W=1, R=0"
    )
    with pytest.raises(ValueError, match=pattern):
        _pool.maxpool_forward(
            z, z, np.zeros(1, np.int32), (1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0), 0, 1
        )
    pool = (1, 1, 2**40, 2**40, 2, 2, 1, 1, 2, 2, 0, 0)
    with pytest.raises(ValueError, match="max_pool2d_backward: the geometry's sizes overflow"):
        _pool.maxpool_backward(z, np.zeros(1, np.int32), z, pool, 0, 1)
    pattern = r"max_pool2d_backward: argmax has the wrong element type; expected int32, got int64"
    with pytest.raises(TypeError, match=pattern):
        _pool.maxpool_backward(
            np.zeros(4),
            np.zeros(4, np.int64),
            np.zeros(16),
            (1, 1, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0),
            0,
            1,
        )


def test_depthwise_bindings_check_the_layer() -> None:
    one = conv_tuple(1, 1, 4, 4, 1, 3, 3)  # C = K = 1, 4x4 -> 2x2
    for name in ("depthwise_backward_data", "depthwise_backward_weight"):
        pattern = f"{name}: only the forward pass takes a bias; expected None, got ndarray"
        with pytest.raises(TypeError, match=pattern):
            getattr(_depthwise, name)(
                np.zeros(4), np.zeros(16), np.zeros(1), np.zeros(16), one, 0, 1
            )
    three = conv_tuple(1, 2, 4, 4, 3, 3, 3)
    pattern = "depthwise_forward: K=3 is not a multiple of C=2; expected K = M\\*C filters"
    with pytest.raises(ValueError, match=pattern):
        _depthwise.depthwise_forward(np.zeros(32), np.zeros(27), None, np.zeros(12), three, 0, 1)
    strided = conv_tuple(1, 2, 5, 5, 2, 3, 3, stride=(2, 2))
    pattern = (
        r"depthwise_backward: expected K a multiple of C and "
        r"stride 1, got K=2, C=2, stride=\(2, 2\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _depthwise.depthwise_backward(
            np.zeros(8), np.zeros(50), np.zeros(18), np.zeros(50), np.zeros(18), strided
        )
    pattern = (
        r"depthwise_backward_weight: dw holds 8 elements; "
        r"expected K\*R\*S = 9 \(K=1, R=3, S=3\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _depthwise.depthwise_backward_weight(
            np.zeros(4), np.zeros(16), None, np.zeros(8), one, 0, 1
        )
    pattern = r"range \[0, 2\) outside \[0, 1\); expected 0 <= lo <= hi <= 1 \(K filters\)"
    with pytest.raises(ValueError, match=pattern):
        _depthwise.depthwise_backward_weight(
            np.zeros(4), np.zeros(16), None, np.zeros(9), one, 0, 2
        )


def test_direct_bindings_check_groups_slices_and_sizes() -> None:
    g = conv_tuple(1, 3, 5, 5, 4, 3, 3)
    x, w, y = np.zeros(75), np.zeros(108), np.zeros(36)
    with pytest.raises(ValueError, match="direct_forward: groups=2 does not divide C=3 and K=4"):
        _direct.direct_forward(x, w, None, y, g, 2, 0, 3)
    pattern = (
        r"direct_forward: w holds 5 elements; expected "
        r"K\*\(C/G\)\*R\*S = 108 \(C=3, K=4, R=3, S=3, "
        r"G=1\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _direct.direct_forward(x, np.zeros(5), None, y, g, 1, 0, 3)
    pattern = r"direct_weight: slices must be in \[1, 3\] \(output rows\), got 4"
    with pytest.raises(ValueError, match=pattern):
        _direct.direct_weight(y, x, w, g, 1, 4, 0, 4)
    wide = (1, 2**30, 1, 1, 2**30, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)  # filters of 2^60 values
    z = np.zeros(1)
    pattern = "direct_weight: the geometry's sizes overflow; expected the filters"
    with pytest.raises(ValueError, match=pattern):
        _direct.direct_weight(z, z, z, wide, 1, 1, 0, 1)
    pattern = (
        r"direct_blocking: expected groups dividing C=3 and "
        r"K=4 and an itemsize of 4 or 8, got groups=1, "
        r"itemsize=2"
    )
    with pytest.raises(ValueError, match=pattern):
        _direct.direct_blocking(g, 1, 2)
    assert _direct.direct_blocking(g, 1, 4) in ("filters", "columns", "wide")


def test_tile_and_element_wise_bindings_check_their_arguments() -> None:
    strided = conv_tuple(1, 1, 5, 5, 1, 3, 3, stride=(2, 2))
    pattern = (
        r"winograd_input: needs a 3x3 kernel, stride 1, "
        r"dilation 1 and ceil\(P/2\) x ceil\(Q/2\) tiles; .* "
        r"got R=3, S=3, stride \(2, 2\)"
    )
    with pytest.raises(ValueError, match=pattern):
        _winograd.winograd_input(np.zeros(25), np.zeros(16), strided, 1, 1, 0, 1)
    unit = conv_tuple(1, 1, 5, 5, 1, 3, 3, pad=(1, 1))  # 5x5 -> 5x5: 2x2 tiles of 4x4
    pattern = r"winograd4_output: M holds 36 elements; expected 36\*K\*N\*Th\*Tw = 144"
    with pytest.raises(ValueError, match=pattern):
        _winograd.winograd4_output(np.zeros(36), np.zeros(25), unit, 2, 2, 0, 1)
    with pytest.raises(ValueError, match=r"add_bias: y of 10 elements is not \(N, 3, 2\)"):
        _bias.add_bias(np.zeros(10), np.zeros(3), 3, 2, 0, 1)
    pattern = r"relu_forward: y holds 3 elements; expected the size of x = 4$"
    with pytest.raises(ValueError, match=pattern):
        _elementwise.relu_forward(np.zeros(4), np.zeros(3), 0, 4)
    scalars = (1.0, 0.0, 0.1, 0.999, 0.001, 1.0, 1e-8, 1e-3, False, False, False)
    z = np.zeros(4)
    pattern = (
        "adam_step: expected vmax exactly when amsgrad is set, got amsgrad=False and vmax an array"
    )
    with pytest.raises(ValueError, match=pattern):
        _adam.adam_step(z, z, z, z, z, scalars, 0, 4)
    with pytest.raises(TypeError, match=r"adam_step: scalars holds 3 values; expected 11"):
        _adam.adam_step(z, z, z, z, None, scalars[:3], 0, 4)


def test_fft_bindings_check_their_dimensions() -> None:
    pattern = (
        r"dft_small_forward: invalid dimensions \(M, h, w, Lh, "
        r"Wb, conj\); .* got M=1, h=2, w=2, Lh=2, Wb=2, "
        r"conj=3"
    )
    with pytest.raises(ValueError, match=pattern):
        _dft.dft_small_forward(np.zeros(4), np.zeros(16), np.zeros(8), (1, 2, 2, 2, 2, 3), 0, 1)
    pattern = r"dft_small_inverse: coef holds 3 elements; expected 2\*Lh\*h \+ 2\*Wb\*w = 16"
    with pytest.raises(ValueError, match=pattern):
        _dft.dft_small_inverse(np.zeros(8), np.zeros(3), np.zeros(4), (1, 2, 2, 2, 2, 0), 0, 1)
    y = np.zeros(2 * 2 * 3 * 5, np.float32)
    a, b = np.zeros(2 * 2 * 3 * 4, np.float32), np.zeros(2 * 2 * 4 * 5, np.float32)
    pattern = r"bin_products: invalid dimensions .* got I=2, M=3, L=4, Nc=5, at=2, bt=0"
    with pytest.raises(ValueError, match=pattern):
        _bins.bin_products(a, b, y, (2, 3, 4, 5, 2, 0), 0, 2)
    with pytest.raises(TypeError, match=r"bin_products: dims holds 5 values; expected 6"):
        _bins.bin_products(a, b, y, (2, 3, 4, 5, 0), 0, 2)
    layout = (4, 4, 2**62, 1, 1, 0, 0, 1, 1)
    pattern = (
        "spatial_to_planes: the planes do not fit the spatial "
        "array; .* got Lh=4, Lw=4, M=4611686018427387904"
    )
    with pytest.raises(ValueError, match=pattern):
        _layout.spatial_to_planes(np.zeros(1), np.zeros(1), layout, 0, 1)
