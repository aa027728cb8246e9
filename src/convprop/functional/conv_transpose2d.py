"""Transposed convolution: the exact adjoint of conv2d (PyTorch's shapes and weights).

Notation  x (N,C_in,H,W)  w (C_in,C_out/G,R,S)  b (C_out,)  y (N,C_out,H_out,W_out)
The *underlying* conv2d maps an input of y's shape to an output of x's shape with the
same w (its K = C_in filters of C_out/G channels):
  H_out = (H-1)*stride_h - pad_top - pad_bottom + dil_h*(R-1) + output_padding_h + 1  (CT1)
Forward
  y = b + (B3) of the underlying conv applied to x      (conv2d's input gradient)    (CT2)
Backward  (dy has the shape of y)
  dx = (F1) of the underlying conv applied to dy        (conv2d's forward)           (CT3)
  dw = (B2) of the underlying conv with input dy and upstream gradient x             (CT4)
  db = sum of dy over n, h, w                                                        (B1)

When output_padding >= stride (allowed while it is below the dilation, as in PyTorch) the
underlying conv has more output rows than x; x is zero-extended to them and the extra
rows of (CT3) are dropped, which keeps the pair exactly adjoint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from convprop._shapes import ConvGeometry, conv_geometry, explicit_padding, pair
from convprop.backend import Array, check_float_dtype, get_xp
from convprop.errors import ParameterError, ShapeError
from convprop.functional._checks import check_upstream, require_array
from convprop.functional._conv_common import empty_batch_gradients
from convprop.functional.conv2d import ALGORITHMS, resolve_algorithms

OP = "conv_transpose2d"


@dataclass(frozen=True, slots=True)
class ConvTranspose2dCache:
    """What conv_transpose2d_backward needs.

    Fields
    ------
    x : Array (N, C_in, H, W)
        The forward input (a reference).
    w : Array (C_in, C_out/G, R, S)
        The weights (a reference).
    has_bias : bool
        Whether a bias was given.
    geom : ConvGeometry
        Geometry of the underlying conv2d (its input has y's shape).
    algorithms : tuple[str, str, str]
        Underlying conv2d algorithms for its forward (our dx), input-gradient (our y) and
        weight-gradient (our dw) passes.
    """

    x: Array
    w: Array
    has_bias: bool
    geom: ConvGeometry
    algorithms: tuple[str, str, str]


def _geometry(
    x: Array,
    w: Array,
    b: Array | None,
    stride: Any,
    padding: Any,
    output_padding: Any,
    dilation: Any,
    groups: Any,
) -> ConvGeometry:
    shapes = f"x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}"
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(
            f"{OP}: x (N, C_in, H, W) and w (C_in, C_out/groups, R, S) must be 4-D; expected "
            f"4 dimensions each, got {x.ndim} and {w.ndim} ({shapes})"
        )
    if x.shape[1] != w.shape[0]:
        raise ShapeError(
            f"{OP}: x has C_in={x.shape[1]} channels but w expects C_in={w.shape[0]}; expected "
            f"x.shape[1] == w.shape[0], got {x.shape[1]} != {w.shape[0]} ({shapes})"
        )
    stride_hw = pair(OP, "stride", stride, minimum=1)
    dil_hw = pair(OP, "dilation", dilation, minimum=1)
    if isinstance(padding, str) and padding == "valid":
        padding = 0
    pads = explicit_padding(OP, padding)
    out_pad = pair(OP, "output_padding", output_padding, minimum=0)
    for axis in (0, 1):
        if out_pad[axis] >= max(stride_hw[axis], dil_hw[axis]):
            raise ParameterError(
                f"{OP}: output_padding must be smaller than stride or dilation; expected "
                f"output_padding < max(stride, dilation) = "
                f"{max(stride_hw[axis], dil_hw[axis])} per axis, got {out_pad}"
            )
    # any integer type (as conv2d accepts), but not bool
    is_integer = hasattr(groups, "__index__") and not isinstance(groups, bool)
    if not is_integer or int(groups) < 1 or x.shape[1] % int(groups):
        raise ParameterError(
            f"{OP}: groups must be a positive divisor of C_in; expected C_in % groups == 0, "
            f"got groups={groups!r}, C_in={x.shape[1]} ({shapes})"
        )
    groups = int(groups)
    N, _, H, W = x.shape
    _, C_out_g, R, S = w.shape
    H_out = (H - 1) * stride_hw[0] - pads[0] - pads[1] + dil_hw[0] * (R - 1) + out_pad[0] + 1
    W_out = (W - 1) * stride_hw[1] - pads[2] - pads[3] + dil_hw[1] * (S - 1) + out_pad[1] + 1
    if H_out < 1 or W_out < 1:  # (CT1)
        raise ShapeError(
            f"{OP}: output size must be >= 1; expected (H-1)*stride - padding + dil*(R-1) + "
            f"output_padding + 1 >= 1, got H_out={H_out}, W_out={W_out} ({shapes}, "
            f"padding={pads})"
        )
    C_out = C_out_g * groups
    if b is not None and tuple(b.shape) != (C_out,):
        raise ShapeError(
            f"{OP}: b must have shape (C_out,) = ({C_out},); expected ({C_out},), got "
            f"{tuple(b.shape)} ({shapes}, b.shape={tuple(b.shape)})"
        )
    return conv_geometry(
        OP,
        (N, C_out, H_out, W_out),
        tuple(w.shape),
        None,
        stride=stride_hw,
        padding=((pads[0], pads[1]), (pads[2], pads[3])),
        dilation=dil_hw,
        groups=groups,
    )


def _extend(xp: Any, a: Array, rows: int, cols: int) -> Array:
    """Zero-extend the last two axes of ``a`` to (rows, cols)."""
    if a.shape[2:] == (rows, cols):
        return a
    return xp.pad(a, ((0, 0), (0, 0), (0, rows - a.shape[2]), (0, cols - a.shape[3])))


def conv_transpose2d_forward(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> tuple[Array, ConvTranspose2dCache]:
    """Transposed convolution forward, equations (CT1), (CT2).

    Parameters
    ----------
    x : Array (N, C_in, H, W)
    w : Array (C_in, C_out/groups, R, S)
        PyTorch's ConvTranspose2d weight layout.
    b : Array (C_out,) or None
    stride, dilation : int or (int, int)
    padding : int, (pad_h, pad_w), ((top, bottom), (left, right)) or "valid"
        Removed from the output border (as PyTorch); "same" is not defined here.
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right; below max(stride, dilation).
    groups : int
    algorithm : str
        As for conv2d; applies to the underlying conv2d passes.

    Returns
    -------
    y : Array (N, C_out, H_out, W_out)
    cache : ConvTranspose2dCache

    Examples
    --------
    >>> import numpy as np
    >>> y = conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)
    >>> y.shape
    (1, 1, 4, 4)
    """
    for name, value in (("x", x), ("w", w), ("b", b)):
        if value is not None:
            require_array(OP, name, value)
    xp = get_xp(x, w, b)
    check_float_dtype(OP, x=x, w=w, b=b)
    geom = _geometry(x, w, b, stride, padding, output_padding, dilation, groups)
    if geom.N == 0:  # an empty batch: algorithms resolved as for one image, none runs
        algorithms = resolve_algorithms(OP, algorithm, replace(geom, N=1), w)
        y = xp.zeros(geom.x_shape, dtype=x.dtype)  # (CT2): no images
        return y, ConvTranspose2dCache(x, w, b is not None, geom, algorithms)
    algorithms = resolve_algorithms(OP, algorithm, geom, w, inputs=(x, w))  # NaN: conv2d_ieee
    x_ext = _extend(xp, x, geom.P, geom.Q)
    y = ALGORITHMS[algorithms[1]].backward_data(x_ext, w, geom)  # (CT2)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)  # (CT2) bias
    y = xp.ascontiguousarray(y, dtype=x.dtype)
    return y, ConvTranspose2dCache(
        x=x, w=w, has_bias=b is not None, geom=geom, algorithms=algorithms
    )


def conv_transpose2d_backward(
    dy: Array, cache: ConvTranspose2dCache, *, need_dx: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Transposed convolution backward, equations (CT3), (CT4), (B1).

    Returns
    -------
    dx : Array (N, C_in, H, W) or None
    dw : Array (C_in, C_out/groups, R, S)
    db : Array (C_out,) or None
    """
    geom = cache.geom
    check_upstream(f"{OP}_backward", dy, geom.x_shape, cache.x.dtype)
    xp = get_xp(dy, cache.x)
    if geom.N == 0:  # (CT3), (CT4), (B1) over an empty batch
        return empty_batch_gradients(xp, cache.x, cache.w, geom.C if cache.has_bias else None,
                                     need_dx)  # fmt: skip
    H, W = cache.x.shape[2:]
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None  # (B1)
    x_ext = _extend(xp, cache.x, geom.P, geom.Q)
    dw = ALGORITHMS[cache.algorithms[2]].backward_weight(x_ext, dy, geom, None)  # (CT4)
    dx = None
    if need_dx:
        dx, _ = ALGORITHMS[cache.algorithms[0]].forward(dy, cache.w, geom)  # (CT3)
        dx = dx[:, :, :H, :W]
    dtype = cache.x.dtype
    return (
        None if dx is None else xp.ascontiguousarray(dx, dtype=dtype),
        xp.ascontiguousarray(dw, dtype=dtype),
        None if db is None else xp.ascontiguousarray(db, dtype=dtype),
    )


def conv_transpose2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> Array:
    """Transposed convolution forward alone; see :func:`conv_transpose2d_forward`."""
    y, _ = conv_transpose2d_forward(
        x,
        w,
        b,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        algorithm=algorithm,
    )
    return y
