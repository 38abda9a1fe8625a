"""The edge to GitHub: find, create and update the pull request's wfx comment with
`gh api` (which takes its token from GH_TOKEN: wfx never sees it).

The comment is the oldest one whose body starts with the marker and whose author is the
one the action posts as (a bot, or the login it is told): a run updates it, and creates
one only when there is none, so a pull request has one wfx comment. A comment someone
else starts with the marker is never taken for it: its author could edit the plan that
reviewers read after wfx wrote it.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from wfx.diagnostics import WfxError

_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/(?!\.\.?$)[A-Za-z0-9_.-]+$")


class GitHubError(WfxError):
    """`gh` failed (not installed, no token, no permission...), in its own words."""


@dataclass(frozen=True)
class Posted:
    """What happened to the comment: `created`, `updated` or `unchanged`, and where it is."""

    action: str
    id: int
    url: str | None


@dataclass(frozen=True)
class PullRequest:
    """A pull request of a repository (`owner/name`), addressed through `gh`."""

    repository: str
    number: int
    gh: Sequence[str] = ("gh",)
    author: str = ""
    """The login the comment is posted as; empty: any bot (`github-actions[bot]` for the
    job's own token, an app's bot for an app's token)."""

    def __post_init__(self) -> None:
        if not _REPOSITORY.match(self.repository):
            raise GitHubError(f"`{self.repository}` is not a repository name OWNER/NAME")
        if self.number < 1:
            raise GitHubError(f"`{self.number}` is not a pull request number")

    def find_comment(self, marker: str) -> dict[str, Any] | None:
        """The oldest comment of ours whose body starts with `marker`, or None."""
        path = f"repos/{self.repository}/issues/{self.number}/comments?per_page=100"
        pages = self._api(["--paginate", path])
        for comment in _json_values(pages):
            if (
                isinstance(comment, dict)
                and str(comment.get("body", "")).startswith(marker)
                and self._ours(comment)
            ):
                return comment
        return None

    def _ours(self, comment: dict[str, Any]) -> bool:
        user = comment.get("user")
        if not isinstance(user, dict):
            return False
        if self.author:
            return str(user.get("login", "")).lower() == self.author.lower()
        return user.get("type") == "Bot"

    def post(self, body: str, marker: str) -> Posted:
        """Update the comment found by `marker` to `body`, or create it when there is none."""
        found = self.find_comment(marker)
        if found is not None and found.get("body") == body:
            return Posted("unchanged", int(found["id"]), found.get("html_url"))
        payload = json.dumps({"body": body})
        if found is None:
            path = f"repos/{self.repository}/issues/{self.number}/comments"
            answer = self._api(["--method", "POST", path, "--input", "-"], payload)
            action = "created"
        else:
            path = f"repos/{self.repository}/issues/comments/{int(found['id'])}"
            answer = self._api(["--method", "PATCH", path, "--input", "-"], payload)
            action = "updated"
        comment: Any = next(_json_values(answer), {})
        if not isinstance(comment, dict) or "id" not in comment:
            raise GitHubError(f"`gh api` answered without a comment: {answer[:200]!r}")
        return Posted(action, int(comment["id"]), comment.get("html_url"))

    def _api(self, arguments: list[str], stdin: str | None = None) -> str:
        try:
            completed = subprocess.run(
                [*self.gh, "api", *arguments],
                input=stdin or "",
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise GitHubError(f"cannot run `{self.gh[0]}`: {exc.strerror or exc}") from None
        if completed.returncode != 0:
            said = (completed.stderr or completed.stdout).strip()
            where = next(a for a in arguments if a.startswith("repos/"))
            raise GitHubError(f"`gh api {where}` failed: {said}")
        return completed.stdout


def _json_values(text: str) -> Iterator[Any]:
    """Every item of the JSON arrays (or the single objects) in `text`, one after another:
    `gh api --paginate` prints one array per page."""
    decoder = json.JSONDecoder()
    position = 0
    text = text.strip()
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError as exc:
            raise GitHubError(f"`gh api` printed something that is not JSON: {exc}") from None
        yield from value if isinstance(value, list) else [value]
        while position < len(text) and text[position].isspace():
            position += 1
