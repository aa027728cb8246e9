"""Tests of the N-d convolution pairs (CN1)-(CN6), their transpose (CTN1)-(CTN3), the 1-D and
3-D functional ops on Tensors and the Conv1d/Conv3d/ConvTranspose1d/ConvTranspose3d layers.

Witnesses, in the order of STYLE.md section 8:

* the naive float64 loops of tests/reference_convnd.py (forward, dx, dw, db) for D = 1, 2, 3
  over a grid of strides (also ones that leave a remainder), symmetric and per-axis
  (before, after) padding, "same" (any stride) and "valid", dilation, groups (depthwise too),
  kernels as large as the padded input, batch 1 and non-cubic sizes; output_padding of the
  transposed op, also >= stride where the dilation allows it;
* adjoint identities (G3) to about 1e-12: conv wrt x against its input gradient, conv wrt w
  against its weight gradient, the transposed op as the conv's adjoint;
* central differences (G1) with a random upstream gradient;
* PyTorch (float64) through the recorded graph, batched and unbatched inputs;
* the batch chunking of the columns workspace changes no bit;
* the layers: PyTorch's state_dict keys, shapes, initial bounds, outputs and gradients, the
  padding modes, the architecture round trip, and every validation branch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_convnd as ref
from convprop import nn
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import numerical_gradient
from convprop.functional import convnd
from convprop.functional.conv_transpose_nd import (
    conv_transpose_nd_backward,
    conv_transpose_nd_forward,
)
from convprop.functional.convnd import conv_nd_backward, conv_nd_forward
from convprop.io import architecture, build
from convprop.nn import functional as F

# ---------------------------------------------------------------------------------------
# The parameter grids
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvCase:
    """One conv_nd configuration: x (N, C, *in), w (K, C/groups, *kernel)."""

    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True

    @property
    def hyper(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    @property
    def y_shape(self) -> tuple[int, ...]:
        g = ref.geometry(self.x_shape, self.w_shape, **self.hyper)
        return (g.N, g.K, *g.out_size)


CONV_CASES = [
    # D = 1
    ConvCase("1d-plain", (2, 3, 9), (4, 3, 3)),
    ConvCase("1d-stride3-remainder", (2, 2, 11), (3, 2, 3), stride=3, padding=1),
    ConvCase("1d-asym-dil2-stride2", (1, 2, 8), (2, 2, 3), 2, ((2, 1),), 2, bias=False),
    ConvCase("1d-same-stride2-even-k", (2, 3, 7), (2, 3, 4), stride=2, padding="same"),
    ConvCase("1d-groups", (2, 4, 6), (6, 2, 3), padding=(1,), groups=2),
    ConvCase("1d-depthwise-dil3", (1, 3, 9), (6, 1, 3), dilation=3, groups=3),
    ConvCase("1d-kernel-eq-padded", (2, 2, 5), (3, 2, 7), padding=1),
    ConvCase("1d-valid-stride2", (2, 2, 8), (2, 2, 2), stride=2, padding="valid"),
    # D = 2
    ConvCase("2d-plain", (2, 3, 6, 5), (4, 3, 3, 2)),
    ConvCase("2d-stride-asym-dil", (2, 2, 7, 8), (3, 2, 2, 3), (2, 3), ((1, 0), (0, 2)), (1, 2)),
    ConvCase("2d-same-stride3-dil2", (1, 2, 7, 8), (2, 2, 3, 3), 3, "same", 2),
    ConvCase("2d-groups3-dil", (2, 6, 5, 4), (3, 2, 2, 3), dilation=(2, 1), groups=3),
    ConvCase("2d-depthwise-valid", (1, 4, 6, 6), (4, 1, 3, 3), 2, "valid", groups=4),
    ConvCase("2d-kernel-eq-input", (2, 2, 4, 3), (3, 2, 4, 3), bias=False),
    # D = 3
    ConvCase("3d-plain-pad1", (2, 2, 4, 5, 3), (3, 2, 2, 3, 2), padding=1),
    ConvCase("3d-stride-remainder", (1, 2, 7, 5, 6), (2, 2, 3, 2, 3), (3, 2, 1), (1, 0, 2)),
    ConvCase(
        "3d-asym-dil",
        (2, 2, 5, 6, 4),
        (2, 2, 2, 3, 2),
        padding=((1, 0), (2, 1), (0, 1)),
        dilation=(2, 1, 3),
    ),
    ConvCase("3d-same-stride2-dil", (1, 3, 5, 6, 7), (4, 3, 3, 2, 3), 2, "same", (1, 2, 1)),
    ConvCase("3d-groups", (2, 4, 4, 3, 5), (6, 2, 2, 2, 2), stride=(1, 2, 2), groups=2),
    ConvCase("3d-depthwise", (1, 3, 4, 5, 4), (3, 1, 3, 3, 3), padding=1, groups=3),
    ConvCase("3d-kernel-eq-padded", (1, 2, 3, 2, 4), (2, 2, 5, 4, 4), padding=(1, 1, 0)),
    ConvCase("3d-valid-stride3", (2, 2, 7, 7, 5), (3, 2, 2, 2, 2), 3, "valid", bias=False),
    ConvCase("3d-list-numpy-ints", (1, 2, 5, 4, 6), (2, 2, 2, 2, 2), np.int64(2), [1, 0, 2]),
]


@dataclass(frozen=True)
class TransposeCase:
    """One conv_transpose_nd configuration: x (N, C_in, *in), w (C_in, C_out/groups, *k)."""

    name: str
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True

    @property
    def hyper(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    @property
    def y_shape(self) -> tuple[int, ...]:
        hyper = {k: v for k, v in self.hyper.items() if k != "groups"}
        out = ref.conv_transpose_nd_out_size(self.x_shape, self.w_shape, **hyper)
        return (self.x_shape[0], self.w_shape[1] * self.groups, *out)


TRANSPOSE_CASES = [
    TransposeCase("t1d-stride2-pad-outpad", (2, 3, 5), (3, 2, 3), 2, 1, 1),
    TransposeCase("t1d-outpad-ge-stride", (1, 2, 4), (2, 3, 3), 2, 0, 2, dilation=3),
    TransposeCase("t1d-groups-stride3", (2, 4, 5), (4, 3, 2), 3, 0, 2, groups=2, bias=False),
    TransposeCase("t2d-mixed", (2, 3, 3, 4), (3, 2, 3, 2), (2, 1), (1, 0), (1, 0)),
    TransposeCase("t2d-outpad-ge-stride", (1, 2, 3, 3), (2, 2, 2, 3), 1, 0, (2, 1), (3, 2)),
    TransposeCase("t2d-depthwise", (2, 3, 4, 3), (3, 1, 3, 3), 2, 1, groups=3),
    TransposeCase("t3d-mixed", (2, 2, 3, 2, 4), (2, 3, 2, 3, 2), (2, 1, 3), (0, 1, 1), (1, 0, 2)),
    TransposeCase(
        "t3d-outpad-ge-stride-dil",
        (1, 2, 2, 3, 2),
        (2, 2, 3, 2, 2),
        stride=(1, 2, 1),
        output_padding=(2, 2, 1),
        dilation=(3, 3, 2),
    ),
    TransposeCase("t3d-groups", (1, 4, 3, 3, 2), (4, 1, 2, 2, 3), 2, 1, 1, groups=2),
    TransposeCase("t3d-depthwise-dil", (2, 3, 2, 3, 3), (3, 1, 3, 2, 2), 1, 1, 0, 2, groups=3),
    TransposeCase("t1d-padding-leaves-one", (1, 2, 3), (2, 2, 3), padding=2),
    TransposeCase("t3d-padding-gt-kernel", (1, 1, 5, 3, 2), (1, 2, 2, 2, 1), 2, (3, 1, 0)),
]


def _draw(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    bias_size: int | None,
    y_shape: Any,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """x, w, b (or None) and a random upstream dy, float64, from a fixed seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = None if bias_size is None else rng.standard_normal(bias_size)
    return x, w, b, rng.standard_normal(y_shape)


