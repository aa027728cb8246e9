"""BatchNorm followed by ReLU as one op (BR1)–(BR4), witnessed by the naive float64 references
of the two ops chained, finite differences, the library's unfused chain (the same values, bit
for bit where the derivation says so), the kernels against the NumPy code, and PyTorch."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest
import torch

import reference_activations as ref
from convprop import _native
from convprop._native import batchnorm
from convprop._native._compiled import kernels
from convprop.errors import ParameterError, ShapeError
from convprop.functional import batch_norm_relu as fused
from convprop.functional.activation import relu_backward, relu_forward
from convprop.functional.batch_norm_relu import (
    batch_norm2d_relu_backward,
    batch_norm2d_relu_forward,
)
from convprop.functional.normalization import batch_norm2d_backward, batch_norm2d_forward

EPS = 1e-5
needs_kernels = pytest.mark.skipif(not _native.AVAILABLE, reason="kernels not built")


def make_inputs(seed: int, shape: tuple[int, ...], dtype: Any = np.float64) -> list[Any]:
    """x, gamma, beta, running_mean, running_var: β of both signs, so that some channels are
    mostly cut by the ReLU and some mostly passed."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(size=shape) * rng.uniform(0.5, 3, size=(1, C, 1, 1)) + rng.normal(
        size=(1, C, 1, 1)
    )
    gamma = rng.uniform(0.5, 2, size=C) * rng.choice([-1, 1], size=C)
    beta = rng.normal(size=C)
    running_mean = rng.normal(size=C)
    running_var = rng.uniform(0.5, 2, size=C)
    return [a.astype(dtype) for a in (x, gamma, beta, running_mean, running_var)]


def _unfused(inputs: list[Any], dz: Any, training: bool) -> list[Any]:
    """relu(batch_norm2d(x)) and its gradients through the two ops of the library."""
    y, bn_cache = batch_norm2d_forward(*inputs, training=training, momentum=0.3)
    z, relu_cache = relu_forward(y)
    dx, dgamma, dbeta = batch_norm2d_backward(relu_backward(dz, relu_cache), bn_cache)
    return [z, bn_cache.new_running_mean, bn_cache.new_running_var, dx, dgamma, dbeta]


def _fused(inputs: list[Any], dz: Any, training: bool) -> list[Any]:
    z, cache = batch_norm2d_relu_forward(*inputs, training=training, momentum=0.3)
    dx, dgamma, dbeta = batch_norm2d_relu_backward(dz, cache)
    return [z, cache.new_running_mean, cache.new_running_var, dx, dgamma, dbeta]


@pytest.mark.parametrize("training", [True, False])
def test_fused_op_matches_the_naive_references_chained_br1_to_br4(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(0, (3, 4, 3, 5))
    dz = np.random.default_rng(1).normal(size=x.shape)
    z, cache = batch_norm2d_relu_forward(x, gamma, beta, running_mean, running_var,
                                         training=training)  # fmt: skip
    dx, dgamma, dbeta = batch_norm2d_relu_backward(dz, cache)
    if training:
        y_ref, _, _ = ref.batch_norm2d_train(x, gamma, beta, EPS)
    else:
        y_ref = ref.batch_norm2d_eval(x, gamma, beta, running_mean, running_var, EPS)
    dy = dz * (y_ref > 0)  # (BR3) by the reference's own y
    if training:
        dx_ref, dgamma_ref, dbeta_ref = ref.batch_norm2d_train_grad(x, gamma, dy, EPS)
    else:  # (BN12) with the running statistics: the statistics are constants
        invstd = 1 / np.sqrt(running_var + EPS)
        xhat = (x - running_mean.reshape(1, -1, 1, 1)) * invstd.reshape(1, -1, 1, 1)
        dx_ref = dy * (gamma * invstd).reshape(1, -1, 1, 1)
        dgamma_ref, dbeta_ref = (dy * xhat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))
    np.testing.assert_allclose(z, np.maximum(y_ref, 0), rtol=1e-12, atol=1e-13)  # (BR2)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dbeta, dbeta_ref, rtol=1e-12, atol=1e-13)
    assert 0 < np.count_nonzero(dy) < dy.size  # the ReLU cuts some gradients, not all


