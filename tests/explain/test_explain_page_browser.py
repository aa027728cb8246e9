"""The interactive page in real headless Chromium: it loads from a file with no console error
and no network request, every panel follows the controls, the numbers in its DOM are
convprop's (and the naive references'), and a click highlights exactly the cells of the
derivation. Screenshots of every panel at 1280×800 go to test-artifacts/browser/."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser_support import (
    console_errors,
    marked,
    open_page,
    read_grid,
    requested_urls,
    screenshot,
    start_chromium,
)
from convprop.explain.page import write_page
from convprop.explain.page_data import setting_arrays
from reference import conv2d_db_ref, conv2d_dw_ref, conv2d_dx_ref, conv2d_ref
from reference_layers import max_pool2d_backward_ref, max_pool2d_ref

pytestmark = pytest.mark.xdist_group("browser")
CONTROLS = ("size", "kernel", "stride", "padding", "dilation", "channels")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_page(tmp_path_factory.mktemp("page") / "page.html")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from start_chromium()


@pytest.fixture
def loaded(driver: Any, page: Path) -> Any:
    open_page(driver, page)
    requested_urls(driver)  # the page's own load
    return driver


def choose(driver: Any, **setting: int) -> None:
    from selenium.webdriver.support.ui import Select

    for name, value in setting.items():
        Select(driver.find_element("id", f"control-{name}")).select_by_value(str(value))


def tab(driver: Any, name: str) -> None:
    driver.find_element("id", f"tab-{name}").click()


def grid(driver: Any, panel: str, array: str, channel: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return read_grid(
        driver, f'#panel-{panel} table[data-array="{array}"][data-channel="{channel}"]'
    )


def click(driver: Any, panel: str, array: str, channel: int, i: int, j: int) -> None:
    selector = (
        f'#panel-{panel} table[data-array="{array}"][data-channel="{channel}"] '
        f'td[data-row="{i}"][data-col="{j}"]'
    )
    driver.find_element("css selector", selector).click()


def test_the_page_loads_from_a_file_with_no_console_error_and_no_request(
    driver: Any, page: Path
) -> None:
    open_page(driver, page)
    urls = requested_urls(driver)
    assert urls == [page.resolve().as_uri()], urls  # the file itself, nothing else
    assert console_errors(driver) == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert driver.title.startswith("convprop")
    for name in ("forward", "weights", "input", "pool"):
        tab(driver, name)
        assert driver.find_element("id", f"panel-{name}").is_displayed()
        screenshot(driver, f"explain-page-{name}")
    assert console_errors(driver) == [] and requested_urls(driver) == []


def dom_setting(driver: Any) -> dict[str, np.ndarray]:
    """x, w, y, dy, dx, dw, db as the page's DOM shows them, channel by channel."""
    C = int(driver.find_element("id", "control-channels").get_attribute("value"))
    pad = int(driver.find_element("id", "control-padding").get_attribute("value"))
    x, w, dw, dx = [], [], [], []
    for c in range(C):
        x_pad, classes = grid(driver, "forward", "x_pad", c)
        inner = [[classes[i, j] != "pad" and "pad" not in classes[i, j].split()
                  for j in range(x_pad.shape[1])] for i in range(x_pad.shape[0])]  # fmt: skip
        size = x_pad.shape[0] - 2 * pad
        x.append(x_pad[pad : pad + size, pad : pad + size])
        assert np.array(inner)[pad : pad + size, pad : pad + size].all()
        w.append(grid(driver, "forward", "w", c)[0])
        dw.append(grid(driver, "weights", "dw", c)[0])
        dx_pad, _ = grid(driver, "input", "dx_pad", c)
        dx.append(dx_pad[pad : pad + size, pad : pad + size])
    return {
        "x": np.array(x)[None], "w": np.array(w)[None], "y": grid(driver, "forward", "y")[0],
        "dy": grid(driver, "weights", "dy")[0], "dx": np.array(dx)[None],
        "dw": np.array(dw)[None], "db": grid(driver, "weights", "db")[0][0],
        "dy_dx_panel": grid(driver, "input", "dy")[0],
    }  # fmt: skip