def conv_inputs(case: ConvCase, seed: int = 0) -> Any:
    return _draw(
        case.x_shape, case.w_shape, case.w_shape[0] if case.bias else None, case.y_shape, seed
    )


def transpose_inputs(case: TransposeCase, seed: int = 0) -> Any:
    C_out = case.w_shape[1] * case.groups
    return _draw(case.x_shape, case.w_shape, C_out if case.bias else None, case.y_shape, seed)


def assert_close(actual: Any, expected: np.ndarray, rtol: float, what: str = "") -> None:
    """max|actual - expected| <= rtol * max(1, max|expected|), shapes equal."""
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= rtol * scale, f"{what}: max error {error:.3e} > {rtol:g} * {scale:.3g}"


CONV_IDS = [case.name for case in CONV_CASES]
TRANSPOSE_IDS = [case.name for case in TRANSPOSE_CASES]

# ---------------------------------------------------------------------------------------
# conv_nd against the naive reference: (CN1)-(CN6)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_nd_forward_and_gradients_match_CN_reference(case: ConvCase) -> None:
    x, w, b, dy = conv_inputs(case)
    y, cache = conv_nd_forward(x, w, b, **case.hyper)
    assert y.shape == case.y_shape  # (CN1)
    assert_close(y, ref.conv_nd_ref(x, w, b, **case.hyper), 1e-12, "y (CN3)")
    dx, dw, db = conv_nd_backward(dy, cache)
    assert_close(dx, ref.conv_nd_dx_ref(dy, w, x.shape, **case.hyper), 1e-12, "dx (CN6)")
    assert_close(dw, ref.conv_nd_dw_ref(x, dy, w.shape, **case.hyper), 1e-12, "dw (CN5)")
    if case.bias:
        assert_close(db, ref.conv_nd_db_ref(dy), 1e-12, "db (CN4)")
    else:
        assert db is None
    assert dx.dtype == dw.dtype == np.float64


def test_conv_nd_need_dx_false_skips_dx_and_keeps_dw() -> None:
    case = CONV_CASES[15]
    x, w, b, dy = conv_inputs(case)
    _, cache = conv_nd_forward(x, w, b, **case.hyper)
    _, dw, db = conv_nd_backward(dy, cache)
    none, dw2, db2 = conv_nd_backward(dy, cache, need_dx=False)
    assert none is None
    assert np.array_equal(dw, dw2) and np.array_equal(db, db2)


@pytest.mark.parametrize(
    "forward, backward",
    [(conv_nd_forward, conv_nd_backward), (conv_transpose_nd_forward, conv_transpose_nd_backward)],
    ids=["conv_nd", "conv_transpose_nd"],
)
def test_pairs_are_pure_and_take_non_contiguous_inputs(
    forward: Callable[..., Any], backward: Callable[..., Any]
) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 5, 4)).transpose(0, 1, 4, 3, 2)  # (2, 3, 4, 5, 6), a view
    w = rng.standard_normal((3, 3, 2, 3, 2))[:, :, :, ::-1]  # reversed last axis, a view
    b = rng.standard_normal(7)[::2][:3]
    hyper = {"stride": 2, "padding": 1}
    y, cache = forward(x, w, b, **hyper)
    dy = rng.standard_normal(y.shape[::-1]).T  # Fortran order, not C-contiguous
    copies = [a.copy() for a in (x, w, b, dy)]
    first, second = backward(dy, cache), backward(dy, cache)
    for a, c in zip((x, w, b, dy), copies, strict=True):
        assert np.array_equal(a, c)  # nothing mutated
    for g1, g2, like in zip(first, second, (x, w, b), strict=True):
        assert np.array_equal(g1, g2) and g1.shape == like.shape  # backward twice: same
    y_contiguous, cache_c = forward(x.copy(), w.copy(), b.copy(), **hyper)
    assert np.array_equal(y, y_contiguous)
    for g, gc in zip(first, backward(dy, cache_c), strict=True):
        assert np.array_equal(g, gc)


@pytest.mark.parametrize(
    "forward, backward",
    [(conv_nd_forward, conv_nd_backward), (conv_transpose_nd_forward, conv_transpose_nd_backward)],
    ids=["conv_nd", "conv_transpose_nd"],
)
def test_pairs_accept_an_empty_batch(forward: Callable[..., Any], backward: Any) -> None:
    y, cache = forward(np.ones((0, 2, 3, 3, 3)), np.ones((2, 2, 2, 2, 2)), np.ones(2))
    assert y.shape[0] == 0
    dx, dw, db = backward(y, cache)
    assert dx.shape == (0, 2, 3, 3, 3)
    assert np.all(dw == 0.0) and np.all(db == 0.0)


def test_conv_nd_remainder_and_skipped_positions_get_exact_zero_gradient() -> None:
    # axis 0: in 9, k 2, stride 3 -> reads 0,1,3,4,6,7; position 8 (the remainder) and
    # 2, 5 (between windows) are never read; axes 1, 2: a 1-wide kernel with stride 2.
    x, w = np.ones((1, 1, 9, 5, 4)), np.ones((1, 1, 2, 1, 1))
    _, cache = conv_nd_forward(x, w, stride=(3, 2, 2))
    dy = np.random.default_rng(1).standard_normal((1, 1, 3, 3, 2)) + 5.0
    dx, _, _ = conv_nd_backward(dy, cache)
    read = np.zeros_like(dx, dtype=bool)
    read[:, :, [0, 1, 3, 4, 6, 7], ::2, ::2] = True
    assert np.all(dx[~read] == 0.0)
    assert np.all(dx[read] != 0.0)


@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 10, 15, 18)], ids=lambda c: c.name)
def test_conv_nd_float32_preserves_dtype_and_matches_reference(case: ConvCase) -> None:
    x, w, b, dy = conv_inputs(case, seed=3)
    x32, w32, dy32 = x.astype(np.float32), w.astype(np.float32), dy.astype(np.float32)
    b32 = None if b is None else b.astype(np.float32)
    y, cache = conv_nd_forward(x32, w32, b32, **case.hyper)
    dx, dw, db = conv_nd_backward(dy32, cache)
    for array in (y, dx, dw, db):
        assert array.dtype == np.float32
    args = (x32.astype(np.float64), w32.astype(np.float64))
    assert_close(y, ref.conv_nd_ref(*args, b32, **case.hyper), 1e-5, "y")
    dy64 = dy32.astype(np.float64)
    assert_close(dx, ref.conv_nd_dx_ref(dy64, args[1], x.shape, **case.hyper), 1e-5, "dx")
    assert_close(dw, ref.conv_nd_dw_ref(args[0], dy64, w.shape, **case.hyper), 1e-5, "dw")


