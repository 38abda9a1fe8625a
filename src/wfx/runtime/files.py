"""The edge to the file system for what the CLI and the API prepare before a run starts."""

from __future__ import annotations

from pathlib import Path


def make_directory(path: Path) -> None:
    """Make `path` (never its parents) unless it is already a directory; OSError otherwise."""
    path.mkdir(exist_ok=True)
