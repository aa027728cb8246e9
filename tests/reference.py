"""Naive float64 references for conv2d and conv_transpose2d, written from the equations.

Slow on purpose: every sum of docs/derivations.md is an explicit Python loop over its
indices, so a reviewer can check each line against the equation it cites. Nothing here
calls convprop's convolution code; even the padding rules are re-derived below.

Notation  x (N,C,H,W)  w (K,C/G,R,S)  b (K,)  y (N,K,P,Q)  G groups, g(k) = k // (K/G)
  P = (H + pad_top + pad_bottom - dil_h*(R-1) - 1) // stride_h + 1                   (S1)
  "same": P = ceil(H / stride_h), total padding
      max((P-1)*stride_h + dil_h*(R-1) + 1 - H, 0), the odd pixel at the bottom        (S2)
  y[n,k,p,q] = b[k] + sum_{c,r,s} w[k,c,r,s]
               * x_pad[n, g(k)*C/G + c, p*stride_h + r*dil_h, q*stride_w + s*dil_w]   (F1)
  db[k] = sum_{n,p,q} dy[n,k,p,q]                                                     (B1)
  dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x_pad[n, g(k)*C/G + c, ...]                 (B2)
  dx: every tap of every output adds w[k,c,r,s] * dy[n,k,p,q] into the x_pad element it
      read (the "scatter" form of B3), then the padding border is cropped             (B3)

The module also holds the shared parameter grid of the conv tests (``CASES``), the input
generator and the tolerance rule, so that every test file reads them from one place.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------
# Hyperparameters, re-derived independently of convprop._shapes
# ---------------------------------------------------------------------------------------


def as_pair(value: Any) -> tuple[int, int]:
    """An int or a pair -> (height, width)."""
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[1]))
    return (int(value), int(value))


def _same_axis(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(S2) TensorFlow's "same": output ceil(size/stride), the odd pixel after."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def pad_amounts(
    padding: Any, hw: tuple[int, int], kernel: tuple[int, int], stride: Any, dilation: Any
) -> tuple[int, int, int, int]:
    """Any accepted ``padding`` -> (pad_top, pad_bottom, pad_left, pad_right)."""
    stride_h, stride_w = as_pair(stride)
    dil_h, dil_w = as_pair(dilation)
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        top, bottom = _same_axis(hw[0], kernel[0], stride_h, dil_h)
        left, right = _same_axis(hw[1], kernel[1], stride_w, dil_w)
        return (top, bottom, left, right)
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        (top, bottom), (left, right) = padding
        return (int(top), int(bottom), int(left), int(right))
    pad_h, pad_w = as_pair(padding)
    return (pad_h, pad_h, pad_w, pad_w)


def out_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    """(S1) along one axis."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def zero_pad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """x (N, C, H, W) -> x_pad with explicit zero borders (written out, no np.pad)."""
    top, bottom, left, right = pads
    N, C, H, W = x.shape
    x_pad = np.zeros((N, C, H + top + bottom, W + left + right))
    for n, c, h, w in itertools.product(range(N), range(C), range(H), range(W)):
        x_pad[n, c, top + h, left + w] = x[n, c, h, w]
    return x_pad


@dataclass(frozen=True)
class Geometry:
    """The loop bounds of one conv2d, normalised by the functions above."""

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
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]


def geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Geometry:
    N, C, H, W = x_shape
    K, _, R, S = w_shape
    stride_hw, dil_hw = as_pair(stride), as_pair(dilation)
    pads = pad_amounts(padding, (H, W), (R, S), stride_hw, dil_hw)
    P = out_size(H, pads[0] + pads[1], R, stride_hw[0], dil_hw[0])  # (S1)
    Q = out_size(W, pads[2] + pads[3], S, stride_hw[1], dil_hw[1])  # (S1)
    return Geometry(N, C, H, W, K, R, S, P, Q, groups, stride_hw, dil_hw, pads)


def _taps(g: Geometry, k: int) -> Any:
    """For filter k: (c_local, c_global, r, s) over the C/G channels of k's group."""
    C_g, K_g = g.C // g.groups, g.K // g.groups
    group = k // K_g
    for c, r, s in itertools.product(range(C_g), range(g.R), range(g.S)):
        yield c, group * C_g + c, r, s