@pytest.mark.parametrize("training", [True, False])
def test_fused_backward_matches_finite_differences_br3_br4(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(2, (2, 3, 2, 3))
    dz = np.random.default_rng(3).normal(size=x.shape)
    _, cache = batch_norm2d_relu_forward(x, gamma, beta, running_mean, running_var,
                                         training=training)  # fmt: skip
    dx, dgamma, dbeta = batch_norm2d_relu_backward(dz, cache)

    def objective(x_: Any, gamma_: Any, beta_: Any) -> float:
        out, _ = batch_norm2d_relu_forward(x_, gamma_, beta_, running_mean, running_var,
                                           training=training)  # fmt: skip
        return float(np.sum(dz * out))

    fd_x = ref.numerical_gradient(lambda v: objective(v, gamma, beta), x)
    fd_gamma = ref.numerical_gradient(lambda v: objective(x, v, beta), gamma)
    fd_beta = ref.numerical_gradient(lambda v: objective(x, gamma, v), beta)
    np.testing.assert_allclose(dx, fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dgamma, fd_gamma, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, fd_beta, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 7, 9), (3, 1, 1, 17), (2, 3, 33, 2)])
def test_fused_op_is_the_unfused_chain(
    shape: tuple[int, ...], training: bool, dtype: Any, compiled: bool
) -> None:
    """z and the running statistics are the chain's bits: (BR1), (BR2) compute what the two
    ops compute, in the same order of rounding. The gradients are the chain's to rounding:
    each pass forms dy = dz·f′(y) itself (the same values) and sums them as the chain does."""
    if compiled and not _native.AVAILABLE:
        pytest.skip("kernels not built")
    inputs = make_inputs(4, shape, dtype)
    dz = np.random.default_rng(5).normal(size=shape).astype(dtype)
    with nullcontext() if compiled else _native.disabled():
        chain, together = _unfused(inputs, dz, training), _fused(inputs, dz, training)
    names = ("z", "running_mean", "running_var", "dx", "dgamma", "dbeta")
    for name, a, b in zip(names, together, chain, strict=True):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape, name
        if name in ("z", "running_mean", "running_var"):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            scale = float(np.abs(b).max())
            rtol = 1e-12 if dtype == np.float64 else 2e-6
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=name)