# ---------------------------------------------------------------------------------------
# conv_transpose_nd against its definition: (CTN1)-(CTN3)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=TRANSPOSE_IDS)
def test_conv_transpose_nd_forward_and_gradients_match_CTN_reference(case: TransposeCase) -> None:
    x, w, b, dy = transpose_inputs(case)
    y, cache = conv_transpose_nd_forward(x, w, b, **case.hyper)
    assert y.shape == case.y_shape  # (CTN1)
    assert_close(y, ref.conv_transpose_nd_ref(x, w, b, **case.hyper), 1e-12, "y (CTN2)")
    dx, dw, db = conv_transpose_nd_backward(dy, cache)
    hyper = {k: v for k, v in case.hyper.items() if k != "output_padding"}
    dx_ref, dw_ref, db_ref = ref.conv_transpose_nd_backward_ref(dy, x, w, **hyper)
    assert_close(dx, dx_ref, 1e-12, "dx (CTN3)")
    assert_close(dw, dw_ref, 1e-12, "dw (CTN3)")
    if case.bias:
        assert_close(db, db_ref, 1e-12, "db (CTN3)")
    else:
        assert db is None
    assert dx.shape == x.shape and dw.shape == w.shape


def test_conv_transpose_nd_output_padding_rows_get_only_the_bias() -> None:
    # stride 1, dilation 3, output_padding 2: the last 2 positions are read by no window
    x, w, b = np.ones((1, 1, 2)), np.ones((1, 1, 2)), np.array([0.5])
    y, cache = conv_transpose_nd_forward(x, w, b, output_padding=2, dilation=3)
    assert y.shape == (1, 1, 7)
    np.testing.assert_array_equal(y[0, 0], [1.5, 1.5, 0.5, 1.5, 1.5, 0.5, 0.5])
    dy = np.zeros_like(y)
    dy[..., 5:] = 7.0  # gradient only on the output_padding rows reaches neither x nor w
    dx, dw, db = conv_transpose_nd_backward(dy, cache)
    assert np.all(dx == 0.0) and np.all(dw == 0.0)
    np.testing.assert_array_equal(db, [14.0])


@pytest.mark.parametrize("case", [TRANSPOSE_CASES[i] for i in (1, 7)], ids=lambda c: c.name)
def test_conv_transpose_nd_float32_preserves_dtype(case: TransposeCase) -> None:
    x, w, b, dy = (None if a is None else a.astype(np.float32) for a in transpose_inputs(case))
    y, cache = conv_transpose_nd_forward(x, w, b, **case.hyper)
    dx, dw, db = conv_transpose_nd_backward(dy, cache)
    for array in (y, dx, dw, db):
        assert array.dtype == np.float32
    expected = ref.conv_transpose_nd_ref(x, w, b, **case.hyper)
    assert_close(y, expected, 1e-5, "y")


# ---------------------------------------------------------------------------------------
# Adjoint identities (G3): <A u, v> = <u, A^T v> to about 1e-12 in float64
# ---------------------------------------------------------------------------------------


def assert_adjoint(Au: np.ndarray, v: np.ndarray, u: np.ndarray, ATv: np.ndarray) -> None:
    assert Au.shape == v.shape and u.shape == ATv.shape
    lhs, rhs = float(np.vdot(Au, v)), float(np.vdot(u, ATv))
    scale = max(1.0, float(np.linalg.norm(Au) * np.linalg.norm(v)))
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv_nd_adjoints_wrt_x_and_w_CN5_CN6(case: ConvCase) -> None:
    u, w, _, v = conv_inputs(case, seed=11)
    Au, cache = conv_nd_forward(u, w, **case.hyper)  # linear in x
    dx, dw, _ = conv_nd_backward(v, cache)
    assert_adjoint(Au, v, u, dx)  # (CN6) is the transpose of x -> conv(x, w)
    w2 = np.random.default_rng(12).standard_normal(w.shape)
    Aw, _ = conv_nd_forward(u, w2, **case.hyper)  # linear in w
    assert_adjoint(Aw, v, w2, dw)  # (CN5) is the transpose of w -> conv(x, w)


def _symmetric(case: ConvCase) -> bool:
    return not isinstance(case.padding, str) and not (
        isinstance(case.padding, tuple) and isinstance(case.padding[0], tuple)
    )


@pytest.mark.parametrize("case", [c for c in CONV_CASES if _symmetric(c)], ids=lambda c: c.name)
def test_conv_transpose_nd_is_the_adjoint_of_conv_nd_CTN2(case: ConvCase) -> None:
    u, w, _, v = conv_inputs(case, seed=21)
    dims = len(case.x_shape) - 2
    s, d = ref.per_axis(case.stride, dims), ref.per_axis(case.dilation, dims)
    pad = ref.per_axis(case.padding, dims)
    # the rows of x no window reads come back as output_padding of the transposed op
    extra = tuple(
        (n + 2 * p - di * (k - 1) - 1) % si
        for n, p, di, k, si in zip(case.x_shape[2:], pad, d, case.w_shape[2:], s, strict=True)
    )
    Au, _ = conv_nd_forward(u, w, **case.hyper)
    ATv, _ = conv_transpose_nd_forward(
        v, w, stride=s, padding=pad, output_padding=extra, dilation=d, groups=case.groups
    )
    assert_adjoint(Au, v, u, ATv)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=TRANSPOSE_IDS)
def test_conv_transpose_nd_adjoints_wrt_x_and_w_CTN3(case: TransposeCase) -> None:
    u, w, _, v = transpose_inputs(case, seed=31)
    Au, cache = conv_transpose_nd_forward(u, w, **case.hyper)
    dx, dw, _ = conv_transpose_nd_backward(v, cache)
    assert_adjoint(Au, v, u, dx)
    w2 = np.random.default_rng(32).standard_normal(w.shape)
    Aw, _ = conv_transpose_nd_forward(u, w2, **case.hyper)
    assert_adjoint(Aw, v, w2, dw)


# ---------------------------------------------------------------------------------------
# Finite differences (G1), random dy
# ---------------------------------------------------------------------------------------

FD_CONV = [
    ConvCase("fd-1d", (2, 2, 5), (2, 1, 3), stride=2, padding=((1, 0),), groups=2),
    ConvCase("fd-2d", (1, 2, 4, 3), (2, 2, 2, 2), dilation=(2, 1), padding=1),
    ConvCase("fd-3d", (1, 2, 3, 4, 3), (2, 2, 2, 2, 2), stride=(2, 1, 2), padding="same"),
]
FD_TRANSPOSE = [
    TransposeCase("fd-t1d", (1, 2, 3), (2, 2, 3), stride=2, padding=1, output_padding=1),
    TransposeCase("fd-t3d", (1, 2, 2, 2, 3), (2, 1, 2, 3, 2), 2, (0, 1, 0), (1, 0, 1), groups=2),
]


