"""A real git repository with a base and a pull-request commit, and a fake `gh` on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_GH = Path(__file__).with_name("fake_gh.py")

#: the deploy key the workflow declares, set in the job's environment
DEPLOY_KEY = "dk-0123456789abcdef"
#: the token `gh` gets (and the comment must never show)
TOKEN = "ghs_FakeToken0123456789"

DEPLOY_BASE = """\
wfx: 1
name: Deploy
secrets: [DEPLOY_KEY]
steps:
  - id: build
    run: make build
    timeout: 5m
  - id: push
    env: {KEY: "${{ secrets.DEPLOY_KEY }}"}
    run: ./push.sh
"""

DEPLOY_HEAD = """\
wfx: 1
name: Deploy
secrets: [DEPLOY_KEY]
steps:
  - id: build
    run: make build
    timeout: 10m
  - id: push
    env: {KEY: "${{ secrets.DEPLOY_KEY }}"}
    run: ./push.sh
  - id: smoke
    run: curl -fsS https://staging.example.com/health
"""

OLD = """\
wfx: 1
steps:
  - id: first
    run: echo one
  - id: second
    run: echo two
"""

BROKEN_BASE = """\
wfx: 1
steps:
  - id: lint
    run: make lint
"""

BROKEN_HEAD = """\
wfx: 1
steps:
  - id: lint
    run: make lint
    timout: 5m
"""

NEW = """\
wfx: 1
name: Nightly report
steps:
  - id: report
    cmd: [python3, report.py]
"""

NIGHTLY = """\
wfx: 1
steps:
  - id: clean
    run: rm -rf cache
"""


#: people on the pull request, as GitHub's API shows a comment's author
ALICE = {"login": "alice", "type": "User"}
BOB = {"login": "bob", "type": "User"}
#: the job's own token posts as this bot
BOT = {"login": "github-actions[bot]", "type": "Bot"}


def git(root: Path, *arguments: str) -> str:
    """Run git in `root` with a fixed identity; its standard output."""
    completed = subprocess.run(
        [
            "git",
            "-c",
            "user.name=Tester",
            "-c",
            "user.email=tester@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *arguments,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def write(root: Path, files: dict[str, str | None]) -> None:
    """Write (or, for None, delete) files below `root`."""
    for name, text in files.items():
        path = root / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def commit(root: Path, files: dict[str, str | None], message: str) -> str:
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """`main` with four workflow files and a YAML file that is not one; the branch
    `feature` (checked out) modifies one, deletes one, breaks one, adds one and changes
    the other YAML file."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    base = {
        "deploy.wfx.yaml": DEPLOY_BASE,
        "old.wfx.yaml": OLD,
        "broken.wfx.yaml": BROKEN_BASE,
        ".wfx/nightly.yaml": NIGHTLY,
        "notes.yaml": "a: 1\n",
    }
    commit(root, base, "base")
    git(root, "checkout", "-q", "-b", "feature")
    head = {
        "deploy.wfx.yaml": DEPLOY_HEAD,
        "old.wfx.yaml": None,
        "broken.wfx.yaml": BROKEN_HEAD,
        "jobs/new.wfx.yml": NEW,
        "notes.yaml": "a: 2\n",
    }
    commit(root, head, "change the workflows")
    return root


@dataclass
class FakeGitHub:
    """The fake `gh`'s comments and the calls it received."""

    state: Path
    log: Path

    def comments(self) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = json.loads(self.state.read_text("utf-8"))["comments"]
        return comments

    def set_comments(self, comments: list[dict[str, Any]]) -> None:
        self.state.write_text(json.dumps({"comments": comments}), encoding="utf-8")

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def writes(self) -> list[dict[str, Any]]:
        """The calls that created or changed a comment."""
        return [c for c in self.calls() if "--method" in c["argv"]]


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A fake `gh` first on PATH, with two comments by people already on the pull request
    (one quotes the marker, not at its start), and the job's environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_GH}" "$@"\n', encoding="utf-8")
    gh.chmod(0o755)
    fake = FakeGitHub(tmp_path / "gh-state.json", tmp_path / "gh-calls.jsonl")
    fake.set_comments(
        [
            {"id": 7, "body": "Looks good to me", "user": ALICE},
            {"id": 9, "body": "why does `<!-- wfx-plan -->` show?", "user": BOB},
        ]
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(fake.state))
    monkeypatch.setenv("FAKE_GH_LOG", str(fake.log))
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    monkeypatch.setenv("DEPLOY_KEY", DEPLOY_KEY)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/shop")
    for name in (
        "GITHUB_EVENT_PATH",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "FAKE_GH_FAIL",
        "FAKE_GH_LOGIN",
    ):
        monkeypatch.delenv(name, raising=False)
    yield fake
