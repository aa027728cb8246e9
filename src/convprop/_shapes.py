"""Hyperparameter normalisation, output-size arithmetic and shape validation.

Conventions, stated once for the whole library
-----------------------------------------------
* Layout NCHW for activations and KCRS for weights (PyTorch's).
* Convolution means cross-correlation: the kernel is not flipped.
* ``dilation=1`` is a dense kernel; ``padding`` is zero-padding.
* Output size, per spatial axis (equation S1 of docs/derivations.md)::

      P = (H + pad_top + pad_bottom - dil_h*(R-1) - 1) // stride_h + 1          (S1)

  When the numerator is not a multiple of the stride, the last rows of the padded
  input are never read (the *remainder* case); their gradient is exactly zero.
* ``padding="same"`` follows TensorFlow's rule for any stride and kernel:
  ``P = ceil(H / stride_h)``; the total padding
  ``max((P-1)*stride_h + dil_h*(R-1) + 1 - H, 0)`` is split with the odd pixel at the
  bottom/right. ``padding="valid"`` is zero padding.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from convprop.errors import ParameterError, ShapeError

GeometryT = TypeVar("GeometryT")

Pair = tuple[int, int]
Padding4 = tuple[int, int, int, int]


def _is_int(value: Any) -> bool:
    """An int or a NumPy integer (anything with a working ``__index__``), not a bool."""
    if isinstance(value, (bool, float)):
        return False
    try:
        operator.index(value)
    except TypeError:  # a float, a string, an array of more than one element...
        return False
    return True


def pair(op: str, name: str, value: Any, *, minimum: int) -> Pair:
    """Normalise an int or a pair of ints to ``(height, width)`` and check ``>= minimum``.

    Examples
    --------
    >>> pair("conv2d", "stride", 2, minimum=1)
    (2, 2)
    >>> pair("conv2d", "dilation", (1, 3), minimum=1)
    (1, 3)
    """
    if _is_int(value):
        values = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        values = (int(value[0]), int(value[1]))
    else:
        raise ParameterError(
            f"{op}: {name} must be an int or a pair of ints; expected e.g. 1 or (1, 2), "
            f"got {value!r}"
        )
    if min(values) < minimum:
        raise ParameterError(
            f"{op}: {name} must be >= {minimum}; expected values >= {minimum}, got {value!r}"
        )
    return values


def explicit_padding(op: str, padding: Any) -> Padding4:
    """Normalise a numeric padding to ``(pad_top, pad_bottom, pad_left, pad_right)``.

    Accepts an int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``.

    Examples
    --------
    >>> explicit_padding("conv2d", 1)
    (1, 1, 1, 1)
    >>> explicit_padding("conv2d", ((0, 1), (2, 3)))
    (0, 1, 2, 3)
    """
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(side, (tuple, list)) for side in padding)
    ):
        top, bottom = pair(op, "padding (top, bottom)", tuple(padding[0]), minimum=0)
        left, right = pair(op, "padding (left, right)", tuple(padding[1]), minimum=0)
        return (top, bottom, left, right)
    if isinstance(padding, str):
        raise ParameterError(
            f"{op}: padding string {padding!r} is not supported here; expected an int, "
            f"(pad_h, pad_w) or ((top, bottom), (left, right)), got {padding!r}"
        )
    pad_h, pad_w = pair(op, "padding", padding, minimum=0)
    return (pad_h, pad_h, pad_w, pad_w)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: ``(before, after)``, odd pixel after.

    Examples
    --------
    >>> same_padding(5, 3, 2, 1)   # output ceil(5/2) = 3 needs 2*2 + 3 = 7 = 5 + 2
    (1, 1)
    >>> same_padding(6, 2, 1, 1)   # even kernel: the extra pixel goes to the bottom/right
    (0, 1)
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)  # (S2)
    return (total // 2, total - total // 2)


def conv_padding(
    op: str, padding: Any, in_hw: Pair, kernel_hw: Pair, stride: Pair, dilation: Pair
) -> Padding4:
    """Resolve a convolution's ``padding`` argument, including "same" and "valid"."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            top, bottom = same_padding(in_hw[0], kernel_hw[0], stride[0], dilation[0])
            left, right = same_padding(in_hw[1], kernel_hw[1], stride[1], dilation[1])
            return (top, bottom, left, right)
        raise ParameterError(
            f"{op}: unknown padding string; expected 'same' or 'valid', got {padding!r}"
        )
    return explicit_padding(op, padding)


