"""``convprop explain --html PAGE.html``: one self-contained page of the backward pass.

The page (assets/page.html, with assets/page.css and assets/page.js written into it) holds the
numbers of ``page_data.page_data()`` as JSON: everything it shows was computed by convprop
when the page was written. It needs no server and no network: it opens from disk, and its
Content-Security-Policy forbids every request.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from convprop.explain.page_data import page_data
from convprop.io.atomic import atomic_write

PathLike = str | os.PathLike[str]


def _asset(name: str) -> str:
    folder = resources.files("convprop.explain").joinpath("assets")
    return folder.joinpath(name).read_text(encoding="utf-8")


def page_html(data: dict[str, Any] | None = None) -> str:
    """The page's text: the template with its style, script and data written in.

    ``data`` defaults to ``page_data()``. The JSON is written inside a ``<script>`` element,
    so ``</`` is escaped as ``<\\/`` (the same string to JSON).
    """
    data = page_data() if data is None else data
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    html = _asset("page.html")
    for marker, content in (
        ("/*CONVPROP:CSS*/", _asset("page.css")),
        ("/*CONVPROP:JS*/", _asset("page.js")),
        ("/*CONVPROP:DATA*/", text),
    ):
        if html.count(marker) != 1:  # pragma: no cover - a broken template
            raise RuntimeError(f"explain: the page template must hold {marker} once")
        html = html.replace(marker, content)
    return html


def write_page(path: PathLike) -> Path:
    """Write the interactive page to ``path`` (atomically; parent folders are created).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    html = page_html()

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(html)

    atomic_write(target, write)
    return target
