"""Batch normalisation (BN1)–(BN12): references, finite differences, PyTorch, contract, errors."""

from __future__ import annotations

from contextlib import nullcontext
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_activations as ref
from convprop import _native
from convprop._native import batchnorm
from convprop._native._compiled import kernels
from convprop.backend import get_xp, to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.functional import normalization
from convprop.functional.normalization import (
    batch_norm2d,
    batch_norm2d_backward,
    batch_norm2d_forward,
)

SHAPE = (2, 3, 3, 2)  # m = N·H·W = 12 values per channel
EPS = 1e-5
MOMENTUM = 0.1


def make_inputs(seed: int, shape: tuple[int, ...] = SHAPE, dtype: Any = np.float64) -> list[Any]:
    """x (with a per-channel offset and scale), gamma, beta, running_mean, running_var."""
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.normal(size=shape) * rng.uniform(0.5, 3, size=(1, C, 1, 1)) + rng.normal(
        size=(1, C, 1, 1)
    )
    gamma = rng.uniform(0.5, 2, size=C)
    beta = rng.normal(size=C)
    running_mean = rng.normal(size=C)
    running_var = rng.uniform(0.5, 2, size=C)
    return [a.astype(dtype) for a in (x, gamma, beta, running_mean, running_var)]


def test_training_forward_and_running_stats_match_reference_bn1_to_bn6() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(0)
    y, cache = batch_norm2d_forward(
        x, gamma, beta, running_mean, running_var, training=True, momentum=0.3, eps=EPS
    )
    y_ref, mean, var = ref.batch_norm2d_train(x, gamma, beta, EPS)
    new_mean, new_var = ref.batch_norm2d_running(running_mean, running_var, mean, var, 12, 0.3)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(cache.new_running_mean, new_mean, rtol=1e-13)
    np.testing.assert_allclose(cache.new_running_var, new_var, rtol=1e-13)
    np.testing.assert_array_equal(
        batch_norm2d(x, gamma, beta, running_mean, running_var, training=True, momentum=0.3), y
    )


def test_training_backward_matches_jacobian_reference_bn8_to_bn11() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(1)
    dy = np.random.default_rng(11).normal(size=SHAPE)
    _, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=True)
    dx, dgamma, dbeta = batch_norm2d_backward(dy, cache)
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_norm2d_train_grad(x, gamma, dy, EPS)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=1e-12)
    np.testing.assert_allclose(dbeta, dbeta_ref, rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_finite_differences_bn8_to_bn12(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(2, (2, 2, 2, 2))
    dy = np.random.default_rng(12).normal(size=x.shape)
    _, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=training)
    dx, dgamma, dbeta = batch_norm2d_backward(dy, cache)

    def objective(x_: np.ndarray, gamma_: np.ndarray, beta_: np.ndarray) -> float:
        y, _ = batch_norm2d_forward(x_, gamma_, beta_, running_mean, running_var, training=training)
        return float(np.sum(dy * y))

    fd_x = ref.numerical_gradient(lambda v: objective(v, gamma, beta), x)
    fd_gamma = ref.numerical_gradient(lambda v: objective(x, v, beta), gamma)
    fd_beta = ref.numerical_gradient(lambda v: objective(x, gamma, v), beta)
    np.testing.assert_allclose(dx, fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dgamma, fd_gamma, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, fd_beta, rtol=1e-6, atol=1e-8)


def test_inference_forward_matches_reference_and_keeps_running_stats_bn7() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(3)
    y, cache = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=False)
    y_ref = ref.batch_norm2d_eval(x, gamma, beta, running_mean, running_var, EPS)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(cache.new_running_mean, running_mean)
    np.testing.assert_array_equal(cache.new_running_var, running_var)


