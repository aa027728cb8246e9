"""The numbers of the interactive page, computed by convprop for every setting its controls allow.

A setting is (input size H = W, kernel size R = S, stride, padding, dilation, input channels C)
within the small ranges below; one filter (K = 1) and one image (N = 1). x, w and dy hold small
integers (x fixed by (C, H), w by (C, R), dy by (P, Q)), so that every sum on the page is exact
and can be checked by hand. For each setting the page holds what convprop's pairs return:

- conv2d_forward / conv2d_backward (direct sums): y (F1), dx (B3), dw (B2), db (B1);
- the same on the explicitly padded input (padding 0): dx_pad, whose border is the padding's
  gradient, cropped from dx;
- max_pool2d and avg_pool2d (window R×R, the same stride, no padding) of x with their own dy:
  y, arg-max and dx (MP1-MP3), y and dx (AP1-AP3).

A setting whose dilated kernel is larger than the padded input (S1 gives no output) is absent.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy

from convprop.explain.conv_geometry import conv_gradients
from convprop.functional.conv2d import conv2d_forward
from convprop.functional.pool2d import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

RANGES: dict[str, tuple[int, ...]] = {
    "size": (3, 4, 5, 6, 7),
    "kernel": (1, 2, 3),
    "stride": (1, 2, 3),
    "padding": (0, 1, 2),
    "dilation": (1, 2),
    "channels": (1, 2),
}
"""The values each control of the page offers."""

BIAS = 1.0
"""b[0], the one filter's bias."""


def setting_key(
    size: int, kernel: int, stride: int, padding: int, dilation: int, channels: int
) -> str:
    """The page's name of a setting: ``"size-kernel-stride-padding-dilation-channels"``."""
    return f"{size}-{kernel}-{stride}-{padding}-{dilation}-{channels}"


def has_output(size: int, kernel: int, padding: int, dilation: int) -> bool:
    """(S1): P >= 1 exactly when the padded input is at least the dilated kernel's extent."""
    return size + 2 * padding >= dilation * (kernel - 1) + 1


def _integers(seed: int, shape: tuple[int, ...], values: tuple[float, ...]) -> numpy.ndarray:
    """float64 values drawn from ``values``: small integers, fixed by ``seed``."""
    rng = numpy.random.default_rng(seed)
    return numpy.asarray(values, dtype=numpy.float64)[rng.integers(0, len(values), size=shape)]


NONZERO = (-2.0, -1.0, 1.0, 2.0)
"""Values of w and dy: never 0, so that every highlighted product counts."""
INPUT = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
"""Values of x."""


def inputs(size: int, kernel: int, channels: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """x (1, C, H, H) and w (1, C, R, R): the same x for every kernel and stride, the same w
    for every input size, so that changing one control changes only what depends on it."""
    x = _integers(100 * channels + size, (1, channels, size, size), INPUT)
    w = _integers(200 + 10 * channels + kernel, (1, channels, kernel, kernel), NONZERO)
    return x, w


def upstream(seed: int, shape: tuple[int, ...]) -> numpy.ndarray:
    """A dy of ``shape``: fixed by the output size, never all ones."""
    return _integers(seed, shape, NONZERO)


def _conv(
    x: numpy.ndarray, w: numpy.ndarray, stride: int, padding: int, dilation: int
) -> dict[str, Any]:
    """y, dy, dx, dw, db and dx_pad of one setting, by convprop's conv2d pair."""
    b = numpy.array([BIAS])
    y, cache = conv2d_forward(
        x, w, b, stride=stride, padding=padding, dilation=dilation, algorithm="direct"
    )
    dy = upstream(300 + y.shape[2], y.shape)
    dx, dw, db = conv_gradients(dy, cache)
    x_pad = numpy.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    _, cache_pad = conv2d_forward(x_pad, w, b, stride=stride, dilation=dilation, algorithm="direct")
    dx_pad, _, _ = conv_gradients(dy, cache_pad)
    return {"y": y[0, 0], "dy": dy[0, 0], "dx": dx[0], "dw": dw[0], "db": db, "dx_pad": dx_pad[0]}


def _pool(x: numpy.ndarray, kernel: int, stride: int) -> dict[str, Any]:
    """Max and average pooling of x (window kernel × kernel, stride, no padding), by convprop."""
    y_max, cache_max = max_pool2d_forward(x, kernel, stride=stride)
    dy = upstream(400 + y_max.shape[2], y_max.shape)
    y_avg, cache_avg = avg_pool2d_forward(x, kernel, stride=stride)
    return {
        "y_max": y_max[0],
        "argmax": cache_max.argmax[0],
        "dy": dy[0],
        "dx_max": max_pool2d_backward(dy, cache_max)[0],
        "y_avg": y_avg[0],
        "dx_avg": avg_pool2d_backward(dy, cache_avg)[0],
    }


def _json(value: Any) -> Any:
    """Arrays as nested lists; integral floats as ints (shorter, and exact either way)."""
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    array = numpy.asarray(value)
    if array.dtype.kind == "f" and numpy.all(array == numpy.round(array)):
        array = array.astype(numpy.int64)
    return array.tolist()


def setting_arrays(
    size: int, kernel: int, stride: int, padding: int, dilation: int, channels: int
) -> dict[str, Any] | None:
    """Every number the page shows for one setting (float64 / int arrays), or None where the
    setting has no output."""
    if not has_output(size, kernel, padding, dilation):
        return None
    x, w = inputs(size, kernel, channels)
    return {
        "x": x[0],
        "w": w[0],
        "b": BIAS,
        **_conv(x, w, stride, padding, dilation),
        "pool": _pool(x, kernel, stride),
    }


def page_data() -> dict[str, Any]:
    """The page's data: the ranges of the controls, and every setting's numbers as JSON data."""
    settings = {}
    for values in itertools.product(*RANGES.values()):
        arrays = setting_arrays(*values)
        if arrays is not None:
            settings[setting_key(*values)] = _json(arrays)
    return {"ranges": {name: list(values) for name, values in RANGES.items()}, "settings": settings}
