"""The training report's HTML: one self-contained page (inline style, SVG charts, images as
data: URIs, no script), whose Content-Security-Policy forbids every request."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from convprop.report.charts import Series, line_chart
from convprop.report.images import Misclassified

VANISHING = 1e-3
"""A parameter whose last gradient norm is below this fraction of the largest one's is flagged."""
GROWING = 1e2
"""A parameter whose gradient norm grew more than this factor since the first epoch is flagged."""

STYLE = """
body { margin: 0; padding: 16px 28px 32px; color: #1b1b1b; background: #fbfbfb;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 6px; } h2 { font-size: 18px; margin: 22px 0 6px; }
p { max-width: 1150px; margin: 4px 0; } .muted { color: #575757; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #c4c4c4; padding: 3px 8px; text-align: right; }
th { background: #efefef; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; }
td.flag { text-align: left; color: #8a3a00; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 12px 28px; }
svg.chart { background: #fff; border: 1px solid #d4d4d4; }
svg .chart-title { font-size: 14px; font-weight: 600; text-anchor: middle; }
svg .tick { font-size: 11px; fill: #3a3a3a; } svg .axis { font-size: 12px; fill: #1b1b1b; }
svg .grid { stroke: #e3e3e3; } svg .frame { fill: none; stroke: #9a9a9a; }
img.plot { max-width: 100%; border: 1px solid #d4d4d4; background: #fff; }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; }
.gallery figure { margin: 0; padding: 6px; background: #fff; border: 1px solid #d4d4d4;
  font-size: 13px; }
.gallery img { display: block; image-rendering: pixelated; }
"""


def _history_series(history: Sequence[Mapping[str, Any]], quantity: str) -> list[Series]:
    epochs = [float(record["epoch"]) for record in history]
    return [
        Series(split, epochs, [record.get(f"{split}_{quantity}") for record in history])
        for split in ("train", "test")
        if any(record.get(f"{split}_{quantity}") is not None for record in history)
    ]


def gradient_series(
    history: Sequence[Mapping[str, Any]], layers: Mapping[str, str] | None = None
) -> list[Series]:
    """One series per parameter: its mean gradient norm per epoch (DIAG1); epochs recorded
    without norms (a run resumed from an older checkpoint) are gaps. ``layers`` names the
    layer of a parameter ("Conv2d"), shown beside it."""
    names: list[str] = []
    for record in history:
        names += [name for name in record.get("grad_norms") or {} if name not in names]
    epochs = [float(record["epoch"]) for record in history]
    layers = layers or {}
    return [
        Series(
            name,
            epochs,
            [(record.get("grad_norms") or {}).get(name) for record in history],
            f"{name} ({layers[name]})" if name in layers else name,
        )
        for name in names
    ]


def flag(values: Sequence[float | None], largest: float) -> str:
    """What a parameter's norms say: not finite, zero, vanishing, growing, or nothing."""
    seen = [v for v in values if v is not None]
    if not seen:
        return "not recorded"
    first, last = seen[0], seen[-1]
    if not all(math.isfinite(v) for v in seen):
        return "exploding: not finite"
    if last == 0.0:
        return "zero: no gradient reaches it"
    if largest > 0 and last < VANISHING * largest:
        return f"vanishing: {largest / last:.3g}× below the largest"
    if first > 0 and last > GROWING * first:
        return f"growing: ×{last / first:.3g} since epoch 1"
    return ""