@pytest.mark.parametrize("training", [True, False])
def test_matches_torch_including_running_stats(training: bool) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(4)
    dy = np.random.default_rng(14).normal(size=SHAPE)
    y, cache = batch_norm2d_forward(
        x, gamma, beta, running_mean, running_var, training=training, momentum=0.2, eps=1e-3
    )
    dx, dgamma, dbeta = batch_norm2d_backward(dy, cache)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    rmt, rvt = torch.tensor(running_mean), torch.tensor(running_var)
    yt = torch.nn.functional.batch_norm(
        xt, rmt, rvt, weight=gt, bias=bt, training=training, momentum=0.2, eps=1e-3
    )  # PyTorch updates rmt and rvt in place
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(cache.new_running_mean, rmt.numpy(), rtol=1e-13)
    np.testing.assert_allclose(cache.new_running_var, rvt.numpy(), rtol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_single_value_per_channel_is_refused_in_training_like_torch() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(5, (1, 3, 1, 1))
    with pytest.raises(ShapeError, match=r"batch_norm2d: training mode needs more than 1 value"):
        batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        torch.nn.functional.batch_norm(
            torch.tensor(x), torch.tensor(running_mean), torch.tensor(running_var), training=True
        )
    y, _ = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=False)
    assert y.shape == (1, 3, 1, 1)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3), st.integers(0, 99)
)
def test_training_output_has_channel_mean_beta_and_variance_gamma_squared_bn4(
    N: int, C: int, H: int, W: int, seed: int
) -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(seed, (N, C, H, W))
    y, _ = batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta, atol=1e-12)
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), gamma**2 * var / (var + EPS), rtol=1e-9)


@pytest.mark.parametrize("training", [True, False])
def test_float32_is_preserved(training: bool) -> None:
    inputs = make_inputs(6, dtype=np.float32)
    dy = np.random.default_rng(16).normal(size=SHAPE).astype(np.float32)
    y, cache = batch_norm2d_forward(*inputs, training=training)
    grads = batch_norm2d_backward(dy, cache)
    outputs = [y, cache.new_running_mean, cache.new_running_var, *grads]
    assert all(a.dtype == np.float32 for a in outputs)
    assert [a.shape for a in grads] == [SHAPE, (3,), (3,)]
    y64, _ = batch_norm2d_forward(*[a.astype(np.float64) for a in inputs], training=training)
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_no_mutation_and_backward_twice_identical(training: bool) -> None:
    inputs = make_inputs(7)
    dy = np.random.default_rng(17).normal(size=SHAPE)
    before = [a.copy() for a in (*inputs, dy)]
    _, cache = batch_norm2d_forward(*inputs, training=training)
    first = batch_norm2d_backward(dy, cache)
    second = batch_norm2d_backward(dy, cache)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    for a, b in zip((*inputs, dy), before, strict=True):
        np.testing.assert_array_equal(a, b)  # running_mean and running_var included
    if training:
        assert not np.shares_memory(cache.new_running_mean, inputs[3])
        assert not np.shares_memory(cache.new_running_var, inputs[4])


def test_non_contiguous_input_is_accepted() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(8, (2, 3, 2, 3))
    x_view = x.transpose(0, 1, 3, 2)
    y, cache = batch_norm2d_forward(x_view, gamma, beta, running_mean, running_var, training=True)
    y_ref, _, _ = ref.batch_norm2d_train(np.ascontiguousarray(x_view), gamma, beta, EPS)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)
    dx, _, _ = batch_norm2d_backward(np.ones((2, 3, 3, 2))[:, :, ::-1], cache)
    assert dx.shape == x_view.shape


