"""The compiled CPU kernels (``convprop._kernels``) and the threads that run them.

Some loops cost NumPy several passes over memory per kernel tap: the im2col copy and its
col2im scatter-add (I1, I5), depthwise convolution (F1, B2, B3 with C/G = 1) and max
pooling (MP1-MP3); others are chains of element-wise NumPy operations, each a pass of its
own: the bias (F1, B1), ReLU (A1-A3), an Adam step (ADAM2-ADAM7), Winograd's tile
transforms and the FFT's layout changes. ``_kernels.c`` computes each of them in one pass,
from the same equations, over a range of independent planes (or elements), without the
GIL, on a team of C threads that claim chunks of the range in turn (``_kernels_team.h``);
this module decides how many threads the work pays for and allocates the outputs.

The kernels are optional: where the extension was not built (no C compiler at install
time) :data:`AVAILABLE` is False and every caller keeps to its NumPy code, which gives the
same results. They serve only C-contiguous float32/float64 NumPy arrays; CuPy arrays never
reach them. :func:`disabled` turns them off for a block (the tests compare both paths).

Threads: ``CONVPROP_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process
may run on. An idle worker spins for 0.1 ms, then watches for 3 ms more while yielding
the CPU to other threads, before it sleeps; ``OMP_WAIT_POLICY=passive`` (read at import)
makes it sleep at once.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy

from convprop import _blas
from convprop.backend import num_threads

_kernels: Any
try:  # the C extension built by setup.py; optional
    _kernels = importlib.import_module("convprop._kernels")
except ImportError:  # pragma: no cover - depends on the install
    _kernels = None

AVAILABLE: bool = _kernels is not None
"""True when the compiled kernels were built and imported."""

_state = threading.local()

MIN_WORK_PER_THREAD = 2**20
"""Below this much work per thread, one thread is faster than sharing the call.

