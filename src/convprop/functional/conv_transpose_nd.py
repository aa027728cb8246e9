"""Transposed convolution in any number of spatial dimensions: conv_nd's adjoint.

Equations (CTN1)–(CTN3) of convprop.functional.convnd: the forward is the N-d conv's
input gradient (CN6) applied to x, the backward is the conv's forward (CN3) and weight
gradient (CN5) with the roles of x and dy exchanged. PyTorch's arguments: padding is
symmetric per axis, output_padding adds rows at the end that no window of the
corresponding conv reads (so they get only the bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convprop._shapes import _is_int
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional.convnd import (
    NdGeometry,
    _tuple,
    conv_nd_apply,
    conv_nd_input_grad,
    conv_nd_weight_grad,
)


@dataclass(frozen=True, slots=True)
class ConvTransposeNdCache:
    """What conv_transpose_nd_backward needs.

    Fields
    ------
    x : Array (N, C_in, *conv_out)
        The input, zero-extended to the conv's output size where output_padding asked
        for rows beyond it (a reference when no extension was needed).
    w : Array (C_in, C_out/G, *kernel)
    in_size : tuple[int, ...]
        x's spatial size as given.
    has_bias : bool
    geom : NdGeometry
        The conv from y-space (size out) to x-space, whose adjoint this op is.
    """

    x: Array
    w: Array
    in_size: tuple[int, ...]
    has_bias: bool
    geom: NdGeometry


def _geometry(
    x: Array, w: Array, b: Array | None, stride: Any, padding: Any, output_padding: Any,
    dilation: Any, groups: Any,
) -> NdGeometry:  # fmt: skip
    op = "conv_transpose_nd"
    require_array(op, "x", x)
    require_array(op, "w", w)
    dims = x.ndim - 2
    shapes = f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
    if dims < 1 or w.ndim != x.ndim:
        raise ShapeError(
            f"{op}: x must be (N, C_in, *spatial) and w (C_in, C_out/groups, *kernel) of the "
            f"same rank; expected x.ndim == w.ndim >= 3, got {shapes}"
        )
    if not _is_int(groups) or int(groups) < 1:
        raise ParameterError(f"{op}: groups must be a positive int; expected >= 1, got {groups!r}")
    G, C_in = int(groups), int(x.shape[1])
    if int(w.shape[0]) != C_in or C_in % G:
        raise ShapeError(
            f"{op}: w.shape[0] must equal C_in and be divisible by groups={G}; expected "
            f"{C_in}, got {shapes}"
        )
    C_out = int(w.shape[1]) * G
    if b is not None:
        require_array(op, "b", b)
        if tuple(b.shape) != (C_out,):
            raise ShapeError(f"{op}: b must be (C_out,)=({C_out},); got {tuple(b.shape)}")
    check_float_dtype(op, x=x, w=w, b=b)
    kernel = tuple(int(n) for n in w.shape[2:])
    s = _tuple(op, "stride", stride, dims, 1)
    d = _tuple(op, "dilation", dilation, dims, 1)
    p = _tuple(op, "padding", 0 if padding == "valid" else padding, dims, 0)
    extra = _tuple(op, "output_padding", output_padding, dims, 0)
    if any(e >= max(si, di) for e, si, di in zip(extra, s, d, strict=True)):
        raise ParameterError(
            f"{op}: output_padding must be smaller than stride or dilation; expected < "
            f"max(stride, dilation) on each axis, got output_padding={extra}, stride={s}, "
            f"dilation={d}"
        )
    in_size = tuple(int(n) for n in x.shape[2:])
    if min(in_size) < 1 or C_in < 1 or min(kernel, default=1) < 1:
        raise ShapeError(
            f"{op}: C_in, every spatial size and every kernel size must be >= 1 (only N may be "
            f"0); expected non-empty planes and filters, got {shapes}"
        )
    out = tuple(
        (n - 1) * si - 2 * pi + di * (k - 1) + e + 1  # (CTN1)
        for n, si, pi, di, k, e in zip(in_size, s, p, d, kernel, extra, strict=True)
    )
    if min(out) < 1:
        raise ShapeError(
            f"{op}: the output would be empty; expected (in − 1)·stride − 2·padding + "
            f"dilation·(k − 1) + output_padding + 1 >= 1, got {out} ({shapes}, padding={p})"
        )
    conv_out = tuple(
        (o + 2 * pi - di * (k - 1) - 1) // si + 1
        for o, pi, di, k, si in zip(out, p, d, kernel, s, strict=True)
    )
    pads = tuple((pi, pi) for pi in p)
    return NdGeometry(out, kernel, s, d, pads, conv_out, G, C_out, C_in)


def conv_transpose_nd_forward(
    x: Array, w: Array, b: Array | None = None, *, stride: Any = 1, padding: Any = 0,
    output_padding: Any = 0, dilation: Any = 1, groups: int = 1,
) -> tuple[Array, ConvTransposeNdCache]:  # fmt: skip
    """N-d transposed convolution, equations (CTN1), (CTN2).

    Parameters
    ----------
    x : Array (N, C_in, *in)
    w : Array (C_in, C_out/groups, *kernel)
    b : Array (C_out,) or None
    stride, padding, output_padding, dilation : int or D ints
    groups : int

    Returns
    -------
    y : Array (N, C_out, *out)
    cache : ConvTransposeNdCache

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2))
    >>> y, _ = conv_transpose_nd_forward(x, w, stride=2)
    >>> y.shape, float(y.sum())
    ((1, 1, 4, 4, 4), 64.0)
    """
    geom = _geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    xp = get_xp(x, w)
    in_size = tuple(int(n) for n in x.shape[2:])
    grow = [(0, c - n) for n, c in zip(in_size, geom.out_size, strict=True)]
    x_ext = xp.pad(x, ((0, 0), (0, 0), *grow)) if any(g for _, g in grow) else x
    y = conv_nd_input_grad(x_ext, w, geom)  # (CTN2)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(geom.kernel))  # (CTN2)
    return y, ConvTransposeNdCache(x_ext, w, in_size, b is not None, geom)


def conv_transpose_nd_backward(
    dy: Array, cache: ConvTransposeNdCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """(dx, dw, db) of conv_transpose_nd_forward, equation (CTN3)."""
    geom, x = cache.geom, cache.x
    check_upstream(
        "conv_transpose_nd_backward", dy, (x.shape[0], geom.channels, *geom.in_size), x.dtype
    )
    db = dy.sum(axis=(0, *range(2, dy.ndim))) if cache.has_bias else None  # (CTN3)
    dw = conv_nd_weight_grad(dy, x, geom)  # (CTN3) (CN5) with x and dy exchanged
    dx = None
    if need_dx:
        full = conv_nd_apply(dy, cache.w, geom)  # (CTN3) (CN3) applied to dy
        crop = (slice(None), slice(None), *[slice(0, n) for n in cache.in_size])
        dx = get_xp(full).ascontiguousarray(full[crop])
    return dx, dw, db


def conv_transpose_nd(x: Array, w: Array, b: Array | None = None, **hyper: Any) -> Array:
    """N-d transposed convolution forward alone; see :func:`conv_transpose_nd_forward`."""
    y, _ = conv_transpose_nd_forward(x, w, b, **hyper)
    return y