def test_rejects_bad_shapes_and_dtypes() -> None:
    x, gamma, beta, running_mean, running_var = make_inputs(9)
    with pytest.raises(ShapeError, match=r"batch_norm2d: x must be \(N, C, H, W\); expected 4"):
        batch_norm2d_forward(x[0], gamma, beta, running_mean, running_var, training=True)
    with pytest.raises(ShapeError, match=r"batch_norm2d: gamma must hold one value per channel"):
        batch_norm2d_forward(x, gamma[:2], beta, running_mean, running_var, training=True)
    with pytest.raises(ShapeError, match=r"running_var must hold one .* got \(3, 1\)"):
        batch_norm2d_forward(x, gamma, beta, running_mean, running_var[:, None], training=False)
    with pytest.raises(DTypeError, match="batch_norm2d: arrays must share one dtype"):
        batch_norm2d_forward(x, gamma.astype(np.float32), beta, running_mean, running_var,
                             training=True)  # fmt: skip
    with pytest.raises(DTypeError, match="batch_norm2d: x has dtype int64"):
        batch_norm2d_forward(x.astype(np.int64), gamma, beta, running_mean, running_var,
                             training=True)  # fmt: skip
    with pytest.raises(DTypeError, match="batch_norm2d: beta must be a numpy or cupy array"):
        batch_norm2d_forward(x, gamma, [0.0] * 3, running_mean, running_var, training=True)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"training": 1}, "training must be a bool"),
        ({"training": True, "momentum": 1.5}, "momentum is the weight"),
        ({"training": True, "momentum": None}, "momentum is the weight"),
        ({"training": True, "eps": 0.0}, "eps keeps the division finite"),
        ({"training": True, "eps": float("inf")}, "eps keeps the division finite"),
        ({"training": True, "eps": True}, "eps keeps the division finite"),
    ],
)
def test_rejects_bad_hyperparameters(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError, match=f"batch_norm2d: {message}"):
        batch_norm2d_forward(*make_inputs(10), **keywords)


def test_backward_rejects_bad_dy() -> None:
    _, cache = batch_norm2d_forward(*make_inputs(11), training=True)
    with pytest.raises(ShapeError, match=r"batch_norm2d_backward: dy.shape=\(2, 3, 3, 3\)"):
        batch_norm2d_backward(np.ones((2, 3, 3, 3)), cache)
    with pytest.raises(DTypeError, match="batch_norm2d_backward: dy has dtype float32"):
        batch_norm2d_backward(np.ones(SHAPE, dtype=np.float32), cache)


@pytest.mark.parametrize("training", [True, False])
def test_backend_parity(xp: ModuleType, training: bool) -> None:
    inputs = make_inputs(12)
    dy = np.random.default_rng(18).normal(size=SHAPE)
    y, cache = batch_norm2d_forward(*(xp.asarray(a) for a in inputs), training=training)
    grads = batch_norm2d_backward(xp.asarray(dy), cache)
    y_host, cache_host = batch_norm2d_forward(*inputs, training=training)
    expected = (y_host, cache_host.new_running_mean, cache_host.new_running_var,
                *batch_norm2d_backward(dy, cache_host))  # fmt: skip
    computed = (y, cache.new_running_mean, cache.new_running_var, *grads)
    assert get_xp(*computed) is xp
    for a, b in zip(computed, expected, strict=True):
        np.testing.assert_allclose(to_host(a), b, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------ the compiled kernels (BN13)

needs_kernels = pytest.mark.skipif(not _native.AVAILABLE, reason="kernels not built")
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def _both_paths(inputs: list[Any], dy: Any, training: bool) -> tuple[list[Any], list[Any]]:
    """y, the running statistics and the three gradients with the kernels on, then off."""
    results = []
    for context in (nullcontext, _native.disabled):
        with context():
            y, cache = batch_norm2d_forward(*inputs, training=training, momentum=0.3)
            grads = batch_norm2d_backward(dy, cache)
        results.append([y, cache.new_running_mean, cache.new_running_var, *grads])
    return results[0], results[1]


@needs_kernels
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 5, 7, 9), (3, 1, 1, 17), (9, 6, 1, 1), (2, 3, 33, 2)])
def test_kernels_match_numpy_code_bn1_to_bn13(
    shape: tuple[int, ...], training: bool, dtype: Any
) -> None:
    inputs = make_inputs(20, shape, dtype)
    inputs[0] = inputs[0] + 3  # a mean far from 0: the two-pass variance (BN2)
    dy = np.random.default_rng(21).normal(size=shape).astype(dtype)
    compiled, numpy_code = _both_paths(inputs, dy, training)
    rtol = TOLERANCE[dtype]
    names = ("y", "mean", "var", "dx", "dgamma", "dbeta")
    for name, a, b in zip(names, compiled, numpy_code, strict=True):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape, name
        scale = float(np.abs(b).max())  # sums and differences: error relative to the largest
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=name)
    if not training:  # (BN7), (BN4) and (BN10), (BN12) round as NumPy does: the same bits
        np.testing.assert_array_equal(compiled[0], numpy_code[0])
        np.testing.assert_array_equal(compiled[3], numpy_code[3])


