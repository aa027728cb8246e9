"""The ``auto`` algorithm choice's cost model: pure functions of a layer's geometry, its
dtype and whether the compiled kernels run (and, for the direct sums, which register blocking
they take on this CPU), to estimated seconds per pass and the cheapest algorithm. Nothing
here measures, reads a clock or touches a file (the timing cache, ``conv2d_timing_cache``,
does; ``conv2d_select`` combines the two).

Passes: "forward" (y, F1), "data" (dx, B3), "weight" (dw, B2).

Each algorithm's time for one pass is estimated as

    seconds = flops / gemm_rate(shape of its matrix products)
            + bytes moved by its copies and scatter-adds / MEMORY_BYTES_PER_S
            + transform flops / FFT_FLOPS_PER_S + calls * CALL_SECONDS

with constants measured on a 2-core x86-64 machine (NumPy + OpenBLAS, float32; see
``convprop bench``). ``gemm_rate`` falls with the smallest matrix dimension: a product with
an inner size of 1 is a memory-bound loop, one with all sizes above ~128 runs near the
BLAS peak. float64 halves the arithmetic rates.

Memory. Each algorithm's workspace for a pass (beyond x, w, dy and the results) is estimated
too, :func:`workspace_bytes`: im2col's columns N·C·R·S·P·Q, Winograd's transformed tiles
(m+2)²·T·(C + K) (T tiles of all images; twice that for the einsum code), the FFT's spectra
about Lh·(Lw/2+1)·(N·C + 2·K·C/G + N·K) complex values and one real plane per image and
channel, and padded copies of x and y for the direct sums and depthwise. im2col, Winograd
and the FFT keep a pass within the layer's budget (``conv2d_workspace.budget``:
WORKSPACE_BYTES, or half the bytes of its x and y, at least WORKSPACE_MIN_BYTES): past it
they run the layer as blocks (chunks of images, else per group, filters and channels; see
``conv2d_workspace``), so their estimate for a pass is

    seconds = the sum over the blocks of the formula above for each block's geometry
            + 2 · (bytes of a block's result) / MEMORY_BYTES_PER_S where blocks add into one
              result (channel blocks into y, filter blocks into dx, image chunks into dw)

which charges the chunking its overhead: every block transforms its own inputs again and
pays its fixed costs (the FFT's kernel spectrum, which a block of filters and channels makes
once for all its image chunks, is charged to every chunk: an overestimate, on the safe side).
The rule:

- an algorithm's *peak* for a pass is the workspace of its largest block (the whole layer's
  for the direct sums and depthwise, which run whole);
- ``auto`` considers only the algorithms whose peak is within the memory limit,
  :func:`memory_limit`: MEMORY_SLACK times the layer's budget or the bytes of its own x
  and y, whichever is larger; the cheapest of them in time wins. What no cut removes is
  left out that way: a block of one image, one filter and one channel that still passes
  the limit (Winograd's tiles of one huge plane, im2col's columns of one plane under a
  large kernel);
- where none is within it, only the algorithms of the smallest peak are considered.

``direct`` accepts every case, so ``auto`` never declines.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from convprop import _native
from convprop._shapes import ConvGeometry
from convprop.functional import conv2d_phases, conv2d_workspace
from convprop.functional._conv_common import transposed_geometry

GEMM_FLOPS_PER_S = 120e9  # float32 BLAS peak of the two cores, large products
MEMORY_BYTES_PER_S = 8e9  # strided NumPy copies, slice-adds, pads (one core)
FFT_FLOPS_PER_S = 8e9  # scipy.fft rfft2/irfft2, counted as 2.5·L·log2(L) per transform
CALL_SECONDS = 15e-6  # Python and NumPy overhead of one array operation
NATIVE_FLOPS_PER_S = 16e9  # the compiled depthwise multiply-adds, both cores
NATIVE_BYTES_PER_S = 16e9  # the compiled im2col copy / col2im adds, both cores
DIRECT_FLOPS_PER_S = 95e9  # the compiled forward sum (F1) in registers, both cores
# (F1) in the AVX-512 blocking ("wide", direct.h) over the rate above: its times fit 1.6-1.9;
# 1.6 keeps lenet2 on the FFT, whose backward reuses the forward's spectra (forward + backward
# 7.9 ms against the direct sums' 10.8), a saving the per-pass estimates do not see
DIRECT_WIDE_SPEEDUP = 1.6
DIRECT_WIDE_WEIGHT_SPEEDUP = 1.7  # (DS3) in that blocking, over DIRECT_FLOPS_PER_S
FFT_COMPILED_SHARE = 0.5  # the FFT algorithm's measured time over its NumPy-only estimate
# the FFT's fixed cost per pass, its dozen array operations and kernel calls: one 8-channel
# 3x3 layer on a 4x4 image took 52 µs by the FFT against 11 by the direct sums, which a cost
# model without it chose (14 µs estimated)
FFT_FIXED_SECONDS = 40e-6
REUSE_SHARE = 0.8  # dw by the forward's own algorithm (see prefer_forward_for_weight)
MEMORY_SLACK = 2.0  # auto's memory limit: this many workspace budgets (see memory_limit)

REMEMBERED_CHOICES = 512
"""Layer shapes whose cost-model choice a process keeps (:func:`cheapest`)."""

LOSSY = frozenset({"winograd4"})
"""Algorithms whose float32 rounding error is well above the direct sums': F(4x4, 3x3) (WG9),
1.2e-6 to 4.0e-6 of the output's largest value against 1.7e-7 to 1.9e-6 (3 to 512
channels), enough to differ from PyTorch's float32 results by about PyTorch's own default
tolerance. ``auto`` leaves them out unless :func:`allow_lossy` lets it choose them; naming
one explicitly (``algorithm="winograd4"``) always works."""

_LOSSY_ALLOWED = False


def allow_lossy(allowed: bool = True) -> None:
    """Let ``auto`` choose the algorithms of :data:`LOSSY` where the cost model finds them
    cheapest (process-wide; ``allow_lossy(False)`` restores the default)."""
    global _LOSSY_ALLOWED
    _LOSSY_ALLOWED = bool(allowed)


def may_choose(name: str) -> bool:
    """Whether ``auto`` considers the algorithm ``name`` now (see :data:`LOSSY`)."""
    return _LOSSY_ALLOWED or name not in LOSSY


def lossy_allowed() -> bool:
    """Whether :func:`allow_lossy` has let ``auto`` choose the algorithms of :data:`LOSSY`."""
    return _LOSSY_ALLOWED


def gemm_rate(*dims: int, itemsize: int = 4) -> float:
    """Achieved flops/s of a matrix product whose smallest dimension is ``min(dims)``."""
    smallest = max(min(dims), 1)
    efficiency = smallest / (smallest + 48.0)
    return GEMM_FLOPS_PER_S * efficiency * (4.0 / itemsize)


def _fft_seconds(transforms: float, length: int) -> float:
    return transforms * 2.5 * length * math.log2(max(length, 2)) / FFT_FLOPS_PER_S


def is_pointwise(geom: ConvGeometry) -> bool:
    """A 1x1 kernel, stride 1, no padding: im2col's columns are x itself (no copy)."""
    no_pad = geom.pad_top == geom.pad_bottom == geom.pad_left == geom.pad_right == 0
    return geom.R == geom.S == 1 and geom.stride_h == geom.stride_w == 1 and no_pad


