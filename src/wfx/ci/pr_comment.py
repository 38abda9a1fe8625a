"""`python -m wfx.ci.pr_comment`: plan every workflow file a pull request touches and
keep one comment on the pull request saying what each will do (what `action.yml` runs).

For each file matching the patterns that differs from the base: `wfx validate`'s
diagnostics (also printed as GitHub annotations), the plan diff against the base
(`wfx plan FILE --diff git:BASE --format markdown`) and the whole plan. The comment
is created once and updated after that; a pull request that stops touching workflow
files gets its comment updated to say so, one that never did gets none. Exit 2 when a
touched file is invalid (unless `--fail-on-invalid false`), 1 when git failed or the
comment could not be posted, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from wfx import __version__, api
from wfx.ci.changes import DEFAULT_PATTERNS, GitError, Repository
from wfx.ci.comment import MARKER, Change, Comparison, FileReport, compose, redact
from wfx.ci.github import GitHubError, PullRequest
from wfx.diagnostics import Diagnostic, DiagnosticsError, Severity
from wfx.plan import Plan, diff_plans
from wfx.render.diagnostics import as_github, as_text
from wfx.render.plan_diff import diff_markdown
from wfx.render.plan_markdown import render_markdown

#: environment variables whose values never appear in the comment, whatever a file holds
TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN")


@dataclass(frozen=True)
class Findings:
    """What wfx found for one file: the report for the comment, the diagnostics for the
    annotations, and the names of the secrets the workflow declares (never shown)."""

    report: FileReport
    diagnostics: list[Diagnostic] = field(default_factory=list)
    secret_names: tuple[str, ...] = ()


def findings_for(path: str, change: Change, base_commit: str) -> Findings:
    """What wfx finds for `path` (relative to the working directory) against the base."""
    if change is Change.DELETED:
        return Findings(_deleted(path, base_commit))
    if not _inside_work_tree(path):
        note = "The file is a symbolic link, or in a linked directory: it is not read."
        return Findings(FileReport(path, change, errors=1, notes=(note,)))
    checked = api.check([path])
    counts = _counts(checked.diagnostics)
    text = as_text(checked.diagnostics, checked.sources) if checked.diagnostics else ""
    if not checked.ok:
        return Findings(FileReport(path, change, *counts, diagnostics=text), checked.diagnostics)
    try:
        _, plan = api.plan_file(path)
    except DiagnosticsError as exc:
        note = "The workflow is valid, but it cannot be planned without input values:"
        problems = as_text(exc.diagnostics, checked.sources)
        report = FileReport(path, change, *counts, diagnostics=problems, notes=(note,))
        return Findings(report, checked.diagnostics)
    report = FileReport(
        path,
        change,
        *counts,
        diagnostics=text,
        plan=render_markdown(plan),
        steps=tuple(plan.steps),
    )
    if change is Change.MODIFIED:
        report = _with_diff(report, plan, base_commit)
    return Findings(report, checked.diagnostics, tuple(plan.secrets))


def _inside_work_tree(path: str) -> bool:
    """True when `path` is a file of the work tree itself: a pull request could otherwise
    link a "workflow file" to any file of the machine (say /proc/self/environ) and have
    its lines quoted in the comment."""
    here = Path.cwd().resolve()
    if Path(path).is_symlink():
        return False
    return Path(path).resolve().is_relative_to(here)


def _counts(diagnostics: Iterable[Diagnostic]) -> tuple[int, int]:
    found = list(diagnostics)
    errors = sum(d.severity is Severity.ERROR for d in found)
    return errors, len(found) - errors


def _with_diff(report: FileReport, plan: Plan, base_commit: str) -> FileReport:
    """`report` with the plan diff against the file at `base_commit`."""
    try:
        base = api.plan_base(f"git:{base_commit}", report.path, None)
    except DiagnosticsError:
        note = (
            "At the base the file does not compile, so there is no diff: the whole plan is below."
        )
        return replace(report, notes=(*report.notes, note))
    if base is None:
        return report
    changes = diff_plans(base, plan)
    return replace(report, diff=diff_markdown(changes), changes=len(changes))


def _deleted(path: str, base_commit: str) -> FileReport:
    """A deleted file: the steps it had at the base, where they can be known."""
    steps: tuple[str, ...] = ()
    try:
        if Path(path).parent.is_dir():
            base = api.plan_base(f"git:{base_commit}", path, None)
            steps = tuple(base.steps) if base is not None else ()
    except DiagnosticsError:
        pass
    return FileReport(path, Change.DELETED, steps=steps, notes=("This workflow file is deleted.",))


def run(options: argparse.Namespace, environment: dict[str, str]) -> int:
    """Plan, annotate, comment; the exit code."""
    patterns = tuple(_split(options.pattern)) or DEFAULT_PATTERNS
    repository = Repository(Path.cwd())
    try:
        commits = repository.commits(options.base)
        changed = repository.changed_files(commits, patterns)
    except GitError as exc:
        print(f"::error title=wfx plan::{_escape(str(exc))}")
        return 1
    found = [findings_for(path, change, commits.base) for path, change in changed]
    reports = [f.report for f in found]
    declared = [*TOKEN_VARIABLES, *(name for f in found for name in f.secret_names)]
    secret_values = [environment[name] for name in declared if environment.get(name)]
    diagnostics = [d for f in found for d in f.diagnostics]
    if diagnostics:
        print(redact(as_github(diagnostics), secret_values))
    comparison = Comparison(options.base, commits.base, commits.head, patterns, __version__)
    body = redact(compose(reports, comparison), secret_values)
    _show_in_log(body)
    _append(environment.get("GITHUB_STEP_SUMMARY"), body)
    posted = _post(options, body, bool(reports))
    invalid = any(r.errors for r in reports)
    _append(environment.get("GITHUB_OUTPUT"), f"invalid={str(invalid).lower()}\n")
    if posted is False:
        return 1
    return 2 if invalid and options.fail_on_invalid else 0


def _post(options: argparse.Namespace, body: str, touched: bool) -> bool | None:
    """Post `body` (None: not asked to); False when it failed, saying why."""
    if not options.comment or not options.pull_request:
        return None
    try:
        pull_request = PullRequest(
            options.repository, int(options.pull_request), author=options.comment_author
        )
        if not touched and pull_request.find_comment(MARKER) is None:
            print("wfx: no workflow file changed; no comment to update")
            return None
        posted = pull_request.post(body, MARKER)
    except (GitHubError, ValueError) as exc:
        print(f"::error title=wfx plan comment::{_escape(str(exc))}")
        return False
    print(f"wfx: comment {posted.action}: {posted.url or posted.id}")
    return True


def _show_in_log(body: str) -> None:
    """The comment in the job's log, where no line of it is taken as a workflow command."""
    token = secrets.token_hex(16)
    print("::group::wfx plan comment")
    print(f"::stop-commands::{token}")
    print(body)
    print(f"::{token}::")
    print("::endgroup::")


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _split(values: Sequence[str]) -> list[str]:
    """Patterns given one per option, or several in one (separated by blanks or lines)."""
    return [pattern for value in values for pattern in value.split()]


