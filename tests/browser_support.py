"""Real headless Chromium for the page tests, driven by Selenium and Debian's chromedriver.

``make test`` installs Debian's ``chromium`` and ``chromium-driver`` where they are missing.
Elsewhere the browser tests are skipped when no chromedriver is found, unless
CONVPROP_REQUIRE_BROWSER is set (then they fail). Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def start_chromium() -> Iterator[Any]:
    """A headless Chromium of 1280×800 that logs its console and network; quit afterwards."""
    driver_path = shutil.which("chromedriver")
    browser = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if driver_path is None or browser is None:
        message = "no chromedriver/chromium on PATH (make test installs Debian's packages)"
        if os.environ.get("CONVPROP_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, path: Path) -> None:
    """Load ``path`` from disk and empty the logs of earlier pages."""
    driver.get(path.resolve().as_uri())
    driver.get_log("browser")


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Console entries of level SEVERE since the last call (CSP violations included)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (from the DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver: Any, name: str) -> Path:
    """Save the window (1280×800) as test-artifacts/browser/NAME.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


READ_GRID = """
const table = document.querySelector(arguments[0]);
if (!table) return null;
return Array.from(table.querySelectorAll("tr")).slice(1).map((tr) =>
  Array.from(tr.querySelectorAll("td")).map((td) => [td.dataset.value, td.className]));
"""


def read_grid(driver: Any, selector: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, classes) of the grid table matched by ``selector``: the numbers its cells'
    data-value attributes hold (float64) and their class names (str)."""
    rows = driver.execute_script(READ_GRID, selector)
    assert rows is not None, f"no table {selector}"
    values = np.array([[float(value) for value, _ in row] for row in rows])
    classes = np.array([[cls for _, cls in row] for row in rows], dtype=object)
    return values, classes


def marked(classes: np.ndarray, name: str) -> set[tuple[int, int]]:
    """The (row, column) of every cell whose classes include ``name``."""
    return {(i, j) for (i, j), cls in np.ndenumerate(classes) if name in cls.split()}
