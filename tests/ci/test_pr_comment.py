"""The pull-request comment (`python -m wfx.ci.pr_comment`, what action.yml runs), against a
real git repository and a fake `gh` that records its calls: one comment per pull request,
created once and updated after that; its Markdown read back with markdown-it-py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ci_harness import ALICE, BOT, DEPLOY_KEY, TOKEN, FakeGitHub, commit, git
from markdown_it import MarkdownIt
from markdown_it.token import Token

from wfx.ci.comment import MARKER
from wfx.ci.github import GitHubError, PullRequest
from wfx.ci.pr_comment import main

MARKDOWN = MarkdownIt("commonmark").enable("table")
Runner = Callable[..., tuple[int, str]]


@pytest.fixture
def plan_comment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """Run the script in a repository for pull request 12: its exit code and output."""

    def run(repository: Path, *arguments: str, base: str = "main") -> tuple[int, str]:
        monkeypatch.chdir(repository)
        code = main(["--base", base, "--pull-request", "12", *arguments])
        return code, capsys.readouterr().out

    return run


def wfx_comments(github: FakeGitHub) -> list[dict[str, object]]:
    return [c for c in github.comments() if str(c["body"]).startswith(MARKER)]


def table_rows(tokens: list[Token]) -> list[list[str]]:
    """The body rows of the first table, as the text of their cells."""
    rows: list[list[str]] = []
    in_body = False
    for token in tokens:
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            break
        elif in_body and token.type == "tr_open":
            rows.append([])
        elif in_body and token.type == "inline":
            rows[-1].append(token.content)
    return rows


def headings(tokens: list[Token], level: str) -> list[str]:
    return [
        tokens[i + 1].content
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.tag == level
    ]


def test_the_comment_is_created_once_then_updated_never_duplicated(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    code, _ = plan_comment(repository)
    assert code == 2  # broken.wfx.yaml is invalid
    (created,) = wfx_comments(github)
    assert [c["argv"][:3] for c in github.writes()] == [["api", "--method", "POST"]]
    assert github.writes()[0]["argv"][3] == "repos/octo/shop/issues/12/comments"

    commit(repository, {"broken.wfx.yaml": "wfx: 1\nsteps:\n  - run: make lint\n"}, "fix")
    code, output = plan_comment(repository)
    assert code == 0
    (updated,) = wfx_comments(github)
    assert updated["id"] == created["id"]
    assert updated["body"] != created["body"]
    assert [c["argv"][:4] for c in github.writes()[1:]] == [
        ["api", "--method", "PATCH", f"repos/octo/shop/issues/comments/{created['id']}"]
    ]
    assert f"comment updated: {created['html_url']}" in output

    code, output = plan_comment(repository)
    assert code == 0
    assert len(github.writes()) == 2  # the same comment: nothing to write
    assert "comment unchanged" in output
    # the people's comments are as they were, the one quoting the marker included
    assert [c["id"] for c in github.comments()] == [7, 9, created["id"]]
    assert github.comments()[1]["body"] == "why does `<!-- wfx-plan -->` show?"
    # pages of the listing were all read (the fake serves two comments per page)
    assert all("--paginate" in c["argv"] for c in github.calls() if "--method" not in c["argv"])


def test_the_comment_shows_each_touched_file_and_nothing_else(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    plan_comment(repository)
    (comment,) = wfx_comments(github)
    body = str(comment["body"])
    tokens = MARKDOWN.parse(body)
    assert tokens[0].type == "html_block" and tokens[0].content.strip() == MARKER

    assert table_rows(tokens) == [
        ["`broken.wfx.yaml`", "modified", "❌ 1 error"],
        ["`deploy.wfx.yaml`", "modified", "✏️ 2 changes"],
        ["`jobs/new.wfx.yml`", "added", "➕ 1 step"],
        ["`old.wfx.yaml`", "deleted", "➖ 2 steps removed"],
    ]
    assert headings(tokens, "h2") == [
        "`broken.wfx.yaml` · modified",
        "`deploy.wfx.yaml` · modified",
        "`jobs/new.wfx.yml` · added",
        "`old.wfx.yaml` · deleted",
    ]
    assert "notes.yaml" not in body.replace("jobs/", "")  # not a workflow file
    assert "nightly" not in body  # a workflow file the pull request did not touch

    sections = split_by_h2(tokens)
    broken = sections["`broken.wfx.yaml` · modified"]
    (diagnostics,) = [t for t in broken if t.type == "fence"]
    assert diagnostics.info == "text"
    assert "broken.wfx.yaml:5:5: error: unknown key `timout` in step" in diagnostics.content
    assert "hint: did you mean `timeout`?" in diagnostics.content

    deploy = sections["`deploy.wfx.yaml` · modified"]
    assert headings(deploy, "h3")[0] == "wfx plan diff"
    rows = table_rows(deploy)
    assert ["➕", "step `smoke`", "", "added"] in rows
    assert ["✏️", "step `build` timeout", "5m", "10m"] in rows
    assert any(t.type == "html_block" and "<details>" in t.content for t in deploy)

    added = sections["`jobs/new.wfx.yml` · added"]
    assert not [h for h in headings(added, "h3") if h == "wfx plan diff"]
    assert "wfx plan: Nightly report" in headings(added, "h3")

    deleted = sections["`old.wfx.yaml` · deleted"]
    paragraphs = [t.content for t in deleted if t.type == "inline"]
    assert "Its steps no longer run: `first`, `second`" in paragraphs


def split_by_h2(tokens: list[Token]) -> dict[str, list[Token]]:
    sections: dict[str, list[Token]] = {}
    current: list[Token] | None = None
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            current = sections.setdefault(tokens[i + 1].content, [])
        elif current is not None:
            current.append(token)
    return sections


def test_validate_annotations_are_printed_for_the_job(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    _, output = plan_comment(repository)
    assert "::error file=broken.wfx.yaml,line=5,col=5," in output
    # the comment is in the log, where none of its lines is taken as a command
    stop = next(line for line in output.splitlines() if line.startswith("::stop-commands::"))
    token = stop.removeprefix("::stop-commands::")
    assert len(token) >= 32
    assert f"::{token}::" in output


def test_secrets_and_the_token_never_reach_the_comment(
    repository: Path,
    github: FakeGitHub,
    plan_comment: Runner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Even a file that holds the values themselves: they are masked in what is posted,
    printed and summarised; the token reaches `gh` through its environment only."""
    leaky = f"wfx: 1\ndescription: 'key {DEPLOY_KEY} token {TOKEN}'\nsteps:\n  - run: echo\n"
    commit(repository, {"leaky.wfx.yaml": leaky}, "leak")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _, output = plan_comment(repository)
    (comment,) = wfx_comments(github)
    everything = [str(comment["body"]), output, summary.read_text("utf-8")]
    everything += [json.dumps(c["argv"]) + c["stdin"] for c in github.calls()]
    for text in everything:
        assert DEPLOY_KEY not in text
        assert TOKEN not in text
    assert "key \\*\\*\\* token \\*\\*\\*" in str(comment["body"])  # escaped prose
    assert {c["token"] for c in github.calls()} == {TOKEN}
    # the deploy step's env reads the secret: the plan shows it masked
    assert "KEY" in str(comment["body"])


