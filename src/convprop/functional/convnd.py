"""Convolution and transposed convolution in any number of spatial dimensions, by im2col.

The 2-D case has its own fast algorithms (convprop.functional.conv2d); this module is the
N-d derivation, used for 3-D (and any D ≥ 1), the same equations with one index per axis.
Notation  D spatial axes;  x (N, C, *in)  w (K, C/G, *k)  b (K,)  y (N, K, *out)
          per axis i: stride s_i, dilation d_i, padding (before_i, after_i);  T = Π k_i taps
  out_i = (in_i + before_i + after_i − d_i·(k_i − 1) − 1) // s_i + 1   (S1, per axis)   (CN1)
  cols[n, (c, t), p] = x_pad[n, c, p·s + t·d],  tap t = (t_1 … t_D), output p = (p_1 … p_D)
                                                                                        (CN2)
  y[n, g] = W[g] · cols[n, g] + b,  W[g] = w of group g viewed as (K/G, C/G·T)         (CN3)
Backward  (dy has the shape of y)
  db = Σ_{n, p} dy                                                                      (CN4)
  dW[g] = Σ_n dy[n, g] · cols[n, g]ᵀ                                                    (CN5)
  dcols[n, g] = W[g]ᵀ · dy[n, g];  dx = col2im(dcols) without the padding: col2im adds
  every column entry back at the x_pad position (CN2) read it from, its adjoint         (CN6)
Transposed convolution  x (N, C_in, *in)  w (C_in, C_out/G, *k)  y (N, C_out, *out)
  out_i = (in_i − 1)·s_i − 2·pad_i + d_i·(k_i − 1) + output_padding_i + 1              (CTN1)
  y = (CN6) applied to x with w, plus b: conv's input gradient                         (CTN2)
  dx = (CN3) applied to dy with w (no bias);  dw = (CN5) with x and dy exchanged;
  db = Σ dy                                                                             (CTN3)

Geometry far beyond the input (the N-d form of CR1–CR3, ends only): along axis i, output
o reads through tap t the x row o·s + t·d − before (outside [0, in) a padded zero), so tap t
is live when some o in [0, out) reads inside x. With lo and hi the first and last live tap,
the taps before lo and after hi read only zeros; they are dropped and x cropped to what the
rest read:
  start = lo·d − before,   stop = (out − 1)·s + hi·d − before + 1   (rows, exclusive)
  x' = x[max(0, start) : min(in, stop)],   w' = w[lo : hi + 1]
  before' = max(0, −start),   after' = max(0, stop − in),   same s, d and out      (CN7)
so y is (CN3) of x', w'; dw is dw' at taps lo..hi and 0 elsewhere; dx is dx' at the rows
x' holds and 0 elsewhere. An axis without a live tap gives y = b, dw = 0, dx = 0. Dead taps
between live ones are kept. (Non-finite weights: a dropped tap gives 0 where 0·∞ in the
full sums would be NaN, as in CR1–CR3.)

cols is never kept: backward forms it again from x (as Caffe's im2col without saved
columns), and the batch is cut into chunks whose columns fit ``WORKSPACE_ELEMENTS``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from convprop._shapes import _is_int as is_int
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_extent, check_upstream, require_array

WORKSPACE_ELEMENTS = 1 << 25
"""At most this many elements of columns exist at once (128 MiB in float32)."""


@dataclass(frozen=True, slots=True)
class NdGeometry:
    """Sizes of one N-d convolution, in the conv's direction (x -> y).

    Fields: in_size, kernel, stride, dilation, out_size (D each); pad (D pairs
    (before, after)); groups; channels C and filters K of the conv.
    """

    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    out_size: tuple[int, ...]
    groups: int
    channels: int
    filters: int

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)


def _tuple(op: str, name: str, value: Any, dims: int, minimum: int) -> tuple[int, ...]:
    if is_int(value):
        values = (int(value),) * dims
    elif isinstance(value, (tuple, list)) and len(value) == dims and all(map(is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        raise ParameterError(
            f"{op}: {name} must be an int or {dims} ints; expected e.g. 1 or {(1,) * dims}, "
            f"got {value!r}"
        )
    if min(values) < minimum:
        raise ParameterError(
            f"{op}: {name} must be >= {minimum}; expected >= {minimum}, got {value!r}"
        )
    check_extent(op, name, values)  # beyond it the strided views' byte offsets overflow
    return values


def _padding(
    op: str, padding: Any, dims: int, in_size: tuple[int, ...], kernel: tuple[int, ...],
    stride: tuple[int, ...], dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:  # fmt: skip
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":  # TensorFlow's rule, any stride: out = ceil(in / stride) (S2)
        same = []
        for size, k, s, d in zip(in_size, kernel, stride, dilation, strict=True):
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            same.append((total // 2, total - total // 2))
        return tuple(same)
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == dims
        and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(map(is_int, p)) for p in padding
        )
    ):
        pads = tuple((int(p[0]), int(p[1])) for p in padding)
    else:
        symmetric = _tuple(op, "padding", padding, dims, 0)
        pads = tuple((p, p) for p in symmetric)
    if min(min(p) for p in pads) < 0:
        raise ParameterError(f"{op}: padding must be >= 0; expected >= 0, got {padding!r}")
    check_extent(op, "padding", tuple(v for p in pads for v in p))
    return pads


def conv_nd_geometry(
    op: str, x: Array, w: Array, b: Array | None, stride: Any, padding: Any, dilation: Any,
    groups: Any,
) -> NdGeometry:  # fmt: skip
    """Validate a conv's arrays and hyperparameters and compute its sizes (CN1)."""
    require_array(op, "x", x)
    require_array(op, "w", w)
    dims = x.ndim - 2
    shapes = f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
    if dims < 1 or w.ndim != x.ndim:
        raise ShapeError(
            f"{op}: x must be (N, C, *spatial) and w (K, C/groups, *kernel) of the same rank; "
            f"expected x.ndim == w.ndim >= 3, got {shapes}"
        )
    if not is_int(groups) or int(groups) < 1:
        raise ParameterError(f"{op}: groups must be a positive int; expected >= 1, got {groups!r}")
    groups = int(groups)
    C, K = int(x.shape[1]), int(w.shape[0])
    if C % groups or K % groups or int(w.shape[1]) * groups != C:
        raise ShapeError(
            f"{op}: channels do not fit the groups; expected C divisible by groups={groups}, "
            f"K divisible by groups and w.shape[1] == C/groups, got {shapes}"
        )
    if b is not None:
        require_array(op, "b", b)
        if tuple(b.shape) != (K,):
            raise ShapeError(f"{op}: b must be (K,)=({K},); expected ({K},), got {tuple(b.shape)}")
    check_float_dtype(op, x=x, w=w, b=b)
    kernel = tuple(int(n) for n in w.shape[2:])
    in_size = tuple(int(n) for n in x.shape[2:])
    stride_t = _tuple(op, "stride", stride, dims, 1)
    dilation_t = _tuple(op, "dilation", dilation, dims, 1)
    pads = _padding(op, padding, dims, in_size, kernel, stride_t, dilation_t)
    out = []
    for size, k, s, d, (before, after) in zip(
        in_size, kernel, stride_t, dilation_t, pads, strict=True
    ):
        span = size + before + after - d * (k - 1)
        if span < 1:
            raise ShapeError(
                f"{op}: the padded input is smaller than the dilated kernel; expected "
                f"in + padding >= dilation·(k − 1) + 1 on every axis, got {shapes}, "
                f"padding={pads}, dilation={dilation_t}"
            )
        out.append((span - 1) // s + 1)  # (CN1)
    return NdGeometry(in_size, kernel, stride_t, dilation_t, pads, tuple(out), groups, C, K)


def _offsets(geom: NdGeometry) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(k) for k in geom.kernel)))


