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
    intro = _intro(reports, comparison)
    rows = [f"| {_cell(code(r.path))} | {r.change.value} | {_verdict(r)} |" for r in reports]
    sections = [_Section.of(report) for report in reports]
    return _fit(_Layout(intro, rows, sections, _footer(reports, comparison)), limit)


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


def _intro(reports: Sequence[FileReport], comparison: Comparison) -> str:
    """The marker, what is compared, and the head of the table of files."""
    against = f"{code(comparison.base)} ({code(comparison.base_commit[:12])})"
    if comparison.base.startswith(comparison.base_commit[:12]):
        against = code(comparison.base_commit[:12])
    head = code(comparison.head_commit[:12])
    if not reports:
        matching = ", ".join(code(p) for p in comparison.patterns)
        return (
            f"{MARKER}\n**wfx plan**: this pull request ({head}) changes no workflow file"
            f" (matching {matching}) against {against}."
        )
    files = "1 workflow file" if len(reports) == 1 else f"{len(reports)} workflow files"
    lines = [
        MARKER,
        f"**wfx plan** of this pull request ({head}) against {against}: {files} changed.",
        "",
        "| file | change | plan |",
        "|---|---|---|",
    ]
    return "\n".join(lines)


def _cell(markdown: str) -> str:
    """`markdown` inside a table cell: a `|` (even in a code span) would end the cell."""
    return markdown.replace("|", "\\|")


def _verdict(report: FileReport) -> str:
    """One table cell: the worst thing about the file, or what its plan does."""
    if report.change is Change.DELETED:
        removed = f"{_count(len(report.steps), 'step')} removed" if report.steps else "removed"
        return f"➖ {removed}"
    found = []
    if report.errors:
        found.append(f"❌ {_count(report.errors, 'error')}")
    if report.warnings:
        found.append(f"⚠️ {_count(report.warnings, 'warning')}")
    if report.errors:
        return ", ".join(found)
    if report.change is Change.ADDED and report.plan is not None:
        found.append(f"➕ {_count(len(report.steps), 'step')}")
    elif report.changes == 0:
        found.append("no change to the plan")
    elif report.changes is not None:
        found.append(f"✏️ {_count(report.changes, 'change')}")
    elif report.plan is None:
        found.append("no plan")
    else:
        found.append("no diff")
    return ", ".join(found)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _footer(reports: Sequence[FileReport], comparison: Comparison) -> str:
    if not reports:
        return f"<sub>wfx {prose(comparison.version)}</sub>"
    again = f"wfx plan FILE --diff git:{comparison.base_commit[:12]} --format markdown"
    return f"<sub>wfx {prose(comparison.version)} · the same locally: {code(again)}</sub>"


@dataclass
class _Section:
    """One file's part of the comment: blocks that must be there, and its full plan."""

    blocks: list[str]
    plan: str | None

    @classmethod
    def of(cls, report: FileReport) -> _Section:
        """The title, the notes, the diagnostics, the diff; the plan, collapsed."""
        blocks = [f"## {code(report.path)} · {report.change.value}"]
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
            shown = [f"<details><summary>{summary}</summary>", "", report.plan.rstrip("\n")]
            plan = "\n".join([*shown, "", "</details>"])
        return cls(blocks, plan)

    def text(self) -> str:
        """The section's Markdown."""
        return "\n\n".join([*self.blocks, *([self.plan] if self.plan else [])])


_PLAN_LEFT_OUT = (
    "<sub>The whole plan is left out: the comment would be longer than GitHub allows."
    " Run the command below to see it.</sub>"
)
_TOO_MANY = "too many files to list in a comment; the job's log has them."


def _fit(layout: _Layout, limit: int) -> str:
    """Everything, if it fits; else the full plans, then the largest blocks, then whole
    files from the end, then rows of the table, each replaced by a note saying so."""
    sections = layout.sections
    for index in reversed(range(len(sections))):
        if layout.size() <= limit:
            return layout.text()
        if sections[index].plan is not None:
            layout.leave_out_plan(index)
    blocks = [(i, b) for i, s in enumerate(sections) for b in range(1, len(s.blocks))]
    blocks.sort(key=lambda item: -size(sections[item[0]].blocks[item[1]]))
    for index, block in blocks:
        if layout.size() <= limit:
            return layout.text()
        layout.leave_out_block(index, block)
    while layout.shown and layout.size() > limit:
        layout.drop_file()
    while layout.rows_shown and layout.size() > limit:
        layout.drop_row()
    if layout.size() <= limit:
        return layout.text()
    return f"{MARKER}\n\n**wfx plan**: {_TOO_MANY}\n"


class _Layout:
    """The comment as parts whose sizes are kept (and summed as they change), so that
    fitting a comment of thousands of files stays linear."""

    def __init__(self, intro: str, rows: list[str], sections: list[_Section], footer: str):
        self.intro, self.rows, self.sections, self.footer = intro, rows, sections, footer
        self.row_sizes = [size(row) + 1 for row in rows]
        self.section_sizes = [size(section.text()) + 2 for section in sections]
        self.shown = len(sections)
        self.rows_shown = len(rows)
        self.fixed = size(intro) + 2 + size(footer) + 1
        self.rows_total = sum(self.row_sizes)
        self.sections_total = sum(self.section_sizes)

    def leave_out_plan(self, index: int) -> None:
        """A note instead of the full plan of the `index`th file."""
        self.sections[index].plan = _PLAN_LEFT_OUT
        self._measure(index)

    def leave_out_block(self, index: int, block: int) -> None:
        """A note instead of a block of the `index`th file."""
        blocks = self.sections[index].blocks
        blocks[block] = (
            f"<sub>{size(blocks[block]):,} characters left out here: the comment would be"
            " longer than GitHub allows.</sub>"
        )
        self._measure(index)

    def drop_file(self) -> None:
        """Leave out the last file shown."""
        self.shown -= 1
        self.sections_total -= self.section_sizes[self.shown]

    def drop_row(self) -> None:
        """Leave out the last row of the table shown."""
        self.rows_shown -= 1
        self.rows_total -= self.row_sizes[self.rows_shown]

    def _measure(self, index: int) -> None:
        new = size(self.sections[index].text()) + 2
        self.sections_total += new - self.section_sizes[index]
        self.section_sizes[index] = new

    def _notes(self) -> tuple[str, str]:
        """What the table and the sections say of what they leave out (empty: nothing)."""
        rows_left_out = len(self.rows) - self.rows_shown
        files_left_out = len(self.sections) - self.shown
        row_note = f"| … | | {_count(rows_left_out, 'more file')} |" if rows_left_out else ""
        file_note = ""
        if files_left_out:
            file_note = (
                f"<sub>{_count(files_left_out, 'more file')} left out: the comment would be"
                " longer than GitHub allows; the job's log has every file.</sub>"
            )
        return row_note, file_note

    def size(self) -> int:
        """The size of `text()`, from the parts' sizes."""
        row_note, file_note = self._notes()
        total = self.fixed + self.rows_total + self.sections_total
        total += size(row_note) + 1 if row_note else 0
        return total + (size(file_note) + 2 if file_note else 0)

    def text(self) -> str:
        """The comment as laid out now."""
        row_note, file_note = self._notes()
        header = "\n".join([self.intro, *self.rows[: self.rows_shown], *filter(None, [row_note])])
        parts = [header, *(s.text() for s in self.sections[: self.shown])]
        parts += [file_note] if file_note else []
        return "\n\n".join(parts) + "\n\n" + self.footer + "\n"
