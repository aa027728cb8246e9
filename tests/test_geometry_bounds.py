"""Geometry far beyond the input costs what the input costs (CR1, CR2), and geometry that
overflows is refused with the library's own error before anything is allocated.

Peak memory is measured with tracemalloc (NumPy reports its buffers to it), never time.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
import torch

from convprop.errors import ParameterError, ShapeError
from convprop.functional import conv2d_crop
from convprop.functional.conv2d import conv2d_backward, conv2d_forward

# (x shape, w shape, stride, padding, dilation): a stride of 10^7 (the case), huge
# paddings with huge strides, a window reading one corner, every window in padding but one
GEOMETRIES = [
    ((2, 3, 8, 8), (4, 3, 3, 3), 10**7, 0, 1),
    ((2, 3, 8, 8), (4, 3, 3, 3), 2**31, 1, 1),
    ((1, 2, 8, 8), (3, 2, 3, 3), 2**20, 2**20, 1),
    ((1, 2, 9, 7), (3, 2, 3, 2), (30000, 7), (29999, 1), 1),
    ((1, 2, 6, 6), (2, 2, 3, 3), 500, 400, 2),
    ((2, 2, 5, 5), (2, 1, 2, 2), 1000, 1000, 1),
]


def _run(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray | None, **kwargs: Any
         ) -> tuple[np.ndarray, ...]:  # fmt: skip
    groups = x.shape[1] // w.shape[1]
    y, cache = conv2d_forward(x, w, b, groups=groups, **kwargs)
    if dy is None:
        return (y,)
    dx, dw, db = conv2d_backward(dy, cache)
    assert dx is not None and db is not None
    return y, dx, dw, db


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"s{g[2]}p{g[3]}d{g[4]}")
@pytest.mark.parametrize("algorithm", ["auto", "direct", "im2col"])
def test_far_geometry_matches_pytorch_CR1_CR2(geometry: tuple, algorithm: str) -> None:
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    y = _run(x, w, b, None, algorithm=algorithm, **kwargs)[0]
    dy = rng.standard_normal(y.shape)
    ours = _run(x, w, b, dy, algorithm=algorithm, **kwargs)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    yt = torch.nn.functional.conv2d(
        xt, wt, bt, pair(stride), pair(padding), pair(dilation), x_shape[1] // w_shape[1]
    )
    yt.backward(torch.tensor(dy))
    theirs = (yt.detach().numpy(), xt.grad, wt.grad, bt.grad)
    for a, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, np.asarray(t), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"s{g[2]}p{g[3]}d{g[4]}")
def test_far_geometry_memory_is_bounded_by_input_and_output(geometry: tuple) -> None:
    x_shape, w_shape, stride, padding, dilation = geometry
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    y = _run(x, w, b, None, **kwargs)[0]  # warm: choices and plans are made once
    dy = rng.standard_normal(y.shape)
    for algorithm in ("auto", "direct", "im2col"):
        _run(x, w, b, dy, algorithm=algorithm, **kwargs)
        tracemalloc.start()
        try:
            _run(x, w, b, dy, algorithm=algorithm, **kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        arrays = x.nbytes + w.nbytes + y.nbytes
        assert peak < 64 * arrays + 256 * 1024, (algorithm, peak, arrays)


def test_ordinary_layers_are_not_reduced() -> None:
    from convprop._shapes import conv_geometry

    for x_shape, w_shape, stride, padding in [
        ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1),
        ((8, 3, 224, 224), (64, 3, 7, 7), 2, 3),
        ((8, 64, 56, 56), (128, 64, 1, 1), 2, 0),
    ]:
        geom = conv_geometry("conv2d", x_shape, w_shape, None, stride=stride, padding=padding,
                             dilation=1, groups=1)  # fmt: skip
        assert conv2d_crop.crop(geom) is None


def test_every_window_in_padding_gives_the_bias() -> None:
    """Windows 3000 apart, padding 1500 around a 4x4 input: no window meets x."""
    x = np.ones((1, 1, 4, 4))
    w = np.ones((1, 1, 2, 2))
    b = np.array([0.5])
    y, cache = conv2d_forward(x, w, b, stride=3000, padding=1500)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 0.5))
    dx, dw, db = conv2d_backward(np.ones_like(y), cache)
    assert dx is not None and db is not None
    assert not dx.any() and not dw.any() and db[0] == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(padding=2**62), ParameterError, "padded input along the height"),
        (dict(dilation=2**60, padding=2**61), ParameterError, "padded input along the height"),
        (dict(stride=2**60), ParameterError, "stride along the height"),
        (dict(padding=2**40), ShapeError, "the output (N, K, P, Q)"),
        (dict(dilation=2**40), ShapeError, "smaller than the dilated kernel"),
    ],
)
def test_overflowing_geometry_is_refused(kwargs: dict, error: type, message: str) -> None:
    x = np.ones((1, 2, 8, 8))
    w = np.ones((2, 2, 3, 3))
    with pytest.raises(error, match=r"^conv2d: ") as raised:
        conv2d_forward(x, w, **kwargs)
    assert message in str(raised.value)
    assert "expected" in str(raised.value) and "got" in str(raised.value)
