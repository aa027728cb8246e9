"""Naive float64 references for the N-d convolution and its transpose, from the equations.

Slow on purpose: every sum of docs/derivations.md section 22 is an explicit Python loop over
its indices, with one index per spatial axis (D of them, any D >= 1), so a reviewer can check
each line against the equation it cites. Nothing here calls convprop; even the padding rules
are re-derived below.

Notation  x (N, C, *in)  w (K, C/G, *k)  b (K,)  y (N, K, *out)  G groups,
          g(k) = k // (K/G) the group of filter k;  p, t, i: D-tuples (output, tap, input)
  out_i = (in_i + before_i + after_i - d_i*(k_i - 1) - 1) // s_i + 1                    (CN1)
  "same" (TensorFlow's rule, any stride): out_i = ceil(in_i / s_i), total padding
      max((out_i - 1)*s_i + d_i*(k_i - 1) + 1 - in_i, 0), the odd element after          (S2)
  y[n, k, p] = b[k] + sum_{c, t} w[k, c, t] * x_pad[n, g(k)*C/G + c, p*s + t*d]   (CN2, CN3)
  db[k] = sum_{n, p} dy[n, k, p]                                                        (CN4)
  dw[k, c, t] = sum_{n, p} dy[n, k, p] * x_pad[n, g(k)*C/G + c, p*s + t*d]              (CN5)
  dx: every (output, tap) pair adds w[k, c, t] * dy[n, k, p] into the x_pad element it
      read (the scatter form of col2im), then the padding border is cropped             (CN6)

Transposed convolution, by its own definition (PyTorch's semantics), not through (CN6):
  x (N, C_in, *in)  w (C_in, C_out/G, *k)  y (N, C_out, *out)
  out_i = (in_i - 1)*s_i - 2*pad_i + d_i*(k_i - 1) + output_padding_i + 1              (CTN1)
  y[n, g(ci)*C_out/G + co, i*s - pad + t*d] += x[n, ci, i] * w[ci, co, t]
      for every term whose target lies inside y; then + b                              (CTN2)
  dx, dw by differentiating each term; db = sum_{n, positions} dy                      (CTN3)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

Pads = tuple[tuple[int, int], ...]


# ---------------------------------------------------------------------------------------
# Hyperparameters, re-derived independently of convprop
# ---------------------------------------------------------------------------------------


def per_axis(value: Any, dims: int) -> tuple[int, ...]:
    """An int or D ints -> D ints."""
    if isinstance(value, (tuple, list)):
        assert len(value) == dims, (value, dims)
        return tuple(int(v) for v in value)
    return (int(value),) * dims


def _same_axis(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(S2) on one axis: output ceil(size / stride), the odd element after."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def pad_pairs(
    padding: Any,
    in_size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> Pads:
    """Any accepted ``padding`` (int, D ints, D pairs, "valid", "same") -> D (before, after)."""
    dims = len(in_size)
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":
        return tuple(
            _same_axis(n, k, s, d)
            for n, k, s, d in zip(in_size, kernel, stride, dilation, strict=True)
        )
    if isinstance(padding, (tuple, list)) and isinstance(padding[0], (tuple, list)):
        return tuple((int(a), int(b)) for a, b in padding)
    return tuple((p, p) for p in per_axis(padding, dims))


@dataclass(frozen=True)
class NdGeometry:
    """The loop bounds of one N-d convolution, normalised by the functions above."""

    N: int
    C: int
    K: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    out_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pads
    groups: int


def geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> NdGeometry:
    N, C, *in_size = x_shape
    K, _, *kernel = w_shape
    dims = len(in_size)
    stride_t, dil_t = per_axis(stride, dims), per_axis(dilation, dims)
    pads = pad_pairs(padding, tuple(in_size), tuple(kernel), stride_t, dil_t)
    out = tuple(
        (n + a + b - d * (k - 1) - 1) // s + 1  # (CN1)
        for n, (a, b), k, s, d in zip(in_size, pads, kernel, stride_t, dil_t, strict=True)
    )
    return NdGeometry(N, C, K, tuple(in_size), tuple(kernel), out, stride_t, dil_t, pads, groups)


def zero_pad(x: np.ndarray, pads: Pads) -> np.ndarray:
    """x (N, C, *in) -> x_pad with explicit zero borders (no np.pad)."""
    padded = tuple(n + a + b for n, (a, b) in zip(x.shape[2:], pads, strict=True))
    x_pad = np.zeros((*x.shape[:2], *padded))
    inner = tuple(slice(a, a + n) for n, (a, _) in zip(x.shape[2:], pads, strict=True))
    x_pad[(slice(None), slice(None), *inner)] = x
    return x_pad


def positions(size: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every D-tuple index of a box of ``size``, in row-major order."""
    return itertools.product(*(range(n) for n in size))


def read_at(g: NdGeometry, p: tuple[int, ...], t: tuple[int, ...]) -> tuple[int, ...]:
    """The x_pad position output p reads through tap t: p*s + t*d per axis (CN2)."""
    return tuple(pi * s + ti * d for pi, ti, s, d in zip(p, t, g.stride, g.dilation, strict=True))


def _taps(g: NdGeometry, k: int) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """For filter k: (c_local, c_global, t) over the C/G channels of k's group and all taps."""
    C_g, K_g = g.C // g.groups, g.K // g.groups
    group = k // K_g
    for c in range(C_g):
        for t in positions(g.kernel):
            yield c, group * C_g + c, t


# ---------------------------------------------------------------------------------------
# Convolution: (CN2)-(CN6)
# ---------------------------------------------------------------------------------------