def _window(geom: NdGeometry, offset: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(t * d, t * d + s * (p - 1) + 1, s)
        for t, d, s, p in zip(offset, geom.dilation, geom.stride, geom.out_size, strict=True)
    )


def _im2col(xp: ModuleType, x: Array, geom: NdGeometry) -> Array:
    """cols (N, C·T, Π out) of x (N, C, *in), equation (CN2)."""
    N, C = x.shape[0], x.shape[1]
    x_pad = xp.pad(x, ((0, 0), (0, 0), *geom.pad))
    cols = xp.empty((N, C, geom.taps, math.prod(geom.out_size)), dtype=x.dtype)
    for t, offset in enumerate(_offsets(geom)):
        window = (slice(None), slice(None), *_window(geom, offset))
        cols[:, :, t, :] = x_pad[window].reshape(N, C, -1)  # (CN2)
    return cols.reshape(N, C * geom.taps, -1)


def _col2im(xp: ModuleType, dcols: Array, geom: NdGeometry) -> Array:
    """dx (N, C, *in): every column entry added back where (CN2) read it, equation (CN6)."""
    N, C = dcols.shape[0], geom.channels
    padded = tuple(n + a + b for n, (a, b) in zip(geom.in_size, geom.pad, strict=True))
    dx_pad = xp.zeros((N, C, *padded), dtype=dcols.dtype)
    dcols = dcols.reshape(N, C, geom.taps, *geom.out_size)
    for t, offset in enumerate(_offsets(geom)):
        # windows overlap whenever stride < dilated kernel: scatter-add, never assign
        window = (slice(None), slice(None), *_window(geom, offset))
        dx_pad[window] += dcols[:, :, t]  # (CN6)
    inner = [slice(a, a + n) for n, (a, _) in zip(geom.in_size, geom.pad, strict=True)]
    crop = (slice(None), slice(None), *inner)
    return dx_pad[crop]