BATCH_AS_COLUMNS_MAX_PQ = 1024
"""im2col lays the batch side by side as columns (I7) up to this many outputs per image.

Measured with NumPy's OpenBLAS on 2 cores, one product over N·P·Q columns against N products
over P·Q: res3x3s2 (P·Q = 196) forward 6.5 against 7.1 ms, weight gradient 6.6 against 8.3;
the GEMM of lenet2's shape (P·Q = 196, N = 64) 9.3 against 15.7 ms forward; res3x3
(P·Q = 3136) level or slower (13.9 against 13.6 ms forward). The input gradient's product
gained too (6.5 against 7.0 ms), but its col2im then reads each plane's runs far apart, which
cost more: it stays by image."""


def im2col_batch_as_columns(geom: ConvGeometry, compiled: bool | None = None) -> bool:
    """Whether im2col's forward and weight gradient take the batch as columns (I7): one GEMM
    over N·P·Q columns per group instead of N over P·Q, where P·Q is small (a narrow product
    runs far below the BLAS peak). Only with the compiled kernels (they write the columns in
    that order), for N > 1, and not for a pointwise layer (whose columns are x itself)."""
    if compiled is None:
        compiled = _native.runs_compiled()
    small = geom.P * geom.Q <= BATCH_AS_COLUMNS_MAX_PQ
    return compiled and small and geom.N > 1 and not is_pointwise(geom)


