"""Convolution, bias and ReLU as one op (CB1)–(CB4), witnessed by the naive float64 references
chained (F1, A2; B1–B3 of the gated dy), finite differences, the library's unfused chain (the
same bits: the same ops on the same values) and PyTorch."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest
import torch

from convprop import _native
from convprop.errors import ShapeError
from convprop.functional.activation import relu_backward, relu_forward
from convprop.functional.conv2d import conv2d_backward, conv2d_forward
from convprop.functional.conv2d_relu import conv2d_relu_backward, conv2d_relu_forward
from reference import CASES, ConvCase, conv2d_db_ref, conv2d_dw_ref, conv2d_dx_ref, conv2d_ref

GRID = [case for case in CASES if case.N > 0][::3]  # every third case: strides, dilations, groups


def _inputs(case: ConvCase, dtype: Any, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = rng.standard_normal(case.w_shape).astype(dtype)
    b = rng.standard_normal(case.w_shape[0]).astype(dtype) if case.bias else None
    dz = rng.standard_normal(case.y_shape).astype(dtype)
    return x, w, b, dz


@pytest.mark.parametrize("case", GRID, ids=lambda c: c.name)
def test_fused_op_matches_the_naive_references_chained_cb1_to_cb4(case: ConvCase) -> None:
    x, w, b, dz = _inputs(case, np.float64)
    z, cache = conv2d_relu_forward(x, w, b, **case.hyper)
    dx, dw, db = conv2d_relu_backward(dz, cache)
    y_ref = conv2d_ref(x, w, b, **case.hyper)
    dy = dz * (y_ref > 0)  # (CB3) by the reference's own y
    np.testing.assert_allclose(z, np.maximum(y_ref, 0), rtol=1e-12, atol=1e-12)  # (CB2)
    np.testing.assert_allclose(dx, conv2d_dx_ref(dy, w, case.x_shape, **case.hyper),
                               rtol=1e-10, atol=1e-11)  # fmt: skip
    np.testing.assert_allclose(dw, conv2d_dw_ref(x, dy, case.w_shape, **case.hyper),
                               rtol=1e-10, atol=1e-11)  # fmt: skip
    if case.bias:
        np.testing.assert_allclose(db, conv2d_db_ref(dy), rtol=1e-12, atol=1e-12)
    else:
        assert db is None


def test_fused_backward_matches_finite_differences_cb3_cb4() -> None:
    rng = np.random.default_rng(1)
    x, w, b = (
        rng.standard_normal((2, 3, 5, 6)),
        rng.standard_normal((4, 3, 3, 2)),
        rng.normal(size=4),
    )
    hyper = {"stride": (1, 2), "padding": 1, "dilation": (2, 1)}
    z, cache = conv2d_relu_forward(x, w, b, **hyper)
    dz = rng.standard_normal(z.shape)
    dx, dw, db = conv2d_relu_backward(dz, cache)

    def objective(x_: Any, w_: Any, b_: Any) -> float:
        out, _ = conv2d_relu_forward(x_, w_, b_, **hyper)
        return float(np.sum(dz * out))

    step = 1e-6
    for value, grad, wrap in (
        (x, dx, lambda v: objective(v, w, b)),
        (w, dw, lambda v: objective(x, v, b)),
        (b, db, lambda v: objective(x, w, v)),
    ):
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[index] += step
            minus[index] -= step
            numeric[index] = (wrap(plus) - wrap(minus)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", GRID, ids=lambda c: c.name)
def test_fused_op_is_the_unfused_chain_bit_for_bit(
    case: ConvCase, dtype: Any, compiled: bool
) -> None:
    """The same ops on the same values: z and every gradient are the chain's bits."""
    if compiled and not _native.AVAILABLE:
        pytest.skip("the compiled kernels are not built")
    x, w, b, dz = _inputs(case, dtype, seed=2)
    with nullcontext() if compiled else _native.disabled():
        y, conv_cache = conv2d_forward(x, w, b, **case.hyper)
        z_chain, relu_cache = relu_forward(y)
        grads_chain = conv2d_backward(relu_backward(dz, relu_cache), conv_cache)
        z, cache = conv2d_relu_forward(x, w, b, **case.hyper)
        grads = conv2d_relu_backward(dz, cache)
    assert z.dtype == dtype and z.shape == case.y_shape
    np.testing.assert_array_equal(z, z_chain)
    for a, c in zip(grads, grads_chain, strict=True):
        if c is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, c)


def test_inputs_are_never_written_and_need_dx_skips_dx() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((6, 4, 1, 1))  # 1x1, stride 1: im2col's columns are x itself
    b = rng.standard_normal(6)
    copies = [a.copy() for a in (x, w, b)]
    for algorithm in ("auto", "im2col", "direct"):
        z, cache = conv2d_relu_forward(x, w, b, algorithm=algorithm)
        assert not any(np.shares_memory(z, a) for a in (x, w, b))
        dx, dw, db = conv2d_relu_backward(np.ones_like(z), cache, need_dx=False)
        assert dx is None and dw.shape == w.shape and db.shape == b.shape
    far, far_copy = np.ones((2, 1, 3, 3)), np.ones((2, 1, 3, 3))
    z, _ = conv2d_relu_forward(far, np.ones((2, 1, 3, 3)), b[:2], padding=10)  # padding only
    np.testing.assert_array_equal(z[:, :, 0, 0], np.maximum(b[:2], 0)[None].repeat(2, 0))
    assert not np.shares_memory(z, b) and np.array_equal(far, far_copy)
    for a, c in zip((x, w, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_gate_at_zero_and_nan_is_relus() -> None:
    """(CB3) with (A3): where y is exactly 0 (z = +0) the gradient stops; where y is NaN it
    passes (z NaN), as relu_backward does."""
    x = np.array([[[[1.0, -1.0, np.nan]]]])
    z, cache = conv2d_relu_forward(x, np.ones((1, 1, 1, 1)), np.array([-1.0]))
    assert z[0, 0, 0, 0] == 0 and not np.signbit(z[0, 0, 0, 0]) and np.isnan(z[0, 0, 0, 2])
    dx, _, db = conv2d_relu_backward(np.array([[[[2.0, 3.0, 4.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0, 0, :2], [0.0, 0.0])
    assert dx[0, 0, 0, 2] == 4.0 and db[0] == 4.0  # the NaN window's gradient passes


def test_matches_torch_relu_of_conv2d() -> None:
    rng = np.random.default_rng(4)
    x, w, b = (
        rng.standard_normal((3, 4, 9, 8)),
        rng.standard_normal((6, 2, 3, 3)),
        rng.normal(size=6),
    )
    hyper = {"stride": 2, "padding": 1, "dilation": 1, "groups": 2}
    z, cache = conv2d_relu_forward(x, w, b, **hyper)
    dz = rng.standard_normal(z.shape)
    dx, dw, db = conv2d_relu_backward(dz, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tz = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, **hyper))
    tz.backward(torch.tensor(dz))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in ((dx, tx), (dw, tw), (db, tb)):
        assert theirs.grad is not None
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_backward_names_the_fused_op() -> None:
    x, w = np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))
    _, cache = conv2d_relu_forward(x, w)
    with pytest.raises(ShapeError, match=r"conv2d_relu_backward: dy.shape=\(1, 3, 2, 3\)"):
        conv2d_relu_backward(np.ones((1, 3, 2, 3)), cache)
    with pytest.raises(ShapeError, match="conv2d: x has C=2 channels"):
        conv2d_relu_forward(x, np.ones((3, 5, 3, 3)))