def _outputs(g: Geometry) -> Any:
    return itertools.product(range(g.N), range(g.K), range(g.P), range(g.Q))


# ---------------------------------------------------------------------------------------
# conv2d: (F1), (B1), (B2), (B3)
# ---------------------------------------------------------------------------------------


def conv2d_ref(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(F1), one output element at a time."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    g = geometry(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_pad = zero_pad(x, g.pads)
    (stride_h, stride_w), (dil_h, dil_w) = g.stride, g.dilation
    y = np.zeros((g.N, g.K, g.P, g.Q))
    for n, k, p, q in _outputs(g):
        total = 0.0 if b is None else float(b[k])
        for c, c_global, r, s in _taps(g, k):
            row, col = p * stride_h + r * dil_h, q * stride_w + s * dil_w
            total += w[k, c, r, s] * x_pad[n, c_global, row, col]  # (F1)
        y[n, k, p, q] = total
    return y


def conv2d_db_ref(dy: np.ndarray) -> np.ndarray:
    """(B1): db[k] = sum over n, p, q of dy[n, k, p, q]."""
    dy = np.asarray(dy, np.float64)
    N, K, P, Q = dy.shape
    db = np.zeros(K)
    for n, k, p, q in itertools.product(range(N), range(K), range(P), range(Q)):
        db[k] += dy[n, k, p, q]  # (B1)
    return db


def conv2d_dw_ref(
    x: np.ndarray,
    dy: np.ndarray,
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(B2): dw[k,c,r,s] = sum over n, p, q of dy[n,k,p,q] * x_pad[n, g(k)C/G + c, ...]."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    g = geometry(x.shape, w_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_pad = zero_pad(x, g.pads)
    (stride_h, stride_w), (dil_h, dil_w) = g.stride, g.dilation
    dw = np.zeros(w_shape)
    for k in range(g.K):
        for c, c_global, r, s in _taps(g, k):
            total = 0.0
            for n, p, q in itertools.product(range(g.N), range(g.P), range(g.Q)):
                row, col = p * stride_h + r * dil_h, q * stride_w + s * dil_w
                total += dy[n, k, p, q] * x_pad[n, c_global, row, col]  # (B2)
            dw[k, c, r, s] = total
    return dw


def conv2d_dx_ref(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(B3) in scatter form: each (output, tap) pair sends w * dy back to the x_pad element
    it read; rows of x_pad that no window reads (the remainder case) keep zero."""
    dy, w = np.asarray(dy, np.float64), np.asarray(w, np.float64)
    g = geometry(x_shape, w.shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    top, bottom, left, right = g.pads
    (stride_h, stride_w), (dil_h, dil_w) = g.stride, g.dilation
    dx_pad = np.zeros((g.N, g.C, g.H + top + bottom, g.W + left + right))
    for n, k, p, q in _outputs(g):
        for c, c_global, r, s in _taps(g, k):
            row, col = p * stride_h + r * dil_h, q * stride_w + s * dil_w
            dx_pad[n, c_global, row, col] += w[k, c, r, s] * dy[n, k, p, q]  # (B3)
    return dx_pad[:, :, top : top + g.H, left : left + g.W]


# ---------------------------------------------------------------------------------------
# conv_transpose2d, from its own definition (PyTorch's semantics)
#   y[n, g*C_out/G + co, h*stride_h - pad_top + r*dil_h, w*stride_w - pad_left + s*dil_w]
#       += x[n, g*C_in/G + ci, h, w] * w[g*C_in/G + ci, co, r, s]     (kept if inside y)
#   H_out = (H-1)*stride_h - pad_top - pad_bottom + dil_h*(R-1) + output_padding_h + 1
# ---------------------------------------------------------------------------------------


def conv_transpose2d_out_hw(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> tuple[int, int]:
    _, _, H, W = x_shape
    _, _, R, S = w_shape
    stride_h, stride_w = as_pair(stride)
    dil_h, dil_w = as_pair(dilation)
    out_pad_h, out_pad_w = as_pair(output_padding)
    top, bottom, left, right = pad_amounts(padding, (H, W), (R, S), 1, 1)
    H_out = (H - 1) * stride_h - top - bottom + dil_h * (R - 1) + out_pad_h + 1
    W_out = (W - 1) * stride_w - left - right + dil_w * (S - 1) + out_pad_w + 1
    return H_out, W_out


def _transpose_pairs(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    out_hw: tuple[int, int],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Any:
    """Every (n, ci, h, w_col, co_global, co, r, s, row, col) term of the definition whose
    target (row, col) lies inside y."""
    N, C_in, H, W = x_shape
    _, C_out_g, R, S = w_shape
    C_in_g = C_in // groups
    stride_h, stride_w = as_pair(stride)
    dil_h, dil_w = as_pair(dilation)
    top, _, left, _ = pad_amounts(padding, (H, W), (R, S), 1, 1)
    for n, ci, h, w_col in itertools.product(range(N), range(C_in), range(H), range(W)):
        group = ci // C_in_g
        for co, r, s in itertools.product(range(C_out_g), range(R), range(S)):
            row = h * stride_h - top + r * dil_h
            col = w_col * stride_w - left + s * dil_w
            if 0 <= row < out_hw[0] and 0 <= col < out_hw[1]:
                yield n, ci, h, w_col, group * C_out_g + co, co, r, s, row, col


def conv_transpose2d_ref(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """The transposed convolution by its definition: scatter each input through the kernel."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out_hw = conv_transpose2d_out_hw(
        x.shape,
        w.shape,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    C_out = w.shape[1] * groups
    y = np.zeros((x.shape[0], C_out, *out_hw))
    for n, ci, h, w_col, co_global, co, r, s, row, col in _transpose_pairs(
        x.shape, w.shape, out_hw, stride, padding, dilation, groups
    ):
        y[n, co_global, row, col] += x[n, ci, h, w_col] * w[ci, co, r, s]
    if b is not None:
        for n, co_global in itertools.product(range(y.shape[0]), range(C_out)):
            y[n, co_global] += b[co_global]
    return y


def conv_transpose2d_backward_ref(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) by differentiating each term of the definition:
    term = x[n,ci,h,w] * w[ci,co,r,s] lands on y[n,co_global,row,col], so
    dx[n,ci,h,w] += w[ci,co,r,s] * dy[...],  dw[ci,co,r,s] += x[n,ci,h,w] * dy[...]."""
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for n, ci, h, w_col, co_global, co, r, s, row, col in _transpose_pairs(
        x.shape, w.shape, dy.shape[2:], stride, padding, dilation, groups
    ):
        dx[n, ci, h, w_col] += w[ci, co, r, s] * dy[n, co_global, row, col]
        dw[ci, co, r, s] += x[n, ci, h, w_col] * dy[n, co_global, row, col]
    return dx, dw, conv2d_db_ref(dy)


# ---------------------------------------------------------------------------------------
# The shared parameter grid, inputs and tolerances
# ---------------------------------------------------------------------------------------

ALGORITHM_NAMES = ("direct", "im2col", "fft", "winograd", "winograd4", "depthwise", "auto")
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


@dataclass(frozen=True)
class ConvCase:
    """One conv2d configuration: x (N,C,H,W), w (K,C/groups,R,S)."""

    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    hyper: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        hyper = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        object.__setattr__(self, "hyper", {**hyper, "groups": self.groups})

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def geom(self) -> Geometry:
        return geometry(self.x_shape, self.w_shape, **self.hyper)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        g = self.geom
        return (g.N, g.K, g.P, g.Q)

    @property
    def winograd_applies(self) -> bool:
        return (self.R, self.S) == (3, 3) and as_pair(self.stride) == (1, 1)

    @property
    def depthwise_applies(self) -> bool:
        return self.groups == self.C

    def applies(self, algorithm: str) -> bool:
        """Whether ``algorithm`` computes this case (the others decline it)."""
        if algorithm in ("winograd", "winograd4"):
            return self.winograd_applies
        if algorithm == "depthwise":
            return self.depthwise_applies
        return True

    @property
    def remainders(self) -> tuple[int, int]:
        """(H + pad - dil*(R-1) - 1) % stride per axis: > 0 means rows of x_pad go unread."""
        g = self.geom
        top, bottom, left, right = g.pads
        return (
            (g.H + top + bottom - g.dilation[0] * (g.R - 1) - 1) % g.stride[0],
            (g.W + left + right - g.dilation[1] * (g.S - 1) - 1) % g.stride[1],
        )


C = ConvCase
# fmt: off
CASES: tuple[ConvCase, ...] = (
    # 3x3, stride 1, dilation 1: every algorithm, winograd included
    C("basic_3x3_pad1", 2, 3, 7, 6, 4, 3, 3, padding=1),
    C("valid_3x3", 1, 2, 6, 7, 3, 3, 3, padding="valid", bias=False),
    C("same_3x3", 2, 2, 5, 8, 3, 3, 3, padding="same"),
    C("asymmetric_pad_3x3", 2, 2, 6, 5, 2, 3, 3, padding=((0, 2), (1, 0))),
    C("groups2_3x3", 2, 4, 6, 7, 4, 3, 3, padding=1, groups=2),
    C("depthwise_3x3", 2, 3, 7, 5, 3, 3, 3, padding=1, groups=3),
    C("multiplier2_3x3", 1, 2, 5, 6, 4, 3, 3, padding=(1, 0), groups=2),
    C("odd_tiles_3x3", 1, 2, 6, 5, 3, 3, 3, padding=0),
    C("kernel_eq_padded_input_3x3", 2, 2, 1, 1, 3, 3, 3, padding=1),
    C("pad_wider_than_kernel_3x3", 1, 2, 4, 5, 2, 3, 3, padding=(3, 2)),
    C("batch1_3x3", 1, 4, 9, 9, 4, 3, 3, padding=1, bias=False),
    # stride, with and without remainder rows
    C("stride2_remainder", 2, 2, 8, 7, 3, 3, 3, stride=2, padding=1),
    C("stride3_remainder", 2, 2, 9, 8, 3, 2, 3, stride=3),
    C("stride_pair", 1, 3, 9, 8, 2, 3, 2, stride=(2, 3), padding=(1, 0)),
    C("stride2_exact", 2, 2, 7, 9, 2, 3, 3, stride=2),
    C("valid_stride2", 1, 2, 8, 9, 3, 2, 4, stride=2, padding="valid"),
    # dilation
    C("dilation2", 2, 2, 9, 8, 2, 3, 3, padding=2, dilation=2),
    C("dilation3", 1, 2, 9, 9, 3, 2, 3, padding=1, dilation=3),
    C("dilation_pair", 2, 2, 8, 7, 2, 2, 3, padding=(0, 1), dilation=(3, 1)),
    C("stride_and_dilation_remainder", 2, 2, 9, 8, 2, 3, 2, stride=2, dilation=2,
      padding=((1, 0), (0, 2))),
    # "same" with every stride and dilation, odd pixel at the bottom/right
    C("same_stride2", 2, 2, 7, 8, 2, 3, 2, stride=2, padding="same"),
    C("same_stride3_dilation2", 1, 2, 8, 7, 3, 3, 3, stride=3, dilation=2, padding="same"),
    C("same_even_kernel", 2, 2, 5, 6, 2, 2, 4, padding="same"),
    C("same_stride_pair", 1, 2, 9, 5, 2, 4, 3, stride=(3, 2), padding="same", bias=False),
    # 1x1 kernels
    C("1x1", 2, 4, 5, 6, 3, 1, 1),
    C("1x1_stride2_pad", 1, 3, 5, 6, 2, 1, 1, stride=2, padding=1),
    C("1x1_groups2", 2, 4, 3, 4, 2, 1, 1, groups=2),
    C("1x1_on_1x1_input", 2, 3, 1, 1, 2, 1, 1),
    # kernel equal to the (padded) input: a single output position
    C("kernel_eq_input", 2, 2, 5, 4, 3, 5, 4),
    C("kernel_eq_padded_input", 1, 2, 3, 4, 2, 5, 4, padding=((1, 1), (0, 0))),
    # groups with stride/dilation/asymmetric padding
    C("depthwise_strided_dilated", 2, 4, 9, 8, 4, 3, 2, stride=2, dilation=2, padding=1,
      groups=4),
    C("multiplier2_asymmetric", 1, 2, 7, 6, 4, 2, 3, stride=(1, 2), dilation=(2, 1),
      padding=((2, 0), (0, 1)), groups=2),
    C("groups2_stride3_asym", 2, 4, 8, 9, 2, 2, 2, stride=3, padding=((0, 1), (2, 0)),
      groups=2),
    # 3x3, stride 1, dilated: winograd by phases (WG8), remainders and uneven phases
    C("dilated_3x3_pair_asym", 2, 2, 9, 11, 3, 3, 3, dilation=(2, 3), padding=((1, 2), (3, 0))),
    C("dilated_3x3_same_groups2", 1, 4, 8, 7, 4, 3, 3, dilation=3, padding="same", groups=2),
    # depthwise (C/G = 1): stride 1 with dilation, wide padding, remainders, multipliers
    C("depthwise_dilated_asym", 2, 3, 8, 7, 6, 3, 2, dilation=(2, 3), padding=((3, 0), (1, 2)),
      groups=3),
    C("depthwise_stride3_remainder", 1, 2, 10, 9, 2, 2, 3, stride=3, padding=(0, 1), groups=2),
    C("depthwise_pad_wider_m3", 2, 2, 3, 4, 6, 2, 2, padding=(3, 4), groups=2),
    C("depthwise_5x5_valid", 1, 4, 6, 6, 4, 5, 5, groups=4, bias=False),
    # multipliers of 4 and more: the compiled forward sums four filters of a channel at once
    C("one_channel_m5_5x5", 2, 1, 11, 13, 5, 5, 5, padding=2),
    C("depthwise_m8_dilated", 1, 2, 9, 10, 16, 3, 3, dilation=2, padding=(2, 1), groups=2),
)
# fmt: on
del C

CASE_IDS = [case.name for case in CASES]


def random_inputs(
    case: ConvCase, dtype: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """x, w, b (or None), dy drawn in float64 from a fixed seed, then cast to ``dtype``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.K) if case.bias else None
    dy = rng.standard_normal(case.y_shape)
    cast = [None if a is None else a.astype(dtype) for a in (x, w, b, dy)]
    return cast[0], cast[1], cast[2], cast[3]


def max_error(actual: Any, expected: np.ndarray) -> tuple[float, float]:
    """(max|a - e|, the allowed scale max(1, max|e|))."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return float(np.max(np.abs(actual - expected), initial=0.0)), scale


def assert_close(actual: Any, expected: np.ndarray, dtype: str, what: str = "") -> None:
    """max|actual - expected| <= tol[dtype] * max(1, max|expected|)."""
    error, scale = max_error(actual, expected)
    tol = TOLERANCE[str(dtype)]
    assert error <= tol * scale, f"{what}: max error {error:.3e} > {tol:g} * {scale:.3g}"


@dataclass(frozen=True)
class TransposeCase:
    """One conv_transpose2d configuration: x (N,C_in,H,W), w (C_in,C_out/groups,R,S)."""

    name: str
    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    R: int
    S: int
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    hyper: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        hyper = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        hyper |= {"output_padding": self.output_padding, "groups": self.groups}
        object.__setattr__(self, "hyper", hyper)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C_in, self.H, self.W)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.C_in, self.C_out // self.groups, self.R, self.S)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        hyper = {k: v for k, v in self.hyper.items() if k != "groups"}
        return (self.N, self.C_out, *conv_transpose2d_out_hw(self.x_shape, self.w_shape, **hyper))

    @property
    def winograd_applies(self) -> bool:
        return (self.R, self.S) == (3, 3) and as_pair(self.stride) == (1, 1)

    def applies(self, algorithm: str) -> bool:
        """Whether ``algorithm`` computes this case; the convolution it transposes reads
        C_out channels in ``groups`` groups, so depthwise needs C_out == groups."""
        if algorithm in ("winograd", "winograd4"):
            return self.winograd_applies
        if algorithm == "depthwise":
            return self.C_out == self.groups
        return True


def transpose_of(case: ConvCase) -> TransposeCase:
    """The conv_transpose2d that maps conv2d's output shape back to its input shape: the
    same w and hyperparameters, "same" made explicit, and output_padding = the remainder."""
    g = case.geom
    padding = case.padding
    if padding == "same":
        padding = ((g.pads[0], g.pads[1]), (g.pads[2], g.pads[3]))
    return TransposeCase(
        f"T_{case.name}",
        g.N,
        g.K,
        g.P,
        g.Q,
        g.C,
        g.R,
        g.S,
        stride=case.stride,
        padding=padding,
        output_padding=case.remainders,
        dilation=case.dilation,
        groups=case.groups,
        bias=case.bias,
    )


T = TransposeCase
# fmt: off
TRANSPOSE_CASES: tuple[TransposeCase, ...] = (
    *(transpose_of(case) for case in CASES),
    # output_padding >= stride is allowed while it stays below the dilation (as in PyTorch)
    T("output_padding_ge_stride", 2, 2, 3, 2, 2, 3, 2, output_padding=1, dilation=2),
    T("output_padding_2_dilation_3", 1, 2, 4, 5, 3, 3, 3, padding=1, output_padding=2,
      dilation=3),  # docs/derivations.md section 8: x extended from 4x5 to 6x7
    T("output_padding_pairs_groups2", 1, 4, 3, 3, 2, 2, 3, stride=(2, 3), padding=(1, 0),
      output_padding=(1, 2), groups=2),
    T("depthwise_stride2", 2, 3, 3, 4, 3, 3, 3, stride=2, padding=1, output_padding=1, groups=3),
    T("multiplier2_dilated", 1, 2, 3, 2, 4, 2, 2, padding=((2, 0), (0, 1)), dilation=(3, 2),
      groups=2),
    T("cropped_to_one_pixel", 2, 2, 1, 1, 3, 3, 3, padding=1),
    T("valid_3x3", 1, 2, 4, 3, 3, 3, 3, padding="valid", bias=False),
)
# fmt: on
del T


def random_transpose_inputs(
    case: TransposeCase, dtype: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """x, w, b (or None), dy for a transposed convolution, drawn in float64 then cast."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape)
    w = rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.C_out) if case.bias else None
    dy = rng.standard_normal(case.y_shape)
    cast = [None if a is None else a.astype(dtype) for a in (x, w, b, dy)]
    return cast[0], cast[1], cast[2], cast[3]


def expected(case: ConvCase, dtype: str) -> dict[str, Any]:
    """Inputs in ``dtype`` and the float64 reference on exactly those (cast) values."""
    x, w, b, dy = random_inputs(case, dtype, seed=7)
    return {
        "x": x, "w": w, "b": b, "dy": dy,
        "y": conv2d_ref(x, w, b, **case.hyper),
        "dx": conv2d_dx_ref(dy, w, case.x_shape, **case.hyper),
        "dw": conv2d_dw_ref(x, dy, case.w_shape, **case.hyper),
        "db": conv2d_db_ref(dy),
    }  # fmt: skip