def conv_nd_ref(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(CN2), (CN3), one output element at a time."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    g = geometry(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_pad = zero_pad(x, g.pads)
    y = np.zeros((g.N, g.K, *g.out_size))
    for n, k in itertools.product(range(g.N), range(g.K)):
        for p in positions(g.out_size):
            total = 0.0 if b is None else float(b[k])
            for c, c_global, t in _taps(g, k):
                total += w[(k, c, *t)] * x_pad[(n, c_global, *read_at(g, p, t))]  # (CN3)
            y[(n, k, *p)] = total
    return y


def conv_nd_db_ref(dy: np.ndarray) -> np.ndarray:
    """(CN4): db[k] = sum over n and every output position of dy[n, k, p]."""
    dy = np.asarray(dy, np.float64)
    db = np.zeros(dy.shape[1])
    for n, k in itertools.product(range(dy.shape[0]), range(dy.shape[1])):
        for p in positions(dy.shape[2:]):
            db[k] += dy[(n, k, *p)]  # (CN4)
    return db


def conv_nd_dw_ref(
    x: np.ndarray,
    dy: np.ndarray,
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(CN5): dw[k, c, t] = sum over n, p of dy[n, k, p] * x_pad[n, g(k)C/G + c, p*s + t*d]."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    g = geometry(x.shape, w_shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_pad = zero_pad(x, g.pads)
    dw = np.zeros(w_shape)
    for k in range(g.K):
        for c, c_global, t in _taps(g, k):
            total = 0.0
            for n in range(g.N):
                for p in positions(g.out_size):
                    total += dy[(n, k, *p)] * x_pad[(n, c_global, *read_at(g, p, t))]  # (CN5)
            dw[(k, c, *t)] = total
    return dw


def conv_nd_dx_ref(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> np.ndarray:
    """(CN6) in scatter form: each (output, tap) pair sends w * dy back to the x_pad element
    it read; elements no window reads (the remainder case) keep zero."""
    dy, w = np.asarray(dy, np.float64), np.asarray(w, np.float64)
    g = geometry(x_shape, w.shape, stride=stride, padding=padding, dilation=dilation, groups=groups)
    padded = tuple(n + a + b for n, (a, b) in zip(g.in_size, g.pads, strict=True))
    dx_pad = np.zeros((g.N, g.C, *padded))
    for n, k in itertools.product(range(g.N), range(g.K)):
        for p in positions(g.out_size):
            for c, c_global, t in _taps(g, k):
                dx_pad[(n, c_global, *read_at(g, p, t))] += w[(k, c, *t)] * dy[(n, k, *p)]  # (CN6)
    crop = tuple(slice(a, a + n) for n, (a, _) in zip(g.in_size, g.pads, strict=True))
    return dx_pad[(slice(None), slice(None), *crop)]


# ---------------------------------------------------------------------------------------
# Transposed convolution, from its definition: (CTN1)-(CTN3)
# ---------------------------------------------------------------------------------------


def conv_transpose_nd_out_size(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> tuple[int, ...]:
    """(CTN1) on every axis."""
    in_size, kernel = x_shape[2:], w_shape[2:]
    dims = len(in_size)
    return tuple(
        (n - 1) * s - 2 * pad + d * (k - 1) + extra + 1  # (CTN1)
        for n, s, pad, d, k, extra in zip(
            in_size,
            per_axis(stride, dims),
            per_axis(padding, dims),
            per_axis(dilation, dims),
            kernel,
            per_axis(output_padding, dims),
            strict=True,
        )
    )


def _transpose_terms(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    out: tuple[int, ...],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
) -> Iterator[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Every term (x index, w index, y index) of the definition whose target lies inside y."""
    N, C_in, *in_size = x_shape
    _, C_out_g, *kernel = w_shape
    dims = len(in_size)
    s, pad, d = per_axis(stride, dims), per_axis(padding, dims), per_axis(dilation, dims)
    C_in_g = C_in // groups
    for n, ci in itertools.product(range(N), range(C_in)):
        group = ci // C_in_g
        for i in positions(tuple(in_size)):
            for co in range(C_out_g):
                for t in positions(tuple(kernel)):
                    target = tuple(
                        ii * si - pi + ti * di
                        for ii, si, pi, ti, di in zip(i, s, pad, t, d, strict=True)
                    )
                    if all(0 <= o < size for o, size in zip(target, out, strict=True)):
                        yield (n, ci, *i), (ci, co, *t), (n, group * C_out_g + co, *target)


def conv_transpose_nd_ref(
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
    """(CTN2) by its definition: scatter each input element through the kernel, then + b."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out = conv_transpose_nd_out_size(
        x.shape,
        w.shape,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    C_out = w.shape[1] * groups
    y = np.zeros((x.shape[0], C_out, *out))
    for x_at, w_at, y_at in _transpose_terms(
        x.shape, w.shape, out, stride, padding, dilation, groups
    ):
        y[y_at] += x[x_at] * w[w_at]  # (CTN2)
    if b is not None:
        for n, co in itertools.product(range(y.shape[0]), range(C_out)):
            y[n, co] += b[co]  # (CTN2)
    return y


def conv_transpose_nd_backward_ref(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db), (CTN3) by differentiating each term x[x_at] * w[w_at] -> y[y_at]:
    dx[x_at] += w[w_at] * dy[y_at],  dw[w_at] += x[x_at] * dy[y_at]."""
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for x_at, w_at, y_at in _transpose_terms(
        x.shape, w.shape, tuple(dy.shape[2:]), stride, padding, dilation, groups
    ):
        dx[x_at] += w[w_at] * dy[y_at]  # (CTN3)
        dw[w_at] += x[x_at] * dy[y_at]  # (CTN3)
    return dx, dw, conv_nd_db_ref(dy)
