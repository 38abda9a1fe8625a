"""The comment stays within GitHub's 65,536 characters, cut cleanly: whole parts are
replaced by notes saying so, and what is left is well-formed Markdown."""

from __future__ import annotations

from markdown_it import MarkdownIt

from wfx.ci.comment import (
    MARKER,
    MAX_CHARS,
    Change,
    Comparison,
    FileReport,
    compose,
    redact,
    size,
)

MARKDOWN = MarkdownIt("commonmark").enable("table")
COMPARISON = Comparison("main", "a" * 40, "b" * 40, ("**/*.wfx.yaml",), "0.1.0")
FOOTER = "the same locally"


def well_formed(body: str) -> None:
    """Within the limit; starts with the marker; ends with the footer outside any block
    (an unclosed fence would swallow it)."""
    assert size(body) <= MAX_CHARS
    tokens = MARKDOWN.parse(body)
    assert tokens[0].type == "html_block" and tokens[0].content.startswith(MARKER)
    last = [t for t in tokens if t.type == "inline"][-1]
    assert last.content.startswith("<sub>wfx 0\\.1\\.0")


def big_plan(lines: int) -> str:
    """A plan in Markdown, as long as asked: a table and a script."""
    rows = [f"| {i} | `step-{i}` | run |" for i in range(lines)]
    return "\n".join(["### wfx plan: big", "", "| stage | step | kind |", "|---|---|---|", *rows])


def test_a_comment_that_fits_is_whole() -> None:
    report = FileReport("a.wfx.yaml", Change.ADDED, plan=big_plan(3), steps=("s",))
    body = compose([report], COMPARISON)
    well_formed(body)
    assert "`step-2`" in body
    assert "left out" not in body


def test_a_huge_plan_is_left_out_first_and_the_diff_kept() -> None:
    report = FileReport(
        "a.wfx.yaml",
        Change.MODIFIED,
        diff="### wfx plan diff\n\n| | what | before | after |\n|---|---|---|---|\n"
        "| ✏️ | t | 1 | 2 |",
        changes=1,
        plan=big_plan(5_000),
    )
    body = compose([report], COMPARISON)
    well_formed(body)
    assert "`step-1`" not in body
    assert "The whole plan is left out" in body
    assert "### wfx plan diff" in body


def test_a_huge_block_is_replaced_by_a_note_and_the_other_files_stay() -> None:
    diagnostics = "\n".join(f"x.wfx.yaml:{i}:1: error: bad" for i in range(10_000))
    reports = [
        FileReport("x.wfx.yaml", Change.MODIFIED, errors=10_000, diagnostics=diagnostics),
        FileReport("y.wfx.yaml", Change.MODIFIED, changes=0, diff="No changes to the plan."),
    ]
    body = compose(reports, COMPARISON)
    well_formed(body)
    assert "characters left out here" in body
    assert "No changes to the plan." in body
    tokens = MARKDOWN.parse(body)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["`x.wfx.yaml` · modified", "`y.wfx.yaml` · modified"]


def test_too_many_files_leave_out_whole_files_then_rows_saying_how_many() -> None:
    reports = [
        FileReport(f"dir/{i:05}.wfx.yaml", Change.DELETED, steps=("a", "b")) for i in range(1_600)
    ]
    body = compose(reports, COMPARISON)
    well_formed(body)
    tokens = MARKDOWN.parse(body)
    cells = [t.content for t in tokens if t.type == "inline"]
    assert any(c.endswith("more files") for c in cells)
    assert any("more files left out" in c for c in cells)
    assert size(body) > MAX_CHARS - 500  # nothing is left out that would have fitted


def test_a_small_limit_is_kept_exactly() -> None:
    reports = [
        FileReport(f"{i}.wfx.yaml", Change.ADDED, plan=big_plan(40), steps=("s",)) for i in range(5)
    ]
    for limit in (600, 1_000, 3_000, 9_000):
        body = compose(reports, COMPARISON, limit)
        assert size(body) <= limit
        assert body.startswith(MARKER)


def test_emoji_count_twice_as_github_counts_them() -> None:
    assert size("➕") == 1
    assert size("✏️") == 2
    assert size("😀") == 2


def test_redaction_covers_the_escaped_forms_and_skips_tiny_values() -> None:
    text = "raw s3-cr3t, prose s3\\-cr3t, short ab"
    assert redact(text, ["s3-cr3t", "ab", ""]) == "raw ***, prose \\*\\*\\*, short ab"