@pytest.mark.parametrize(
    "setting",
    [
        {"size": 5, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1, "channels": 1},
        {"size": 7, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "channels": 2},
        {"size": 6, "kernel": 2, "stride": 3, "padding": 2, "dilation": 1, "channels": 2},
    ],
    ids=["default", "stride2-pad1-dil2", "stride3-pad2"],
)
def test_every_panel_shows_convprops_numbers_for_the_chosen_setting(
    loaded: Any, setting: dict[str, int]
) -> None:
    choose(loaded, **setting)
    dom = dom_setting(loaded)
    expected = setting_arrays(*(setting[name] for name in CONTROLS))
    assert expected is not None
    for name in ("x", "w", "dx", "dw"):
        np.testing.assert_array_equal(dom[name][0], expected[name], err_msg=name)
    for name in ("y", "dy", "db"):
        np.testing.assert_array_equal(dom[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(dom["dy_dx_panel"], expected["dy"])
    hyper = {k: setting[k] for k in ("stride", "padding", "dilation")}
    dy, w, x = dom["dy"][None, None], dom["w"], dom["x"]
    np.testing.assert_array_equal(dom["y"], conv2d_ref(x, w, np.array([1.0]), **hyper)[0, 0])
    np.testing.assert_array_equal(dom["dx"], conv2d_dx_ref(dy, w, x.shape, **hyper))
    np.testing.assert_array_equal(dom["dw"], conv2d_dw_ref(x, dy, w.shape, **hyper))
    np.testing.assert_array_equal(dom["db"], conv2d_db_ref(dy))
    assert console_errors(loaded) == []


def test_stride_2_padding_1_dilation_2_updates_every_panel(loaded: Any) -> None:
    before = {
        (panel, array): grid(loaded, panel, array)[0]
        for panel, array in [("forward", "y"), ("forward", "x_pad"), ("weights", "dw"),
                             ("input", "dx_pad"), ("input", "dy_full"), ("pool", "y_max"),
                             ("pool", "dx_avg")]
    }  # fmt: skip
    choose(loaded, size=7, stride=2, padding=1, dilation=2)
    for (panel, array), old in before.items():
        new = grid(loaded, panel, array)[0]
        assert new.shape != old.shape or not np.array_equal(new, old), (panel, array)
    shapes = loaded.find_element("id", "shapes").text
    assert "P = Q = ⌊(7 + 2·1 − 5) / 2⌋ + 1 = 3 (S1)" in shapes
    # dy_full: dy zero-upsampled by 2, padded by dil·(R − 1) = 4, and a zero tail to Hp + Rd − 1
    full, classes = grid(loaded, "input", "dy_full")
    assert full.shape == (9 + 5 - 1, 13)
    dy = grid(loaded, "input", "dy")[0]
    np.testing.assert_array_equal(full[4:9:2, 4:9:2], dy)
    assert marked(classes, "inserted") == {
        (i, j) for i, j in itertools.product(range(4, 9), repeat=2) if i % 2 or j % 2
    }
    assert "dy zero-upsampled by 2" in loaded.find_element("id", "panel-input").get_attribute(
        "textContent"
    )
    for name in ("forward", "weights", "input", "pool"):
        tab(loaded, name)
        screenshot(loaded, f"explain-page-stride2-pad1-dil2-{name}")
    assert console_errors(loaded) == []


def gather(i: int, R: int, stride: int, dil: int, P: int) -> list[tuple[int, int]]:
    """(B3) along one axis: the pairs (p, r) with p·stride + r·dil = i, 0 <= p < P."""
    pairs = []
    for r in range(R):
        u = i - r * dil
        if u >= 0 and u % stride == 0 and u // stride < P:
            pairs.append((u // stride, r))
    return pairs


@pytest.mark.parametrize("cell", [(1, 0, 0), (1, 4, 5), (1, 2, 3), (0, 8, 8), (0, 3, 3)])
def test_clicking_a_dx_pixel_highlights_exactly_the_dy_and_kernel_cells_of_B3(
    loaded: Any, cell: tuple[int, int, int]
) -> None:
    H, R, stride, pad, dil = 7, 3, 2, 1, 2
    choose(loaded, size=H, kernel=R, stride=stride, padding=pad, dilation=dil, channels=2)
    tab(loaded, "input")
    c, i, j = cell
    click(loaded, "input", "dx_pad", c, i, j)
    P = (H + 2 * pad - dil * (R - 1) - 1) // stride + 1
    rows, cols = gather(i, R, stride, dil, P), gather(j, R, stride, dil, P)
    want_dy = {(p, q) for (p, _), (q, _) in itertools.product(rows, cols)}
    want_taps = {(r, s) for (_, r), (_, s) in itertools.product(rows, cols)}
    dy, dy_classes = grid(loaded, "input", "dy")
    assert marked(dy_classes, "hl-dy") == want_dy
    for channel in (0, 1):
        _, classes = grid(loaded, "input", "w_rot", channel)
        taps = {(R - 1 - a, R - 1 - b) for a, b in marked(classes, "hl-tap")}
        assert taps == (want_taps if channel == c else set())
    # the dy_full cells under the rotated kernel that hold dy entries are the same dy entries
    _, full_classes = grid(loaded, "input", "dy_full")
    edge = dil * (R - 1)
    assert marked(full_classes, "hl-dy") == {
        (edge + p * stride, edge + q * stride) for p, q in want_dy
    }
    dx_pad, dx_classes = grid(loaded, "input", "dx_pad", c)
    assert marked(dx_classes, "selected") == {(i, j)}
    w = grid(loaded, "forward", "w", c)[0]
    total = sum(dy[p, q] * w[r, s] for (p, r), (q, s) in itertools.product(rows, cols))
    assert dx_pad[i, j] == total  # the highlighted products sum to convprop's number
    derivation = loaded.find_element("id", "input-derivation").text
    assert derivation.startswith(f"dx_pad[{c}, {i}, {j}]")
    assert derivation.endswith(f"= {int(dx_pad[i, j])}") or "no window reads" in derivation
    cropped = not (pad <= i < pad + H and pad <= j < pad + H)
    assert ("cropped" in derivation) == cropped
    screenshot(loaded, f"explain-page-dx-click-{c}-{i}-{j}")


def test_clicking_a_weight_highlights_the_x_and_dy_entries_of_B2(loaded: Any) -> None:
    choose(loaded, size=6, kernel=2, stride=2, padding=1, dilation=2, channels=2)
    tab(loaded, "weights")
    click(loaded, "weights", "dw", 1, 1, 0)
    x_pad, classes = grid(loaded, "weights", "x_pad", 1)
    P = (6 + 2 - 2 - 1) // 2 + 1
    want = {(p * 2 + 1 * 2, q * 2 + 0 * 2) for p in range(P) for q in range(P)}
    assert marked(classes, "hl-window") == want
    assert marked(grid(loaded, "weights", "x_pad", 0)[1], "hl-window") == set()
    dy, _ = grid(loaded, "weights", "dy")
    dw, _ = grid(loaded, "weights", "dw", 1)
    assert dw[1, 0] == sum(dy[p, q] * x_pad[p * 2 + 2, q * 2] for p in range(P) for q in range(P))
    text = loaded.find_element("id", "bias-derivation").text
    assert text.endswith(f"= {int(dy.sum())}")


def test_max_pooling_routes_to_the_arg_max_and_average_spreads(loaded: Any) -> None:
    choose(loaded, size=6, kernel=2, stride=1, padding=0, dilation=1, channels=1)
    tab(loaded, "pool")
    x, _ = grid(loaded, "pool", "x")
    y_max, _ = grid(loaded, "pool", "y_max")
    dy, _ = grid(loaded, "pool", "pool_dy")
    dx_max, _ = grid(loaded, "pool", "dx_max")
    reference_y, winner = max_pool2d_ref(x[None, None], (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(y_max, reference_y[0, 0])
    np.testing.assert_array_equal(
        dx_max, max_pool2d_backward_ref(dy[None, None], winner, (1, 1, 6, 6))[0, 0]
    )
    for p, q in [(0, 0), (2, 3), (4, 4)]:
        click(loaded, "pool", "y_max", 0, p, q)
        _, x_classes = grid(loaded, "pool", "x")
        assert marked(x_classes, "hl-target") == {tuple(winner[0, 0, p, q])}
        window = {(p + r, q + s) for r in range(2) for s in range(2)}
        _, avg_classes = grid(loaded, "pool", "dx_avg")
        assert marked(avg_classes, "hl-window") == window


def test_the_keyboard_moves_the_selection_and_the_tabs(loaded: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    tab(loaded, "input")
    start = loaded.find_element(
        "css selector", '#panel-input table[data-array="dx_pad"] td.selected'
    )
    i, j = int(start.get_attribute("data-row")), int(start.get_attribute("data-col"))
    start.send_keys(Keys.ARROW_RIGHT)
    start = loaded.switch_to.active_element
    start.send_keys(Keys.ARROW_DOWN)
    _, classes = grid(loaded, "input", "dx_pad")
    assert marked(classes, "selected") == {(i + 1, j + 1)}
    loaded.find_element("id", "tab-input").send_keys(Keys.ARROW_RIGHT)
    assert loaded.find_element("id", "panel-pool").is_displayed()
    assert loaded.switch_to.active_element.get_attribute("id") == "tab-pool"
    loaded.find_element("id", "tab-pool").send_keys(Keys.HOME)
    assert loaded.find_element("id", "panel-forward").is_displayed()
    next_button = loaded.find_element("id", "step-next")
    next_button.send_keys(Keys.ENTER)
    assert "output (p, q) = (0, 1)" in loaded.find_element("id", "step-position").text


def test_a_setting_without_output_says_why(loaded: Any) -> None:
    choose(loaded, size=3, kernel=3, padding=0, dilation=2)
    message = loaded.find_element("id", "invalid")
    assert message.is_displayed()
    assert "Rd = 5 rows, more than the 3 rows of the padded input" in message.text
    assert not loaded.find_element("id", "panel-forward").is_displayed()
    choose(loaded, padding=1)
    assert not message.is_displayed()
    assert console_errors(loaded) == []