def _check_by_differences(
    forward: Callable[..., Any], arrays: list[Any], grads: Any, dy: np.ndarray
) -> None:
    for i, (array, grad) in enumerate(zip(arrays, grads, strict=True)):
        if array is None:
            continue

        def objective(value: np.ndarray, i: int = i) -> float:
            args = list(arrays)
            args[i] = value
            return float(np.sum(forward(*args) * dy))

        numeric = numerical_gradient(objective, array)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", FD_CONV, ids=lambda c: c.name)
def test_conv_nd_gradients_match_finite_differences(case: ConvCase) -> None:
    x, w, b, dy = conv_inputs(case, seed=41)
    _, cache = conv_nd_forward(x, w, b, **case.hyper)
    grads = conv_nd_backward(dy, cache)

    def forward(x: Any, w: Any, b: Any) -> Any:
        return conv_nd_forward(x, w, b, **case.hyper)[0]

    _check_by_differences(forward, [x, w, b], grads, dy)


@pytest.mark.parametrize("case", FD_TRANSPOSE, ids=lambda c: c.name)
def test_conv_transpose_nd_gradients_match_finite_differences(case: TransposeCase) -> None:
    x, w, b, dy = transpose_inputs(case, seed=42)
    _, cache = conv_transpose_nd_forward(x, w, b, **case.hyper)
    grads = conv_transpose_nd_backward(dy, cache)

    def forward(x: Any, w: Any, b: Any) -> Any:
        return conv_transpose_nd_forward(x, w, b, **case.hyper)[0]

    _check_by_differences(forward, [x, w, b], grads, dy)


# ---------------------------------------------------------------------------------------
# The columns workspace: chunking the batch changes no bit
# ---------------------------------------------------------------------------------------


def _record_chunks(monkeypatch: pytest.MonkeyPatch, limit: int) -> list[list[int]]:
    """Set the workspace to ``limit`` elements; the images per chunk of every later call."""
    monkeypatch.setattr(convnd, "WORKSPACE_ELEMENTS", limit)
    sizes: list[list[int]] = []
    original = convnd._chunks

    def recorded(geom: Any, N: int) -> list[slice]:
        parts = original(geom, N)
        sizes.append([part.stop - part.start for part in parts])
        return parts

    monkeypatch.setattr(convnd, "_chunks", recorded)
    return sizes


def _conv_and_transpose(x: np.ndarray, w: np.ndarray) -> list[Any]:
    """y, dx, dw of a 3-D conv and yt, dxt, dwt of a transposed one, random dy (seeded)."""
    rng = np.random.default_rng(52)
    hyper = {"stride": (2, 1, 2), "padding": ((1, 0), (1, 1), (0, 2)), "dilation": (1, 2, 1)}
    y, cache = conv_nd_forward(x, w, **hyper)
    dx, dw, _ = conv_nd_backward(rng.standard_normal(y.shape), cache)
    t_hyper = {"stride": 2, "padding": 1, "output_padding": 1, "dilation": (1, 2, 1)}
    wt = w.transpose(1, 0, 2, 3, 4).copy()  # (C_in = C, C_out = K, *kernel)
    yt, cache_t = conv_transpose_nd_forward(x, wt, **t_hyper)
    dxt, dwt, _ = conv_transpose_nd_backward(rng.standard_normal(yt.shape), cache_t)
    return [y, dx, dw, yt, dxt, dwt]


# images per chunk: the conv's columns take 720 elements per image, the transposed op's 1920
CHUNKINGS = {1: [1] * 5, 1500: [2, 2, 1], 4000: [2, 2, 1]}
NAMES = ["y", "dx", "dw", "yt", "dxt", "dwt"]


def _whole_and_chunked(monkeypatch: pytest.MonkeyPatch, limit: int) -> tuple[list[Any], list[Any]]:
    rng = np.random.default_rng(51)
    x, w = rng.standard_normal((5, 3, 4, 5, 4)), rng.standard_normal((2, 3, 2, 2, 3))
    whole = _conv_and_transpose(x, w)
    sizes = _record_chunks(monkeypatch, limit)
    chunked = _conv_and_transpose(x, w)
    assert len(sizes) == 6 and CHUNKINGS[limit] in sizes  # the batch really was cut
    return whole, chunked


