"""Resampling (UP1)–(UP7): the per-element reference (products of 1-D weights over the
corners), the adjoint identity, finite differences, PyTorch on a grid of sizes and factors
(the remainder cases), Upsample, errors."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import convprop
import reference_layers_losses as ref
from convprop import nn
from convprop.backend import to_host
from convprop.errors import DTypeError, ParameterError, ShapeError
from convprop.finite_differences import dot_product_check, numerical_gradient
from convprop.functional.interpolation import interpolate_backward, interpolate_forward
from convprop.io import build
from convprop.nn import functional as F

MODES = [("nearest", None), ("nearest-exact", None), ("linear", True), ("linear", False),
         ("bilinear", True), ("bilinear", False), ("trilinear", True),
         ("trilinear", False)]  # fmt: skip
DIMS = {"linear": 1, "bilinear": 2, "trilinear": 3}
# spatial sizes and what to ask for: sizes up, down, odd ratios, 1 ↔ n, scale factors
REQUESTS: list[dict[str, Any]] = [
    {"size": 7},
    {"size": 2},
    {"size": 1},
    {"scale_factor": 2.0},
    {"scale_factor": 1.7},
    {"scale_factor": 0.6},
    {"scale_factor": 0.6, "recompute_scale_factor": True},
    {"scale_factor": 2.5, "recompute_scale_factor": True},
]


def _cases() -> list[tuple[str, bool | None, int, tuple[int, ...], dict[str, Any]]]:
    cases = []
    for mode, align in MODES:
        for dims in (DIMS.get(mode, 1), DIMS.get(mode, 2), DIMS.get(mode, 3)):
            spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 4)}[dims]
            for request in REQUESTS:
                cases.append((mode, align, dims, spatial, request))
    return _unique(cases)


def _unique(cases: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for case in cases:
        if case not in seen:
            seen.append(case)
    return seen


CASES = _cases()
IDS = [f"{m}-{a}-{d}d-{'-'.join(f'{k}={v}' for k, v in r.items())}" for m, a, d, _, r in CASES]


def _weights(mode, align, spatial, request) -> list[list[dict[int, float]]]:
    sizes = request.get("size")
    factor = request.get("scale_factor")
    recompute = request.get("recompute_scale_factor")
    out = []
    for L in spatial:
        Lo = sizes if sizes is not None else int(np.floor(L * factor))
        given = None if (sizes is not None or recompute) else factor
        out.append(ref.interp_weights(L, Lo, mode, bool(align), given, len(spatial)))
    return out


@pytest.mark.parametrize(("mode", "align", "dims", "spatial", "request_"), CASES, ids=IDS)
def test_forward_and_backward_match_reference_up1_up7(mode, align, dims, spatial, request_):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, *spatial))
    y, cache = interpolate_forward(x, mode=mode, align_corners=align, **request_)
    weights = _weights(mode, align, spatial, request_)
    np.testing.assert_allclose(y, ref.interpolate(x, weights), rtol=1e-12, atol=1e-14)
    dy = rng.normal(size=y.shape)
    np.testing.assert_allclose(interpolate_backward(dy, cache),
                               ref.interpolate_grad(x.shape, weights, dy), rtol=1e-12,
                               atol=1e-14)  # fmt: skip


@pytest.mark.parametrize(("mode", "align"), MODES, ids=str)
def test_backward_is_the_adjoint_g3_and_matches_finite_differences(mode, align) -> None:
    spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 4)}[DIMS.get(mode, 2)]
    x_shape = (1, 2, *spatial)
    kwargs = {"mode": mode, "align_corners": align, "scale_factor": 1.7}
    y, cache = interpolate_forward(np.zeros(x_shape), **kwargs)
    lhs, rhs = dot_product_check(
        lambda u: interpolate_forward(u, **kwargs)[0],
        lambda v: interpolate_backward(v, cache),
        x_shape,
        y.shape,
        rng=np.random.default_rng(1),
    )
    assert lhs == pytest.approx(rhs, rel=1e-12)
    rng = np.random.default_rng(2)
    x = rng.normal(size=x_shape)
    dy = rng.normal(size=y.shape)

    def objective(x_: np.ndarray) -> float:
        return float(np.sum(dy * interpolate_forward(x_, **kwargs)[0]))

    np.testing.assert_allclose(interpolate_backward(dy, cache), numerical_gradient(objective, x),
                               rtol=1e-7, atol=1e-9)  # fmt: skip


def _torch_parity_cases():
    """Every mode, sizes 1-9 in and out and factors, without the 1-D and 3-D nearest cases
    where PyTorch's backward is not the gradient of its forward (see the next test)."""
    cases = []
    for mode, align in MODES:
        dims = DIMS.get(mode)
        for d in (dims,) if dims else (1, 2, 3):
            for L in (1, 2, 3, 5, 8):
                for request in [{"size": s} for s in (1, 2, 4, 7, 9)] + [
                    {"scale_factor": f} for f in (0.5, 0.6, 1.3, 1.7, 2.0, 3.0)
                ]:
                    spatial = (L,) * d if d < 3 else (L, 2, 3)
                    factor = request.get("scale_factor")
                    out = [request.get("size") or int(np.floor(n * factor)) for n in spatial]
                    same = any(o == n for o, n in zip(out, spatial, strict=True))
                    if min(out) < 1 or (mode == "nearest" and d != 2 and factor and same):
                        continue
                    cases.append((mode, align, spatial, request))
    return cases