def _pull_request_from_event(environment: dict[str, str]) -> str:
    """The pull request's number in the event that started the job, if any."""
    event_path = environment.get("GITHUB_EVENT_PATH")
    if not event_path:
        return ""
    try:
        with open(event_path, encoding="utf-8") as handle:
            event = json.load(handle)
    except (OSError, ValueError):
        return ""
    number = (event.get("pull_request") or {}).get("number")
    return str(number) if number else ""


def parser(environment: dict[str, str]) -> argparse.ArgumentParser:
    """The command line of `python -m wfx.ci.pr_comment`."""
    found = argparse.ArgumentParser(prog="python -m wfx.ci.pr_comment", description=__doc__)
    found.add_argument("--base", required=True, help="the revision the pull request merges into")
    found.add_argument(
        "--pattern",
        action="append",
        default=[],
        help="git glob of workflow files (repeatable, or several separated by blanks);"
        f" default: {' '.join(DEFAULT_PATTERNS)}",
    )
    found.add_argument(
        "--repository",
        default=environment.get("GITHUB_REPOSITORY", ""),
        help="OWNER/NAME (default: $GITHUB_REPOSITORY)",
    )
    found.add_argument(
        "--pull-request",
        default=_pull_request_from_event(environment),
        help="its number (default: the job's pull_request event); empty: comment nowhere",
    )
    found.add_argument(
        "--comment-author",
        default="",
        metavar="LOGIN",
        help="the login the comment is posted as, when not a bot (a personal token);"
        " default: any bot's comment is ours, nobody else's",
    )
    found.add_argument(
        "--comment",
        type=_boolean,
        default=True,
        metavar="true|false",
        help="post the comment (default: true); false: plan and annotate only",
    )
    found.add_argument(
        "--fail-on-invalid",
        type=_boolean,
        default=True,
        metavar="true|false",
        help="exit 2 when a touched workflow file is invalid (default: true)",
    )
    return found


def _boolean(text: str) -> bool:
    if text.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if text.strip().lower() in ("false", "no", "0", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"`{text}` is not true or false")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse the command line, run, return the exit code."""
    environment = dict(os.environ)
    options = parser(environment).parse_args(argv)
    return run(options, environment)


if __name__ == "__main__":
    sys.exit(main())
