"""The edge to git: which workflow files a pull request adds, modifies or deletes.

Read-only, except that a base commit missing from a shallow checkout is fetched.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from wfx.ci.comment import Change
from wfx.diagnostics import WfxError

#: the workflow files looked at when none are named: `*.wfx.yaml` anywhere, and the
#: YAML files directly in a `.wfx/` directory (as docs/editor.md maps them)
DEFAULT_PATTERNS = ("**/*.wfx.yaml", "**/*.wfx.yml", "**/.wfx/*.yaml", "**/.wfx/*.yml")

_CHANGES = {"A": Change.ADDED, "D": Change.DELETED}


class GitError(WfxError):
    """git could not answer (not a repository, an unknown revision...), in its own words."""


@dataclass(frozen=True)
class Commits:
    """The commits compared: the merge base with the pull request's base, and HEAD."""

    base: str
    head: str


@dataclass(frozen=True)
class Repository:
    """A git work tree, asked through the `git` command."""

    root: Path

    def commits(self, base: str) -> Commits:
        """`base` resolved (fetched from `origin` when the checkout lacks it) to the point
        the pull request branched from it, and HEAD."""
        if not base or base.startswith("-"):
            raise GitError(f"`{base}` is not a revision")
        if not self._has_commit(base):
            self._fetch(base)
        tip = self._git("rev-parse", "--verify", f"{base}^{{commit}}")
        head = self._git("rev-parse", "--verify", "HEAD^{commit}")
        try:
            branched = self._git("merge-base", tip, head)
        except GitError:  # a shallow checkout has no history to find it in
            branched = tip
        return Commits(branched, head)

    def changed_files(
        self, commits: Commits, patterns: tuple[str, ...]
    ) -> list[tuple[str, Change]]:
        """Each file matching `patterns` (git glob pathspecs) that differs between the two
        commits, sorted by path, with what happened to it (a rename is a delete and an add)."""
        pathspecs = [f":(glob){pattern}" for pattern in patterns]
        listing = self._git(
            "diff", "--name-status", "-z", "--no-renames", commits.base, commits.head, "--",
            *pathspecs,
        )  # fmt: skip
        fields = listing.split("\0")
        pairs = zip(fields[0::2], fields[1::2], strict=False)
        found = [(path, _CHANGES.get(status[:1], Change.MODIFIED)) for status, path in pairs]
        return sorted(found)

    def _has_commit(self, revision: str) -> bool:
        try:
            self._git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
        except GitError:
            return False
        return True

    def _fetch(self, revision: str) -> None:
        depth = ["--depth=1"] if self._git("rev-parse", "--is-shallow-repository") == "true" else []
        self._git("fetch", "--quiet", "--no-tags", *depth, "origin", revision)

    def _git(self, *arguments: str) -> str:
        try:
            completed = subprocess.run(
                ["git", *arguments], cwd=self.root, capture_output=True, text=True, check=False
            )
        except OSError as exc:
            raise GitError(f"cannot run git: {exc.strerror or exc}") from None
        if completed.returncode != 0:
            said = completed.stderr.strip() or f"exit status {completed.returncode}"
            raise GitError(f"`git {arguments[0]}` failed: {said}")
        return completed.stdout.strip("\n") if arguments[0] != "diff" else completed.stdout