@needs_kernels
@pytest.mark.parametrize("training", [True, False])
def test_twins_run_the_kernels_and_match_the_references(training: bool) -> None:
    """The twins called unconditionally (no dispatch) against the NumPy references."""
    x, gamma, beta, running_mean, running_var = make_inputs(22, (3, 4, 5, 6))
    dy = np.random.default_rng(23).normal(size=x.shape)
    arguments = (x, gamma, beta, running_mean, running_var, training, 0.1, EPS)
    compiled = batchnorm.batch_norm2d_normalize(*arguments)
    with _native.disabled():
        reference = normalization._normalize(*arguments)
    for a, b in zip(compiled, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    _, mean, invstd, _, _ = reference
    compiled_grads = batchnorm.batch_norm2d_gradients(dy, x, mean, invstd, gamma, training)
    with _native.disabled():
        reference_grads = normalization._gradients(dy, x, mean, invstd, gamma, training)
    for a, b in zip(compiled_grads, reference_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@needs_kernels
def test_statistics_are_taken_in_float64_bn1_bn2() -> None:
    """float32 x with a mean of 10^4: the float64 two-pass variance of the kernels is that of
    the float64 data, where a float32 sum of squares would lose most digits."""
    rng = np.random.default_rng(24)
    x = (1e4 + rng.normal(size=(16, 2, 8, 8))).astype(np.float32)
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    _, cache = batch_norm2d_forward(x, ones, zeros, zeros, ones, training=True, momentum=1.0)
    m = 16 * 8 * 8
    exact = x.astype(np.float64).var(axis=(0, 2, 3)) * m / (m - 1)  # (BN6) with momentum 1
    np.testing.assert_allclose(cache.new_running_var, exact, rtol=1e-6)


@needs_kernels
def test_sums_do_not_depend_on_the_thread_count() -> None:
    """Each channel's sums belong to one thread and add its planes in the order of n."""
    N, C, L = 6, 5, 37
    rng = np.random.default_rng(25)
    x, dy = rng.normal(size=(N, C, L)), rng.normal(size=(N, C, L))
    mean, invstd = rng.normal(size=C), rng.uniform(0.5, 2, size=C)
    results = []
    for threads in (1, 2, 3):
        stats = np.empty(C), np.empty(C)
        sums = np.empty(C), np.empty(C)
        kernels.batchnorm_stats(x, *stats, N, C, L, 0, C, threads)
        kernels.batchnorm_grad_sums(dy, x, mean, invstd, *sums, N, C, L, 0, C, threads)
        results.append(np.concatenate([*stats, *sums]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@needs_kernels
def test_kernel_bindings_refuse_wrong_sizes_and_dtypes() -> None:
    x = np.zeros((2, 3, 4))
    mean, var = np.empty(3), np.empty(3)
    with pytest.raises(ValueError, match=r"batchnorm_stats: x holds 24 elements; expected "
                       r"N\*C\*L = 30 \(N=2, C=3, L=5\)"):  # fmt: skip
        kernels.batchnorm_stats(x, mean, var, 2, 3, 5, 0, 3, 1)
    with pytest.raises(TypeError, match="batchnorm_stats: var has the wrong element type; "
                       "expected float64, got float32"):  # fmt: skip
        kernels.batchnorm_stats(x, mean, var.astype(np.float32), 2, 3, 4, 0, 3, 1)
    with pytest.raises(ValueError, match=r"batchnorm_apply: range \[0, 7\) outside \[0, 6\)"):
        kernels.batchnorm_apply(x, mean, mean, mean, mean, np.empty_like(x), 3, 4, 0, 7, 1)
    with pytest.raises(ValueError, match=r"batchnorm_grad_frozen: gamma holds 2 elements; "
                       r"expected C = 3"):  # fmt: skip
        kernels.batchnorm_grad_frozen(x, mean[:2], mean, np.empty_like(x), 3, 4, 0, 6, 1)
    with pytest.raises(ValueError, match=r"batchnorm_stats: invalid sizes; expected positive N, "
                       r"C and L whose product fits, got N=0, C=3, L=4"):  # fmt: skip
        kernels.batchnorm_stats(x, mean, var, 0, 3, 4, 0, 3, 1)
    flat = np.zeros(25)
    with pytest.raises(ValueError, match=r"batchnorm_apply: an array of 25 elements is not "
                       r"\(N, 3, 4\); expected positive C and L"):  # fmt: skip
        kernels.batchnorm_apply(flat, mean, mean, mean, mean, np.zeros(25), 3, 4, 0, 6, 1)


@needs_kernels
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 7)])
def test_nn_batch_norm_of_n_c_and_n_c_l_matches_numpy_code(shape: tuple[int, ...]) -> None:
    """nn.functional.batch_norm reads (N, C) and (N, C, L) as (N, C, L, 1): the kernels see
    L = 1 or L planes."""
    from convprop.autograd import Tensor
    from convprop.nn import functional as F

    rng = np.random.default_rng(26)
    x = rng.normal(size=shape)
    weight, bias = rng.uniform(0.5, 2, size=4), rng.normal(size=4)
    dy = rng.normal(size=shape)
    results = []
    for context in (nullcontext, _native.disabled):
        with context():
            xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
            y = F.batch_norm(xt, None, None, wt, bt, training=True)
            (y * Tensor(dy)).sum().backward()
        results.append([y.data, xt.grad, wt.grad, bt.grad])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_checks_remembered_per_signature_see_what_is_not_plain_afresh() -> None:
    """check_batch_norm2d keeps the signatures that passed (functional/_prepared.py): momentum,
    unused in inference, may be anything there (a list is a signature of its own); an array
    hyperparameter (unhashable) is checked afresh, and an array eps is refused by name every
    time."""
    x = np.ones((2, 3, 4, 4), np.float32)
    c = np.ones(3, np.float32)
    normalization.CHECKED.forget()
    first, _ = batch_norm2d_forward(x, c, c, c, c, training=False, eps=1e-5)
    again, _ = batch_norm2d_forward(x, c, c, c, c, training=False, eps=1e-5)
    np.testing.assert_array_equal(again, first)
    assert len(normalization.CHECKED) == 1
    listed, _ = batch_norm2d_forward(x, c, c, c, c, training=False, momentum=[0.1], eps=1e-5)
    np.testing.assert_array_equal(listed, first)
    assert len(normalization.CHECKED) == 2  # a signature of its own: (list, (0.1,))
    for _ in range(2):
        with pytest.raises(ParameterError, match="eps"):
            batch_norm2d_forward(x, c, c, c, c, training=False, eps=np.array(1e-5))
        with pytest.raises(ParameterError, match="training must be a bool"):
            batch_norm2d_forward(x, c, c, c, c, training=np.array(True), eps=1e-5)
    assert len(normalization.CHECKED) == 2  # the refused calls are not kept
