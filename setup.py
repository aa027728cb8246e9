"""Build the optional compiled kernels (convprop._kernels); everything else is in pyproject.toml.

Where no C compiler is available the install still succeeds (``optional=True``) and
convprop runs its NumPy code instead; ``convprop.native.AVAILABLE`` tells which.
"""

import os
import platform
from pathlib import Path

from setuptools import Extension, setup

# -fno-tree-loop-distribute-patterns keeps short copy loops as loops instead of a memcpy
# or memset call each (im2col copies rows of a few elements, millions of times).
# -pthread: the team of worker threads that shares a kernel call (_kernels_team.h).
ARGS = [
    "-O3", "-std=c11", "-pthread", "-fno-math-errno", "-fopenmp-simd",
    "-fno-tree-loop-distribute-patterns",
]  # fmt: skip
if platform.machine() in ("x86_64", "AMD64") and not os.environ.get("CONVPROP_PORTABLE"):
    # Vector loops for the machine it builds on (a source install); CONVPROP_PORTABLE=1
    # builds for any x86-64, e.g. for a wheel that other machines will install.
    ARGS.append("-march=native")

setup(
    ext_modules=[
        Extension(
            "convprop._kernels",
            sources=["src/convprop/_kernels.c"],
            depends=sorted(str(path) for path in Path("src/convprop").glob("_kernels_*.h")),
            extra_compile_args=ARGS,
            extra_link_args=["-pthread"],  # the team of worker threads (_kernels_team.h)
            optional=True,
        )
    ]
)
