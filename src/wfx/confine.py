"""The files a workflow names (the sub-workflows it calls, its env files) are read only
from under the project root, and never from `.git`.

A workflow file may come from anyone (a pull request's, checked out in CI), and `wfx
plan` and `wfx validate` read the files it names and show what they hold. A path that
is absolute, leaves the root (`..`), leads out through a symbolic link or names the
repository's own data (`.git/config` holds the token a CI checkout persisted) is
refused before anything is opened or looked up. The root is the directory holding the
top workflow file unless `--root` names another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Confined:
    """Where a written path leads: `real` when it may be read, else why not (`kind` is
    `path`, `escape`, `symlink` or `git`, the last part of the diagnostic's code)."""

    real: str | None
    kind: str = ""
    message: str = ""


def project_root(workflow_file: str | Path, root: str | Path | None) -> str:
    """The real path of the project root: `root`, else the top workflow's directory."""
    if root is not None:
        return os.path.realpath(root)
    return os.path.dirname(os.path.realpath(workflow_file))


def within(path: str, root: str) -> bool:
    """Whether `path` (normalised) is `root` or under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(written: str, base: str | Path, root: str, noun: str) -> Confined:
    """The real path of `written` (relative to the directory `base`), or why it is
    refused: `noun` names what it is in the messages ("sub-workflow", "env file")."""
    article = "an" if noun[:1] in "aeiou" else "a"
    if "\x00" in written:
        return Confined(None, "path", f"{article} {noun} path cannot contain a NUL character")
    if "\\" in written:
        message = f"`{written}`: write paths with `/`; a backslash is not a path separator here"
        return Confined(None, "path", message)
    if written.startswith("/"):
        message = (
            f"`{written}` is an absolute path; {article} {noun} is named relative to its workflow"
        )
        return Confined(None, "path", message)
    lexical = os.path.normpath(os.path.join(base, written))
    if not within(lexical, root):
        return Confined(None, "escape", f"`{written}` leaves the project root {root}")
    real = os.path.realpath(lexical)
    if not within(real, root):
        message = (
            f"`{written}` leads through a symbolic link to {real}, outside the project root {root}"
        )
        return Confined(None, "symlink", message)
    # any case: on a file system that ignores case (macOS's), `.GIT/config` is `.git/config`
    if any(part.lower() == ".git" for part in Path(os.path.relpath(real, root)).parts):
        message = (
            f"`{written}` is inside `.git`, the repository's own data (where a CI checkout"
            " keeps its token), never read as a workflow's file"
        )
        return Confined(None, "git", message)
    return Confined(real)
