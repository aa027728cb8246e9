"""The ``auto`` algorithm choice: the timing cache's measured choice where it is on, else the
cost model's.

Passes: "forward" (y, F1), "data" (dx, B3), "weight" (dw, B2).

- ``conv2d_cost_model``: pure functions of a layer's geometry, dtype and whether the compiled
  kernels run, to estimated seconds and workspace bytes per pass and the cheapest algorithm
  among those within the memory limit (its rates, the lossy switch :func:`allow_lossy`,
  im2col's and the direct sums' own decisions, the blocks that keep a pass within the
  workspace budget of ``conv2d_workspace``).
- ``conv2d_timing_cache``: measured choices, off by default (:func:`enable_timing_cache`),
  bounded and persisted as JSON under the user's cache directory.

This module combines the two, and re-exports their public names, which the algorithms and
``conv2d.resolve_algorithms`` read through it. The rates are read where they are defined:
to change one, set it on ``conv2d_cost_model``.
"""

from __future__ import annotations

from collections.abc import Callable

from convprop import _native
from convprop._shapes import ConvGeometry
from convprop.functional import conv2d_cost_model, conv2d_timing_cache
from convprop.functional.conv2d_cost_model import (
    BATCH_AS_COLUMNS_MAX_PQ,
    CALL_SECONDS,
    CHUNKED,
    DIRECT_FLOPS_PER_S,
    DIRECT_WIDE_SPEEDUP,
    DIRECT_WIDE_WEIGHT_SPEEDUP,
    ESTIMATORS,
    FFT_COMPILED_SHARE,
    FFT_FLOPS_PER_S,
    GEMM_FLOPS_PER_S,
    LOSSY,
    MEMORY_BYTES_PER_S,
    MEMORY_SLACK,
    NATIVE_BYTES_PER_S,
    NATIVE_FLOPS_PER_S,
    REUSE_SHARE,
    allow_lossy,
    blocks,
    calibration,
    cheapest,
    direct_compiled_seconds,
    direct_runs_compiled,
    direct_weight_compiled_seconds,
    estimate,
    gemm_rate,
    im2col_batch_as_columns,
    im2col_data_by_convolution,
    is_pointwise,
    lossy_allowed,
    may_choose,
    memory_limit,
    peak_workspace,
    within_memory,
    workspace_bytes,
)
from convprop.functional.conv2d_cost_model import (  # read by test_conv2d_im2col.py
    _im2col_seconds as _im2col_seconds,
)
from convprop.functional.conv2d_timing_cache import (
    MAX_ENTRIES,
    TimingCache,
    cache_state,
    default_cache_path,
    disable_timing_cache,
    enable_timing_cache,
    timing_cache_enabled,
)

__all__ = [
    "BATCH_AS_COLUMNS_MAX_PQ",
    "CALL_SECONDS",
    "CHUNKED",
    "DIRECT_FLOPS_PER_S",
    "DIRECT_WIDE_SPEEDUP",
    "DIRECT_WIDE_WEIGHT_SPEEDUP",
    "ESTIMATORS",
    "FFT_COMPILED_SHARE",
    "FFT_FLOPS_PER_S",
    "GEMM_FLOPS_PER_S",
    "LOSSY",
    "MAX_ENTRIES",
    "MEMORY_BYTES_PER_S",
    "MEMORY_SLACK",
    "NATIVE_BYTES_PER_S",
    "NATIVE_FLOPS_PER_S",
    "REUSE_SHARE",
    "TimingCache",
    "allow_lossy",
    "blocks",
    "cache_state",
    "calibration",
    "cheapest",
    "choose",
    "default_cache_path",
    "direct_compiled_seconds",
    "direct_runs_compiled",
    "direct_weight_compiled_seconds",
    "disable_timing_cache",
    "enable_timing_cache",
    "estimate",
    "gemm_rate",
    "im2col_batch_as_columns",
    "im2col_data_by_convolution",
    "is_pointwise",
    "lossy_allowed",
    "may_choose",
    "memory_limit",
    "peak_workspace",
    "timing_cache_enabled",
    "weight_after_forward",
    "within_memory",
    "workspace_bytes",
]


def choose(
    geom: ConvGeometry,
    pass_name: str,
    dtype: str,
    candidates: list[str],
    measure: Callable[[str, str], Callable[[], object]] | None = None,
    backend: str = "numpy",
    compiled: bool | None = None,
) -> str:
    """Return the algorithm for one pass among ``candidates`` (those that accept the case).

    ``compiled`` says whether the compiled CPU kernels will run (False for CuPy arrays);
    None means: whenever they are built and enabled.

    With the timing cache enabled and a ``measure`` factory (name, pass -> a callable
    that runs that pass), unseen shapes are timed once; otherwise the cost model decides.
    Either way only the candidates within the memory limit compete
    (``conv2d_cost_model.within_memory``).

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (8, 256, 14, 14), (1024, 256, 1, 1), None,
    ...                   stride=1, padding=0, dilation=1, groups=1)
    >>> choose(g, "weight", "float32", ["direct", "im2col", "fft"])
    'im2col'
    """
    timings = conv2d_timing_cache.active_cache()
    if timings is not None and measure is not None and len(candidates) > 1:
        if compiled is None:
            compiled = _native.runs_compiled()
        candidates = within_memory(geom, pass_name, dtype, candidates, compiled)
        if len(candidates) == 1:
            return candidates[0]
        # a choice measured without the lossy algorithms is not one measured with them
        lossy = "+lossy" if lossy_allowed() and LOSSY & set(candidates) else ""
        return timings.fastest(geom, pass_name, dtype, backend + lossy, candidates, measure)
    return conv2d_cost_model.cheapest(geom, pass_name, dtype, candidates, compiled)


def weight_after_forward(
    geom: ConvGeometry, dtype: str, forward: str, weight: str, candidates: list[str],
    compiled: bool | None = None,
) -> str:  # fmt: skip
    """The weight gradient's algorithm once the forward's is known: with the timing cache on,
    the measured choice ``weight`` stands; else the cost model keeps the forward's own where it
    is nearly as cheap (``conv2d_cost_model.prefer_forward_for_weight``)."""
    if timing_cache_enabled():
        return weight
    return conv2d_cost_model.prefer_forward_for_weight(
        geom, dtype, forward, weight, candidates, compiled
    )