@pytest.mark.parametrize("limit", CHUNKINGS)
def test_workspace_chunking_changes_no_bit_of_y_and_dx(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    whole, chunked = _whole_and_chunked(monkeypatch, limit)
    for name, a, c in zip(NAMES, whole, chunked, strict=True):
        if name in ("y", "dx", "yt", "dxt"):  # one image at a time: (CN3), (CN6)
            assert a.dtype == c.dtype and np.array_equal(a, c), name


@pytest.mark.parametrize("limit", CHUNKINGS)
def test_workspace_chunking_changes_no_bit_of_dw(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    # (CN5) sums over the batch: the chunks must not change the order of that sum
    whole, chunked = _whole_and_chunked(monkeypatch, limit)
    for name, a, c in zip(NAMES, whole, chunked, strict=True):
        if name in ("dw", "dwt"):
            assert a.dtype == c.dtype, name
            assert np.array_equal(a, c), f"{name}: max difference {np.abs(a - c).max():.3g}"


# ---------------------------------------------------------------------------------------
# PyTorch through the recorded graph (float64): F.conv1d/3d, F.conv_transpose1d/3d
# ---------------------------------------------------------------------------------------

TORCH_CASES = {
    # name: (our op, torch's op, x shape, w shape, bias, hyperparameters)
    "conv1d": (F.conv1d, torch.nn.functional.conv1d, (2, 4, 11), (6, 2, 3), True,
               {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}),
    "conv1d-same": (F.conv1d, torch.nn.functional.conv1d, (2, 3, 8), (4, 3, 4), False,
                    {"padding": "same", "dilation": 1}),
    "conv1d-valid": (F.conv1d, torch.nn.functional.conv1d, (1, 2, 7), (3, 2, 2), True,
                     {"padding": "valid", "stride": 3}),
    "conv1d-unbatched": (F.conv1d, torch.nn.functional.conv1d, (3, 9), (2, 3, 3), True,
                         {"stride": (2,), "padding": (1,)}),
    "conv2d-unbatched": (F.conv2d, torch.nn.functional.conv2d, (3, 6, 7), (4, 3, 3, 2), True,
                         {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}),
    "conv3d": (F.conv3d, torch.nn.functional.conv3d, (2, 4, 5, 4, 6), (4, 2, 2, 3, 2), True,
               {"stride": (1, 2, 3), "padding": (1, 0, 1), "dilation": (2, 1, 1), "groups": 2}),
    "conv3d-same": (F.conv3d, torch.nn.functional.conv3d, (1, 2, 4, 5, 3), (3, 2, 2, 3, 2),
                    False, {"padding": "same", "dilation": (1, 2, 1)}),
    "conv3d-unbatched": (F.conv3d, torch.nn.functional.conv3d, (2, 4, 3, 5), (3, 2, 2, 2, 3),
                         True, {"stride": 2, "padding": 1}),
    "conv3d-depthwise": (F.conv3d, torch.nn.functional.conv3d, (2, 3, 4, 4, 4), (3, 1, 3, 3, 3),
                         True, {"padding": 1, "groups": 3}),
    "conv_transpose1d": (F.conv_transpose1d, torch.nn.functional.conv_transpose1d, (2, 4, 5),
                         (4, 3, 3), True,
                         {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
    "conv_transpose1d-outpad-dil": (F.conv_transpose1d, torch.nn.functional.conv_transpose1d,
                                    (2, 2, 4), (2, 3, 3), True,
                                    {"stride": 2, "output_padding": 2, "dilation": 3}),
    "conv_transpose1d-unbatched": (F.conv_transpose1d, torch.nn.functional.conv_transpose1d,
                                   (3, 6), (3, 2, 4), True, {"stride": 3, "padding": 2}),
    "conv_transpose2d-unbatched": (F.conv_transpose2d, torch.nn.functional.conv_transpose2d,
                                   (2, 3, 4), (2, 3, 3, 2), True,
                                   {"stride": 2, "padding": (1, 0), "output_padding": 1}),
    "conv_transpose3d": (F.conv_transpose3d, torch.nn.functional.conv_transpose3d,
                         (2, 4, 3, 2, 3), (4, 1, 2, 3, 2), True,
                         {"stride": (2, 1, 2), "padding": (1, 1, 0), "output_padding": (1, 0, 1),
                          "groups": 2}),
    "conv_transpose3d-outpad-dil": (F.conv_transpose3d, torch.nn.functional.conv_transpose3d,
                                    (1, 2, 2, 3, 2), (2, 2, 3, 2, 2), False,
                                    {"stride": (1, 2, 1), "output_padding": (2, 1, 1),
                                     "dilation": (3, 2, 2)}),
    "conv_transpose3d-unbatched": (F.conv_transpose3d, torch.nn.functional.conv_transpose3d,
                                   (2, 3, 2, 3), (2, 3, 2, 2, 2), True,
                                   {"stride": 2, "padding": 1}),
}  # fmt: skip


def assert_torch_close(ours: Any, theirs: torch.Tensor, what: str) -> None:
    expected = theirs.detach().numpy()
    assert np.asarray(ours).shape == expected.shape, what
    atol = 1e-10 * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=atol, err_msg=what)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", TORCH_CASES)
def test_functional_conv_matches_pytorch_through_the_graph(name: str) -> None:
    ours_op, torch_op, x_shape, w_shape, bias, hyper = TORCH_CASES[name]
    rng = np.random.default_rng(61)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    transposed = "transpose" in name
    out_channels = w_shape[1] * hyper.get("groups", 1) if transposed else w_shape[0]
    b = rng.standard_normal(out_channels) if bias else None
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = torch_op(tx, tw, tb, **hyper)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))

    cx, cw = convprop.tensor(x, requires_grad=True), convprop.tensor(w, requires_grad=True)
    cb = None if b is None else convprop.tensor(b, requires_grad=True)
    y = ours_op(cx, cw, cb, **hyper)
    y.backward(dy)
    assert y.dtype == np.float64
    assert_torch_close(y.data, ty, "y")
    assert_torch_close(cx.grad, tx.grad, "dx")
    assert_torch_close(cw.grad, tw.grad, "dw")
    if b is not None:
        assert_torch_close(cb.grad, tb.grad, "db")


@pytest.mark.parametrize("op", [F.conv1d, F.conv3d, F.conv_transpose1d, F.conv_transpose3d])
def test_functional_conv_float32_keeps_dtype(op: Callable[..., Any]) -> None:
    rng = np.random.default_rng(62)
    dims = 1 if op in (F.conv1d, F.conv_transpose1d) else 3
    x = convprop.tensor(rng.standard_normal((2, 2) + (4,) * dims).astype(np.float32), True)
    w = convprop.tensor(rng.standard_normal((2, 2) + (2,) * dims).astype(np.float32), True)
    y = op(x, w, None, 2)
    y.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32
    torch_op = getattr(torch.nn.functional, op.__name__)
    expected = torch_op(torch.from_numpy(x.data), torch.from_numpy(w.data), None, 2)
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", [F.conv3d, F.conv_transpose3d, F.conv1d, F.conv_transpose1d])
def test_input_without_grad_gives_the_same_weight_and_bias_gradients(op: Any) -> None:
    rng = np.random.default_rng(64)
    dims = 3 if op in (F.conv3d, F.conv_transpose3d) else 1
    x = rng.standard_normal((2, 2) + (3,) * dims)
    w, b = rng.standard_normal((2, 2) + (2,) * dims), rng.standard_normal(2)
    grads = []
    for x_grad in (True, False):
        xt = convprop.tensor(x, requires_grad=x_grad)
        wt, bt = convprop.tensor(w, requires_grad=True), convprop.tensor(b, requires_grad=True)
        y = op(xt, wt, bt, 2, 1)
        y.backward(np.random.default_rng(65).standard_normal(y.shape))
        assert (xt.grad is not None) == x_grad
        grads.append((wt.grad, bt.grad))
    assert np.array_equal(grads[0][0], grads[1][0]) and np.array_equal(grads[0][1], grads[1][1])


def test_unbatched_input_equals_a_batch_of_one() -> None:
    rng = np.random.default_rng(63)
    x, w = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((3, 2, 2, 2, 2))
    unbatched = F.conv3d(x, w, None, 1, 1)
    batched = F.conv3d(x[None], w, None, 1, 1)
    assert unbatched.shape == (3, 4, 5, 6)
    assert np.array_equal(unbatched.data, batched.data[0])


# ---------------------------------------------------------------------------------------
# The layers
# ---------------------------------------------------------------------------------------

LAYERS = {
    # name: (ours, PyTorch's, input shape, fan_in)
    "Conv1d": (
        lambda **kw: nn.Conv1d(6, 8, 3, stride=2, padding=1, dilation=2, groups=2, **kw),
        lambda: torch.nn.Conv1d(6, 8, 3, stride=2, padding=1, dilation=2, groups=2),
        (2, 6, 11),
        3 * 3,
    ),
    "Conv3d": (
        lambda **kw: nn.Conv3d(4, 6, (2, 3, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2), 2, **kw),
        lambda: torch.nn.Conv3d(4, 6, (2, 3, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2), 2),
        (2, 4, 4, 5, 5),
        2 * 12,
    ),
    "ConvTranspose1d": (
        lambda **kw: nn.ConvTranspose1d(4, 6, 3, 2, 1, 1, groups=2, dilation=1, **kw),
        lambda: torch.nn.ConvTranspose1d(4, 6, 3, 2, 1, 1, groups=2, dilation=1),
        (2, 4, 5),
        3 * 3,
    ),
    "ConvTranspose3d": (
        lambda **kw: nn.ConvTranspose3d(2, 4, (2, 2, 3), (2, 1, 1), (0, 1, 1), (1, 0, 0), **kw),
        lambda: torch.nn.ConvTranspose3d(2, 4, (2, 2, 3), (2, 1, 1), (0, 1, 1), (1, 0, 0)),
        (1, 2, 3, 3, 4),
        4 * 12,
    ),
    "Conv3d-no-bias-unbatched": (
        lambda **kw: nn.Conv3d(2, 3, 2, bias=False, **kw),
        lambda: torch.nn.Conv3d(2, 3, 2, bias=False),
        (2, 3, 4, 3),
        2 * 8,
    ),
    "ConvTranspose1d-unbatched": (
        lambda **kw: nn.ConvTranspose1d(3, 2, 4, stride=3, **kw),
        lambda: torch.nn.ConvTranspose1d(3, 2, 4, stride=3),
        (3, 5),
        2 * 4,
    ),
}


def _torch_twin(ours: nn.Module, make_torch: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    theirs = make_torch().double()
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return theirs


@pytest.mark.parametrize("name", LAYERS)
def test_layer_has_pytorch_state_dict_keys_and_shapes(name: str) -> None:
    make, make_torch, _, _ = LAYERS[name]
    ours, theirs = make(rng=0).state_dict(), make_torch().state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert tuple(ours[key].shape) == tuple(theirs[key].shape), key
        assert ours[key].dtype == np.float32


@pytest.mark.parametrize("name", LAYERS)
def test_layer_initial_values_are_uniform_within_pytorch_bound(name: str) -> None:
    make, make_torch, _, fan_in = LAYERS[name]
    bound = 1 / math.sqrt(fan_in)
    values = np.concatenate([p.data.ravel() for p in make(rng=5).parameters()])
    assert np.abs(values).max() <= bound
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = make_torch()
    torch_values = np.concatenate([p.detach().numpy().ravel() for p in theirs.parameters()])
    assert np.abs(torch_values).max() <= bound * (1 + 1e-6)  # the same fan_in as PyTorch's


FILL = {
    "Conv3d": (lambda: nn.Conv3d(8, 16, 3, rng=3), lambda: torch.nn.Conv3d(8, 16, 3)),
    "ConvTranspose1d": (
        lambda: nn.ConvTranspose1d(32, 16, 5, groups=2, rng=3),
        lambda: torch.nn.ConvTranspose1d(32, 16, 5, groups=2),
    ),
}


@pytest.mark.parametrize("name", FILL)
def test_layer_initial_weights_fill_the_interval_as_pytorch(name: str) -> None:
    make, make_torch = FILL[name]
    weight = make().weight.data
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])  # PyTorch's rule, also transposed
    bound = 1 / math.sqrt(fan_in)
    assert np.abs(weight).max() <= bound
    assert np.abs(weight).max() > 0.98 * bound
    assert abs(float(weight.std()) - bound / math.sqrt(3)) < 0.05 * bound
    assert abs(float(weight.mean())) < 0.05 * bound
    assert np.array_equal(weight, make().weight.data)  # seeded
    with torch.random.fork_rng():
        torch.manual_seed(1)
        theirs = make_torch().weight.detach().numpy()
    assert 0.98 * bound < np.abs(theirs).max() <= bound * (1 + 1e-6)  # the same bound


