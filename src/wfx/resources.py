"""Find the files wfx ships beside its code: the expression grammar and the JSON Schemas.

In an installed wheel they live in ``wfx/_data/``; in a source checkout (editable
install) they are the top-level ``grammar/`` and ``schema/`` folders.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(kind: str) -> Path:
    """The folder holding `kind` ("grammar" or "schema"), wheel layout first."""
    for candidate in (_PACKAGE_DIR / "_data" / kind, _PACKAGE_DIR.parent.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"wfx installation is incomplete: no {kind}/ folder found")


def read_text(kind: str, name: str) -> str:
    """The text of a shipped data file, e.g. ``read_text("schema", "workflow.schema.json")``."""
    return (data_dir(kind) / name).read_text(encoding="utf-8")
