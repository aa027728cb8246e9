"""report.html in real headless Chromium: ``convprop train`` writes it, it loads from a file
with no console error and no network request, its numbers are the run's history, its
pictures load, and its misclassified images are the model's mistakes with their class names.
Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser_support import console_errors, open_page, requested_urls, screenshot, start_chromium
from convprop.cli import main
from convprop.data import load_dataset
from convprop.io import load_model, load_model_metadata
from convprop.train import evaluate

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "3", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from start_chromium()


@pytest.fixture(scope="module")
def history(run: Path) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = load_model_metadata(run / "model.safetensors")["history"]
    return stored


def test_the_report_loads_with_no_console_error_and_no_request(driver: Any, run: Path) -> None:
    page = run / "report.html"
    open_page(driver, page)
    urls = requested_urls(driver)
    assert urls[0] == page.resolve().as_uri()
    assert all(url.startswith("data:image/png;base64,") for url in urls[1:]), urls
    assert console_errors(driver) == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    loaded = driver.execute_script(
        "return Array.from(document.images).map((img) => img.complete && img.naturalWidth > 0)"
    )
    assert len(loaded) >= 4 and all(loaded)  # filters, feature maps, confusion, mistakes
    screenshot(driver, "report-top")
    for section in ("chart-gradients", "filters", "feature-maps", "misclassified"):
        driver.execute_script(f"document.getElementById('{section}').scrollIntoView()")
        screenshot(driver, f"report-{section}")


def chart_points(driver: Any, chart: str) -> dict[tuple[str, int], float]:
    points = driver.execute_script(
        "return Array.from(document.querySelectorAll(`#${arguments[0]} .point`)).map((p) => "
        "[p.dataset.series, p.dataset.epoch, p.dataset.value])",
        chart,
    )
    return {(series, int(epoch)): float(value) for series, epoch, value in points}


def test_the_curves_and_gradient_norms_are_the_runs_history(
    driver: Any, run: Path, history: list[dict[str, Any]]
) -> None:
    open_page(driver, run / "report.html")
    for quantity in ("loss", "accuracy"):
        points = chart_points(driver, f"chart-{quantity}")
        expected = {
            (split, record["epoch"]): record[f"{split}_{quantity}"]
            for record in history
            for split in ("train", "test")
        }
        assert points == expected
    gradients = chart_points(driver, "chart-gradients")
    expected = {(name, r["epoch"]): v for r in history for name, v in r["grad_norms"].items()}
    assert gradients == expected
    assert set(n for n, _ in gradients) == {n for n, _ in load_model(run / "model.safetensors")
                                             .named_parameters()}  # fmt: skip
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('#gradient-table td[data-parameter]'))"
        ".map((td) => [td.dataset.parameter, td.dataset.epoch, td.dataset.value])"
    )
    assert {(n, int(e)): float(v) for n, e, v in cells} == expected
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#gradient-table td.name'))"
        ".map((td) => td.textContent)"
    )
    assert labels[0] == "0.weight (Conv2d)"


def test_the_misclassified_images_are_the_models_mistakes(driver: Any, run: Path) -> None:
    open_page(driver, run / "report.html")
    _, test_set = load_dataset("digits")
    result = evaluate(load_model(run / "model.safetensors"), test_set)
    wrong = np.flatnonzero(result.predictions != result.labels)[:8]
    assert len(wrong) > 0
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('#misclassified figure')).map((f) => "
        "[f.dataset.index, f.dataset.true, f.dataset.predicted, f.textContent])"
    )
    assert [int(index) for index, *_ in shown] == wrong.tolist()
    for (_, true, predicted, text), k in zip(shown, wrong, strict=True):
        assert (int(true), int(predicted)) == (result.labels[k], result.predictions[k])
        assert f"true {true}" in text and f"predicted {predicted}" in text