@pytest.mark.parametrize("name", LAYERS)
def test_layer_forward_and_gradients_equal_torch_modules(name: str) -> None:
    make, make_torch, x_shape, _ = LAYERS[name]
    ours = make(rng=1, dtype="float64")
    theirs = _torch_twin(ours, make_torch)
    rng = np.random.default_rng(71)
    x_array = rng.standard_normal(x_shape)
    tx = torch.tensor(x_array, requires_grad=True)
    ty = theirs(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    x = convprop.tensor(x_array, requires_grad=True)
    y = ours(x)
    y.backward(dy)
    assert_torch_close(y.data, ty, "y")
    assert_torch_close(x.grad, tx.grad, "dx")
    for (key, p), (tkey, tp) in zip(
        ours.named_parameters(), theirs.named_parameters(), strict=True
    ):
        assert key == tkey
        assert_torch_close(p.grad, tp.grad, key)


PADDING_MODE_LAYERS = {
    "Conv1d": (nn.Conv1d, torch.nn.Conv1d, (4, 6, 3), {"stride": 2, "padding": 2}, (2, 4, 7)),
    "Conv2d": (
        nn.Conv2d, torch.nn.Conv2d, (2, 3, (3, 2)),
        {"padding": (1, 2), "dilation": (1, 2)}, (2, 2, 5, 6),
    ),
    "Conv3d": (
        nn.Conv3d, torch.nn.Conv3d, (2, 4, (2, 3, 2)),
        {"padding": (1, 0, 2), "stride": (1, 2, 1), "groups": 2}, (1, 2, 4, 5, 3),
    ),
    "Conv1d-unbatched": (nn.Conv1d, torch.nn.Conv1d, (2, 2, 3), {"padding": 1}, (2, 6)),
}  # fmt: skip


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("name", PADDING_MODE_LAYERS)
def test_padding_mode_matches_pytorch(name: str, mode: str) -> None:
    ours_cls, torch_cls, args, kwargs, x_shape = PADDING_MODE_LAYERS[name]
    ours = ours_cls(*args, **kwargs, padding_mode=mode, rng=2, dtype="float64")
    theirs = _torch_twin(ours, lambda: torch_cls(*args, **kwargs, padding_mode=mode))
    rng = np.random.default_rng(81)
    x_array = rng.standard_normal(x_shape)
    tx = torch.tensor(x_array, requires_grad=True)
    ty = theirs(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    x = convprop.tensor(x_array, requires_grad=True)
    y = ours(x)
    y.backward(dy)
    assert_torch_close(y.data, ty, "y")
    assert_torch_close(x.grad, tx.grad, "dx")
    assert_torch_close(ours.weight.grad, theirs.weight.grad, "dw")
    assert_torch_close(ours.bias.grad, theirs.bias.grad, "db")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("cls, dims", [(nn.Conv1d, 1), (nn.Conv2d, 2), (nn.Conv3d, 3)])
def test_padding_mode_with_valid_padding_pads_nothing(cls: Any, dims: int, mode: str) -> None:
    x = np.random.default_rng(82).standard_normal((1, 2) + (5,) * dims)
    with_mode = cls(2, 3, 2, padding="valid", padding_mode=mode, rng=4, dtype="float64")
    zeros = cls(2, 3, 2, padding="valid", rng=4, dtype="float64")
    assert np.array_equal(with_mode(x).data, zeros(x).data)


ROUND_TRIP = {
    "Conv1d": lambda: nn.Conv1d(4, 6, 3, 2, 1, 2, 2, rng=0),
    "Conv1d-same-no-bias": lambda: nn.Conv1d(2, 3, 4, padding="same", bias=False, rng=0),
    "Conv3d": lambda: nn.Conv3d(2, 4, (1, 2, 3), (2, 1, 1), "valid", rng=0),
    "ConvTranspose1d": lambda: nn.ConvTranspose1d(4, 2, 3, 2, 1, 1, 2, True, 2, rng=0),
    "ConvTranspose3d": lambda: nn.ConvTranspose3d(2, 2, 2, 2, (0, 1, 0), (1, 0, 1), rng=0),
}
ROUND_TRIP_MODES = {
    "Conv1d-reflect": lambda: nn.Conv1d(2, 2, 3, padding=1, padding_mode="reflect", rng=0),
    "Conv2d-circular": lambda: nn.Conv2d(2, 2, 3, padding=(1, 2), padding_mode="circular", rng=0),
    "Conv3d-replicate": lambda: nn.Conv3d(2, 2, 2, padding=1, padding_mode="replicate", rng=0),
}


@pytest.mark.parametrize("name", [*ROUND_TRIP, *ROUND_TRIP_MODES])
def test_config_round_trips_through_architecture_and_build(name: str) -> None:
    layer = {**ROUND_TRIP, **ROUND_TRIP_MODES}[name]()
    arch = json.loads(json.dumps(architecture(layer)))
    rebuilt = build(arch)
    assert type(rebuilt) is type(layer)
    assert rebuilt.config() == layer.config()
    assert [k for k, _ in rebuilt.named_parameters()] == [k for k, _ in layer.named_parameters()]
    if name in ROUND_TRIP:  # the padding modes' forward is compared with PyTorch above
        rebuilt.load_state_dict(layer.state_dict())
        dims = len(layer.kernel_size)
        x = np.random.default_rng(91).standard_normal((1, layer.in_channels) + (5,) * dims)
        assert np.array_equal(rebuilt(x.astype(np.float32)).data, layer(x.astype(np.float32)).data)


def test_layer_dtype_follows_the_layer() -> None:
    layer = nn.Conv3d(2, 2, 2, rng=0)
    y = layer(np.ones((1, 2, 3, 3, 3), np.float32))
    assert y.dtype == np.float32
    assert nn.ConvTranspose1d(2, 2, 2, rng=0, dtype="float64")(np.ones((2, 3))).dtype == np.float64


def test_conv_transpose3d_valid_padding_is_zero_padding() -> None:
    x = np.random.default_rng(92).standard_normal((1, 2, 2, 3, 2))
    valid = nn.ConvTranspose3d(2, 3, 2, padding="valid", rng=0, dtype="float64")
    zero = nn.ConvTranspose3d(2, 3, 2, padding=0, rng=0, dtype="float64")
    assert np.array_equal(valid(x).data, zero(x).data)


# ---------------------------------------------------------------------------------------
# Every validation branch
# ---------------------------------------------------------------------------------------

X3, W3 = np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 2, 2, 2))
XT, WT = np.ones((1, 2, 3, 3, 3)), np.ones((2, 3, 2, 2, 2))