@needs_kernels
@pytest.mark.parametrize("training", [True, False])
def test_twins_run_the_kernels_and_match_the_references(training: bool) -> None:
    """The fused twins called unconditionally against the NumPy references (BR1)–(BR4)."""
    x, gamma, beta, running_mean, running_var = make_inputs(6, (3, 4, 5, 6))
    dz = np.random.default_rng(7).normal(size=x.shape)
    arguments = (x, gamma, beta, running_mean, running_var, training, 0.1, EPS)
    compiled = batchnorm.batch_norm2d_relu_normalize(*arguments)
    with _native.disabled():
        reference = fused._normalize_relu(*arguments)
    for a, b in zip(compiled, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    _, mean, invstd, _, _ = reference
    grads = batchnorm.batch_norm2d_relu_gradients(dz, x, mean, invstd, gamma, beta, training)
    with _native.disabled():
        reference_grads = fused._relu_gradients(dz, x, mean, invstd, gamma, beta, training)
    for a, b in zip(grads, reference_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_gate_is_relus_at_zero_and_nan(compiled: bool) -> None:
    """(BR3) with (A3): where y is exactly 0 the gradient stops, where y is NaN it passes;
    (BR2) with (A2): z = 0 at y = 0 (never -0), NaN at NaN."""
    if compiled and not _native.AVAILABLE:
        pytest.skip("kernels not built")
    x = np.array([1.0, 2.0, 3.0, np.nan]).reshape(4, 1, 1, 1)  # μ = 2: x̂ = 0 at x = 2
    ones, zeros = np.ones(1), np.zeros(1)
    dz = np.array([1.0, 2.0, 3.0, 4.0]).reshape(x.shape)
    with nullcontext() if compiled else _native.disabled():
        z, cache = batch_norm2d_relu_forward(x, ones, zeros, np.array([2.0]), ones,
                                             training=False)  # fmt: skip
        dx, _, _ = batch_norm2d_relu_backward(dz, cache)
    assert z.ravel()[1] == 0 and not np.signbit(z.ravel()[1]) and np.isnan(z.ravel()[3])
    assert dx.ravel()[0] == 0 and dx.ravel()[1] == 0  # y = -1/√(1+eps) and y = 0
    assert dx.ravel()[2] > 0 and dx.ravel()[3] == pytest.approx(4 / np.sqrt(1 + EPS))


@pytest.mark.parametrize("training", [True, False])
def test_matches_torch_relu_of_batch_norm(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(8, (4, 3, 5, 5))
    dz = np.random.default_rng(9).normal(size=x.shape)
    z, cache = batch_norm2d_relu_forward(x, gamma, beta, running_mean, running_var,
                                         training=training, momentum=0.2)  # fmt: skip
    dx, dgamma, dbeta = batch_norm2d_relu_backward(dz, cache)
    tx, tgamma, tbeta = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    t_mean, t_var = torch.tensor(running_mean), torch.tensor(running_var)
    tz = torch.relu(
        torch.nn.functional.batch_norm(
            tx, t_mean, t_var, tgamma, tbeta, training=training, momentum=0.2, eps=EPS
        )
    )
    tz.backward(torch.tensor(dz))
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cache.new_running_mean, t_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(cache.new_running_var, t_var.numpy(), rtol=1e-12)
    for ours, theirs in ((dx, tx), (dgamma, tgamma), (dbeta, tbeta)):
        assert theirs.grad is not None
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("training", [True, False])
def test_no_mutation_backward_twice_and_non_contiguous_input(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(10, (3, 2, 4, 6))
    x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # non-contiguous
    inputs = [x, gamma, beta, running_mean, running_var]
    copies = [a.copy() for a in inputs]
    dz = np.random.default_rng(11).normal(size=x.shape)
    dz_copy = dz.copy()
    z, cache = batch_norm2d_relu_forward(*inputs, training=training)
    first = batch_norm2d_relu_backward(dz, cache)
    second = batch_norm2d_relu_backward(dz, cache)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, dz)
    for a, b in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dz, dz_copy)
    chain = _unfused([np.ascontiguousarray(x), *inputs[1:]], dz, training)
    np.testing.assert_allclose(z, chain[0], rtol=1e-15, atol=0)


def test_errors_name_the_fused_op() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(12, (2, 3, 2, 2))
    with pytest.raises(ShapeError, match=r"batch_norm2d_relu: gamma must hold one value per"):
        batch_norm2d_relu_forward(x, gamma[:2], beta, running_mean, running_var, training=True)
    with pytest.raises(ParameterError, match=r"batch_norm2d_relu: eps keeps the division"):
        batch_norm2d_relu_forward(x, gamma, beta, running_mean, running_var, training=True,
                                  eps=0.0)  # fmt: skip
    with pytest.raises(ShapeError, match=r"batch_norm2d_relu: training mode needs more than"):
        batch_norm2d_relu_forward(x[:1, :, :1, :1], gamma, beta, running_mean, running_var,
                                  training=True)  # fmt: skip
    _, cache = batch_norm2d_relu_forward(x, gamma, beta, running_mean, running_var,
                                         training=True)  # fmt: skip
    with pytest.raises(ShapeError, match=r"batch_norm2d_relu_backward: dy.shape=\(2, 3, 2, 1\)"):
        batch_norm2d_relu_backward(np.zeros((2, 3, 2, 1)), cache)


@needs_kernels
def test_kernel_bindings_refuse_half_a_gate() -> None:
    x = np.ones((2, 3, 4))
    per_channel = np.ones(3)
    sums = (np.empty(3), np.empty(3))
    with pytest.raises(ValueError, match="batchnorm_grad_sums: the ReLU's gate needs both"):
        kernels.batchnorm_grad_sums(x, x, per_channel, per_channel, *sums, 2, 3, 4, 0, 3,
                                    relu_gamma=per_channel)  # fmt: skip
    with pytest.raises(ValueError, match="batchnorm_grad_frozen: relu_x, relu_mean and relu_b"):
        kernels.batchnorm_grad_frozen(x, per_channel, per_channel, np.empty_like(x), 3, 4, 0, 6,
                                      relu_x=x)  # fmt: skip
