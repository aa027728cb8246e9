"""Build the optional compiled kernels (convprop._native); everything else is in pyproject.toml.

One extension module per kernel family, ``convprop._native._<family>``, from the Cython
binding ``src/convprop/_native/_<family>.pyx`` and its loops in ``src/convprop/_native/src/``
(C headers); ``_runtime`` holds what they share (argument checks, the worker team of
src/team.h, POSIX threads). ``-fopenmp-simd`` reads the loops' ``omp simd`` hints only: no
OpenMP runtime is linked.

Flags. Portable by default: the modules run on any CPU of the architecture, so a wheel
built here installs anywhere; on x86-64 (GCC 12+, glibc) each loop is compiled for
x86-64-v4 (AVX-512), x86-64-v3 (AVX2, FMA) and any x86-64, and the loader picks the best
the CPU has (src/common.h: KERNEL). ``CONVPROP_NATIVE_ARCH=1`` builds one version for the machine it
builds on instead (``-march=native``: AVX-512 where it has it), for a source install that
stays on that machine. Neither uses -ffast-math, and floating-point contraction stays
off (``-ffp-contract=off``): a * b + c is rounded twice, as NumPy rounds it, so that the
kernels give the NumPy code's bits where the README promises them.

Where no C compiler is available the install still succeeds
(``optional=True``) and convprop runs its NumPy code instead; ``convprop._native.AVAILABLE``
tells which. The wheel carries the compiled modules only, not their sources
(pyproject.toml: ``exclude-package-data``); the sdist carries the sources (MANIFEST.in).
"""

import os
from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("src/convprop/_native")

# -fno-tree-loop-distribute-patterns keeps short copy loops as loops instead of a memcpy
# or memset call each (im2col copies rows of a few elements, millions of times).
# -fno-math-errno lets sqrt and fma be instructions (the errno they would set is never read).
COMPILE_ARGS = [
    "-O3", "-std=c11", "-fopenmp-simd", "-pthread", "-fno-math-errno", "-ffp-contract=off",
    "-fno-tree-loop-distribute-patterns",
]  # fmt: skip
LINK_ARGS = ["-pthread"]
if os.environ.get("CONVPROP_NATIVE_ARCH", "") not in ("", "0"):
    # one version of each loop, for this machine (src/common.h: KERNEL)
    COMPILE_ARGS += ["-march=native", "-DCONVPROP_NATIVE_ARCH=1"]

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,  # every binding checks its sizes before its loops
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}


def extensions() -> list[Extension]:
    """One extension per ``_<family>.pyx``, cythonized; none where Cython is missing."""
    try:
        from Cython.Build import cythonize
    except ImportError:  # pragma: no cover - Cython is a build requirement
        print("convprop: Cython is not installed; building without compiled kernels")
        return []
    headers = sorted(str(path) for path in (NATIVE / "src").glob("*.h"))
    modules = [
        Extension(
            f"convprop._native.{path.stem}",
            sources=[str(path)],
            include_dirs=[str(NATIVE / "src")],
            depends=[*headers, str(NATIVE / "_runtime.pxd")],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=LINK_ARGS,
            optional=True,
        )
        for path in sorted(NATIVE.glob("_*.pyx"))
    ]
    return cythonize(modules, compiler_directives=DIRECTIVES, build_dir="build/cython")


setup(ext_modules=extensions())