@pytest.mark.parametrize(("mode", "align", "spatial", "request_"), _torch_parity_cases(), ids=str)
def test_tensor_op_matches_torch_interpolate(mode, align, spatial, request_) -> None:
    rng = np.random.default_rng(3)
    x_array = rng.normal(size=(2, 2, *spatial))
    x = convprop.tensor(x_array, requires_grad=True)
    y = F.interpolate(x, mode=mode, align_corners=align, **request_)
    dy = rng.normal(size=y.shape)
    y.backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, mode=mode, align_corners=align, **request_)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_where_pytorchs_1d_nearest_backward_is_not_the_gradient_of_its_forward() -> None:
    """scale_factor 1.3 on L = 2 gives Lo = 2 and reads x[0] twice (UP3); PyTorch's forward
    agrees, but its backward copies dy as if it had read x[0], x[1]. (UP7) is the gradient."""
    x_array = np.array([[[1.0, 2.0]]])
    dy = np.array([[[3.0, 5.0]]])
    x = convprop.tensor(x_array, requires_grad=True)
    y = F.interpolate(x, scale_factor=1.3)
    y.backward(dy)
    xt = torch.tensor(x_array, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, scale_factor=1.3)
    yt.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y.data, yt.detach().numpy())  # [[1, 1]] both
    np.testing.assert_array_equal(x.grad, [[[8.0, 0.0]]])  # both entries read x[0]
    np.testing.assert_array_equal(xt.grad.numpy(), [[[3.0, 5.0]]])  # PyTorch's copy

    def objective(v: np.ndarray) -> float:
        return float(np.sum(dy * interpolate_forward(v, scale_factor=1.3)[0]))

    np.testing.assert_allclose(x.grad, numerical_gradient(objective, x_array), atol=1e-9)


def test_nearest_upsampling_by_two_sums_each_block_of_dy_up7() -> None:
    dy = np.arange(16.0).reshape(1, 1, 4, 4)
    _, cache = interpolate_forward(np.zeros((1, 1, 2, 2)), scale_factor=2)
    np.testing.assert_array_equal(interpolate_backward(dy, cache)[0, 0], [[10, 18], [42, 50]])


def test_upsample_module_matches_torch_and_rebuilds_from_config() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 4, 5))
    requests: list[dict[str, Any]] = [
        {"scale_factor": 2},
        {"size": (3, 7), "mode": "bilinear"},
        {"scale_factor": (1.5, 0.5), "mode": "bilinear", "align_corners": True},
    ]
    for kwargs in requests:
        ours = nn.Upsample(**kwargs)
        theirs = torch.nn.Upsample(**kwargs)
        np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).numpy(), rtol=1e-12)
        rebuilt = build({"type": "Upsample", "config": ours.config()})
        np.testing.assert_array_equal(rebuilt(x).data, ours(x).data)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: interpolate_forward(np.ones((1, 1, 4))), ParameterError, "exactly one"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), size=2, scale_factor=2.0),
         ParameterError, "exactly one"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), size=2, mode="cubic"), ParameterError,
         "unknown mode"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), size=2, mode="bilinear"), ShapeError,
         "4-D"),
        (lambda: interpolate_forward(np.ones((1, 4)), size=2), ShapeError, "3-D or 4-D or 5-D"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), size=2, align_corners=True),
         ParameterError, "linear modes only"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), size=2, mode="linear",
                                     align_corners=1), ParameterError, "bool or None"),
        (lambda: interpolate_forward(np.ones((1, 1, 4, 4)), size=(2, 2, 2)), ParameterError,
         "one value per spatial axis"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), scale_factor=0.1), ShapeError,
         "positive"),
        (lambda: interpolate_forward(np.ones((1, 1, 4)), scale_factor=-2.0), ParameterError,
         "finite and > 0"),
        (lambda: interpolate_forward(np.ones((1, 1, 4), int), size=2), DTypeError, "float32"),
        (lambda: F.interpolate(np.ones((1, 1, 4)), 2, antialias=True), ParameterError,
         "antialias"),
        (lambda: nn.Upsample(), ParameterError, "exactly one"),
        (lambda: nn.Upsample(size=2, mode="area"), ParameterError, "unknown mode"),
        (lambda: nn.Upsample(size=2, align_corners=False), ParameterError, "linear modes"),
        (lambda: interpolate_backward(np.ones((1, 1, 3)),
                                      interpolate_forward(np.ones((1, 1, 4)), size=2)[1]),
         ShapeError, "does not match"),
    ],
)  # fmt: skip
def test_errors(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_interpolate_on_the_array_module_of_the_input(xp: ModuleType) -> None:
    rng = np.random.default_rng(5)
    for mode, align in MODES:
        spatial = {1: (5,), 2: (4, 3), 3: (3, 2, 4)}[DIMS.get(mode, 2)]
        x = rng.normal(size=(1, 2, *spatial))
        y, cache = interpolate_forward(xp.asarray(x), mode=mode, align_corners=align,
                                       scale_factor=1.7)  # fmt: skip
        dy = rng.normal(size=y.shape)
        weights = _weights(mode, align, spatial, {"scale_factor": 1.7})
        np.testing.assert_allclose(to_host(y), ref.interpolate(x, weights), rtol=1e-12)
        np.testing.assert_allclose(to_host(interpolate_backward(xp.asarray(dy), cache)),
                                   ref.interpolate_grad(x.shape, weights, dy), rtol=1e-12,
                                   atol=1e-14)  # fmt: skip