def _conv(**kw: Any) -> Callable[[], Any]:
    args = {"x": X3, "w": W3, "b": None, **kw}
    return lambda: conv_nd_forward(args.pop("x"), args.pop("w"), args.pop("b"), **args)


def _transpose(**kw: Any) -> Callable[[], Any]:
    args = {"x": XT, "w": WT, "b": None, **kw}
    return lambda: conv_transpose_nd_forward(args.pop("x"), args.pop("w"), args.pop("b"), **args)


def _conv_backward(dy: np.ndarray) -> Callable[[], Any]:
    return lambda: conv_nd_backward(dy, conv_nd_forward(X3, W3)[1])


def _transpose_backward(dy: np.ndarray) -> Callable[[], Any]:
    return lambda: conv_transpose_nd_backward(dy, conv_transpose_nd_forward(XT, WT)[1])


PAIR_ERRORS = {
    # conv_nd (CN1)
    "x-not-array": (_conv(x=X3.tolist()), DTypeError, r"conv_nd: x must be a numpy or cupy"),
    "w-not-array": (_conv(w=W3.tolist()), DTypeError, r"conv_nd: w must be a numpy or cupy"),
    "rank-mismatch": (_conv(w=np.ones((3, 2, 2, 2))), ShapeError, r"of the same rank"),
    "no-spatial-axis": (_conv(x=np.ones((1, 2)), w=np.ones((3, 2))), ShapeError, r"ndim >= 3"),
    "groups-zero": (_conv(groups=0), ParameterError, r"groups must be a positive int"),
    "groups-float": (_conv(groups=1.0), ParameterError, r"groups must be a positive int"),
    "channels": (_conv(w=np.ones((3, 3, 2, 2, 2))), ShapeError, r"channels do not fit the groups"),
    "K-not-divisible": (_conv(groups=2, w=np.ones((3, 1, 2, 2, 2))), ShapeError, r"K divisible"),
    "b-shape": (_conv(b=np.ones(4)), ShapeError, r"b must be \(K,\)=\(3,\)"),
    "b-not-array": (_conv(b=[1.0, 2.0, 3.0]), DTypeError, r"b must be a numpy or cupy"),
    "int-dtype": (_conv(x=X3.astype(np.int64)), DTypeError, r"expected float32 or float64"),
    "mixed-dtype": (_conv(w=W3.astype(np.float32)), DTypeError, r"must share one dtype"),
    "stride-zero": (_conv(stride=0), ParameterError, r"stride must be >= 1"),
    "stride-wrong-length": (_conv(stride=(1, 2)), ParameterError, r"stride must be an int or 3"),
    "stride-float": (_conv(stride=1.5), ParameterError, r"stride must be an int or 3 ints"),
    "dilation-zero": (_conv(dilation=(1, 0, 1)), ParameterError, r"dilation must be >= 1"),
    "padding-negative": (_conv(padding=-1), ParameterError, r"padding must be >= 0"),
    "padding-pair-negative": (
        _conv(padding=((1, -1), (0, 0), (0, 0))), ParameterError, r"padding must be >= 0"
    ),
    "padding-string": (_conv(padding="full"), ParameterError, r"padding must be an int or 3"),
    "padding-malformed": (
        _conv(padding=((1, 2, 3), (0, 0), (0, 0))), ParameterError, r"padding must be an int"
    ),
    "kernel-too-large": (
        _conv(w=np.ones((3, 2, 2, 5, 2)), dilation=(1, 2, 1), padding=(0, 2, 0)),
        ShapeError,
        r"padded input is smaller than the dilated kernel",
    ),
    "dy-shape": (_conv_backward(np.ones((1, 3, 3, 3, 2))), ShapeError, r"does not match the"),
    "dy-dtype": (
        _conv_backward(np.ones((1, 3, 3, 3, 3), np.float32)), DTypeError, r"the forward dtype"
    ),
    # conv_transpose_nd (CTN1)
    "t-x-not-array": (_transpose(x=1.0), DTypeError, r"conv_transpose_nd: x must be a numpy"),
    "t-rank-mismatch": (_transpose(w=np.ones((2, 3, 2))), ShapeError, r"of the same rank"),
    "t-groups": (_transpose(groups=-1), ParameterError, r"groups must be a positive int"),
    "t-w-channels": (_transpose(w=np.ones((3, 3, 2, 2, 2))), ShapeError, r"w.shape\[0\] must"),
    "t-groups-divide": (_transpose(groups=3, w=np.ones((2, 1, 2, 2, 2))), ShapeError,
                        r"divisible by groups=3"),
    "t-b-shape": (_transpose(b=np.ones(2)), ShapeError, r"b must be \(C_out,\)=\(3,\)"),
    "t-dtype": (_transpose(b=np.ones(3, np.float32)), DTypeError, r"must share one dtype"),
    "t-stride": (_transpose(stride=(1, 0, 1)), ParameterError, r"stride must be >= 1"),
    "t-padding-negative": (_transpose(padding=-1), ParameterError, r"padding must be >= 0"),
    "t-padding-pairs": (
        _transpose(padding=((0, 1), (0, 0), (0, 0))), ParameterError, r"padding must be an int"
    ),
    "t-output-padding-negative": (
        _transpose(output_padding=-1), ParameterError, r"output_padding must be >= 0"
    ),
    "t-output-padding-too-large": (
        _transpose(stride=2, dilation=(1, 3, 1), output_padding=(1, 3, 0)),
        ParameterError,
        r"output_padding must be smaller than stride or dilation",
    ),
    "t-output-padding-eq-stride": (
        _transpose(stride=2, output_padding=2), ParameterError, r"output_padding must be smaller"
    ),
    "t-empty": (_transpose(padding=(0, 2, 0)), ShapeError, r"the output would be empty"),
    "t-dy-shape": (_transpose_backward(np.ones((1, 3, 4, 4, 3))), ShapeError, r"does not match"),
}  # fmt: skip