Work is counted in elements streamed through memory, weighted by the arithmetic a kernel
does per element (see each caller). A worker of the kernels' team that finished a call
less than 0.1 ms ago joins the next within microseconds; one that slept takes a wake-up of
0.05-0.2 ms on the machines measured, and a pure copy gains little from a second core
whose memory bandwidth it shares: the element-wise passes over a layer's activations stay
on one thread, and only the larger or arithmetic-heavy kernels are split."""


def enabled() -> bool:
    """True when the kernels are built and not turned off by :func:`disabled`."""
    return AVAILABLE and not getattr(_state, "off", False)


@contextmanager
def disabled() -> Iterator[None]:
    """Run a block with the NumPy code only (in this thread)."""
    before = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = before


def serves(*arrays: Any) -> bool:
    """True when the kernels are enabled and every array is a float32/float64 NumPy array."""
    return enabled() and all(
        type(a) is numpy.ndarray
        and a.dtype in (numpy.float32, numpy.float64)
        and a.flags.aligned  # C reads whole elements; a misaligned view takes the NumPy code
        for a in arrays
    )


MIN_PRODUCT_WORK = 2**20
"""Multiply-adds per product below which :func:`add_products` declines: a call through ctypes
costs a few microseconds, and a stack of small products and one sum cost little more."""


def add_products(c: Any, a: Any, b: Any) -> bool:
    """c += Σ_i a[i] · b[i]ᵀ in place, each product added into c by NumPy's BLAS (β = 1;
    ``convprop._blas``). c (M, Nc), a (I, M, L), b (I, Nc, L).

    Returns False, with ``c`` untouched, where the sum is left to the caller: inside
    :func:`disabled`, without a usable BLAS, for other arrays or layouts, or for products of
    fewer than :data:`MIN_PRODUCT_WORK` multiply-adds each.
    """
    if getattr(_state, "off", False) or a.ndim != 3 or c.ndim != 2:
        return False
    if c.shape[0] * c.shape[1] * a.shape[2] < MIN_PRODUCT_WORK:
        return False
    return _blas.add_products(c, a, b)


def serves_complex(*arrays: Any) -> bool:
    """True when the kernels are enabled and every array is a complex64/complex128 NumPy
    array (the FFT's spectra)."""
    return enabled() and all(
        type(a) is numpy.ndarray and a.dtype in _COMPLEX and a.flags.aligned for a in arrays
    )


def parallel(kernel: Callable[..., Any], planes: int, work: int, *args: Any) -> Any:
    """Call ``kernel(*args, 0, planes, threads)``: the kernel runs the planes ``[0, planes)``
    on ``threads`` threads of the compiled team, which claim chunks of them in turn.

    ``work`` (see :data:`MIN_WORK_PER_THREAD`) decides how many threads are worth waking,
    never more than :func:`num_threads` or ``planes``. Returns the kernel's result.
    """
    return kernel(*args, 0, planes, threads_for(planes, work))


def threads_for(planes: int, work: int) -> int:
    """Threads worth waking for ``planes`` independent pieces of ``work`` in all: at least
    one, at most :func:`num_threads` and ``planes``."""
    return max(1, min(num_threads(), planes, work // MIN_WORK_PER_THREAD))


def _contiguous(a: Any) -> Any:
    return numpy.ascontiguousarray(a)


# ----------------------------------------------------------------- convolution kernels


def conv_geometry_tuple(geom: Any) -> tuple[int, ...]:
    """The 15 integers the C kernels read from a :class:`convprop._shapes.ConvGeometry`."""
    return (
        geom.N, geom.C, geom.H, geom.W, geom.K, geom.R, geom.S, geom.P, geom.Q,
        geom.stride_h, geom.stride_w, geom.dil_h, geom.dil_w, geom.pad_top, geom.pad_left,
    )  # fmt: skip


def im2col(x: Any, geom: Any, wide: bool = False) -> Any:
    """(I1) x (N, C, H, W) -> cols (N, C, R, S, P, Q), zeros where a tap reads padding; with
    ``wide``, the same values as (C, R, S, N, P, Q), the batch as columns (I7)."""
    x = _contiguous(x)
    N, C, R, S, P, Q = geom.N, geom.C, geom.R, geom.S, geom.P, geom.Q
    shape = (C, R, S, N, P, Q) if wide else (N, C, R, S, P, Q)
    cols = numpy.empty(shape, dtype=x.dtype)
    g = conv_geometry_tuple(geom)
    _kernels.im2col(x, cols, g, 0, N * C, threads_for(N * C, cols.size), wide)
    return cols


def col2im(dcols: Any, geom: Any, out: Any = None) -> Any:
    """(I5) dcols (N, C·R·S·P·Q in any grouping) -> dx (N, C, H, W), the adjoint of (I1),
    written into ``out`` where it is a C-contiguous array of that shape and dtype."""
    dcols = _contiguous(dcols)
    shape = (geom.N, geom.C, geom.H, geom.W)
    fits = (
        type(out) is numpy.ndarray and out.shape == shape and out.dtype == dcols.dtype
        and out.flags.c_contiguous and out.flags.writeable and out.flags.aligned
    )  # fmt: skip
    if out is not None and not fits:
        out[...] = col2im(dcols, geom)
        return out
    dx = out if out is not None else numpy.empty(shape, dtype=dcols.dtype)
    g = conv_geometry_tuple(geom)
    parallel(_kernels.col2im, geom.N * geom.C, dcols.size, dcols, dx, g)
    return dx


def direct_blocking(geom: Any, itemsize: int) -> str:
    """The register blocking of :func:`direct_forward` for a layer: ``"filters"`` (4 filters
    by 16 columns, stride-1 columns only) or ``"columns"`` (6 columns by 16 filters; 8 for
    float64 in place of 16)."""
    return str(_kernels.direct_blocking(conv_geometry_tuple(geom), geom.groups, itemsize))


def direct_forward(x: Any, w: Any, geom: Any, b: Any = None) -> Any:
    """(F1) as its sum: x (N, C, H, W), w (K, C/G, R, S), b (K,) or None -> y (N, K, P, Q),
    vectorised over filters or output columns in registers, one output row per task."""
    x, w = _contiguous(x), _contiguous(w)
    bias = None if b is None else numpy.ascontiguousarray(b, dtype=x.dtype)
    y = numpy.empty((geom.N, geom.K, geom.P, geom.Q), dtype=x.dtype)
    rows = geom.N * geom.groups * geom.P
    work = geom.N * geom.K * (geom.C // geom.groups) * geom.R * geom.S * geom.P * geom.Q
    g = conv_geometry_tuple(geom)
    parallel(_kernels.direct_forward, rows, work, x, w, bias, y, g, geom.groups)
    return y


DIRECT_PARTIALS_BYTES = 2**25
"""At most this much memory for the slices' partial sums of :func:`direct_weight` (32 MB)."""


def direct_weight_slices(geom: Any, itemsize: int) -> int:
    """Slices of output rows whose partial sums :func:`direct_weight` keeps apart: 16 (a few
    per thread, so that a slow core takes fewer), fewer where the partials would pass
    :data:`DIRECT_PARTIALS_BYTES`; a function of the geometry only, so the result is."""
    rows: int = geom.N * geom.groups * geom.P
    taps: int = (geom.C // geom.groups) * geom.R * geom.S
    per_slice = geom.groups * (taps + 5) * (geom.K // geom.groups + 16) * itemsize
    return max(1, min(rows, 16, int(DIRECT_PARTIALS_BYTES // per_slice)))


def direct_weight(dy: Any, x: Any, geom: Any) -> Any:
    """(B2) as (DS3): dy (N, K, P, Q), x (N, C, H, W) -> dw (K, C/G, R, S), summed over the
    output rows in slices whose partials are added in a fixed order (the same bits on any
    number of threads)."""
    dy, x = _contiguous(dy), _contiguous(x)
    dw = numpy.empty((geom.K, geom.C // geom.groups, geom.R, geom.S), dtype=dy.dtype)
    slices = direct_weight_slices(geom, dy.dtype.itemsize)
    work = geom.N * geom.K * (geom.C // geom.groups) * geom.R * geom.S * geom.P * geom.Q
    g = conv_geometry_tuple(geom)
    parallel(_kernels.direct_weight, slices, work, dy, x, dw, g, geom.groups, slices)
    return dw


def _depthwise(
    kernel: Any, a: Any, b: Any, bias: Any, out_shape: tuple[int, ...], planes: int, geom: Any
) -> Any:
    """Run one depthwise kernel on inputs ``a``, ``b`` into a new ``out_shape`` array."""
    a, b = _contiguous(a), _contiguous(b)
    out = numpy.empty(out_shape, dtype=a.dtype)
    work = geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S
    parallel(kernel, planes, work, a, b, bias, out, conv_geometry_tuple(geom))
    return out


def depthwise_forward(x: Any, w: Any, geom: Any, b: Any = None) -> Any:
    """(F1) with C/G = 1: x (N, C, H, W), w (K, 1, R, S), b (K,) or None -> y (N, K, P, Q);
    the bias is added as the outputs are written."""
    bias = None if b is None else numpy.ascontiguousarray(b, dtype=x.dtype)
    y_shape = (geom.N, geom.K, geom.P, geom.Q)
    return _depthwise(_kernels.depthwise_forward, x, w, bias, y_shape, geom.N * geom.K, geom)


def depthwise_backward_data(dy: Any, w: Any, geom: Any) -> Any:
    """(B3) with C/G = 1: dy (N, K, P, Q), w (K, 1, R, S) -> dx (N, C, H, W)."""
    x_shape = (geom.N, geom.C, geom.H, geom.W)
    kernel = _kernels.depthwise_backward_data
    return _depthwise(kernel, dy, w, None, x_shape, geom.N * geom.C, geom)


def depthwise_backward_weight(dy: Any, x: Any, geom: Any) -> Any:
    """(B2) with C/G = 1: dy (N, K, P, Q), x (N, C, H, W) -> dw (K, 1, R, S)."""
    dy, x = _contiguous(dy), _contiguous(x)
    dw = numpy.empty((geom.K, 1, geom.R, geom.S), dtype=dy.dtype)
    # the kernel shares out the N·K planes (in memory order), not the K filters
    threads = threads_for(geom.N * geom.K, geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S)
    g = conv_geometry_tuple(geom)
    _kernels.depthwise_backward_weight(dy, x, None, dw, g, 0, geom.K, threads)
    return dw


def depthwise_backward(dy: Any, x: Any, w: Any, geom: Any) -> tuple[Any, Any]:
    """(B3) and (B2) with C/G = 1 and stride 1, in one pass over dy: dy (N, K, P, Q),
    x (N, C, H, W), w (K, 1, R, S) -> dx (N, C, H, W), dw (K, 1, R, S); the same bits as
    :func:`depthwise_backward_data` and :func:`depthwise_backward_weight`."""
    dy, x, w = _contiguous(dy), _contiguous(x), _contiguous(w)
    dx = numpy.empty((geom.N, geom.C, geom.H, geom.W), dtype=dy.dtype)
    dw = numpy.empty((geom.K, 1, geom.R, geom.S), dtype=dy.dtype)
    planes = geom.N * geom.C
    threads = threads_for(planes, 2 * geom.N * geom.K * geom.P * geom.Q * geom.R * geom.S)
    _kernels.depthwise_backward(dy, x, w, dx, dw, conv_geometry_tuple(geom), threads)
    return dx, dw


def add_bias(y: Any, b: Any) -> None:
    """(F1)'s bias term in place: y (N, K, P, Q) C-contiguous, b (K,) of y's dtype."""
    N, K = y.shape[0], y.shape[1]
    PQ = y.size // max(N * K, 1)
    b = numpy.ascontiguousarray(b, dtype=y.dtype)
    work = 2 * y.size  # a load, an add and a store per element: 1.55x on two threads at 1.6M
    parallel(_kernels.add_bias, N * K, work, y, b, K, PQ)


def bias_grad(dy: Any) -> Any:
    """(B1): dy (N, K, P, Q) -> db (K,), each filter's sum taken in float64."""
    dy = _contiguous(dy)
    N, K = dy.shape[0], dy.shape[1]
    db = numpy.empty(K, dtype=dy.dtype)
    work = 4 * dy.size  # a widening to float64 and an add per element: 1.4-1.65x on two threads
    # the kernel shares out the N·K planes (in memory order), not the K filters
    threads = threads_for(N * K, work)
    _kernels.bias_grad(dy, db, K, dy.size // max(N * K, 1), 0, K, threads)
    return db


# ------------------------------------------------------------------------- activations


def relu_forward(x: Any) -> Any:
    """(A2): y = max(x, 0) element by element, as NumPy's maximum (NaN kept, -0 -> +0)."""
    x = _contiguous(x).reshape(x.shape)  # ascontiguousarray makes a 0-d array 1-d
    y = numpy.empty_like(x)
    parallel(_kernels.relu_forward, x.size, x.size, x, y)
    return y


def relu_backward(dy: Any, x: Any) -> Any:
    """(A1), (A3): dx = dy * (x > 0), the same bits as NumPy's product with the booleans."""
    dy, x = _contiguous(dy).reshape(dy.shape), _contiguous(x)
    dx = numpy.empty_like(dy)
    parallel(_kernels.relu_backward, dy.size, dy.size, dy, x, dx)
    return dx


# ------------------------------------------------------------------------ optimisers


def adam_step(p: Any, g: Any, m: Any, v: Any, v_max: Any | None, scalars: tuple[Any, ...]) -> None:
    """(ADAM2)-(ADAM7) of ``convprop.optim.adam`` in place, one pass over the elements.

    p, m, v (and v_max) are written: each must be a C-contiguous array of g's shape and
    dtype. ``scalars``: (decay, l2, weight, beta2, one_minus_beta2, bc2_sqrt, eps,
    step_size, maximize, amsgrad, decoupled), as the C kernel documents them.
    """
    parallel(_kernels.adam_step, p.size, 2 * p.size, p, _contiguous(g), m, v, v_max, scalars)


# ------------------------------------------ Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms


def _tiles(geom: Any, m: int) -> tuple[int, int]:
    return -(-geom.P // m), -(-geom.Q // m)


_WINOGRAD_KERNELS = {
    2: ("winograd_input", "winograd_output", "winograd_dy", "winograd_dx"),
    4: ("winograd4_input", "winograd4_output", "winograd4_dy", "winograd4_dx"),
}


def _wino_kernel(m: int, role: int) -> Any:
    """The compiled transform ``role`` (0 input, 1 output, 2 dy, 3 dx) for m x m output tiles."""
    if m not in _WINOGRAD_KERNELS:
        raise ValueError(f"winograd: output tiles of 2x2 or 4x4; expected m in (2, 4), got {m!r}")
    return getattr(_kernels, _WINOGRAD_KERNELS[m][role])


def _tile_transform(
    kernel: Any, a: Any, out_shape: tuple[int, ...], planes: int, geom: Any, m: int
) -> Any:
    """Run one Winograd transform kernel over ``planes`` planes into a new array."""
    a = _contiguous(a)
    out = numpy.empty(out_shape, dtype=a.dtype)
    Th, Tw = _tiles(geom, m)
    work = 4 * max(a.size, out.size)  # a few additions per value of a tile
    parallel(kernel, planes, work, a, out, conv_geometry_tuple(geom), Th, Tw)
    return out


def _tiled(channels: int, geom: Any, m: int) -> tuple[int, int, int]:
    """The transformed layout ((m+2)², channels, N·T)."""
    Th, Tw = _tiles(geom, m)
    return ((m + 2) ** 2, channels, geom.N * Th * Tw)


def winograd_input(x: Any, geom: Any, m: int = 2) -> Any:
    """(WG2): x (N, C, H, W) -> V ((m+2)², C, N·T), T = ceil(P/m)·ceil(Q/m) tiles per image;
    m = 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) (WG9)."""
    V_shape = _tiled(geom.C, geom, m)
    return _tile_transform(_wino_kernel(m, 0), x, V_shape, geom.N * geom.C, geom, m)


def winograd_output(M: Any, geom: Any, m: int = 2) -> Any:
    """(WG4): M ((m+2)², K, N·T) -> y (N, K, P, Q)."""
    y_shape = (geom.N, geom.K, geom.P, geom.Q)
    return _tile_transform(_wino_kernel(m, 1), M, y_shape, geom.N * geom.K, geom, m)


def winograd_dy(dy: Any, geom: Any, m: int = 2) -> Any:
    """(WG5): dy (N, K, P, Q) -> Z ((m+2)², K, N·T), dy zero-extended to whole tiles."""
    Z_shape = _tiled(geom.K, geom, m)
    return _tile_transform(_wino_kernel(m, 2), dy, Z_shape, geom.N * geom.K, geom, m)


def winograd_dx(M_bar: Any, geom: Any, m: int = 2) -> Any:
    """(WG6): M̄ ((m+2)², C, N·T) -> dx (N, C, H, W), overlapping tiles added."""
    x_shape = (geom.N, geom.C, geom.H, geom.W)
    return _tile_transform(_wino_kernel(m, 3), M_bar, x_shape, geom.N * geom.C, geom, m)


# ------------------------------------------------- layout changes of the FFT algorithm


def spatial_to_planes(
    src: Any, rows: int, cols: int, start: tuple[int, int], step: tuple[int, int]
) -> Any:
    """src (Lh, Lw, M) -> (M, rows, cols): out[m, i, j] = src[r0 + i*sh, c0 + j*sw, m]."""
    src = _contiguous(src)
    Lh, Lw = src.shape[0], src.shape[1]
    M = src.size // (Lh * Lw)
    out = numpy.empty((M, rows, cols), dtype=src.dtype)
    layout = (Lh, Lw, M, rows, cols, *start, *step)
    parallel(_kernels.spatial_to_planes, M, out.size, src, out, layout)
    return out


def planes_to_spatial(src: Any, out: Any, start: tuple[int, int], step: tuple[int, int]) -> None:
    """out[r0 + i*sh, c0 + j*sw, m] = src[m, i, j] for src (M, rows, cols), out (Lh, Lw, M)
    C-contiguous; the other cells of ``out`` keep their values."""
    src = _contiguous(src)
    M, rows, cols = src.shape[0], src.shape[1], src.shape[2]
    layout = (out.shape[0], out.shape[1], M, rows, cols, *start, *step)
    parallel(_kernels.planes_to_spatial, M, src.size, src, out, layout)


def dft_small_forward(planes: Any, coef: Any, Lh: int, Wb: int, conj: bool = False) -> Any:
    """(T7) in one compiled pass per block of planes: planes (M, h, w) -> the half spectra
    (Lh·Wb, M) complex, conjugated with ``conj``; ``coef`` holds the DFT matrices Cw, Sw
    (Wb × w) then Ch, Sh (Lh × h), flattened, of the planes' dtype."""
    planes = _contiguous(planes)
    M, h, w = planes.shape
    spec = numpy.empty((Lh * Wb, M), dtype=numpy.result_type(planes.dtype, numpy.complex64))
    dims = (M, h, w, Lh, Wb, int(conj))
    work = 8 * spec.size * (h + w)  # the multiply-adds of the two products
    coef = _contiguous(coef)
    parallel(_kernels.dft_small_forward, M, work, planes, coef, spec.view(planes.dtype), dims)
    return spec


def _stored(m: Any) -> tuple[Any, int]:
    """A stack of matrices (I, r, c) as the kernels read it: (the C-contiguous array, 0), or
    (its C-contiguous transpose (I, c, r), 1) where ``m`` is a transposed view of one."""
    if m.flags.c_contiguous and m.flags.aligned:
        return m, 0
    turned = m.transpose(0, 2, 1)
    if turned.flags.c_contiguous and turned.flags.aligned:
        return turned, 1
    return numpy.require(m, requirements=("C", "A")), 0  # a copy, aligned


def bin_products(a: Any, b: Any) -> Any:
    """(T2)-(T4)'s products per frequency bin, ``a @ b`` for complex stacks a (I, M, L) and
    b (I, L, Nc) of one dtype, each bin computed whole by one thread (_kernels_bins.h).
    Either may be a transposed view (``x.transpose(0, 2, 1)``) of a C-contiguous stack: it
    is read in place. Returns y (I, M, Nc), C-contiguous."""
    I, M, L = a.shape
    Nc = b.shape[2]
    if b.shape[:2] != (I, L) or a.dtype != b.dtype or a.dtype not in _COMPLEX:
        raise ValueError(
            f"bin_products: expected complex stacks (I, M, L) and (I, L, Nc) of one dtype; "
            f"got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    real = _COMPLEX[a.dtype]
    y = numpy.empty((I, M, Nc), dtype=a.dtype)
    if y.size == 0 or L == 0:
        y[...] = 0  # an empty sum
        return y
    a_stored, at = _stored(a)
    b_stored, bt = _stored(b)
    dims = (I, M, L, Nc, at, bt)
    work = 4 * I * M * L * Nc  # real multiply-adds
    parallel(_kernels.bin_products, I, work, a_stored.view(real), b_stored.view(real),
             y.view(real), dims)  # fmt: skip
    return y


_COMPLEX = {
    numpy.dtype(numpy.complex64): numpy.dtype(numpy.float32),
    numpy.dtype(numpy.complex128): numpy.dtype(numpy.float64),
}


def dft_small_inverse(spec: Any, coef: Any, Lh: int, h: int, w: int, conj: bool = False) -> Any:
    """(T8) in one compiled pass per block of planes: the half spectra (Lh·Wb, M) complex
    (conjugated first with ``conj``) -> planes (M, h, w); ``coef`` holds Ch, Sh (Lh × h) then
    E (w × 2·Wb), flattened, of the spectra's real dtype."""
    spec = _contiguous(spec)
    real = spec.real.dtype
    F, M = spec.shape
    planes = numpy.empty((M, h, w), dtype=real)
    dims = (M, h, w, Lh, F // Lh, int(conj))
    work = 8 * spec.size * (h + w)
    coef = _contiguous(coef)
    parallel(_kernels.dft_small_inverse, M, work, spec.view(real), coef, planes, dims)
    return planes


# ---------------------------------------------------------------------- max pooling


def _pool_tuple(geom: Any) -> tuple[int, ...]:
    return (
        geom.N, geom.C, geom.H, geom.W, geom.R, geom.S, geom.P, geom.Q,
        geom.stride_h, geom.stride_w, geom.pad_h, geom.pad_w,
    )  # fmt: skip


def maxpool_forward(x: Any, geom: Any) -> tuple[Any, Any]:
    """(MP1), (MP2): x (N, C, H, W) -> y (N, C, P, Q) and argmax (N, C, P, Q) int32 taps."""
    x = _contiguous(x)
    y = numpy.empty((geom.N, geom.C, geom.P, geom.Q), dtype=x.dtype)
    argmax = numpy.empty(y.shape, dtype=numpy.int32)
    work = 4 * y.size * geom.R * geom.S  # a comparison and two selects per tap
    parallel(_kernels.maxpool_forward, geom.N * geom.C, work, x, y, argmax, _pool_tuple(geom))
    return y, argmax


def maxpool_backward(dy: Any, argmax: Any, geom: Any) -> Any:
    """(MP3): dy and argmax (N, C, P, Q) -> dx (N, C, H, W).

    Raises
    ------
    ValueError
        If an arg-max entry points outside its window's real cells (a cache not made by
        the forward pass).
    """
    dy = _contiguous(dy)
    argmax = numpy.ascontiguousarray(argmax, dtype=numpy.int32)
    dx = numpy.empty((geom.N, geom.C, geom.H, geom.W), dtype=dy.dtype)
    work = 4 * (dx.size + dy.size)  # index arithmetic and a scattered add per entry
    invalid = parallel(
        _kernels.maxpool_backward, geom.N * geom.C, work, dy, argmax, dx, _pool_tuple(geom)
    )
    if invalid:
        raise ValueError(
            f"max_pool2d_backward: {invalid} arg-max entries point outside their windows; "
            f"expected tap indices from max_pool2d_forward, got a cache of shape {argmax.shape}"
        )
    return dx
