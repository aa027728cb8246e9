"""Every equation label that the code cites is defined in docs/derivations.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEL = re.compile(r"\(([A-Z]{1,5}\d{1,2}[A-Z]?)\)")


def _labels_in(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        found |= set(LABEL.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_label_cited_in_the_code_is_defined_in_the_derivations() -> None:
    sources = [
        *(ROOT / "src" / "convprop").rglob("*.py"),
        *(ROOT / "src" / "convprop").glob("*.[ch]"),
    ]
    cited = _labels_in(sorted(sources))
    documented = _labels_in([ROOT / "docs" / "derivations.md"])
    assert {"F1", "B1", "B2", "B3", "I1", "T1", "WG1", "CT1", "MP1", "CE1"} <= cited
    missing = sorted(cited - documented)
    assert not missing, f"labels cited in src/ but not defined in docs/derivations.md: {missing}"