def _chunks(geom: NdGeometry, N: int) -> list[slice]:
    per_image = geom.channels * geom.taps * math.prod(geom.out_size)
    step = max(1, WORKSPACE_ELEMENTS // max(per_image, 1))
    return [slice(start, min(start + step, N)) for start in range(0, N, step)]


def _grouped_w(w: Array, geom: NdGeometry) -> Array:
    G = geom.groups
    return w.reshape(G, geom.filters // G, -1)  # (G, K/G, C/G·T)


@dataclass(frozen=True, slots=True)
class NdTrim:
    """The problem without the dead end taps, equation (CN7).

    Fields: taps (D slices of w's kernel axes, the live taps lo..hi), rows (D slices of x's
    spatial axes, the rows x' holds), geom (the geometry of x', w'; None when an axis has
    no live tap and every output is 0).
    """

    taps: tuple[slice, ...]
    rows: tuple[slice, ...]
    geom: NdGeometry | None

    @property
    def x_index(self) -> tuple[slice, ...]:
        """Index of x' in x (and of dx' in dx)."""
        return (slice(None), slice(None), *self.rows)

    @property
    def w_index(self) -> tuple[slice, ...]:
        """Index of w' in w (and of dw' in dw)."""
        return (slice(None), slice(None), *self.taps)


def _live_taps(size: int, before: int, k: int, s: int, d: int, out: int) -> list[int]:
    """The taps t that some output o in [0, out) reads x through: 0 <= o·s + t·d − before <
    size (CN7)."""
    live = []
    for t in range(k):
        o_lo = max(0, -(-(before - t * d) // s))
        o_hi = min(out - 1, (size - 1 + before - t * d) // s)
        if o_lo <= o_hi:
            live.append(t)
    return live


def trim(geom: NdGeometry) -> NdTrim | None:
    """(CN7): the reduced problem where an axis has dead taps at an end; None otherwise."""
    taps, rows, pads, kernel = [], [], [], []
    empty, dropped = False, False
    for size, k, s, d, (before, _), out in zip(
        geom.in_size, geom.kernel, geom.stride, geom.dilation, geom.pad, geom.out_size,
        strict=True,
    ):  # fmt: skip
        live = _live_taps(size, before, k, s, d, out)
        if not live:
            empty = True
            taps.append(slice(0, 0))
            rows.append(slice(0, 0))
            continue
        lo, hi = live[0], live[-1]
        dropped = dropped or lo > 0 or hi < k - 1
        start = lo * d - before  # (CN7)
        stop = (out - 1) * s + hi * d - before + 1  # (CN7)
        taps.append(slice(lo, hi + 1))
        rows.append(slice(max(0, start), min(size, stop)))
        pads.append((max(0, -start), max(0, stop - size)))  # (CN7)
        kernel.append(hi - lo + 1)
    if empty:
        return NdTrim(tuple(taps), tuple(rows), None)
    if not dropped:
        return None
    in_size = tuple(r.stop - r.start for r in rows)
    reduced = NdGeometry(
        in_size, tuple(kernel), geom.stride, geom.dilation, tuple(pads), geom.out_size,
        geom.groups, geom.channels, geom.filters,
    )  # fmt: skip
    return NdTrim(tuple(taps), tuple(rows), reduced)


def conv_nd_apply(x: Array, w: Array, geom: NdGeometry) -> Array:
    """y = W·cols without bias, equations (CN2), (CN3), over the live taps (CN7);
    x (N, C, *in) -> (N, K, *out)."""
    reduced = trim(geom)
    if reduced is None:
        return _apply(x, w, geom)
    if reduced.geom is None:
        xp = get_xp(x, w)
        return xp.zeros((x.shape[0], geom.filters, *geom.out_size), dtype=x.dtype)
    return _apply(x[reduced.x_index], w[reduced.w_index], reduced.geom)  # (CN7)


def conv_nd_input_grad(dy: Array, w: Array, geom: NdGeometry) -> Array:
    """dx of (CN3) for dy (N, K, *out): dcols = Wᵀ·dy, then col2im (CN6), over the live
    taps (CN7)."""
    reduced = trim(geom)
    if reduced is None:
        return _input_grad(dy, w, geom)
    xp = get_xp(dy, w)
    dx = xp.zeros((dy.shape[0], geom.channels, *geom.in_size), dtype=dy.dtype)
    if reduced.geom is not None:
        dx[reduced.x_index] = _input_grad(dy, w[reduced.w_index], reduced.geom)
    return dx


def conv_nd_weight_grad(x: Array, dy: Array, geom: NdGeometry) -> Array:
    """dW = Σ_n dy[n] · cols[n]ᵀ per group, equation (CN5), over the live taps (CN7);
    -> (K, C/G, *kernel)."""
    reduced = trim(geom)
    if reduced is None:
        return _weight_grad(x, dy, geom)
    xp = get_xp(x, dy)
    dw = xp.zeros((geom.filters, geom.channels // geom.groups, *geom.kernel), dtype=x.dtype)
    if reduced.geom is not None:
        dw[reduced.w_index] = _weight_grad(x[reduced.x_index], dy, reduced.geom)
    return dw


def _apply(x: Array, w: Array, geom: NdGeometry) -> Array:
    """y = W·cols without bias, equations (CN2), (CN3); x (N, C, *in) -> (N, K, *out)."""
    xp = get_xp(x, w)
    N, G = x.shape[0], geom.groups
    y = xp.empty((N, geom.filters, math.prod(geom.out_size)), dtype=x.dtype)
    wg = _grouped_w(w, geom)
    for part in _chunks(geom, N):
        cols = _im2col(xp, x[part], geom).reshape(-1, G, wg.shape[2], y.shape[2])
        y[part] = xp.matmul(wg[None], cols).reshape(-1, geom.filters, y.shape[2])  # (CN3)
    return y.reshape(N, geom.filters, *geom.out_size)


def _input_grad(dy: Array, w: Array, geom: NdGeometry) -> Array:
    """dx of (CN3) for dy (N, K, *out): dcols = Wᵀ·dy, then col2im (CN6)."""
    xp = get_xp(dy, w)
    N, G = dy.shape[0], geom.groups
    wg = _grouped_w(w, geom)
    dx = xp.empty((N, geom.channels, *geom.in_size), dtype=dy.dtype)
    for part in _chunks(geom, N):
        dyg = dy[part].reshape(-1, G, geom.filters // G, math.prod(geom.out_size))
        dcols = xp.matmul(wg.transpose(0, 2, 1)[None], dyg)  # (CN6) -> (n, G, C/G·T, P)
        dx[part] = _col2im(xp, dcols.reshape(dcols.shape[0], -1, dcols.shape[3]), geom)
    return dx


def _weight_grad(x: Array, dy: Array, geom: NdGeometry) -> Array:
    """dW = Σ_n dy[n] · cols[n]ᵀ per group, equation (CN5); -> (K, C/G, *kernel)."""
    xp = get_xp(x, dy)
    G = geom.groups
    P = math.prod(geom.out_size)
    dw = xp.zeros((G, geom.filters // G, geom.channels // G * geom.taps), dtype=x.dtype)
    for part in _chunks(geom, x.shape[0]):
        cols = _im2col(xp, x[part], geom).reshape(-1, G, dw.shape[2], P)
        dyg = dy[part].reshape(-1, G, geom.filters // G, P)
        products = xp.matmul(dyg, cols.transpose(0, 1, 3, 2))  # (n, G, K/G, C/G·T)
        for image in products:  # one image at a time: the same sum whatever the chunks
            dw += image  # (CN5)
    return dw.reshape(geom.filters, geom.channels // G, *geom.kernel)


@dataclass(frozen=True, slots=True)
class ConvNdCache:
    """What conv_nd_backward needs.

    Fields
    ------
    x : Array (N, C, *in)
        The input (a reference); cols are formed again from it (N·C·T·Π out elements,
        at most WORKSPACE_ELEMENTS at a time).
    w : Array (K, C/G, *kernel)
    has_bias : bool
    geom : NdGeometry
    """

    x: Array
    w: Array
    has_bias: bool
    geom: NdGeometry


def conv_nd_forward(
    x: Array, w: Array, b: Array | None = None, *, stride: Any = 1, padding: Any = 0,
    dilation: Any = 1, groups: int = 1,
) -> tuple[Array, ConvNdCache]:  # fmt: skip
    """N-d convolution (cross-correlation), equations (CN1)–(CN3).

    Parameters
    ----------
    x : Array (N, C, *in)
    w : Array (K, C/groups, *kernel)
    b : Array (K,) or None
    stride, dilation : int or D ints
    padding : int, D ints, D pairs (before, after), "valid" or "same"
    groups : int

    Returns
    -------
    y : Array (N, K, *out)
    cache : ConvNdCache

    Examples
    --------
    >>> import numpy as np
    >>> y, cache = conv_nd_forward(np.ones((1, 1, 3, 3, 3)), np.ones((2, 1, 2, 2, 2)))
    >>> y.shape, float(y[0, 0, 0, 0, 0])
    ((1, 2, 2, 2, 2), 8.0)
    """
    geom = conv_nd_geometry("conv_nd", x, w, b, stride, padding, dilation, groups)
    y = conv_nd_apply(x, w, geom)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(geom.kernel))  # (CN3)
    return y, ConvNdCache(x, w, b is not None, geom)


def conv_nd_backward(
    dy: Array, cache: ConvNdCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """(dx, dw, db) of conv_nd_forward: equations (CN6), (CN5), (CN4)."""
    geom = cache.geom
    check_upstream(
        "conv_nd_backward", dy, (cache.x.shape[0], geom.filters, *geom.out_size), cache.x.dtype
    )
    db = dy.sum(axis=(0, *range(2, dy.ndim))) if cache.has_bias else None  # (CN4)
    dw = conv_nd_weight_grad(cache.x, dy, geom)  # (CN5)
    dx = conv_nd_input_grad(dy, cache.w, geom) if need_dx else None  # (CN6)
    return dx, dw, db


def conv_nd(x: Array, w: Array, b: Array | None = None, **hyper: Any) -> Array:
    """N-d convolution forward alone; see :func:`conv_nd_forward`."""
    y, _ = conv_nd_forward(x, w, b, **hyper)
    return y