def _im2col_seconds(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    """im2col's time for one pass; the input gradient by (I4)-(I5), col2im of Wᵀ·dY. Where the
    forward and the weight gradient take the batch as columns (I7), their products are G wide
    ones, and y or dy is turned between the two orders (one read and one write of it)."""
    G, C_g, K_g = geom.groups, geom.C // geom.groups, geom.K // geom.groups
    RS, PQ = geom.R * geom.S, geom.P * geom.Q
    flops = 2.0 * geom.N * geom.K * C_g * RS * PQ
    pointwise = is_pointwise(geom)
    cols_bytes = 0.0 if pointwise else geom.N * geom.C * RS * PQ * b
    wide = pass_name != "data" and im2col_batch_as_columns(geom, compiled)  # dx by image
    columns = geom.N * PQ if wide else PQ
    calls = (G if wide else geom.N * G) + (0 if pointwise or compiled else RS)
    copy_rate = NATIVE_BYTES_PER_S if compiled else MEMORY_BYTES_PER_S
    turned = 2.0 * geom.N * geom.K * PQ * b / MEMORY_BYTES_PER_S if wide else 0.0
    if pass_name == "forward":
        rate = gemm_rate(K_g, columns, C_g * RS, itemsize=b)
        return flops / rate + 2 * cols_bytes / copy_rate + turned + calls * CALL_SECONDS
    if pass_name == "data":
        rate = gemm_rate(C_g * RS, columns, K_g, itemsize=b)
        return flops / rate + 3 * cols_bytes / copy_rate + turned + calls * CALL_SECONDS
    rate = gemm_rate(K_g, C_g * RS, columns, itemsize=b)
    return flops / rate + 2 * cols_bytes / copy_rate + turned + calls * CALL_SECONDS


def im2col_data_by_convolution(geom: ConvGeometry, itemsize: int, compiled: bool | None = None
                               ) -> bool:  # fmt: skip
    """Whether im2col's input gradient is cheaper as (I6), the forward lowering applied to dy
    with rot180(w), than as (I4)-(I5); False where (I6) does not apply (stride > 1).

    (I6) copies dy's columns (K·R·S·H·W per image) and sums over K/G·R·S in its GEMM; (I4)-(I5)
    sums over K/G only, then scatter-adds C·R·S·P·Q columns per image.
    """
    transposed = transposed_geometry(geom)
    if transposed is None:
        return False
    if compiled is None:
        compiled = _native.runs_compiled()
    by_convolution = _im2col_seconds(transposed, "forward", itemsize, compiled)
    return by_convolution < _im2col_seconds(geom, "data", itemsize, compiled)


def _im2col(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    seconds = _im2col_seconds(geom, pass_name, b, compiled)
    transposed = transposed_geometry(geom)
    if pass_name == "data" and transposed is not None:  # the cheaper of (I4)-(I5) and (I6)
        seconds = min(seconds, _im2col_seconds(transposed, "forward", b, compiled))
    return seconds


def _blocks_used(size: int, block: int) -> float:
    """The share of ``ceil(size / block)`` blocks of ``block`` that ``size`` fills."""
    return size / _round_up(size, block)


WIDE_BLOCKS: dict[str, tuple[int, int, float, float]] = {
    "wide": (8, 2, 1.5, 1.2),
    "wide16": (16, 1, 1.2, 1.1),
}
"""The direct sums' AVX-512 blockings (direct.h): output columns (or, for the weight
gradient, taps) per block, 64-byte vectors of filters per block, and the rate over the
narrow blockings' that the kernel charges them at, forward and weight gradient."""


WIDE_FILTERS_BLOCK = (128, 8)
"""The "wide filters" blocking of the forward sum (AVX-512, unit column stride): bytes of
consecutive output columns (two 64-byte vectors) by filters per block, charged at 1.5 times
the narrow blockings' rate, its stores whole vectors."""


def direct_blocking(geom: ConvGeometry, itemsize: int, weight: bool = False,
                    wide: bool | None = None) -> str:  # fmt: skip
    """The register blocking the compiled sums take for a layer's forward (or with
    ``weight``, its weight gradient), as direct.h chooses it (direct_forward_blocking,
    direct_weight_blocking): each blocking charged the multiply-adds of its padded blocks,
    "filters" (4 filters by 64 bytes of columns, unit column stride) at 0.9 of "columns"
    (6 columns, or taps, by 64 bytes of filters), and where ``wide`` (by default, where
    :func:`convprop._native.wide_blockings_run`) those of :data:`WIDE_BLOCKS` at their rates;
    the transposed writes of a block of columns as 8 taps' worth (at the narrow rate in
    every blocking); with unit column stride and ``wide``, "wide_filters"
    (:data:`WIDE_FILTERS_BLOCK`) too."""
    if wide is None:
        wide = _native.wide_blockings_run()
    K_g, taps = geom.K // geom.groups, (geom.C // geom.groups) * geom.R * geom.S
    lanes = 64 // itemsize
    if weight:
        best, name = float(_round_up(taps, 6) * _round_up(K_g, lanes)), "columns"
        for block, (size, vectors, _, rate) in WIDE_BLOCKS.items() if wide else ():
            cost = _round_up(taps, size) * _round_up(K_g, vectors * lanes) / rate
            if cost < best:
                best, name = cost, block
        return name
    writes = 1.0 + 8.0 / taps
    best, name = _round_up(geom.Q, 6) * _round_up(K_g, lanes) * writes, "columns"
    if geom.stride_w == 1:
        unit = _round_up(geom.Q, lanes) * _round_up(K_g, 4) / 0.9
        if unit <= best:
            best, name = unit, "filters"
    stores = writes - 1.0  # at the narrow blockings' cost in every blocking
    for block, (size, vectors, rate, _) in WIDE_BLOCKS.items() if wide else ():
        cost = _round_up(geom.Q, size) * _round_up(K_g, vectors * lanes) * (1 / rate + stores)
        if cost < best:
            best, name = cost, block
    if wide and geom.stride_w == 1:  # vector stores: no charge for the writes
        columns, filters = WIDE_FILTERS_BLOCK
        cost = _round_up(geom.Q, columns // itemsize) * _round_up(K_g, filters) / 1.5
        if cost < best:
            name = "wide_filters"
    return name


def _round_up(size: int, block: int) -> int:
    return -(-size // block) * block


def direct_region_rows(geom: ConvGeometry, itemsize: int) -> int:
    """The output rows the compiled sums read from one region (DS1), as direct.h chooses
    them (direct_region_outputs): up to 8 rows of one image and group sharing the rows of
    x_pad they read, halved while the region passes 256 KB, where that copies no more rows
    than a region per output row; else 1."""
    C_g, outputs = geom.C // geom.groups, 8
    slack = 15 * geom.stride_w + (16 if geom.stride_w == 1 else 0)  # direct_cols's
    cols = (geom.Q - 1) * geom.stride_w + (geom.S - 1) * geom.dil_w + 1 + slack
    while outputs > 1 and C_g * _region_span(geom, outputs) * cols * itemsize > 256 * 1024:
        outputs //= 2
    return outputs if _region_span(geom, outputs) <= outputs * geom.R else 1


def _region_span(geom: ConvGeometry, outputs: int) -> int:
    """The rows of x_pad per channel in a region of ``outputs`` output rows (direct_span)."""
    if outputs == 1:
        return geom.R
    return (outputs - 1) * geom.stride_h + (geom.R - 1) * geom.dil_h + 1


def _region_bytes_per_row(geom: ConvGeometry, itemsize: int) -> float:
    """The region's copy per output row (DS1): its rows of x_pad shared by the rows it serves."""
    outputs = direct_region_rows(geom, itemsize)
    rows = _region_span(geom, outputs) / outputs
    return geom.C // geom.groups * rows * (geom.Q * geom.stride_w + 16) * itemsize


def _direct_wide(geom: ConvGeometry, itemsize: int, weight: bool) -> bool:
    """Whether the compiled sums run a pass in an AVX-512 blocking."""
    return direct_blocking(geom, itemsize, weight) in {*WIDE_BLOCKS, "wide_filters"}


def direct_compiled_seconds(geom: ConvGeometry, itemsize: int) -> float:
    """The compiled forward sum's time (direct.h): register blocks of 4 filters by 64 bytes
    of output columns with unit column stride, else 6 columns by 64 bytes of filters, or
    where the CPU has AVX-512 and the filters fill them, the blocks of :data:`WIDE_BLOCKS`
    (8 columns by 128 bytes of filters at :data:`DIRECT_WIDE_SPEEDUP` times the rate, 16 by
    64 at 1.2/1.5 of that) or of :data:`WIDE_FILTERS_BLOCK` (at that rate); each block pays
    for its setup over the C/G·R·S taps it sums."""
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    taps, lanes = C_g * geom.R * geom.S, 64 // itemsize
    speedup = 1.0
    blocking = direct_blocking(geom, itemsize)
    if blocking == "wide_filters":
        columns, filters = WIDE_FILTERS_BLOCK
        filled = _blocks_used(geom.Q, columns // itemsize) * _blocks_used(K_g, filters)
        speedup = DIRECT_WIDE_SPEEDUP
    elif blocking in WIDE_BLOCKS:
        size, vectors, rate, _ = WIDE_BLOCKS[blocking]
        filled = _blocks_used(geom.Q, size) * _blocks_used(K_g, vectors * lanes)
        speedup = DIRECT_WIDE_SPEEDUP * rate / WIDE_BLOCKS["wide"][2]
    elif geom.stride_w == 1:
        filled = _blocks_used(geom.Q, lanes) * _blocks_used(K_g, 4)
    else:
        filled = _blocks_used(geom.Q, 6) * _blocks_used(K_g, lanes)
    rate = DIRECT_FLOPS_PER_S * speedup * (4.0 / itemsize) * filled * taps / (taps + 12.0)
    flops = 2.0 * geom.N * geom.K * taps * geom.P * geom.Q
    y_bytes = geom.N * geom.K * geom.P * geom.Q * itemsize
    return flops / rate + y_bytes / NATIVE_BYTES_PER_S + CALL_SECONDS


def direct_weight_compiled_seconds(geom: ConvGeometry, itemsize: int) -> float:
    """The compiled weight-gradient sum's time (DS3): register blocks of 6 taps by 64 bytes
    of filters, summed over each output row's Q columns, then added to the row slice's
    partial sums; partials larger than a core's cache travel through memory every row. In
    the AVX-512 blockings (:func:`_direct_wide_weight_seconds`) their own rates."""
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    taps, lanes = C_g * geom.R * geom.S, 64 // itemsize
    if _direct_wide(geom, itemsize, weight=True):
        return _direct_wide_weight_seconds(geom, itemsize)
    filled = _blocks_used(taps, 6) * _blocks_used(K_g, lanes)
    rate = 1.4 * DIRECT_FLOPS_PER_S * (4.0 / itemsize) * filled * geom.Q / (geom.Q + 24.0)
    flops = 2.0 * geom.N * geom.K * taps * geom.P * geom.Q
    rows = geom.N * geom.groups * geom.P
    partial = geom.groups * (taps + 5) * (K_g + lanes) * itemsize
    row_bytes = _region_bytes_per_row(geom, itemsize) + geom.Q * (K_g + lanes) * itemsize
    moved = rows * (row_bytes + (2 * partial if partial > 2**18 else 0))
    return flops / rate + moved / NATIVE_BYTES_PER_S + CALL_SECONDS


def _direct_wide_weight_seconds(geom: ConvGeometry, itemsize: int) -> float:
    """(DS3) in an AVX-512 blocking, fitted to its times on the conv suite's layers:
    :data:`DIRECT_WIDE_WEIGHT_SPEEDUP` times the forward's rate, less a setup of 3 columns
    per row (the short rows of ResNet-20's 8x8 and 16x16 planes ran at 0.7-0.8 of the rate of
    long ones), plus each row's region and turned dy. Unlike the blocking above, partials of
    up to 2 MB (big9x9's) showed no cost of their own."""
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    taps, lanes = C_g * geom.R * geom.S, 64 // itemsize
    size, vectors, _, block_rate = WIDE_BLOCKS[direct_blocking(geom, itemsize, weight=True)]
    filled = _blocks_used(taps, size) * _blocks_used(K_g, vectors * lanes)
    speedup = DIRECT_WIDE_WEIGHT_SPEEDUP * block_rate / WIDE_BLOCKS["wide"][3]
    rate = DIRECT_FLOPS_PER_S * speedup * (4.0 / itemsize) * filled
    rate *= geom.Q / (geom.Q + 3.0)
    flops = 2.0 * geom.N * geom.K * taps * geom.P * geom.Q
    rows = geom.N * geom.groups * geom.P
    row_bytes = (_region_bytes_per_row(geom, itemsize)
                 + geom.Q * (K_g + vectors * lanes) * itemsize)  # fmt: skip
    return flops / rate + rows * row_bytes / NATIVE_BYTES_PER_S + CALL_SECONDS


def _direct_compiled_pass(geom: ConvGeometry, pass_name: str, itemsize: int) -> float | None:
    """The compiled sum's time for a pass it computes: the forward (F1), the weight gradient
    (B2) as (DS3), or the input gradient (B3) as the forward sum over dy in the transposed
    geometry (as I6) with stride 1, else one such sum per phase (PH1; dilation 1). None for a
    pointwise layer, which im2col computes as one product with no copy (measured on 8x8x16²
    -> 1000: 0.6-0.9 ms against the sums' 1.3-1.6), except for the forward and the input
    gradient where the sums run in an AVX-512 blocking (pw1x1's forward: 2.5 ms against
    im2col's 3.5 with OpenBLAS's AVX2 kernels; its input gradient 3.7-4.0 against 3.8-4.4,
    1×1 layers of 8×64×56² -> 256 and 8×128×28² -> 512 3.0-3.3 against 4.4-4.5 and 2.7-2.9
    against 3.8-3.9, kernel against kernel in one process); not its weight gradient, 5.5
    against 3.4: 1 MB of partial sums per slice for 112 output rows)."""
    if is_pointwise(geom):  # the forward sum that runs: over x, or over dy (B3 as I6)
        summed = {"forward": geom, "data": transposed_geometry(geom)}.get(pass_name)
        if summed is None or not _direct_wide(summed, itemsize, False):
            return None
    if pass_name == "forward":
        return direct_compiled_seconds(geom, itemsize)
    if pass_name == "weight":
        return direct_weight_compiled_seconds(geom, itemsize)
    transposed = transposed_geometry(geom)
    if transposed is not None:
        return direct_compiled_seconds(transposed, itemsize)
    plan = conv2d_phases.phases(geom)  # (PH1): a sum per phase, each phase's cells of dx
    if not plan or geom.C // geom.groups < 8:  # written through a strided view; with fewer
        return None  # channels the sums' blocks of filters run mostly empty (AlexNet's stem,
    # 3 channels, 16 phases: 12.6 ms against im2col's 10.0)
    dx_bytes = geom.N * geom.C * geom.H * geom.W * itemsize
    sums = sum(direct_compiled_seconds(phase.geom, itemsize) for phase in plan)
    return sums + 2 * dx_bytes / MEMORY_BYTES_PER_S + len(plan) * CALL_SECONDS


def direct_runs_compiled(geom: ConvGeometry, pass_name: str, itemsize: int,
                         compiled: bool | None = None) -> bool:  # fmt: skip
    """Whether the direct algorithm runs a pass ("forward", "data", "weight") by the compiled sum
    rather than by its NumPy taps (one product per tap, at the BLAS rate when C/G is
    large); never where the kernels do not run or the pass has no compiled form. Asked by
    every call of the direct algorithm: remembered per geometry and rates."""
    if compiled is None:
        compiled = _native.runs_compiled()
    return _direct_runs_compiled(geom, pass_name, itemsize, compiled, _calibration())


@functools.lru_cache(maxsize=REMEMBERED_CHOICES)
def _direct_runs_compiled(
    geom: ConvGeometry, pass_name: str, itemsize: int, compiled: bool, rates: tuple[float, ...]
) -> bool:
    seconds = _direct_compiled_pass(geom, pass_name, itemsize) if compiled else None
    return seconds is not None and seconds < _direct_numpy(geom, pass_name, itemsize)


def _direct(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    seconds = _direct_numpy(geom, pass_name, b)
    by_kernel = _direct_compiled_pass(geom, pass_name, b) if compiled else None
    return seconds if by_kernel is None else min(seconds, by_kernel)


def _direct_numpy(geom: ConvGeometry, pass_name: str, b: int) -> float:
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    RS, PQ = geom.R * geom.S, geom.P * geom.Q
    if pass_name == "data":  # the full convolution of the stride-dilated dy
        ext_h, ext_w = geom.dilated_kernel_hw
        PQ = (geom.stride_h * (geom.P - 1) + ext_h) * (geom.stride_w * (geom.Q - 1) + ext_w)
        C_g, K_g = K_g, C_g
    flops = 2.0 * geom.N * geom.groups * K_g * C_g * RS * PQ
    tap_bytes = RS * geom.N * geom.groups * (C_g + 2 * K_g) * PQ * b
    if C_g == 1:  # depthwise: broadcast multiply-adds, memory-bound
        return tap_bytes / MEMORY_BYTES_PER_S + RS * CALL_SECONDS
    rate = gemm_rate(K_g, C_g, PQ, itemsize=b)
    return flops / rate + tap_bytes / MEMORY_BYTES_PER_S + RS * geom.N * CALL_SECONDS


def _depthwise(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    if not compiled:  # the direct algorithm's NumPy code runs instead
        return _direct_numpy(geom, pass_name, b)
    macs = geom.N * geom.K * geom.R * geom.S * geom.P * geom.Q
    planes = geom.N * (geom.C + geom.K) * (geom.H * geom.W + geom.P * geom.Q) * b
    return 2.0 * macs / NATIVE_FLOPS_PER_S * (4.0 / b) + planes / NATIVE_BYTES_PER_S


def _fft(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    G, C_g, K_g = geom.groups, geom.C // geom.groups, geom.K // geom.groups
    Hp, Wp = geom.padded_hw
    length = Hp * Wp
    bins = Hp * (Wp // 2 + 1)
    n_x, n_y, n_w = geom.N * geom.C, geom.N * geom.K, geom.K * C_g
    transforms = {"forward": n_x + n_y + n_w, "data": n_y + n_x + n_w, "weight": n_x + n_y + n_w}
    # complex products: 4 real multiply-adds per term, batched over the F bins
    products = 8.0 * bins * G * geom.N * K_g * C_g
    rate = gemm_rate(geom.N, K_g, C_g, itemsize=b) / 2
    spectra_bytes = 2 * b * bins * (n_x + n_y + n_w) * 3
    seconds = (
        _fft_seconds(transforms[pass_name], length)
        + products / rate
        + spectra_bytes / MEMORY_BYTES_PER_S
        + bins * G * CALL_SECONDS / 50
    )
    # with the compiled short transforms (T7, T8) and layout changes, the three passes of
    # lenet2 and big9x9 took 0.47-0.50 of the sum above (timed in one process): the
    # transforms no longer stream their arrays through memory at NumPy's strided rate.
    # With the compiled per-bin products, 0.43-0.47; the share stays 0.5, whose margin keeps
    # tiny layers off the FFT, where this sum misses its fixed costs (2x4x24² with 4 9x9
    # filters: 0.45 would pick the FFT's weight pass, 1.7 ms against 0.2 for the direct sums)
    return seconds * (FFT_COMPILED_SHARE if compiled else 1.0) + FFT_FIXED_SECONDS


def _winograd_tiled(geom: ConvGeometry, b: int, compiled: bool, m: int) -> float:
    """Winograd F(m x m, 3x3): (m + 2)² GEMMs over the tiles, the transforms' bytes."""
    positions = (m + 2) ** 2
    C_g, K_g = geom.C // geom.groups, geom.K // geom.groups
    # (WG8): dil_h·dil_w phases of ceil(Hp/dil_h) x ceil(Wp/dil_w) cells each, 3x3 dense
    Hp, Wp = geom.padded_hw
    phase_rows, phase_cols = -(-Hp // geom.dil_h) - 2, -(-Wp // geom.dil_w) - 2
    row_tiles = math.ceil(phase_cols / m)
    tiles = geom.dil_h * geom.dil_w * geom.N * math.ceil(phase_rows / m) * row_tiles
    flops = 2.0 * positions * tiles * geom.groups * K_g * C_g
    if compiled:  # compiled transforms, (m+2)² GEMMs over the whole batch
        rate = gemm_rate(K_g, C_g, tiles, itemsize=b)
        planes = geom.N * (geom.C * geom.H * geom.W + geom.K * geom.P * geom.Q)
        transform_bytes = (positions * tiles * (geom.C + geom.K) + planes) * b
        # the transforms vectorise over a row of tiles: short rows run below the copy rate
        efficiency = row_tiles / (row_tiles + 8.0)
        seconds = flops / rate + 2 * transform_bytes / (NATIVE_BYTES_PER_S * efficiency)
        if geom.dil_h > 1 or geom.dil_w > 1:  # (WG8) NumPy copies into and out of phases
            phase_bytes = geom.N * (geom.C * Hp * Wp + geom.K * geom.P * geom.Q) * b
            seconds += 6 * phase_bytes / MEMORY_BYTES_PER_S
        return seconds + positions * CALL_SECONDS
    rate = gemm_rate(K_g, C_g, tiles // max(geom.N, 1), itemsize=b)
    # the tile gathers and the three transforms each pass over (m+2)² values per tile
    transform_bytes = positions * tiles * (geom.C + geom.K) * b * 8
    return flops / rate + transform_bytes / MEMORY_BYTES_PER_S + 4 * positions * CALL_SECONDS


def _winograd(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    return _winograd_tiled(geom, b, compiled, 2)


def _winograd4(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    return _winograd_tiled(geom, b, compiled, 4)


ESTIMATORS: dict[str, Callable[[ConvGeometry, str, int, bool], float]] = {
    "direct": _direct,
    "im2col": _im2col,
    "fft": _fft,
    "winograd": _winograd,
    "winograd4": _winograd4,
    "depthwise": _depthwise,
}


def estimate(
    name: str, geom: ConvGeometry, pass_name: str, dtype: str, compiled: bool | None = None
) -> float:
    """The cost model's seconds for one algorithm and pass.

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (8, 64, 32, 32), (64, 64, 9, 9), None,
    ...                   stride=1, padding=4, dilation=1, groups=1)
    >>> estimate("fft", g, "forward", "float32") < estimate("im2col", g, "forward", "float32")
    True
    """
    itemsize = 8 if dtype == "float64" else 4
    if compiled is None:  # NumPy arrays on this install: the compiled kernels run if built
        compiled = _native.runs_compiled()
    plan = _cut(name, geom, pass_name, itemsize, compiled)
    if plan is None:
        return ESTIMATORS[name](geom, pass_name, itemsize, compiled)
    seconds = 0.0
    for part, count, whole_channels, whole_filters in conv2d_workspace.block_shapes(geom, plan):
        # blocks add into one result: y over channel blocks, dx over filter blocks, dw always
        adds = {"forward": not whole_channels, "data": not whole_filters}.get(pass_name, True)
        added = 2.0 * _result_bytes(part, pass_name, itemsize) / MEMORY_BYTES_PER_S if adds else 0
        seconds += count * (ESTIMATORS[name](part, pass_name, itemsize, compiled) + added)
    return seconds


def _result_bytes(geom: ConvGeometry, pass_name: str, itemsize: int) -> int:
    """Bytes of one pass's result: y (N, K, P, Q), dx (N, C, H, W) or dw (K, C/G, R, S)."""
    shape = {"forward": geom.y_shape, "data": geom.x_shape, "weight": geom.w_shape}[pass_name]
    return math.prod(shape) * itemsize


# ------------------------------------------------------------------------------ memory


CHUNKED = frozenset({"im2col", "fft", "winograd", "winograd4"})
"""The algorithms that run a layer past the workspace budget as blocks (conv2d_workspace)."""


@functools.lru_cache(maxsize=REMEMBERED_CHOICES)
def fft_lengths(geom: ConvGeometry) -> tuple[int, int]:
    """(T1): the FFT's transform sizes Lh >= Hp, Lw >= Wp with small prime factors."""
    import scipy.fft

    Hp, Wp = geom.padded_hw
    return (scipy.fft.next_fast_len(Hp, real=True), scipy.fft.next_fast_len(Wp, real=True))


def _im2col_workspace(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    """The columns (I1), or dcols (I4), N·C·R·S·P·Q; dy's columns (I6) where the input
    gradient takes them; nothing for a pointwise layer (x is its own column matrix)."""
    transposed = transposed_geometry(geom) if pass_name == "data" else None
    if transposed is not None and im2col_data_by_convolution(geom, b, compiled):
        geom = transposed
    if is_pointwise(geom):
        return 0.0
    return float(geom.N * geom.C * geom.R * geom.S * geom.P * geom.Q * b)


def _winograd_workspace(geom: ConvGeometry, pass_name: str, b: int, compiled: bool, m: int
                        ) -> float:  # fmt: skip
    """The transformed tiles of all images: V and M (forward), Z and M̄ (input gradient), Z
    and V (weight gradient), Z, V and M̄ (both gradients, "backward"), (m+2)² values per tile
    and channel; the phases' copies of x and y for a dilated kernel (WG8); twice the tiles
    for the einsum code (its tile gathers and intermediates)."""
    Hp, Wp = geom.padded_hw
    phase_rows, phase_cols = -(-Hp // geom.dil_h) - 2, -(-Wp // geom.dil_w) - 2
    tiles = geom.dil_h * geom.dil_w * geom.N * math.ceil(phase_rows / m) * math.ceil(
        phase_cols / m)  # fmt: skip
    channels = geom.C + geom.K + (geom.C if pass_name == "backward" else 0)
    workspace = (m + 2) ** 2 * tiles * channels * b * (1 if compiled else 2)
    if geom.dil_h > 1 or geom.dil_w > 1:
        workspace += 2 * geom.N * (geom.C * Hp * Wp + geom.K * geom.P * geom.Q) * b
    return float(workspace)


def _fft_workspace(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    """The spectra, Lh·(Lw/2+1) complex values per plane: x^ (N·C planes), the kernel's
    (K·C/G) twice (the products read it transposed, a copy) and y^ (N·K) for the forward;
    dy^, the kernel's and dx^ for the input gradient; dy^ twice (transposed for the
    products), x^ and dw^ for the weight gradient; all of these for both ("backward"); the
    real (Lh, Lw) planes of the larger side that the library transforms read or write; and
    the DFT matrix of the R·S taps (complex128, and its cast). In blocks, the sum of a
    block's dw^ over its image chunks is one more (uncounted: a block's kernel spectra are a
    part of its workspace, so the budget is passed by less than that part)."""
    Lh, Lw = fft_lengths(geom)
    bins = Lh * (Lw // 2 + 1)
    x_side, y_side, kernels = geom.N * geom.C, geom.N * geom.K, geom.K * (geom.C // geom.groups)
    spectra = {
        "forward": x_side + 2 * kernels + y_side,
        "data": y_side + kernels + x_side,
        "weight": 2 * y_side + x_side + kernels,
        "backward": 2 * y_side + 2 * x_side + 2 * kernels,
    }[pass_name]
    planes = Lh * Lw * geom.N * max(geom.C, geom.K)
    taps = bins * geom.R * geom.S * (16 + 2 * b)  # (T5), (T6)'s DFT matrix and its cast
    return float(2 * b * bins * spectra + b * planes + taps)


def _layer_copies(geom: ConvGeometry, pass_name: str, b: int, compiled: bool) -> float:
    """The direct sums' and depthwise's padded copies of x and of y (or dy)."""
    Hp, Wp = geom.padded_hw
    return float(geom.N * (geom.C * Hp * Wp + geom.K * geom.P * geom.Q) * b)


WORKSPACES: dict[str, Callable[[ConvGeometry, str, int, bool], float]] = {
    "direct": _layer_copies,
    "im2col": _im2col_workspace,
    "fft": _fft_workspace,
    "winograd": lambda g, pass_name, b, c: _winograd_workspace(g, pass_name, b, c, 2),
    "winograd4": lambda g, pass_name, b, c: _winograd_workspace(g, pass_name, b, c, 4),
    "depthwise": _layer_copies,
}
"""Workspace estimates (bytes) by algorithm: (geometry, pass, itemsize, compiled) -> bytes;
the passes "forward", "data", "weight", and "backward" (both gradients in one call)."""


def workspace_bytes(
    name: str, geom: ConvGeometry, pass_name: str, itemsize: int, compiled: bool
) -> float:
    """The workspace (bytes) of one algorithm's pass over the whole layer, unchunked.

    Examples
    --------
    >>> from convprop._shapes import conv_geometry
    >>> g = conv_geometry("conv2d", (64, 256, 128, 128), (256, 256, 3, 3), None,
    ...                   stride=1, padding=1, dilation=1, groups=1)
    >>> workspace_bytes("winograd", g, "forward", 4, True) / 2**30  # V and M: 8 GiB
    8.0
    """
    return WORKSPACES[name](geom, pass_name, itemsize, compiled)


def _workspace_of(name: str, pass_name: str, itemsize: int, compiled: bool
                  ) -> conv2d_workspace.Workspace:  # fmt: skip
    return lambda part: WORKSPACES[name](part, pass_name, itemsize, compiled)


def blocks(
    name: str, geom: ConvGeometry, pass_name: str, itemsize: int, compiled: bool
) -> tuple[conv2d_workspace.Block, ...] | None:
    """The blocks an algorithm runs a pass in (None: whole; always for the direct sums and
    depthwise, whose copies are the size of the layer's own arrays)."""
    if name not in CHUNKED:
        return None
    workspace = _workspace_of(name, pass_name, itemsize, compiled)
    return conv2d_workspace.blocks(geom, workspace, conv2d_workspace.budget(geom, itemsize))


def _cut(
    name: str, geom: ConvGeometry, pass_name: str, itemsize: int, compiled: bool
) -> conv2d_workspace.Cut | None:
    """How :func:`blocks` cuts the layer, without listing the blocks."""
    if name not in CHUNKED:
        return None
    workspace = _workspace_of(name, pass_name, itemsize, compiled)
    return conv2d_workspace.cut(geom, workspace, conv2d_workspace.budget(geom, itemsize))


def peak_workspace(
    name: str, geom: ConvGeometry, pass_name: str, itemsize: int, compiled: bool
) -> float:
    """The workspace (bytes) of an algorithm's largest block for a pass: what it needs after
    chunking."""
    if name not in CHUNKED:
        return workspace_bytes(name, geom, pass_name, itemsize, compiled)
    workspace = _workspace_of(name, pass_name, itemsize, compiled)
    return conv2d_workspace.peak(geom, workspace, conv2d_workspace.budget(geom, itemsize))


def memory_limit(geom: ConvGeometry, itemsize: int) -> float:
    """The most workspace ``auto`` lets a pass take: MEMORY_SLACK times the layer's workspace
    budget, or MEMORY_SLACK times the bytes of its own x and y where those are more (the
    direct sums' padded copies stay within it)."""
    layer = (geom.N * geom.C * geom.H * geom.W + geom.N * geom.K * geom.P * geom.Q) * itemsize
    return MEMORY_SLACK * max(float(conv2d_workspace.budget(geom, itemsize)), float(layer))


def within_memory(
    geom: ConvGeometry, pass_name: str, dtype: str, candidates: Sequence[str], compiled: bool
) -> list[str]:
    """The ``candidates`` whose peak workspace for the pass is within :func:`memory_limit`;
    where none is, those of the smallest peak."""
    itemsize = 8 if dtype == "float64" else 4
    peaks = {name: peak_workspace(name, geom, pass_name, itemsize, compiled)
             for name in candidates}  # fmt: skip
    limit = memory_limit(geom, itemsize)
    fitting = [name for name in candidates if peaks[name] <= limit]
    if fitting:
        return fitting
    least = min(peaks.values())
    return [name for name in candidates if peaks[name] == least]


def calibration() -> tuple[float, ...]:
    """The cost model's rates now: a choice made under other rates is not reused."""
    return _calibration()


def _calibration() -> tuple[float, ...]:
    """The rates and thresholds the estimates read: a choice remembered under others is not
    reused."""
    return (GEMM_FLOPS_PER_S, MEMORY_BYTES_PER_S, FFT_FLOPS_PER_S, CALL_SECONDS,
            NATIVE_FLOPS_PER_S, NATIVE_BYTES_PER_S, DIRECT_FLOPS_PER_S,
            DIRECT_WIDE_SPEEDUP, DIRECT_WIDE_WEIGHT_SPEEDUP, float(_native.wide_blockings_run()),
            FFT_COMPILED_SHARE, FFT_FIXED_SECONDS, REUSE_SHARE, BATCH_AS_COLUMNS_MAX_PQ,
            float(_LOSSY_ALLOWED), float(conv2d_workspace.WORKSPACE_BYTES),
            conv2d_workspace.WORKSPACE_SHARE, float(conv2d_workspace.WORKSPACE_MIN_BYTES),
            MEMORY_SLACK)  # fmt: skip


def cheapest(
    geom: ConvGeometry,
    pass_name: str,
    dtype: str,
    candidates: Sequence[str],
    compiled: bool | None = None,
) -> str:
    """The cost model's choice for one pass among ``candidates`` (those that accept the case).

    ``compiled`` says whether the compiled CPU kernels will run (False for CuPy arrays);
    None means: whenever they are built and enabled.
    """
    if compiled is None:  # NumPy arrays on this install: the compiled kernels run if built
        compiled = _native.runs_compiled()
    return _cheapest(geom, pass_name, dtype, compiled, tuple(candidates), _calibration())


@functools.lru_cache(maxsize=REMEMBERED_CHOICES)
def _cheapest(
    geom: ConvGeometry, pass_name: str, dtype: str, compiled: bool, candidates: tuple[str, ...],
    calibration: tuple[float, ...],
) -> str:  # fmt: skip
    """The cost model's choice, remembered per layer shape: a training step asks for the
    same layers every time, and the estimates cost more than a small layer's kernels."""
    del calibration  # part of the key only
    fitting = within_memory(geom, pass_name, dtype, candidates, compiled)
    return min(fitting, key=lambda name: estimate(name, geom, pass_name, dtype, compiled))


def prefer_forward_for_weight(
    geom: ConvGeometry, dtype: str, forward: str, weight: str, candidates: Sequence[str],
    compiled: bool | None = None,
) -> str:  # fmt: skip
    """The weight gradient's algorithm once the forward's is known: the forward's own when its
    estimate, charged REUSE_SHARE, is no dearer than the cost model's choice ``weight``.

    The forward's algorithm computes dw from work it saved (im2col's columns, Winograd's input
    tiles) and with one transform of dy for both gradients; and a compiled sum that follows
    the BLAS's products shares the cores with the BLAS threads still spinning after them
    (measured on res3x3: the direct sum took 36 ms after Winograd's products, 21 ms alone).
    Not the direct algorithm's NumPy taps, which keep nothing (a pointwise layer's weight
    gradient, whose forward is the compiled sum).
    Only within the memory limit (:func:`within_memory`); past the workspace budget the
    forward keeps nothing for the backward, so no share is taken off.
    """
    if forward == weight or forward not in candidates:
        return weight
    if compiled is None:
        compiled = _native.runs_compiled()
    if forward not in within_memory(geom, "weight", dtype, candidates, compiled):
        return weight
    itemsize = 8 if dtype == "float64" else 4
    if forward == "direct" and not direct_runs_compiled(geom, "weight", itemsize, compiled):
        return weight  # its NumPy taps keep nothing of the forward's (pw1x1: 4.3 against 3.4 ms)
    kept = _cut(forward, geom, "backward", itemsize, compiled) is None
    own = (REUSE_SHARE if kept else 1.0) * estimate(forward, geom, "weight", dtype, compiled)
    return forward if own <= estimate(weight, geom, "weight", dtype, compiled) else weight
