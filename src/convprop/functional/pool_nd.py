"""Max and average pooling over D = 1, 2 or 3 spatial axes, with dilation: the shared pairs.

The general form of convprop.functional.pool2d, one index per spatial axis. It serves
max_pool1d/3d and avg_pool1d/3d (convprop.functional.pool1d, pool3d), max_pool2d with
dilation, and LP pooling; pool2d keeps its compiled 2-D path for dilation 1.

Notation  x (N, C, *size)  y (N, C, *out);  per axis a: size_a, kernel_a, stride_a,
          pad_a (both sides, at most half the window), dil_a;
          tap t = the row-major index of (r_1 … r_D), r_a < kernel_a
Output size along each axis (PyTorch's rule; PS1, PS2 with dilation)
  span_a = size_a + 2·pad_a − dil_a·(kernel_a − 1) − 1
  out_a = ⌊span_a / stride_a⌋ + 1                                                       (PN1)
  ceil_mode: out_a = ⌈span_a / stride_a⌉ + 1, less 1 when (out_a − 1)·stride_a ≥ size_a + pad_a
                                                                                        (PN2)
Windows  (x_pad: pad_a cells before, pad_a + extra_a after, extra_a the ceil_mode overhang)
  window o reads x_pad[n, c, …, o_a·stride_a + r_a·dil_a, …] for every tap               (PN3)
  the loops visit only the taps that read a cell of x, each over the windows where it
  does, and build x_pad only while it is small (convprop.functional.pool_windows)        (PN5)
  every window reads a cell of x along every axis: some r_a with
  0 ≤ o_a·stride_a − pad_a + r_a·dil_a < size_a (dilation could skip them all)           (PN4)
Max pooling  (x_pad filled with −∞)
  y[n, c, o] = max over taps of x_pad at (PN3)                                          (MPN1)
  argmax[n, c, o] = the first tap in row-major order attaining (MPN1); a NaN wins        (MPN2)
  dx_pad[n, c, o·stride + r*·dil] += dy[n, c, o] with r* the arg-max tap;
  dx = dx_pad without its border                                                         (MPN3)
  PyTorch's index: idx[n, c, o] = the row-major flat index of the cell
  (o_a·stride_a − pad_a + r*_a·dil_a)_a in the plane x[n, c]                             (MPI1)
Average pooling  (dilation 1, x_pad filled with 0)
  divisor[o] = Π_a count_a[o_a], count_a as (AP1) along axis a; or divisor_override     (APN1)
  y[n, c, o] = Σ over taps of x_pad at (PN3) / divisor[o]                                (APN2)
  dx_pad[n, c, o·stride + r] += dy[n, c, o] / divisor[o] for every tap; dx cropped       (APN3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop._shapes import _is_int as is_int
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_extent, check_upstream, require_array
from convprop.functional.pool_windows import pool_windows

AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}
LETTERS = {1: "L", 2: "H, W", 3: "D, H, W"}


def ntuple(op: str, name: str, value: Any, dims: int, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a sequence of ``dims`` ints and check ``>= minimum``.

    Examples
    --------
    >>> ntuple("max_pool3d", "stride", 2, 3, minimum=1)
    (2, 2, 2)
    >>> ntuple("max_pool1d", "padding", (1,), 1, minimum=0)
    (1,)
    """
    if is_int(value):
        values = (int(value),) * dims
    elif isinstance(value, (tuple, list)) and len(value) == dims and all(map(is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        kind = {1: "a 1-tuple", 2: "a pair of ints"}.get(dims, f"{dims} ints")
        raise ParameterError(
            f"{op}: {name} must be an int or {kind}; expected e.g. 2 or {(2,) * dims}, "
            f"got {value!r}"
        )
    if min(values) < minimum:
        raise ParameterError(
            f"{op}: {name} must be >= {minimum}; expected values >= {minimum}, got {value!r}"
        )
    check_extent(op, name, values)
    return values


def flag(op: str, name: str, value: Any) -> bool:
    """A bool hyperparameter, refusing 0/1 and other stand-ins."""
    if not isinstance(value, bool):
        raise ParameterError(f"{op}: {name} must be a bool; expected True or False, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PoolNdGeometry:
    """The normalised shapes and hyperparameters of one pooling call, one entry per axis."""

    N: int
    C: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    out: tuple[int, ...]
    extra: tuple[int, ...]

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.N, self.C, *self.size)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.N, self.C, *self.out)


def _axis_out(op: str, axis: str, values: tuple[int, ...], ceil_mode: bool, shapes: str) -> int:
    """Equations (PN1), (PN2) and the check (PN4) along one axis."""
    size, kernel, stride, pad, dil = values
    if 2 * pad > kernel:
        raise ParameterError(
            f"{op}: padding {pad} is more than half the window {axis} {kernel}; expected "
            f"padding <= {kernel // 2}, got {pad} ({shapes})"
        )
    span = size + 2 * pad - dil * (kernel - 1) - 1
    if span < 0:
        raise ShapeError(
            f"{op}: padded input {axis} {size + 2 * pad} is smaller than the window {axis} "
            f"{dil * (kernel - 1) + 1}; expected an output size >= 1, got {span // stride + 1} "
            f"({axis} {size}, padding {pad}, kernel {kernel}, dilation {dil}; {shapes})"
        )
    out = span // stride + 1  # (PN1)
    if ceil_mode:
        out = -(-span // stride) + 1  # (PN2) ceil
        out = out - 1 if (out - 1) * stride >= size + pad else out  # (PN2)
    for o in range(out) if dil > 1 else ():  # with dilation 1, PN2 and the padding rule suffice
        start = o * stride - pad
        first = max(-(start // dil), 0)  # the first tap at or after cell 0 (PN4)
        if first >= kernel or start + first * dil >= size:
            raise ShapeError(
                f"{op}: window {o} along the {axis} reads only padding (cells {start}, "
                f"{start + dil}, … step {dil}); expected every window to read a cell of x, got "
                f"none ({axis} {size}, padding {pad}, kernel {kernel}, dilation {dil}; {shapes})"
            )
    return out


def pool_nd_geometry(
    op: str,
    x: Array,
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
) -> PoolNdGeometry:
    """Validate a pooling call over ``dims`` spatial axes and return its geometry.

    Raises
    ------
    DTypeError
        x is not a float32/float64 array.
    ShapeError
        x is not (N, C, *size) with dims axes, C or a spatial size is 0 (N may be 0), the
        window is larger than the padded input, or a dilated window reads only padding (PN4).
    ParameterError
        Non-positive kernel_size, stride or dilation, negative padding, padding above half
        the window, or a non-bool ceil_mode.
    """
    require_array(op, "x", x)
    check_float_dtype(op, x=x)
    shapes = f"x.shape={tuple(x.shape)}"
    if x.ndim != dims + 2:
        raise ShapeError(
            f"{op}: x must be {dims + 2}-D (N, C, {LETTERS[dims]}); expected {dims + 2} "
            f"dimensions, got {x.ndim} ({shapes})"
        )
    if min(x.shape[1:]) < 1:
        raise ShapeError(
            f"{op}: C, {LETTERS[dims]} must be >= 1 (only N may be 0); expected non-empty "
            f"planes, got {tuple(x.shape[1:])} ({shapes})"
        )
    kernel = ntuple(op, "kernel_size", kernel_size, dims, minimum=1)
    strides = kernel if stride is None else ntuple(op, "stride", stride, dims, minimum=1)
    pads = ntuple(op, "padding", padding, dims, minimum=0)
    dilations = ntuple(op, "dilation", dilation, dims, minimum=1)
    ceil_mode = flag(op, "ceil_mode", ceil_mode)
    size = tuple(int(v) for v in x.shape[2:])
    shapes += f", kernel_size={kernel}, stride={strides}, dilation={dilations}"
    per_axis = list(zip(size, kernel, strides, pads, dilations, strict=True))
    out = tuple(
        _axis_out(op, axis, values, ceil_mode, shapes)
        for axis, values in zip(AXES[dims], per_axis, strict=True)
    )
    extra = tuple(
        max((o - 1) * s + d * (k - 1) + 1 - n - 2 * p, 0)  # the ceil_mode overhang (PN3)
        for o, (n, k, s, p, d) in zip(out, per_axis, strict=True)
    )
    return PoolNdGeometry(
        N=int(x.shape[0]), C=int(x.shape[1]), size=size, kernel=kernel, stride=strides,
        padding=pads, dilation=dilations, out=out, extra=extra,
    )  # fmt: skip


def _axis_shape(dims: int, axis: int, length: int, lead: int = 0) -> tuple[int, ...]:
    """A shape that lays a vector along one spatial axis for broadcasting."""
    shape = [1] * (lead + dims)
    shape[lead + axis] = length
    return tuple(shape)


# ----------------------------------------------------------------------------- max pooling


@dataclass(frozen=True, slots=True)
class MaxPoolNdCache:
    """What max_pool_nd_backward needs.

    Fields
    ------
    argmax : Array (N, C, *out), int32 (int64 for a window of more than 2**31 - 1 taps)
        Tap index of each window's maximum (MPN2): N·C·Π out integers.
    geom : PoolNdGeometry
        The normalised shapes and hyperparameters.
    x_dtype : dtype
        The forward dtype (dx comes back in it).
    op : str
        The public op's name, for the messages of backward.
    """

    argmax: Array
    geom: PoolNdGeometry
    x_dtype: Any
    op: str


def tap_dtype(xp: ModuleType, kernel: tuple[int, ...]) -> Any:
    """The integer type of the arg-max taps (MPN2): int32, or int64 for a window of more
    than 2**31 - 1 taps (whose indices int32 cannot hold)."""
    return xp.int32 if math.prod(kernel) <= 2**31 - 1 else xp.int64


def _first_real_tap(xp: ModuleType, geom: PoolNdGeometry) -> Array:
    """(*out): each window's first tap on a cell of x (PN4), the arg-max of an all −∞ window."""
    dims = len(geom.size)
    tap = xp.zeros(geom.out, dtype=xp.int64)
    for a in range(dims):
        start = xp.arange(geom.out[a]) * geom.stride[a] - geom.padding[a]
        first = xp.maximum(-(start // geom.dilation[a]), 0)  # ⌈−start / dil⌉, at least 0
        tap = tap * geom.kernel[a] + first.reshape(_axis_shape(dims, a, geom.out[a]))
    return tap


def max_pool_nd_forward(
    op: str,
    x: Array,
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> tuple[Array, MaxPoolNdCache]:
    """Max pooling over ``dims`` axes, equations (MPN1), (MPN2); ``op`` names the caller.

    Ties go to the first maximum in row-major window order; a NaN always wins (the last NaN
    of a window, as PyTorch), so NaN propagates. Returns y (N, C, *out) and the cache.
    """
    geom = pool_nd_geometry(op, x, dims, kernel_size, stride, padding, dilation, ceil_mode)
    xp = get_xp(x)
    windows = pool_windows(geom)
    source = windows.source(xp, x, float("-inf"))  # x_pad (PN3): padding never wins; or x (PN5)
    y = xp.full(geom.y_shape, float("-inf"), dtype=x.dtype)
    argmax = xp.empty(geom.y_shape, dtype=tap_dtype(xp, geom.kernel))
    argmax[...] = _first_real_tap(xp, geom)  # (MPN2) where a window holds only −∞
    for t, outputs, cells in windows.cuts():
        value = source[cells]  # (PN3) or (PN5) -> the outputs' part of (N, C, *out)
        best, best_tap = y[outputs], argmax[outputs]  # views: written in place
        # Strictly greater: a later tap equal to the maximum keeps the first one (MPN2).
        wins = (value > best) | xp.isnan(value)
        xp.copyto(best, value, where=wins)  # (MPN1)
        xp.copyto(best_tap, t, where=wins)  # (MPN2)
    return y, MaxPoolNdCache(argmax=argmax, geom=geom, x_dtype=x.dtype, op=op)


def max_pool_nd_backward(dy: Array, cache: MaxPoolNdCache) -> Array:
    """Max pooling backward, equation (MPN3): dy (N, C, *out) -> dx (N, C, *size)."""
    geom = cache.geom
    check_upstream(f"{cache.op}_backward", dy, geom.y_shape, cache.x_dtype)
    xp = get_xp(dy, cache.argmax)
    windows = pool_windows(geom)
    d_source = xp.zeros(windows.source_shape(geom.x_shape), dtype=dy.dtype)  # dx_pad or dx
    for t, outputs, cells in windows.cuts():
        # Scatter-add: windows overlap when stride < kernel, so one cell can be the arg-max
        # of several windows (MPN3).
        d_source[cells] += xp.where(cache.argmax[outputs] == t, dy[outputs], 0)  # (MPN3)
    return windows.gradient(xp, d_source)  # (MPN3) dx_pad without its border


def window_indices(xp: ModuleType, argmax: Array, geom: PoolNdGeometry) -> Array:
    """PyTorch's indices (MPI1): tap arg-max (N, C, *out) -> flat cell of x[n, c], int64."""
    dims = len(geom.size)
    taps = argmax.astype(xp.int64)
    offsets = []
    for k in reversed(geom.kernel):  # unravel t into (r_1 … r_D), row-major
        offsets.append(taps % k)
        taps = taps // k
    offsets.reverse()
    index = xp.zeros(argmax.shape, dtype=xp.int64)
    for a in range(dims):
        start = xp.arange(geom.out[a]) * geom.stride[a] - geom.padding[a]
        start = start.reshape(_axis_shape(dims, a, geom.out[a], lead=2))
        cell = start + offsets[a] * geom.dilation[a]  # (MPI1) the cell's coordinate on axis a
        index = index * geom.size[a] + cell  # (MPI1) row-major flattening
    return index


def max_pool_nd_indices(cache: MaxPoolNdCache) -> Array:
    """PyTorch's ``return_indices`` (MPI1): (N, C, *out) int64 flat indices into x[n, c]."""
    return window_indices(get_xp(cache.argmax), cache.argmax, cache.geom)


# ------------------------------------------------------------------------- average pooling


@dataclass(frozen=True, slots=True)
class AvgPoolNdCache:
    """What avg_pool_nd_backward needs.

    Fields
    ------
    divisor : Array (*out)
        The divisor of each window (APN1), in the forward dtype: Π out elements.
    geom : PoolNdGeometry
        The normalised shapes and hyperparameters.
    op : str
        The public op's name, for the messages of backward.
    """

    divisor: Array
    geom: PoolNdGeometry
    op: str


def divisor_override_value(op: str, value: Any) -> int | None:
    """None, or a nonzero int (PyTorch accepts negative divisors too)."""
    if value is None:
        return None
    if not is_int(value) or int(value) == 0:
        raise ParameterError(
            f"{op}: divisor_override must be a nonzero int or None; expected e.g. 4, got {value!r}"
        )
    check_extent(op, "divisor_override", (abs(int(value)),))
    return int(value)


def _divisor(
    xp: ModuleType, geom: PoolNdGeometry, count_include_pad: bool, override: int | None
) -> Array:
    """Equation (APN1) -> (*out), integers."""
    if override is not None:
        return xp.full(geom.out, override, dtype=xp.int64)  # (APN1)
    dims = len(geom.size)
    divisor = xp.ones(geom.out, dtype=xp.int64)
    for a in range(dims):
        start = xp.arange(geom.out[a]) * geom.stride[a] - geom.padding[a]  # (AP1) on axis a
        end = xp.minimum(start + geom.kernel[a], geom.size[a] + geom.padding[a])  # (AP1)
        if count_include_pad:
            count = end - start  # (AP1)
        else:
            count = xp.minimum(end, geom.size[a]) - xp.maximum(start, 0)  # (AP1)
        divisor = divisor * count.reshape(_axis_shape(dims, a, geom.out[a]))  # (APN1)
    return divisor


def avg_pool_nd_forward(
    op: str,
    x: Array,
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: Any,
) -> tuple[Array, AvgPoolNdCache]:
    """Average pooling over ``dims`` axes, equations (APN1), (APN2); ``op`` names the caller.

    Returns y (N, C, *out), in x's dtype, and the cache.
    """
    geom = pool_nd_geometry(op, x, dims, kernel_size, stride, padding, 1, ceil_mode)
    count_include_pad = flag(op, "count_include_pad", count_include_pad)
    override = divisor_override_value(op, divisor_override)
    xp = get_xp(x)
    windows = pool_windows(geom)
    source = windows.source(xp, x, 0.0)  # x_pad (PN3), or x itself (PN5)
    total = xp.zeros(geom.y_shape, dtype=x.dtype)
    for _, outputs, cells in windows.cuts():
        sums = total[outputs]  # a view: the windows this tap reads x for
        sums += source[cells]  # (APN2) window sums -> (N, C, *out)
    divisor = _divisor(xp, geom, count_include_pad, override).astype(x.dtype)  # (APN1)
    return total / divisor, AvgPoolNdCache(divisor=divisor, geom=geom, op=op)  # (APN2)


def avg_pool_nd_backward(dy: Array, cache: AvgPoolNdCache) -> Array:
    """Average pooling backward, equation (APN3), the adjoint of (APN2)."""
    geom = cache.geom
    check_upstream(f"{cache.op}_backward", dy, geom.y_shape, cache.divisor.dtype)
    xp = get_xp(dy, cache.divisor)
    share = dy / cache.divisor  # (APN3) -> (N, C, *out)
    windows = pool_windows(geom)
    d_source = xp.zeros(windows.source_shape(geom.x_shape), dtype=dy.dtype)  # dx_pad or dx
    for _, outputs, cells in windows.cuts():
        d_source[cells] += share[outputs]  # (APN3) scatter-add: windows may overlap
    return windows.gradient(xp, d_source)  # (APN3) dx_pad without its border
