"""The team of worker threads that shares one kernel call (_kernels_team.h).

A call over planes [lo, hi) on `threads` threads is cut into chunks that the calling
thread and the workers claim in turn. Whatever the thread count, every plane must be
computed exactly once, by one thread, so the results are the same bits as on one thread;
a caller that finds the team serving another call runs alone; sums of the chunks' results
(invalid arg-max entries) are complete; and a forked child starts without the parent's
workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from convprop import _native
from convprop._native import _compiled, pool
from convprop._shapes import conv_geometry
from convprop.functional.pool2d import pool2d_geometry

pytestmark = pytest.mark.skipif(not _native.AVAILABLE, reason="the compiled kernels are not built")


def _depthwise_problem(seed: int, N: int = 6) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 12, 9, 11))
    w = rng.standard_normal((24, 1, 3, 2))
    b = rng.standard_normal(24)
    geom = conv_geometry("test", x.shape, w.shape, b.shape, stride=1, padding=(1, 2),
                         dilation=(2, 1), groups=12)  # fmt: skip
    return x, w, b, _native.conv_geometry_tuple(geom), (N, 24, geom.P, geom.Q)


@pytest.mark.parametrize("threads", [1, 2, 3, 5, 64, 100])
def test_every_plane_is_computed_once_whatever_the_thread_count(threads: int) -> None:
    """Chunks of one plane each (72 planes, up to 100 threads asked): the same bits as one
    thread, and no plane left unwritten (the output starts as NaN)."""
    x, w, b, g, y_shape = _depthwise_problem(1)
    planes = y_shape[0] * y_shape[1]
    one = np.full(y_shape, np.nan)
    _compiled.kernels.depthwise_forward(x, w, b, one, g, 0, planes, 1)
    many = np.full(y_shape, np.nan)
    _compiled.kernels.depthwise_forward(x, w, b, many, g, 0, planes, threads)
    np.testing.assert_array_equal(many, one)
    assert _compiled.kernels.team_info()["workers"] <= 63  # the caller is the 64th thread


def test_a_sub_range_is_split_and_the_rest_left_alone() -> None:
    x, w, b, g, y_shape = _depthwise_problem(2)
    full = np.empty(y_shape)
    _compiled.kernels.depthwise_forward(x, w, b, full, g, 0, y_shape[0] * y_shape[1], 1)
    part = np.full(y_shape, np.nan)
    _compiled.kernels.depthwise_forward(x, w, b, part, g, 5, 50, 4)
    flat_full, flat_part = (
        full.reshape(-1, y_shape[2] * y_shape[3]),
        part.reshape(-1, y_shape[2] * y_shape[3]),
    )
    np.testing.assert_array_equal(flat_part[5:50], flat_full[5:50])
    assert np.isnan(flat_part[:5]).all() and np.isnan(flat_part[50:]).all()


def test_element_wise_calls_split_into_whole_chunks() -> None:
    """ReLU over a length that is no multiple of the chunk alignment, on 3 threads."""
    x = np.random.default_rng(3).standard_normal(100_003).astype(np.float32)
    y = np.full_like(x, np.nan)
    _compiled.kernels.relu_forward(x, y, 0, x.size, 3)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_invalid_counts_of_every_chunk_are_summed() -> None:
    """max-pool backward returns the arg-max entries outside their windows, summed over the
    chunks that the threads took."""
    x = np.random.default_rng(4).standard_normal((4, 10, 8, 8))
    geom = pool2d_geometry("test", x, 2, None, 0, False)
    g = pool.pool_geometry_tuple(geom)
    _, argmax = pool.maxpool_forward(x, geom)
    argmax = argmax.copy()
    bad = np.zeros(argmax.shape, bool)
    bad.reshape(-1)[::7] = True  # spread over every chunk
    argmax[bad] = 99
    dy = np.ones(argmax.shape)
    dx = np.empty_like(x)
    for threads in (1, 2, 7):
        assert _compiled.kernels.maxpool_backward(dy, argmax, dx, g, 0, 40, threads) == bad.sum()


def test_callers_in_several_python_threads_get_their_own_results() -> None:
    """While the team serves one caller, another runs its call alone: every result right."""
    problems = [_depthwise_problem(seed, N=20) for seed in range(8)]
    expected = []
    for x, w, b, g, y_shape in problems:
        y = np.empty(y_shape)
        _compiled.kernels.depthwise_forward(x, w, b, y, g, 0, y_shape[0] * y_shape[1], 1)
        expected.append(y)

    def run(i: int) -> Any:
        x, w, b, g, y_shape = problems[i % len(problems)]
        y = np.full(y_shape, np.nan)
        _compiled.kernels.depthwise_forward(x, w, b, y, g, 0, y_shape[0] * y_shape[1], 2)
        return y

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(200)))
    for i, y in enumerate(results):
        np.testing.assert_array_equal(y, expected[i % len(problems)])


def test_a_thread_count_below_one_is_refused() -> None:
    x = np.zeros(8)
    with pytest.raises(ValueError, match="relu_forward: threads must be at least 1, got 0"):
        _compiled.kernels.relu_forward(x, x.copy(), 0, 8, 0)
    x, w, b, g, y_shape = _depthwise_problem(5)
    with pytest.raises(ValueError, match="depthwise_forward: threads must be at least 1, got -2"):
        _compiled.kernels.depthwise_forward(x, w, b, np.empty(y_shape), g, 0, 1, -2)


def test_parallel_asks_for_threads_by_work(monkeypatch: pytest.MonkeyPatch) -> None:
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


def _run(program: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_workers_spin_briefly_unless_the_wait_policy_is_passive() -> None:
    program = (
        "from convprop._native import _compiled\n"
        "info = _compiled.kernels.team_info()\n"
        "print(info['spin_ns'], info['yield_ns'])"
    )
    for policy, watches in [("", True), ("PASSIVE", False), ("passive", False), ("active", True)]:
        spin, yielding = (int(v) for v in _run(program, OMP_WAIT_POLICY=policy).split())
        assert (spin > 0, yielding > 0) == (watches, watches), policy


def test_a_call_after_the_watch_ends_still_wakes_the_sleeping_workers() -> None:
    """A call that comes after the spin and the yielding watch (> 3.1 ms of quiet) finds the
    workers asleep on the condition variable and wakes them: every plane is still done."""
    x = np.random.default_rng(1).standard_normal(2**18)
    for pause in (0.0, 0.002, 0.02):
        time.sleep(pause)
        y = np.empty_like(x)
        _compiled.kernels.relu_forward(x, y, 0, x.size, 2)
        np.testing.assert_array_equal(y, np.maximum(x, 0))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_its_own_workers() -> None:
    """The child of a parent whose team runs has no workers until its first shared call."""
    program = (
        "import os, numpy as np\n"
        "from convprop._native import _compiled\n"
        "x = np.random.default_rng(0).standard_normal(2**20); y = np.empty_like(x)\n"
        "_compiled.kernels.relu_forward(x, y, 0, x.size, 2)\n"
        "assert _compiled.kernels.team_info()['workers'] == 1\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    before = _compiled.kernels.team_info()['workers']\n"
        "    z = np.empty_like(x); _compiled.kernels.relu_forward(x, z, 0, x.size, 2)\n"
        "    ok = before == 0 and _compiled.kernels.team_info()['workers'] == 1\n"
        "    os._exit(0 if ok and np.array_equal(z, y) else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child', os.waitstatus_to_exitcode(status))\n"
    )
    assert "child 0" in _run(program)
