"""How long OpenBLAS's idle worker threads busy-wait: set before NumPy loads OpenBLAS.

After each matrix product, OpenBLAS's worker threads keep spinning on their CPUs for 2**28
cycles (about 0.1 s) before they sleep: measured here as 0.11 s of CPU time per product, with
nothing else running. convprop alternates products (Winograd's, the FFT's, im2col's) with its
own compiled loops, whose threads then share a core with a spinning BLAS thread: res3x3's
direct forward took 22 ms right after a product, 17 ms after another kernel. With the spin cut
to 2**22 cycles (about 1.4 ms), five runs of the benchmark suite, alternating with runs at
OpenBLAS's default, gave forward medians 0.68-1.10 of the default's (res3x3 0.80, lenet1
0.68, big9x9 0.92; dil3x3, which calls no product, 1.10: noise) and forward+backward
0.82-1.03 (res3x3 0.82, alex11 0.89); geometric means 0.95 and 0.95. 2**20 and 2**24 did no
better.

``OPENBLAS_THREAD_TIMEOUT`` is read once, when NumPy first loads OpenBLAS: this module sets it
(unless the environment already does) as the first thing ``import convprop`` runs, which
works where convprop is imported before NumPy (its command line and benchmarks are). A
program that imports NumPy first can set the variable itself.
"""

from __future__ import annotations

import os
import sys

BLAS_THREAD_TIMEOUT = "22"
"""log2 of the cycles an idle OpenBLAS thread spins before it sleeps (OpenBLAS: 4 to 30)."""

PRESET = "OPENBLAS_THREAD_TIMEOUT" in os.environ
"""Whether the environment set the variable before convprop was imported (it is kept)."""

APPLIED = PRESET or "numpy" not in sys.modules
"""Whether OpenBLAS reads the variable's value now: set by the environment from the start, or
by this module before NumPy was loaded."""

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
