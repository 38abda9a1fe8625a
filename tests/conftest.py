"""Shared test helpers: write a workflow to a temporary file and load or compile it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def workflow_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML to `wf.yaml` in a temporary directory and return its path."""

    def write(text: str, name: str = "wf.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
