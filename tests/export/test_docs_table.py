"""docs/export.md's table names every loss an exporter can report."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_loss_kind_is_in_the_table() -> None:
    source = "".join(p.read_text("utf-8") for p in (ROOT / "src/wfx/export").glob("*.py"))
    kinds = set(re.findall(r'losses\.add\(\s*"([a-z-]+)"', source))
    assert len(kinds) >= 20
    table = (ROOT / "docs" / "export.md").read_text("utf-8").split("## What maps to what")[1]
    documented = set(re.findall(r"loss `([a-z-]+)`", table))
    assert kinds - documented == set()
    assert documented - kinds == set()
