"""Every Python example of the README runs as printed (the PyTorch file round trip excepted,
which names files of the reader's; tests/io/test_io_registry.py runs its calls)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
RUNNABLE = [block for block in BLOCKS if "torch_model" not in block]


def test_the_readme_has_its_examples() -> None:
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("index", range(len(RUNNABLE)))
def test_readme_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(RUNNABLE[index], f"README.md example {index}", "exec"), {"__name__": "readme"})
