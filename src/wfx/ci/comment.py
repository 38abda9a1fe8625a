"""The pull-request comment: what each workflow file the pull request touches will do.

Pure: reports in, Markdown out. The comment starts with a hidden marker, by which the
next run finds it to update it; it never grows past what GitHub accepts: the full
plans go first, then the largest blocks, then whole files, each replaced by a note.
Everything from a workflow reaches the page through the plan renderers' doors
(escaped prose, code spans, fenced blocks), so no file can add structure to it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wfx.render.plan_markdown import code, fenced, prose

#: the hidden first line by which the comment is found again
MARKER = "<!-- wfx-plan -->"
#: the longest comment body GitHub accepts, in characters
MAX_CHARS = 65_536
#: a secret (or a form of it) this short is not masked, as wfx's own masking does
_SHORTEST_MASKED = 4


class Change(enum.Enum):
    """What the pull request did to a workflow file."""

    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


@dataclass(frozen=True)
class FileReport:
    """What wfx found for one workflow file the pull request touches."""

    path: str
    change: Change
    errors: int = 0
    warnings: int = 0
    diagnostics: str = ""
    """`wfx validate`'s text for the file (empty when it had nothing to say)."""
    diff: str | None = None
    """The plan diff against the base as Markdown (None when there is none to show)."""
    changes: int | None = None
    plan: str | None = None
    """The plan of the file as the pull request leaves it, as Markdown."""
    steps: tuple[str, ...] = ()
    """The file's step ids (a deleted file: those it had at the base)."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Plain sentences for the reader (escaped when shown)."""


@dataclass(frozen=True)
class Comparison:
    """Which two commits the comment compares, and what it looked at."""

    base: str
    base_commit: str
    head_commit: str
    patterns: tuple[str, ...]
    version: str


