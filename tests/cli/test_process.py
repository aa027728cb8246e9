"""Process tuning as explicit calls (convprop.process): glibc's allocator setting, the BLAS
libraries threadpoolctl finds and their thread limits, and configure_process, whose restart
gives a console run OpenBLAS's short idle spin from the moment NumPy loads it.

Whatever changes the process for good (the restart, the environment) runs in a fresh
interpreter.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import threadpoolctl

from convprop import process


def _fresh(code: str, **env: str) -> list[str]:
    """Run ``code`` in a new interpreter with the environment less OpenBLAS's spin setting
    and the thread counts, plus ``env``; its output lines."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "CONVPROP_NUM_THREADS", "OMP_NUM_THREADS")
    }
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True
    )
    return done.stdout.splitlines()


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)
def test_retain_freed_memory_applies_on_glibc() -> None:
    assert process.retain_freed_memory() is True


def test_blas_libraries_lists_numpys_openblas_with_its_threads() -> None:
    libraries = process.blas_libraries()
    assert libraries, "threadpoolctl found no BLAS library"
    assert {"internal_api", "version", "num_threads", "filepath", "architecture"} <= set(
        libraries[0]
    )
    assert any(
        lib["internal_api"] == "openblas" and "numpy" in str(lib["filepath"]) for lib in libraries
    )


def test_limit_blas_threads_holds_inside_the_block_and_restores_after() -> None:
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    with process.limit_blas_threads(1):
        assert all(lib["num_threads"] == 1 for lib in process.blas_libraries())
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before


@pytest.mark.parametrize("threads", [0, -2, 1.5, "2"])
def test_limit_blas_threads_refuses_what_is_not_a_positive_integer(threads: object) -> None:
    with pytest.raises(ValueError, match=r"limit_blas_threads: threads; expected an integer >= 1"):
        process.limit_blas_threads(threads)  # type: ignore[arg-type]


CONFIGURE = (
    "import os, sys; print('started'); sys.stdout.flush()\n"
    "from convprop.process import configure_process\n"
    "s = configure_process(restart={restart})\n"
    "from convprop.process import blas_libraries\n"
    "print(s.blas_thread_timeout, s.blas_threads, os.environ.get('OPENBLAS_THREAD_TIMEOUT'),"
    " sorted({{lib['num_threads'] for lib in blas_libraries()}}))\n"
)


def test_configure_process_restarts_once_so_that_numpys_openblas_reads_the_spin() -> None:
    """Without the variable, the process sets it and runs its command line again (two
    starts, one report): the new process started with it, so NumPy's OpenBLAS read it."""
    lines = _fresh(CONFIGURE.format(restart=True))
    assert lines[:2] == ["started", "started"] and len(lines) == 3
    assert lines[2].startswith("16 None 16 ")


def test_configure_process_keeps_the_environments_spin_and_never_restarts_unasked() -> None:
    """A value the environment sets is kept (one start); without restart=True the variable
    is left alone: set now, NumPy's OpenBLAS, already loaded, would never read it."""
    kept = _fresh(CONFIGURE.format(restart=True), OPENBLAS_THREAD_TIMEOUT="25")
    assert kept[0] == "started" and kept[1].startswith("25 None 25 ")
    unasked = _fresh(CONFIGURE.format(restart=False))
    assert unasked[0] == "started" and unasked[1].startswith("default None None ")


def test_configure_process_limits_blas_threads_to_convprops_count() -> None:
    """CONVPROP_NUM_THREADS set: every loaded BLAS runs on that many threads."""
    lines = _fresh(CONFIGURE.format(restart=False), CONVPROP_NUM_THREADS="1")
    assert lines[1] == "default 1 None [1]"


class _ConfiguredError(Exception):
    """Stops the command line right after it called configure_process."""


@pytest.mark.parametrize(
    "argv, from_console, restart",
    [
        (["eval", "model.safetensors"], True, True),
        (["bench", "--shape", "lenet1"], True, True),
        (["predict", "model.safetensors", "image.png"], True, False),
        (["eval", "model.safetensors"], False, False),  # main(argv) from a program
    ],
)
def test_the_command_line_restarts_only_long_console_runs(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], from_console: bool, restart: bool
) -> None:
    """``convprop train/eval/bench`` from the console may start again (OpenBLAS's spin);
    short commands, and main(argv) called by a program, never do."""
    from convprop.cli import main

    asked: list[bool] = []

    def configure(*, restart: bool = False) -> None:
        asked.append(restart)
        raise _ConfiguredError

    monkeypatch.setattr(process, "configure_process", configure)
    monkeypatch.setattr(sys, "argv", ["convprop", *argv])
    with pytest.raises(_ConfiguredError):
        main() if from_console else main(argv)
    assert asked == [restart]