def output_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    """Equation (S1): the number of window positions along one axis."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1  # (S1)


@dataclass(frozen=True, slots=True)
class ConvGeometry:
    """Everything about one convolution's shapes, normalised once.

    Letters as in docs/derivations.md: x (N,C,H,W), w (K,C/groups,R,S), y (N,K,P,Q).
    """

    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    P: int
    Q: int
    groups: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.K, self.P, self.Q)

    @property
    def padded_hw(self) -> Pair:
        """Height and width of x_pad, the zero-padded input."""
        return (self.H + self.pad_top + self.pad_bottom, self.W + self.pad_left + self.pad_right)

    @property
    def dilated_kernel_hw(self) -> Pair:
        """Extent of the dilated kernel: ``dil*(R-1) + 1``."""
        return (self.dil_h * (self.R - 1) + 1, self.dil_w * (self.S - 1) + 1)

    @property
    def is_unit_stride_dense(self) -> bool:
        return self.stride_h == self.stride_w == self.dil_h == self.dil_w == 1

    def describe(self) -> str:
        return (
            f"x.shape={self.x_shape}, w.shape={self.w_shape}, stride=({self.stride_h}, "
            f"{self.stride_w}), padding=(({self.pad_top}, {self.pad_bottom}), ({self.pad_left}, "
            f"{self.pad_right})), dilation=({self.dil_h}, {self.dil_w}), groups={self.groups}"
        )


def _groups(op: str, groups: Any) -> int:
    if not _is_int(groups) or int(groups) < 1:
        raise ParameterError(f"{op}: groups must be a positive int; expected >= 1, got {groups!r}")
    return int(groups)


def conv_geometry(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    *,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> ConvGeometry:
    """Validate a conv2d call and return its geometry.

    A network asks the same few geometries on every step: calls whose arguments are all
    hashable (ints, strings, tuples) are remembered. A call that raises is not. The batch N
    may be 0 (an empty batch, as PyTorch allows); every other size must be at least 1.

    Raises
    ------
    ShapeError
        Wrong ranks, an empty plane or filter, channel mismatch, bias of the wrong size, or
        an output smaller than 1.
    ParameterError
        Non-positive stride/dilation/groups, negative padding, groups not dividing C or K.
    """
    arguments = (x_shape, w_shape, b_shape, stride, padding, dilation, groups)
    return _remembered(_GEOMETRIES, _conv_geometry, op, arguments)


_GEOMETRIES: dict[tuple[Any, ...], Any] = {}
_GEOMETRIES_KEPT = 512


def _remembered(
    table: dict[tuple[Any, ...], Any],
    validate: Callable[..., GeometryT],
    op: str,
    arguments: tuple[Any, ...],
) -> GeometryT:
    """``validate(op, *arguments)``, kept in ``table`` (at most ``_GEOMETRIES_KEPT`` calls)
    where every argument is hashable; a call that raises is not kept."""
    key = (op, *map(typed_key, arguments))
    try:
        geom: GeometryT | None = table.get(key)
    except TypeError:  # an unhashable argument (an array...): validated afresh each time
        return validate(op, *arguments)
    if geom is None:
        geom = validate(op, *arguments)
        if len(table) >= _GEOMETRIES_KEPT:
            table.clear()
        table[key] = geom
    return geom


MAX_EXTENT = 2**53
"""The largest padded input, dilated kernel or strided span (elements along one axis) a
convolution accepts: indices beyond it overflow 64-bit index arithmetic (NumPy's own limit
on a dimension is 2**63 - 1 bytes, reached long before)."""

MAX_OUTPUT_ELEMENTS = 2**48
"""The largest output N·K·P·Q a convolution accepts (2 PiB in float64): a larger one can
never be allocated, and is refused before anything is."""


def _check_extents(op: str, axis: str, **extents: int) -> None:
    """ParameterError where a padded size, dilated kernel or stride exceeds MAX_EXTENT."""
    for name, value in extents.items():
        if value > MAX_EXTENT:
            raise ParameterError(
                f"{op}: the {name} along the {axis} is {value}, beyond what 64-bit indices "
                f"address; expected at most 2**53 = {MAX_EXTENT}, got {value}"
            )


def typed_key(value: Any) -> Any:
    """A cache key that tells 1, 1.0 and True apart, inside tuples and lists too. Plain ints
    and tuples of them (shapes, strides) are their own keys: every other value becomes a
    tuple that starts with a type, which no tuple of ints equals."""
    kind = type(value)
    if kind is int:
        return value
    if kind is tuple:
        for v in value:
            if type(v) is not int:
                break
        else:  # a tuple of ints (a shape, a stride)
            return value
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(typed_key(v) for v in value))
    return (type(value), value)


def _conv_geometry(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> ConvGeometry:
    shapes = f"x.shape={tuple(x_shape)}, w.shape={tuple(w_shape)}"
    if len(x_shape) != 4:
        raise ShapeError(
            f"{op}: x must be 4-D (N, C, H, W); expected 4 dimensions, got {len(x_shape)} "
            f"({shapes})"
        )
    if len(w_shape) != 4:
        raise ShapeError(
            f"{op}: w must be 4-D (K, C/groups, R, S); expected 4 dimensions, got "
            f"{len(w_shape)} ({shapes})"
        )
    N, C, H, W = (int(v) for v in x_shape)
    K, C_per_group, R, S = (int(v) for v in w_shape)
    if N < 0 or min(C, H, W) < 1 or min(K, C_per_group, R, S) < 1:
        raise ShapeError(
            f"{op}: C, H, W and every dimension of w must be >= 1 (only N may be 0); expected "
            f"non-empty planes and filters ({shapes})"
        )
    stride_hw = pair(op, "stride", stride, minimum=1)
    dil_hw = pair(op, "dilation", dilation, minimum=1)
    G = _groups(op, groups)
    if C % G or K % G:
        raise ParameterError(
            f"{op}: groups={G} must divide both C={C} and K={K}; expected C % groups == 0 and "
            f"K % groups == 0, got C % groups = {C % G}, K % groups = {K % G} ({shapes})"
        )
    if C_per_group * G != C:
        raise ShapeError(
            f"{op}: x has C={C} channels but w expects C/groups={C_per_group} with groups={G}, "
            f"i.e. C={C_per_group * G}; expected w.shape[1] == {C // G}, got {C_per_group} "
            f"({shapes})"
        )
    if b_shape is not None and tuple(b_shape) != (K,):
        raise ShapeError(
            f"{op}: b must have shape (K,) = ({K},); expected ({K},), got {tuple(b_shape)} "
            f"({shapes}, b.shape={tuple(b_shape)})"
        )
    pads = conv_padding(op, padding, (H, W), (R, S), stride_hw, dil_hw)
    for axis, size, pad_pair, k, stride_a, dil_a in (
        ("height", H, pads[0:2], R, stride_hw[0], dil_hw[0]),
        ("width", W, pads[2:4], S, stride_hw[1], dil_hw[1]),
    ):
        extents = {"padded input": size + sum(pad_pair), "dilated kernel": dil_a * (k - 1) + 1}
        _check_extents(op, axis, **extents, stride=stride_a)
    P = output_size(H, pads[0] + pads[1], R, stride_hw[0], dil_hw[0])
    Q = output_size(W, pads[2] + pads[3], S, stride_hw[1], dil_hw[1])
    for axis, size, pad_total, k, dil in (
        ("height", H, pads[0] + pads[1], R, dil_hw[0]),
        ("width", W, pads[2] + pads[3], S, dil_hw[1]),
    ):
        if size + pad_total < dil * (k - 1) + 1:
            kernel_letter, pad_name, dil_name = (
                ("R", "pad_top+pad_bottom", "dil_h")
                if axis == "height"
                else ("S", "pad_left+pad_right", "dil_w")
            )
            size_letter = "H" if axis == "height" else "W"
            raise ShapeError(
                f"{op}: padded input {axis} {size + pad_total} is smaller than the dilated kernel "
                f"{axis} {dil * (k - 1) + 1}; expected an output size >= 1, got "
                f"{output_size(size, pad_total, k, 1, dil)} ({size_letter}={size}, "
                f"{pad_name}={pad_total}, {kernel_letter}={k}, {dil_name}={dil}; {shapes})"
            )
    if N * K * P * Q > MAX_OUTPUT_ELEMENTS:
        raise ShapeError(
            f"{op}: the output (N, K, P, Q) = {(N, K, P, Q)} would hold {N * K * P * Q} "
            f"elements; expected at most 2**48 = {MAX_OUTPUT_ELEMENTS}, got {N * K * P * Q} "
            f"(stride={stride_hw}, padding={pads}, dilation={dil_hw}; {shapes})"
        )
    return ConvGeometry(
        N=N,
        C=C,
        H=H,
        W=W,
        K=K,
        R=R,
        S=S,
        P=P,
        Q=Q,
        groups=G,
        stride_h=stride_hw[0],
        stride_w=stride_hw[1],
        dil_h=dil_hw[0],
        dil_w=dil_hw[1],
        pad_top=pads[0],
        pad_bottom=pads[1],
        pad_left=pads[2],
        pad_right=pads[3],
    )


# ------------------------------------------------------------------------------ 2-D pooling
#
# Equations of convprop.functional.pool2d's derivation block:
#   P = floor((H + 2*pad_h - R) / stride_h) + 1                                          (PS1)
#   ceil_mode: P = ceil((H + 2*pad_h - R) / stride_h) + 1, then P -= 1 when
#              (P-1)*stride_h >= H + pad_h: the last window starts in x or its top padding (PS2)
#   window (p, q) reads x_pad[n, c, p*stride_h + r, q*stride_w + s] for every tap        (PS3)

MAX_HYPERPARAMETER = 2**31 - 1
"""The largest window, stride, padding, dilation or output extent along one axis of a
pooling (or other non-conv2d) op: the compiled kernels index with C's 64-bit sizes, and
products of two such extents must not overflow."""


def check_extent(op: str, name: str, values: tuple[int, ...]) -> None:
    """Refuse a hyperparameter beyond :data:`MAX_HYPERPARAMETER` before any size is computed
    from it."""
    if max(values, default=0) > MAX_HYPERPARAMETER:
        raise ParameterError(
            f"{op}: {name} is too large; expected values <= {MAX_HYPERPARAMETER}, got {values}"
        )


def flag(op: str, name: str, value: Any) -> bool:
    """A hyperparameter that must be a bool (``ceil_mode``, ``count_include_pad``)."""
    if not isinstance(value, bool):
        raise ParameterError(f"{op}: {name} must be a bool; expected True or False, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Pool2dGeometry:
    """The normalised shapes and hyperparameters of one max or average pooling call.

    x (N,C,H,W), window R×S, y (N,C,P,Q); ``extra_h``, ``extra_w``: the ceil_mode overhang
    ``max((P-1)*stride_h + R - H - 2*pad_h, 0)`` padded below (right of) x (PS3).
    """

    N: int
    C: int
    H: int
    W: int
    R: int
    S: int
    P: int
    Q: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    extra_h: int
    extra_w: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.P, self.Q)

    @property
    def padded_hw(self) -> tuple[int, int]:
        """Height and width of x_pad (PS3), the ceil_mode overhang included."""
        return (self.H + 2 * self.pad_h + self.extra_h, self.W + 2 * self.pad_w + self.extra_w)

    def taps(self) -> list[tuple[int, int, int]]:
        """Every tap ``(t, r, s)`` with ``t = r*S + s`` that reads a cell of x, row-major (PS3).

        A tap whose every window position lies in the padding reads only the fill value,
        which never wins a maximum and adds 0 to a sum: leaving it out changes no result
        and makes a window far larger than x cost what x costs, not what the window does.
        """
        rows = _live_offsets(self.R, self.P, self.stride_h, self.pad_h, self.H)
        cols = _live_offsets(self.S, self.Q, self.stride_w, self.pad_w, self.W)
        return [(r * self.S + s, r, s) for r in rows for s in cols]

    def tap_window(self, r: int, s: int) -> tuple[slice, slice]:
        """The slices of x_pad that tap (r, s) reads for all P×Q windows (PS3)."""
        rows = slice(r, r + self.stride_h * (self.P - 1) + 1, self.stride_h)
        cols = slice(s, s + self.stride_w * (self.Q - 1) + 1, self.stride_w)
        return rows, cols


def _live_offsets(kernel: int, out: int, stride: int, pad: int, size: int) -> list[int]:
    """Offsets r in [0, kernel) at which some window p in [0, out) reads a real cell:
    pad <= p*stride + r < pad + size."""
    live = []
    for r in range(max(0, pad - (out - 1) * stride), min(kernel, pad + size)):
        first = max(0, -(-(pad - r) // stride))  # the first window at or past the top padding
        if first < out and first * stride + r < pad + size:
            live.append(r)
    return live


def _pool_output_size(
    op: str, axis: str, size: int, kernel: int, stride: int, pad: int, ceil_mode: bool, shapes: str
) -> int:
    """Equations (PS1), (PS2) along one axis, after checking the padding rule."""
    size_letter, kernel_letter = ("H", "R") if axis == "height" else ("W", "S")
    if 2 * pad > kernel:
        raise ParameterError(
            f"{op}: padding {pad} is more than half the window {axis} {kernel_letter}={kernel}; "
            f"expected padding <= {kernel // 2}, got {pad} ({shapes})"
        )
    if size + 2 * pad < kernel:
        raise ShapeError(
            f"{op}: padded input {axis} {size + 2 * pad} is smaller than the window {axis} "
            f"{kernel}; expected an output size >= 1, got {(size + 2 * pad - kernel) // stride + 1}"
            f" ({size_letter}={size}, padding={pad}, {kernel_letter}={kernel}; {shapes})"
        )
    if not ceil_mode:
        return (size + 2 * pad - kernel) // stride + 1  # (PS1)
    out = -(-(size + 2 * pad - kernel) // stride) + 1  # (PS2) ceil
    return out - 1 if (out - 1) * stride >= size + pad else out  # (PS2)


def pool2d_geometry(
    op: str, x_shape: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any
) -> Pool2dGeometry:
    """Validate the shapes and hyperparameters of a max or average pooling call and return
    its geometry (x itself is checked by the op: an array of a float dtype). Remembered as
    :func:`conv_geometry` is (7 µs of a 15 µs pooling of one image).

    Every window of (PS2) holds at least one real cell, because padding is at most half the
    window (PyTorch's rule, enforced here).

    Raises
    ------
    ShapeError
        x is not 4-D, has an empty C, H or W (N may be 0), or is smaller than the window
        even padded.
    ParameterError
        Non-positive kernel_size or stride, negative padding, padding above half the
        window, or a non-bool ceil_mode.

    Examples
    --------
    >>> geom = pool2d_geometry("max_pool2d", (2, 3, 6, 6), 3, 2, 0, True)  # ceil_mode
    >>> geom.y_shape, geom.extra_h  # the last window reads one row below x
    ((2, 3, 3, 3), 1)
    """
    arguments = (x_shape, kernel_size, stride, padding, ceil_mode)
    return _remembered(_POOL_GEOMETRIES, _pool2d_geometry, op, arguments)


_POOL_GEOMETRIES: dict[tuple[Any, ...], Any] = {}


def _pool2d_geometry(
    op: str, x_shape: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any, ceil_mode: Any
) -> Pool2dGeometry:
    shapes = f"x.shape={tuple(x_shape)}"
    if len(x_shape) != 4:
        raise ShapeError(
            f"{op}: x must be 4-D (N, C, H, W); expected 4 dimensions, got {len(x_shape)} "
            f"({shapes})"
        )
    if min(x_shape[1:]) < 1:
        raise ShapeError(
            f"{op}: C, H, W must be >= 1 (only N may be 0); expected non-empty planes, got "
            f"{tuple(x_shape[1:])} ({shapes})"
        )
    R, S = pair(op, "kernel_size", kernel_size, minimum=1)
    stride_h, stride_w = (R, S) if stride is None else pair(op, "stride", stride, minimum=1)
    pad_h, pad_w = pair(op, "padding", padding, minimum=0)
    for name, values in (("kernel_size", (R, S)), ("stride", (stride_h, stride_w))):
        check_extent(op, name, values)
    ceil_mode = flag(op, "ceil_mode", ceil_mode)
    N, C, H, W = (int(v) for v in x_shape)
    shapes += f", kernel_size=({R}, {S}), stride=({stride_h}, {stride_w})"
    P = _pool_output_size(op, "height", H, R, stride_h, pad_h, ceil_mode, shapes)
    Q = _pool_output_size(op, "width", W, S, stride_w, pad_w, ceil_mode, shapes)
    return Pool2dGeometry(
        N=N,
        C=C,
        H=H,
        W=W,
        R=R,
        S=S,
        P=P,
        Q=Q,
        stride_h=stride_h,
        stride_w=stride_w,
        pad_h=pad_h,
        pad_w=pad_w,
        extra_h=max((P - 1) * stride_h + R - H - 2 * pad_h, 0),
        extra_w=max((Q - 1) * stride_w + S - W - 2 * pad_w, 0),
    )