def compose(reports: Sequence[FileReport], comparison: Comparison, limit: int = MAX_CHARS) -> str:
    """The whole comment, at most `limit` characters (GitHub counts UTF-16 code units)."""
    header = _header(reports, comparison)
    footer = _footer(reports, comparison)
    sections = [_Section.of(report) for report in reports]
    return _fit(header, sections, footer, limit)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value written as `***`, also where Markdown prose shows
    it escaped (longest first)."""
    forms: dict[str, str] = {}
    for secret in (s for s in secrets if len(s) >= _SHORTEST_MASKED):
        forms[secret] = "***"
        forms.setdefault(prose(secret), prose("***"))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, forms[form])
    return text


def size(text: str) -> int:
    """The length GitHub measures: UTF-16 code units (an emoji counts two)."""
    return len(text.encode("utf-16-le")) // 2


def _header(reports: Sequence[FileReport], comparison: Comparison) -> list[str]:
    against = f"{code(comparison.base)} ({code(comparison.base_commit[:12])})"
    if comparison.base.startswith(comparison.base_commit[:12]):
        against = code(comparison.base_commit[:12])
    head = code(comparison.head_commit[:12])
    lines = [MARKER]
    if not reports:
        matching = ", ".join(code(p) for p in comparison.patterns)
        lines += [
            f"**wfx plan**: this pull request ({head}) changes no workflow file"
            f" (matching {matching}) against {against}.",
        ]
        return lines
    files = "1 workflow file" if len(reports) == 1 else f"{len(reports)} workflow files"
    lines += [
        f"**wfx plan** of this pull request ({head}) against {against}: {files} changed.",
        "",
        "| file | change | plan |",
        "|---|---|---|",
    ]
    lines += [f"| {code(r.path)} | {r.change.value} | {_verdict(r)} |" for r in reports]
    return lines


def _verdict(report: FileReport) -> str:
    """One table cell: the worst thing about the file, or what its plan does."""
    problems = []
    if report.errors:
        problems.append(f"❌ {_count(report.errors, 'error')}")
    if report.warnings:
        problems.append(f"⚠️ {_count(report.warnings, 'warning')}")
    if report.errors or report.change is Change.DELETED:
        if report.change is Change.DELETED:
            problems.append(f"➖ {_count(len(report.steps), 'step')} removed")
        return ", ".join(problems)
    if report.change is Change.ADDED:
        problems.append(f"➕ {_count(len(report.steps), 'step')}")
    elif report.changes == 0:
        problems.append("no change to the plan")
    elif report.changes is not None:
        problems.append(f"✏️ {_count(report.changes, 'change')}")
    elif report.plan is None:
        problems.append("no plan")
    return ", ".join(problems) or "✅"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _footer(reports: Sequence[FileReport], comparison: Comparison) -> list[str]:
    if not reports:
        return ["", f"<sub>wfx {prose(comparison.version)}</sub>"]
    again = f"wfx plan FILE --diff git:{comparison.base_commit[:12]} --format markdown"
    return ["", f"<sub>wfx {prose(comparison.version)} · the same locally: {code(again)}</sub>"]


@dataclass
class _Section:
    """One file's part of the comment: blocks that must be there, and its full plan."""

    path: str
    blocks: list[str]
    plan: str | None

    @classmethod
    def of(cls, report: FileReport) -> _Section:
        title = f"## {code(report.path)} · {report.change.value}"
        blocks = [title]
        blocks += [prose(note) for note in report.notes]
        if report.change is Change.DELETED and report.steps:
            listed = ", ".join(code(s) for s in report.steps)
            blocks.append(f"Its steps no longer run: {listed}")
        if report.diagnostics:
            blocks.append("\n".join(fenced(report.diagnostics.rstrip("\n"), "text")))
        if report.diff is not None:
            blocks.append(report.diff.rstrip("\n"))
        plan = None
        if report.plan is not None:
            summary = "The plan" if report.change is Change.ADDED else "The plan after this change"
            plan = "\n".join(
                [
                    f"<details><summary>{summary}</summary>",
                    "",
                    report.plan.rstrip("\n"),
                    "",
                    "</details>",
                ]
            )
        return cls(report.path, blocks, plan)

    def text(self) -> str:
        parts = [*self.blocks, *([self.plan] if self.plan else [])]
        return "\n\n".join(parts)


_PLAN_LEFT_OUT = (
    "<sub>The whole plan is left out: the comment would be longer than GitHub allows."
    " Run the command below to see it.</sub>"
)


def _fit(header: list[str], sections: list[_Section], footer: list[str], limit: int) -> str:
    """Everything, if it fits; else the full plans, then the largest blocks, then whole
    files from the end, each replaced by a note saying so."""
    shown = list(sections)

    def body() -> str:
        parts = ["\n".join(header), *(s.text() for s in shown)]
        if len(shown) < len(sections):
            parts.append(_files_left_out(len(sections) - len(shown)))
        return "\n\n".join(parts) + "\n" + "\n".join(footer) + "\n"

    for section in reversed(sections):
        if size(body()) <= limit:
            return body()
        if section.plan is not None:
            section.plan = _PLAN_LEFT_OUT
    blocks = [(s, i) for s in sections for i in range(1, len(s.blocks))]
    blocks.sort(key=lambda item: -size(item[0].blocks[item[1]]))
    for section, index in blocks:
        if size(body()) <= limit:
            return body()
        section.blocks[index] = (
            f"<sub>{size(section.blocks[index]):,} characters left out here: the comment"
            " would be longer than GitHub allows.</sub>"
        )
    while shown and size(body()) > limit:
        shown.pop()
    if size(body()) <= limit:
        return body()
    note = "The list of files is too long for a comment: the job's log has every file."
    return f"{MARKER}\n\n**wfx plan**: {note}\n"


def _files_left_out(number: int) -> str:
    return (
        f"<sub>{_count(number, 'more file')} left out: the comment would be longer than"
        " GitHub allows; the job's log has every file.</sub>"
    )
