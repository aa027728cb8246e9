"""The training report: ``report.html`` in a run's directory, one self-contained page.

It shows the loss and accuracy curves, each parameter's gradient norm over training (the
history's ``grad_norms``, DIAG1), the first layer's filters, one image's feature maps, the
confusion matrix (the PNGs of convprop.plots in the same directory, embedded) and the first
misclassified test images with their true and predicted class names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convprop.backend import to_host
from convprop.io.atomic import atomic_write
from convprop.report.images import file_uri, misclassified
from convprop.report.page import report_html

REPORT_NAME = "report.html"
PICTURES = {
    "filters": "filters.png",
    "feature_maps": "feature_maps.png",
    "confusion": "confusion.png",
}


def parameter_layers(model: Any) -> dict[str, str]:
    """{parameter name: the class name of the module that owns it}, e.g. "0.weight": "Conv2d"."""
    layers = {}
    for prefix, module in model.named_modules():
        for name, _ in module.named_parameters():
            if "." not in name:  # its own parameter, not a descendant's
                layers[f"{prefix}.{name}" if prefix else name] = type(module).__name__
    return layers


def write_report(
    out_dir: str | os.PathLike[str],
    history: Sequence[Mapping[str, Any]],
    result: Any,
    test_set: Any,
    class_names: Sequence[str],
    *,
    title: str = "Training report",
    summary: Sequence[tuple[str, str]] = (),
    count: int = 8,
    model: Any = None,
) -> Path:
    """Write ``out_dir/report.html`` (atomically) and return its path.

    Parameters
    ----------
    out_dir : path
        The run directory; filters.png, feature_maps.png and confusion.png are embedded
        where they exist.
    history : sequence of dict
        ``fit``'s history.
    result : convprop.train.Evaluation
        The final model's predictions on ``test_set`` (its ``predictions`` and ``labels``).
    test_set : ArrayDataset
        Images (N, C, H, W) in the order of ``result``.
    class_names : sequence of str
        One name per class.
    title, summary
        The heading, and (name, value) rows under it.
    count : int
        At most this many misclassified images.
    model : Module, optional
        Names the layer of each parameter in the gradient-norm chart and table.
    """
    out = Path(out_dir)
    pictures = {key: file_uri(out / name) for key, name in PICTURES.items()}
    wrong = misclassified(
        to_host(test_set.images), result.labels, result.predictions, class_names, count
    )
    layers = {} if model is None else parameter_layers(model)
    html = report_html(
        title=title, summary=summary, history=history, pictures=pictures, wrong=wrong,
        layers=layers,
    )  # fmt: skip

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(html)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / REPORT_NAME, write)
    return out / REPORT_NAME


__all__ = ["REPORT_NAME", "write_report"]