@pytest.mark.parametrize("name", PAIR_ERRORS)
def test_pair_validation_raises_the_library_error(name: str) -> None:
    call, error, match = PAIR_ERRORS[name]
    with pytest.raises(error, match=match):
        call()


TENSOR_ERRORS = {
    "conv1d-rank": (lambda: F.conv1d(np.ones((1, 2, 3, 4)), np.ones((2, 2, 2))), ShapeError,
                    r"conv1d: input must be \(N, C, \*spatial\) or unbatched"),
    "conv1d-1d-input": (lambda: F.conv1d(np.ones(4), np.ones((2, 2, 2))), ShapeError,
                        r"expected 3 or 2 dimensions, got 1"),
    "conv1d-weight-rank": (lambda: F.conv1d(np.ones((1, 2, 5)), np.ones((2, 2, 1, 2))),
                           ShapeError, r"conv1d: weight must be \(K, C/groups, S\)"),
    "conv1d-stride-pair": (lambda: F.conv1d(np.ones((1, 2, 5)), np.ones((2, 2, 2)), None, (1, 2)),
                           ParameterError, r"stride must be an int or a 1-tuple"),
    "conv1d-channels": (lambda: F.conv1d(np.ones((1, 3, 5)), np.ones((2, 2, 2))), ShapeError,
                        r"conv2d"),
    "conv_transpose1d-weight-rank": (
        lambda: F.conv_transpose1d(np.ones((1, 2, 5)), np.ones((2, 2))), ShapeError,
        r"conv_transpose1d: weight must be \(C_in, C_out/groups, S\)"),
    "conv_transpose1d-output-padding": (
        lambda: F.conv_transpose1d(np.ones((1, 2, 5)), np.ones((2, 2, 2)), None, 1, 0, (1, 1)),
        ParameterError, r"output_padding must be an int or a 1-tuple"),
    "conv3d-rank": (lambda: F.conv3d(np.ones((2, 4, 4)), W3), ShapeError,
                    r"conv3d: input must be .* expected 5 or 4 dimensions, got 3"),
    "conv_transpose3d-rank": (lambda: F.conv_transpose3d(np.ones((1, 1, 2, 2, 2, 2)), WT),
                              ShapeError, r"conv_transpose3d: input must be"),
}  # fmt: skip


@pytest.mark.parametrize("name", TENSOR_ERRORS)
def test_functional_validation_raises_the_library_error(name: str) -> None:
    call, error, match = TENSOR_ERRORS[name]
    with pytest.raises(error, match=match):
        call()


LAYER_ERRORS = {
    "in-channels": (lambda: nn.Conv3d(0, 2, 3), r"Conv3d: in_channels must be a positive int"),
    "out-channels": (lambda: nn.Conv1d(2, 2.0, 3), r"out_channels must be a positive int"),
    "groups": (lambda: nn.ConvTranspose1d(2, 2, 3, groups=0), r"groups must be a positive int"),
    "groups-divide": (lambda: nn.Conv1d(3, 4, 3, groups=2), r"groups must divide in_channels"),
    "kernel-rank": (lambda: nn.Conv3d(2, 2, (3, 3)), r"kernel_size must be an int or 3 ints"),
    "kernel-zero": (lambda: nn.Conv1d(2, 2, 0), r"kernel_size must be >= 1"),
    "stride-zero": (lambda: nn.Conv3d(2, 2, 3, stride=(1, 0, 1)), r"stride must be >= 1"),
    "dilation-zero": (lambda: nn.ConvTranspose3d(2, 2, 3, dilation=0), r"dilation must be >= 1"),
    "padding-negative": (lambda: nn.Conv1d(2, 2, 3, padding=-1), r"padding must be >= 0"),
    "output-padding": (
        lambda: nn.ConvTranspose3d(2, 2, 3, output_padding=-1),
        r"output_padding must be >= 0",
    ),
    "padding-string": (lambda: nn.Conv3d(2, 2, 3, padding="full"), r"unknown padding string"),
    "transpose-same": (
        lambda: nn.ConvTranspose1d(2, 2, 3, padding="same"),
        r"unknown padding string",
    ),
    "transpose-mode": (
        lambda: nn.ConvTranspose3d(2, 2, 3, padding_mode="reflect"),
        r"only padding_mode='zeros'",
    ),
    "mode-unknown-1d": (lambda: nn.Conv1d(2, 2, 3, padding_mode="mirror"), r"unknown padding_mode"),
    "mode-unknown-2d": (lambda: nn.Conv2d(2, 2, 3, padding_mode="zero"), r"unknown padding_mode"),
    "mode-unknown-3d": (lambda: nn.Conv3d(2, 2, 3, padding_mode=None), r"unknown padding_mode"),
    "mode-same-1d": (
        lambda: nn.Conv1d(2, 2, 3, padding="same", padding_mode="reflect"),
        r"padding_mode='reflect' needs one symmetric padding per axis",
    ),
    "mode-same-2d": (
        lambda: nn.Conv2d(2, 2, 3, padding="same", padding_mode="circular"),
        r"padding_mode='circular' needs one symmetric padding per axis",
    ),
    "mode-same-3d": (
        lambda: nn.Conv3d(2, 2, 3, padding="same", padding_mode="replicate"),
        r"padding_mode='replicate' needs one symmetric padding per axis",
    ),
    "mode-pairs-2d": (
        lambda: nn.Conv2d(2, 2, 3, padding=((1, 0), (0, 1)), padding_mode="reflect", rng=0),
        r"Conv2d: padding_mode='reflect' needs one symmetric padding per axis",
    ),
    "output-padding-at-forward": (
        lambda: nn.ConvTranspose3d(2, 2, 3, stride=2, output_padding=2, rng=0)(
            np.ones((1, 2, 2, 2, 2), np.float32)
        ),
        r"output_padding must be smaller than stride or dilation",
    ),
}


@pytest.mark.parametrize("name", LAYER_ERRORS)
def test_layer_validation_raises_the_library_error(name: str) -> None:
    call, match = LAYER_ERRORS[name]
    with pytest.raises(ParameterError, match=match):
        call()


@pytest.mark.parametrize("cls", [nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose3d])
def test_layer_refuses_an_unsupported_dtype(cls: type[nn.Module]) -> None:
    with pytest.raises(DTypeError, match=r"dtype must be float32 or float64"):
        cls(2, 2, 3, dtype="float16")