def _gradient_table(series: list[Series]) -> str:
    if not series:
        return '<p class="muted">No gradient norms in this history.</p>'
    epochs = series[0].epochs
    lasts = [next((v for v in reversed(s.values) if v is not None), None) for s in series]
    largest = max((v for v in lasts if v is not None and math.isfinite(v)), default=0.0)
    head = "".join(f"<th>{e:g}</th>" for e in epochs)
    rows = [f'<tr><th class="name">parameter</th>{head}<th class="name">note</th></tr>']
    for s in series:
        name = escape(s.name)
        cells = "".join(
            f'<td data-parameter="{name}" data-epoch="{e:g}" data-value="{v!r}">{v:.3g}</td>'
            if v is not None else "<td>–</td>"
            for e, v in zip(s.epochs, s.values, strict=True)
        )  # fmt: skip
        note = escape(flag(s.values, largest))
        rows.append(
            f'<tr><td class="name">{escape(s.label or s.name)}</td>{cells}'
            f'<td class="flag">{note}</td></tr>'
        )
    return f'<table id="gradient-table">{"".join(rows)}</table>'


def _picture(uri: str | None, alt: str, element_id: str) -> str:
    if uri is None:
        return f'<p class="muted" id="{element_id}">Not drawn in this run.</p>'
    return f'<img class="plot" id="{element_id}" src="{uri}" alt="{escape(alt)}">'


def _gallery(wrong: Sequence[Misclassified]) -> str:
    if not wrong:
        return '<p class="muted" id="misclassified">Every test image was classified correctly.</p>'
    figures = [
        f'<figure data-index="{m.index}" data-true="{m.true}" data-predicted="{m.predicted}">'
        f'<img src="{m.uri}" alt="test image {m.index}">'
        f"<figcaption>#{m.index}: true <strong>{escape(m.true_name)}</strong><br>"
        f"predicted <strong>{escape(m.predicted_name)}</strong></figcaption></figure>"
        for m in wrong
    ]
    return f'<div class="gallery" id="misclassified">{"".join(figures)}</div>'


def report_html(
    *,
    title: str,
    summary: Sequence[tuple[str, str]],
    history: Sequence[Mapping[str, Any]],
    pictures: Mapping[str, str | None],
    wrong: Sequence[Misclassified],
    layers: Mapping[str, str] | None = None,
) -> str:
    """The report's text: summary, curves, gradient norms, pictures, misclassified images.

    ``pictures`` maps "filters", "feature_maps" and "confusion" to data: URIs (or None);
    ``layers`` maps a parameter's name to its layer's ("Conv2d").
    """
    gradients = gradient_series(history, layers)
    rows = "".join(
        f"<tr><th class='name'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summary
    )
    charts = [
        line_chart(
            _history_series(history, quantity),
            chart_id=f"chart-{quantity}",
            title=f"{quantity.capitalize()} per epoch",
            y_label=quantity,
        )
        for quantity in ("loss", "accuracy")
    ]
    gradient_chart = line_chart(
        gradients, chart_id="chart-gradients", title="Mean gradient norm per parameter (DIAG1)",
        y_label="‖dθ‖₂ (log scale)", log_y=True, width=900, height=380,
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<table id="summary">{rows}</table>
<h2>Loss and accuracy</h2>
<div class="charts">{"".join(charts)}</div>
<h2>Gradient norms per layer</h2>
<p class="muted">For each parameter, the mean over an epoch's steps of the norm of its gradient
(DIAG1, docs/derivations.md §18). On this logarithmic scale a layer whose gradients vanish falls
away from the others, and exploding gradients climb; the notes flag a last norm below
{VANISHING:g} of the largest, or a growth by more than {GROWING:g}× since the first epoch.</p>
{gradient_chart}
{_gradient_table(gradients)}
<h2>Learned filters of the first convolution</h2>
<p class="muted">One shared scale centred on 0 (colour bar): a filter that learned nothing is
flat.</p>
{_picture(pictures.get("filters"), "first-layer filters", "filters")}
<h2>Feature maps of one test image</h2>
<p class="muted">One scale per layer (colour bar); a channel that is 0 everywhere is marked
dead.</p>
{_picture(pictures.get("feature_maps"), "feature maps", "feature-maps")}
<h2>Confusion matrix</h2>
{_picture(pictures.get("confusion"), "confusion matrix", "confusion")}
<h2>Misclassified test images</h2>
{_gallery(wrong)}
</body>
</html>
"""
