"""The edge to git: read a file as it was at a revision (for `wfx plan --diff git:REV`).

The only place above the engine that starts a process; read-only (`git show`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from wfx.diagnostics import WfxError


class GitError(WfxError):
    """git could not show the file at that revision (a bad revision, not a repository...)."""


def show_file(revision: str, path: Path) -> bytes | None:
    """The bytes of `path` at `revision` of the repository it is in, or None when the file
    does not exist at that revision; GitError with git's own words otherwise."""
    if revision.startswith("-"):  # git would read it as an option (`--output=FILE` writes)
        raise GitError("a revision cannot start with `-`")
    completed = subprocess.run(
        ["git", "show", f"{revision}:./{path.name}"],
        cwd=path.resolve().parent,
        capture_output=True,
        check=False,
    )
    if completed.returncode == 0:
        return completed.stdout
    message = completed.stderr.decode("utf-8", errors="replace").strip()
    if "does not exist" in message or "exists on disk, but not in" in message:
        return None
    raise GitError(message)
