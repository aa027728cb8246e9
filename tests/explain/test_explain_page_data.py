"""The numbers of the interactive page: for every setting its controls allow, what the page
holds equals the naive references (F1, B1-B3, MP1-MP3, AP1-AP3), and the page embeds them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from convprop.explain.page import page_html
from convprop.explain.page_data import RANGES, has_output, page_data, setting_key
from reference import conv2d_db_ref, conv2d_dw_ref, conv2d_dx_ref, conv2d_ref
from reference_layers import (
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    max_pool2d_backward_ref,
    max_pool2d_ref,
)

DATA = page_data()
SETTINGS = list(itertools.product(*RANGES.values()))


def test_every_valid_setting_is_present_and_no_invalid_one() -> None:
    valid = [s for s in SETTINGS if has_output(s[0], s[1], s[3], s[4])]
    assert sorted(DATA["settings"]) == sorted(setting_key(*s) for s in valid)
    assert len(valid) == 528 and len(SETTINGS) == 540
    assert "3-3-1-0-2-1" not in DATA["settings"]  # Rd = 5 > Hp = 3: S1 gives no output


def check_setting(size: int, kernel: int, stride: int, pad: int, dil: int, C: int) -> None:
    d: dict[str, Any] = DATA["settings"][setting_key(size, kernel, stride, pad, dil, C)]
    x = np.array(d["x"], dtype=float)[None]  # (1, C, H, H)
    w = np.array(d["w"], dtype=float)[None]  # (1, C, R, R)
    dy = np.array(d["dy"], dtype=float)[None, None]  # (1, 1, P, P)
    b = np.array([d["b"]], dtype=float)
    hyper = {"stride": stride, "padding": pad, "dilation": dil}
    np.testing.assert_array_equal(d["y"], conv2d_ref(x, w, b, **hyper)[0, 0])
    np.testing.assert_array_equal(d["dx"], conv2d_dx_ref(dy, w, x.shape, **hyper)[0])
    np.testing.assert_array_equal(d["dw"], conv2d_dw_ref(x, dy, w.shape, **hyper)[0])
    np.testing.assert_array_equal(d["db"], conv2d_db_ref(dy))
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = conv2d_dx_ref(dy, w, x_pad.shape, stride=stride, dilation=dil)[0]
    np.testing.assert_array_equal(d["dx_pad"], dx_pad)
    inner = np.array(d["dx_pad"])[:, pad : pad + size, pad : pad + size]
    np.testing.assert_array_equal(inner, d["dx"])  # the crop of Step 5
    pool = d["pool"]
    y_max, winner = max_pool2d_ref(x, (kernel, kernel), (stride, stride), (0, 0))
    np.testing.assert_array_equal(pool["y_max"], y_max[0])
    rows = winner[0, ..., 0] - stride * np.arange(y_max.shape[2])[:, None]
    cols = winner[0, ..., 1] - stride * np.arange(y_max.shape[3])[None, :]
    np.testing.assert_array_equal(pool["argmax"], rows * kernel + cols)  # (MP2)
    pool_dy = np.array(pool["dy"], dtype=float)[None]
    dx_max = max_pool2d_backward_ref(pool_dy, winner, x.shape)[0]
    np.testing.assert_array_equal(pool["dx_max"], dx_max)
    geometry = ((kernel, kernel), (stride, stride), (0, 0))
    np.testing.assert_allclose(pool["y_avg"], avg_pool2d_ref(x, *geometry)[0], rtol=1e-15)
    dx_avg = avg_pool2d_backward_ref(pool_dy, x.shape, *geometry)[0]
    np.testing.assert_allclose(pool["dx_avg"], dx_avg, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("channels", RANGES["channels"])
@pytest.mark.parametrize("size", RANGES["size"])
def test_every_setting_equals_the_references(size: int, channels: int) -> None:
    for kernel, stride, pad, dil in itertools.product(
        RANGES["kernel"], RANGES["stride"], RANGES["padding"], RANGES["dilation"]
    ):
        if has_output(size, kernel, pad, dil):
            check_setting(size, kernel, stride, pad, dil, channels)


def test_inputs_are_small_integers_and_dy_is_never_all_ones() -> None:
    for d in DATA["settings"].values():
        assert all(isinstance(v, int) for v in np.ravel(d["x"]).tolist())
        assert 0 not in np.ravel(d["w"]) and 0 not in np.ravel(d["dy"])
        assert not np.all(np.array(d["dy"]) == 1)


def test_changing_the_stride_keeps_x_and_w() -> None:
    one, two = DATA["settings"]["5-3-1-1-1-2"], DATA["settings"]["5-3-2-1-2-2"]
    assert one["x"] == two["x"] and one["w"] == two["w"]


def test_the_page_embeds_the_data_as_json() -> None:
    html = page_html(DATA)
    start = html.index('<script type="application/json" id="convprop-data">') + 51
    embedded = json.loads(html[start : html.index("</script>", start)])
    assert embedded == DATA