def test_no_workflow_file_touched_creates_no_comment_and_updates_an_old_one(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    git(repository, "checkout", "-q", "-b", "docs", "main")
    commit(repository, {"notes.yaml": "a: 3\n"}, "only notes")
    code, output = plan_comment(repository)
    assert code == 0
    assert github.writes() == []
    assert "no workflow file changed" in output

    old = {"id": 50, "body": f"{MARKER}\nan old plan", "user": BOT}
    github.set_comments([*github.comments(), old])
    code, _ = plan_comment(repository)
    assert code == 0
    (updated,) = wfx_comments(github)
    assert updated["id"] == 50
    tokens = MARKDOWN.parse(str(updated["body"]))
    text = " ".join(t.content for t in tokens if t.type == "inline")
    assert "changes no workflow file" in text
    assert "`**/*.wfx.yaml`" in text


def test_patterns_choose_the_workflow_files(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    plan_comment(repository, "--pattern", "jobs/**/*.yml\nold.*")
    (comment,) = wfx_comments(github)
    rows = table_rows(MARKDOWN.parse(str(comment["body"])))
    assert [row[0] for row in rows] == ["`jobs/new.wfx.yml`", "`old.wfx.yaml`"]


def test_a_comment_that_cannot_be_posted_fails_the_step_saying_why(
    repository: Path,
    github: FakeGitHub,
    plan_comment: Runner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FAKE_GH_FAIL", "1")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, output = plan_comment(repository, "--fail-on-invalid", "false")
    assert code == 1
    assert "::error title=wfx plan comment::" in output
    assert "Resource not accessible by integration" in output
    # the plan still reaches the job's summary (a fork's pull request gets a read-only token)
    assert summary.read_text("utf-8").startswith(MARKER)


def test_no_comment_and_no_failure_when_asked(
    repository: Path,
    github: FakeGitHub,
    plan_comment: Runner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, _ = plan_comment(repository, "--comment", "false", "--fail-on-invalid", "no")
    assert code == 0
    assert github.calls() == []
    assert outputs.read_text("utf-8") == "invalid=true\n"


def test_a_shallow_checkout_fetches_the_base(
    repository: Path,
    github: FakeGitHub,
    plan_comment: Runner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """As actions/checkout leaves it: one commit, no base; the base is fetched by its id."""
    base = git(repository, "rev-parse", "main")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth=1", "--branch=feature", repository.as_uri(), str(clone)],
        check=True,
    )
    code, _ = plan_comment(clone, base=base)
    assert code == 2
    (comment,) = wfx_comments(github)
    rows = table_rows(MARKDOWN.parse(str(comment["body"])))
    assert [row[1] for row in rows] == ["modified", "modified", "added", "deleted"]
    assert ["✏️", "step `build` timeout", "5m", "10m"] in table_rows(
        split_by_h2(MARKDOWN.parse(str(comment["body"])))["`deploy.wfx.yaml` · modified"]
    )


def test_a_bad_base_is_an_error_not_a_traceback(repository: Path, github: FakeGitHub) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "wfx.ci.pr_comment", "--base", "no-such-branch"],
        capture_output=True,
        text=True,
        check=False,
        cwd=repository,
    )
    assert completed.returncode == 1
    assert completed.stdout.startswith("::error title=wfx plan::")
    assert "Traceback" not in completed.stderr
    assert github.calls() == []


def test_a_linked_file_is_not_read_so_nothing_outside_the_checkout_is_quoted(
    repository: Path, github: FakeGitHub, plan_comment: Runner, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("wfx: 1\nsteps: [{run: echo, timout: 1}]\nPASSWORD=hunter2hunter2\n")
    (repository / "leak.wfx.yaml").symlink_to(outside)
    (repository / "linked").symlink_to(tmp_path)
    commit(repository, {}, "links")
    code, output = plan_comment(repository)
    assert code == 2
    (comment,) = wfx_comments(github)
    body = str(comment["body"])
    assert "hunter2" not in body + output
    sections = split_by_h2(MARKDOWN.parse(body))
    said = [t.content for t in sections["`leak.wfx.yaml` · added"] if t.type == "inline"]
    assert "The file is a symbolic link\\, or in a linked directory\\: it is not read\\." in said
    assert ["`leak.wfx.yaml`", "added", "❌ 1 error"] in table_rows(MARKDOWN.parse(body))


def test_a_hostile_file_name_adds_no_structure(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    name = "we|ird ``x`` <b>.wfx.yaml"
    commit(repository, {name: "wfx: 1\nsteps:\n  - run: echo\n"}, "odd name")
    plan_comment(repository)
    (comment,) = wfx_comments(github)
    tokens = MARKDOWN.parse(str(comment["body"]))
    rows = table_rows(tokens)
    assert all(len(row) == 3 for row in rows)
    assert ["```we|ird ``x`` <b>.wfx.yaml```", "added", "➕ 1 step"] in rows
    assert not [t for t in tokens if t.type in ("html_inline", "html_block") and "<b>" in t.content]


def test_a_broken_base_and_a_missing_input_are_said_not_hidden(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    git(repository, "checkout", "-q", "main")
    commit(repository, {"fixed.wfx.yaml": "wfx: 1\nsteps:\n  - {run: echo, timout: 1s}\n"}, "x")
    git(repository, "checkout", "-q", "feature")
    git(repository, "rebase", "-q", "main")
    needs_input = "wfx: 1\ninputs:\n  env: {type: string, required: true}\nsteps:\n  - run: echo\n"
    files = {"fixed.wfx.yaml": "wfx: 1\nsteps:\n  - run: echo\n", "input.wfx.yaml": needs_input}
    commit(repository, files, "fix one, add one")
    plan_comment(repository)
    (comment,) = wfx_comments(github)
    tokens = MARKDOWN.parse(str(comment["body"]))
    rows = {row[0]: row[2] for row in table_rows(tokens)}
    assert rows["`fixed.wfx.yaml`"] == "no diff"
    assert rows["`input.wfx.yaml`"] == "no plan"
    sections = split_by_h2(tokens)
    fixed = " ".join(t.content for t in sections["`fixed.wfx.yaml` · modified"])
    assert "At the base the file does not compile" in fixed.replace("\\", "")
    assert "The plan after this change" in fixed
    needs = sections["`input.wfx.yaml` · added"]
    (problem,) = [t.content for t in needs if t.type == "fence"]
    assert "env" in problem and "error" in problem


@pytest.mark.parametrize("name", ["octo", "../..", "octo/..", "-x/shop", "octo/shop/x", ""])
def test_only_a_repository_name_reaches_the_api_path(name: str) -> None:
    with pytest.raises(GitHubError, match="is not a repository name"):
        PullRequest(name, 12)
    assert PullRequest("octo-org/shop.web_2", 12).repository == "octo-org/shop.web_2"


def wfx_cli(repository: Path, *arguments: str) -> str:
    """What `wfx ARGUMENTS` prints in the repository (a real process)."""
    completed = subprocess.run(
        [sys.executable, "-m", "wfx", *arguments],
        cwd=repository,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in completed.stderr
    return completed.stdout


def test_the_comment_holds_what_wfx_plan_diff_and_validate_print(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    """The issue's commands, run by hand, print what the comment and the annotations say:
    `wfx plan FILE --diff git:BASE --format markdown` is the file's diff in the comment,
    `wfx plan FILE --format markdown` its plan, `wfx validate --format github` the
    annotations."""
    base = git(repository, "merge-base", "main", "HEAD")
    _, output = plan_comment(repository)
    (comment,) = wfx_comments(github)
    body = str(comment["body"])
    diff = wfx_cli(
        repository, "plan", "deploy.wfx.yaml", "--diff", f"git:{base}", "--format", "markdown"
    )
    assert "step `smoke`" in diff
    assert diff.strip() in body
    plan = wfx_cli(repository, "plan", "jobs/new.wfx.yml", "--format", "markdown")
    assert plan.strip() in body
    annotations = wfx_cli(repository, "validate", "--format", "github", "broken.wfx.yaml")
    assert annotations.startswith("::error file=broken.wfx.yaml,line=5,col=5,")
    assert annotations.strip() in output


def test_a_comment_someone_else_starts_with_the_marker_is_never_taken_for_ours(
    repository: Path, github: FakeGitHub, plan_comment: Runner
) -> None:
    """Its author could edit what reviewers take for wfx's plan: wfx leaves it alone and
    keeps its own comment."""
    fake = {"id": 3, "body": f"{MARKER}\nNo changes to the plan. LGTM", "user": ALICE}
    github.set_comments([fake, *github.comments()])
    plan_comment(repository)
    plan_comment(repository, "--fail-on-invalid", "false")
    assert github.comments()[0] == fake
    ours = [c for c in wfx_comments(github) if c["id"] != 3]
    assert len(ours) == 1 and ours[0]["user"] == BOT
    assert [c["argv"][2] for c in github.writes()] == ["POST"]  # then unchanged


def test_a_personal_token_names_the_login_it_posts_as(
    repository: Path,
    github: FakeGitHub,
    plan_comment: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_GH_LOGIN", "release-bot")
    plan_comment(repository, "--comment-author", "release-bot")
    commit(repository, {"broken.wfx.yaml": "wfx: 1\nsteps:\n  - run: make lint\n"}, "fix")
    plan_comment(repository, "--comment-author", "release-bot")
    (comment,) = wfx_comments(github)
    assert comment["user"] == {"login": "release-bot", "type": "User"}
    assert [c["argv"][2] for c in github.writes()] == ["POST", "PATCH"]
