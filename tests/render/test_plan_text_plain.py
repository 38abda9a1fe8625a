"""`wfx plan` off a terminal lays the text plan out without rich (wfx.render.plan_plain):
it must print the very bytes rich prints there, or hand the plan to rich.

Every comparison is against rich itself, laying out the same document: the examples at
the command line's width, and documents and plans made up to be awkward (wide and
invisible characters, tabs, lines and tables at and over the width) at any width.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from wfx import api, model, schema, source
from wfx.cli import print_plan_text
from wfx.compiler import compile_workflow
from wfx.plan import Plan, make_plan
from wfx.render import plan_plain
from wfx.render.console import plain_width
from wfx.render.plan_document import Block, Cell, Grid, Listing, Paragraph, Span, plan_document
from wfx.render.plan_plain import render_plain
from wfx.render.plan_text import render_blocks, render_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: what makes rich decide on colour or width by itself
RICH_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "NO_COLOR")


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """os.environ with rich's variables unset, then `values` set (None: unset)."""
    saved = dict(os.environ)
    try:
        for name in RICH_VARIABLES:
            os.environ.pop(name, None)
        for name, given_value in values.items():
            if given_value is not None:
                os.environ[name] = given_value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def stdout_to(stream: io.StringIO) -> Iterator[io.StringIO]:
    saved, sys.stdout = sys.stdout, stream
    try:
        yield stream
    finally:
        sys.stdout = saved


def rich_plan_output(the_plan: Plan, verbose: bool) -> str:
    """What `wfx plan` printed before the plain layout: rich, as the CLI set it up."""
    with stdout_to(io.StringIO()) as out:
        console = Console(highlight=False, soft_wrap=False)
        if not console.is_terminal:
            console.width = max(console.width, 120)
        console.print(render_text(the_plan, verbose=verbose))
    return out.getvalue()


def dispatched(the_plan: Plan, verbose: bool) -> str:
    """What `wfx plan` prints now (the plain layout when it can, else rich)."""
    with stdout_to(io.StringIO()) as out:
        print_plan_text(the_plan, verbose)
    return out.getvalue()


def rich_prints(blocks: tuple[Block, ...], width: int) -> str:
    """rich's layout of `blocks` on a console that is no terminal, `width` wide."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, highlight=False)
    console.print(render_blocks(blocks))
    return out.getvalue()


def example_plan(path: Path) -> Plan:
    return api.plan_file(path)[1]


# -- the examples ------------------------------------------------------------------------


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_prints_what_rich_prints(example: Path, verbose: bool) -> None:
    the_plan = example_plan(example)
    with environment():
        expected = rich_plan_output(the_plan, verbose)
        assert dispatched(the_plan, verbose) == expected
        width = plain_width(io.StringIO())
    assert width is not None
    shown = render_plain(plan_document(the_plan, verbose=verbose), max(width, 120))
    assert shown is None or shown == expected


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_the_plain_layout_is_taken_for_most_examples(verbose: bool) -> None:
    """Else the speed is a promise the examples do not keep: at least 4 in 5 of them."""
    taken = [
        example.name
        for example in EXAMPLES
        if render_plain(plan_document(example_plan(example), verbose=verbose), 120) is not None
    ]
    assert len(taken) * 5 >= len(EXAMPLES) * 4, taken
    assert {"etl-pipeline.yaml", "blue-green.yaml", "multi-region-release.yaml"} <= set(taken)


@pytest.mark.parametrize("columns", ["80", "120", "133", "250"])
def test_the_width_is_rich_s_at_any_columns(columns: str) -> None:
    the_plan = example_plan(ROOT / "examples" / "release-with-reusable-deploy.yaml")
    with environment(COLUMNS=columns):
        assert dispatched(the_plan, True) == rich_plan_output(the_plan, True)


# -- rich is not imported ----------------------------------------------------------------

WRAPPER = """
import sys
from wfx.cli import main
try:
    main()
finally:
    rich = sorted(m for m in sys.modules if m.split(".")[0] == "rich")
    sys.stderr.write("\\nRICH " + str(rich[:1]))
"""


def piped_plan(path: Path, **variables: str) -> tuple[str, str]:
    """`wfx plan PATH | cat`: stdout a pipe; the first rich module imported, if any."""
    env = {k: v for k, v in os.environ.items() if k not in RICH_VARIABLES}
    completed = subprocess.run(
        [sys.executable, "-c", WRAPPER, "plan", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **variables},
    )
    match = re.search(r"^RICH (.*)$", completed.stderr, re.M)
    assert match, completed.stderr
    return completed.stdout, match.group(1)


def test_a_piped_plan_does_not_import_rich() -> None:
    example = ROOT / "examples" / "etl-pipeline.yaml"
    out, rich_modules = piped_plan(example)
    assert rich_modules == "[]"
    with environment():
        assert out == rich_plan_output(example_plan(example), False)


def test_the_wfx_command_into_a_pipe_does_not_import_rich() -> None:
    """The installed `wfx` itself, as a reviewer runs `wfx plan FILE | less`."""
    wfx = Path(sys.executable).parent / "wfx"
    env = {k: v for k, v in os.environ.items() if k not in RICH_VARIABLES}
    completed = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(wfx),
            "plan",
            str(ROOT / "examples" / "etl-pipeline.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines()]
    assert "wfx.render.plan_plain" in imported
    assert not [name for name in imported if name.split(".")[0] == "rich"]
    assert completed.stdout.startswith("Plan for ")


def test_the_harness_does_see_rich_imported() -> None:
    """A terminal (as rich is told by TTY_COMPATIBLE) still gets rich, colours and all."""
    out, rich_modules = piped_plan(ROOT / "examples" / "etl-pipeline.yaml", TTY_COMPATIBLE="1")
    assert rich_modules != "[]"
    assert "\x1b[" in out


# -- when rich decides, the plain layout keeps out -----------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Latin1(io.StringIO):
    encoding = "latin-1"


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"FORCE_COLOR": ""},
        {"FORCE_COLOR": "1"},
        {"FORCE_COLOR": "0"},
        {"TTY_COMPATIBLE": "0"},
        {"TTY_COMPATIBLE": "1"},
        {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"},
        {"TTY_COMPATIBLE": "2", "FORCE_COLOR": "1"},
        {"TTY_INTERACTIVE": "1"},
        {"NO_COLOR": "1"},
        {"COLUMNS": "150"},
        {"COLUMNS": "0"},
        {"COLUMNS": "wide"},
        {"COLUMNS": "-5"},
        {"TERM": "dumb"},
    ],
    ids=repr,
)
@pytest.mark.parametrize("stream_type", [io.StringIO, Terminal, Latin1])
def test_plain_width_is_rich_s_own_decision(
    variables: dict[str, str], stream_type: type[io.StringIO]
) -> None:
    stream = stream_type()
    with environment(**variables):
        width = plain_width(stream)
        console = Console(file=stream, highlight=False, soft_wrap=False)
        rich_plain = not console.is_terminal and console.encoding.startswith("utf")
        assert console.color_system is None or width is None
        if rich_plain:
            assert width == console.width
        else:
            assert width is None


def test_columns_rich_cannot_read_are_left_to_rich() -> None:
    with environment(COLUMNS="²"):
        assert plain_width(io.StringIO()) is None


def test_the_characters_taken_as_one_cell_are_one_cell_to_rich() -> None:
    for character in plan_plain._ONE_CELL:
        assert cell_len(character) == 1, character
        assert character == " " or not re.fullmatch(r"\s", character)


def test_a_broken_layout_is_caught() -> None:
    """The comparison catches one space too many (or the differential tests prove nothing)."""
    blocks = plan_document(example_plan(ROOT / "examples" / "etl-pipeline.yaml"))
    good = render_plain(blocks, 120)
    assert good == rich_prints(blocks, 120)
    assert good is not None
    assert good.replace("│ ", "│  ", 1) != rich_prints(blocks, 120)


# -- made-up documents ---------------------------------------------------------------------

#: text the plan may hold: plain words, wide and combining characters, emoji, tabs,
#: markup and emoji codes, the symbols the plan draws, invisible characters
AWKWARD = st.sampled_from(
    [
        "a",
        "word",
        " ",
        "  ",
        "-",
        "[bold]x[/bold]",
        ":smile:",
        "→",
        "└",
        "×",
        "漢字",
        "é",
        "e\u0301",
        "😀",
        "👩‍💻",
        "\t",
        "\u200b",
        "\x1b[2K",
        "\xa0",
        "x" * 30,
        "y" * 119,
        "z" * 121,
    ]
)
TEXT = st.lists(AWKWARD, max_size=12).map("".join)
#: mostly plain words, so the plain layout is tried as well as refused
SIMPLE = st.lists(st.sampled_from(["a", "word", " ", "-", "→", "x" * 30]), max_size=10).map("".join)
SOME_TEXT = st.one_of(SIMPLE, TEXT)
STYLES = st.sampled_from(["", "bold", "dim", "italic", "red"])

paragraphs = st.builds(
    Paragraph,
    st.lists(st.builds(Span, st.one_of(SOME_TEXT, st.just("\n")), STYLES), max_size=8).map(tuple),
    STYLES,
    st.booleans(),
)
listings = st.builds(
    Listing, st.integers(2, 8), st.lists(SOME_TEXT, min_size=1, max_size=4).map(tuple)
)


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    columns = tuple(draw(st.lists(SIMPLE.filter(bool), min_size=1, max_size=9)))
    cell = st.builds(Cell, SOME_TEXT, STYLES, st.booleans())
    rows = draw(
        st.lists(
            st.lists(cell, min_size=len(columns), max_size=len(columns)).map(tuple), max_size=4
        )
    )
    no_wrap = tuple(draw(st.lists(st.sampled_from(columns), max_size=2)))
    return Grid(draw(st.sampled_from(["Stages", "Finally"])), columns, no_wrap, tuple(rows))


documents = st.lists(st.one_of(paragraphs, listings, grids()), min_size=1, max_size=5).map(tuple)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(documents, st.integers(20, 200))
def test_made_up_documents_print_what_rich_prints(blocks: tuple[Block, ...], width: int) -> None:
    shown = render_plain(blocks, width)
    assert shown is None or shown == rich_prints(blocks, width)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text("ab →", max_size=60), min_size=1, max_size=3), st.integers(1, 30))
def test_lines_wrap_where_rich_wraps_them(lines: list[str], width: int) -> None:
    """Short words and runs of spaces at every width: the break, and the spaces kept or
    dropped at it, are rich's."""
    blocks: tuple[Block, ...] = (Paragraph((Span("\n".join(lines)),)),)
    shown = render_plain(blocks, width)
    assert shown is None or shown == rich_prints(blocks, width)


SHORT_WORDS = st.lists(st.sampled_from(["a", "bb", "word", "longer", " ", "  "]), max_size=14).map(
    "".join
)


@st.composite
def wrapping_grids(draw: st.DrawFn) -> Grid:
    """Tables of many columns of short words, often wider than the width: rich narrows
    the widest columns and wraps their text."""
    count = draw(st.integers(1, 10))
    columns = tuple(f"c{index}" for index in range(count))
    cell = st.builds(Cell, SHORT_WORDS)
    row = st.lists(cell, min_size=count, max_size=count).map(tuple)
    rows = draw(st.lists(row, min_size=1, max_size=4))
    no_wrap = tuple(draw(st.lists(st.sampled_from(columns), max_size=3)))
    return Grid("Stages", columns, no_wrap, tuple(rows))


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(wrapping_grids(), st.integers(10, 90))
def test_narrowed_tables_are_rich_s(grid: Grid, width: int) -> None:
    shown = render_plain((grid,), width)
    assert shown is None or shown == rich_prints((grid,), width)


def test_narrowed_tables_do_take_the_plain_layout() -> None:
    """A table wider than the line, laid out without rich: two columns narrowed, their
    text wrapped, the header's short cells filled above, the rows' below."""
    words = "alpha beta gamma delta epsilon " * 3
    grid = Grid(
        "Stages",
        ("n", "condition", "retries", "x"),
        ("n",),
        ((Cell("1", words=True), Cell(words), Cell(words[:40]), Cell("")),),
    )
    shown = render_plain((grid,), 60)
    assert shown is not None
    assert shown == rich_prints((grid,), 60)
    assert len(shown.splitlines()) > 6


@pytest.mark.parametrize("excess", range(1, 13))
@pytest.mark.parametrize("tied", [2, 3, 4])
def test_tied_widest_columns_share_the_excess_as_rich_does(tied: int, excess: int) -> None:
    """Equal widest columns each lose a rounded share (2.5 rounds to 2, 4/3 to 1)."""
    text = "ab cd ef gh ij kl mn"
    grid = Grid("Stages", tuple(f"c{i}" for i in range(tied)), (), ((*[Cell(text)] * tied,),))
    natural = tied * (len(text) + 3) + 1
    shown = render_plain((grid,), natural - excess)
    assert shown is not None
    assert shown == rich_prints((grid,), natural - excess)


def test_columns_wider_than_the_line_are_first_cut_to_it() -> None:
    """rich measures no column wider than the room it has before narrowing any."""
    for first in range(40, 75):
        for second in (41, 44, 57, 70):
            grid = Grid(
                "Stages",
                ("a", "b", "c"),
                ("a",),
                ((Cell("1"), Cell(("ab " * 40)[:first]), Cell(("cd " * 40)[:second])),),
            )
            shown = render_plain((grid,), 40)
            assert shown is not None
            assert shown == rich_prints((grid,), 40), (first, second)


def test_a_cell_too_long_for_a_column_that_does_not_wrap_is_left_to_rich() -> None:
    """rich crops it with an ellipsis (found by test_narrowed_tables_are_rich_s)."""
    grid = Grid("Stages", ("c0",), ("c0",), ((Cell("aaaaaaabbwordlonger "),),))
    assert render_plain((grid,), 23) is None
    assert "…" in rich_prints((grid,), 23)


def test_a_wrapped_header_is_filled_above() -> None:
    """Header cells line up at the bottom, body cells at the top."""
    grid = Grid(
        "Stages",
        ("n", "when it runs and why", "tries"),
        ("n",),
        ((Cell("1"), Cell("always"), Cell("0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15")),),
    )
    shown = render_plain((grid,), 30)
    assert shown is not None
    assert shown == rich_prints((grid,), 30)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(2, 6),
    st.lists(st.text("ab →", max_size=50), min_size=1, max_size=3),
    st.integers(4, 40),
)
def test_listings_fold_where_rich_folds_them(indent: int, lines: list[str], width: int) -> None:
    """Script lines wider than the line: the rule on every folded line, the folds rich's."""
    blocks: tuple[Block, ...] = (Listing(indent, tuple(lines)),)
    shown = render_plain(blocks, width)
    assert shown is None or shown == rich_prints(blocks, width)


def test_folded_lines_do_take_the_plain_layout() -> None:
    long_word = "https://example.com/" + "x" * 150
    blocks: tuple[Block, ...] = (
        Listing(2, (f"curl {long_word}  -o out", "", "echo " + "word " * 40)),
        Listing(4, ("short",)),
        Paragraph((Span(f"see {long_word}   and more\n"),)),
    )
    shown = render_plain(blocks, 120)
    assert shown is not None
    assert shown == rich_prints(blocks, 120)
    assert all(line.startswith((" │ ", "   │ ")) for line in shown.splitlines()[:6])


@pytest.mark.parametrize("words", ["[bold]x[/bold]", ":smile: twice:", "a\nb"])
def test_rich_s_markup_in_wfx_s_own_words_is_left_to_rich(words: str) -> None:
    for grid in (
        Grid(words, ("a",), (), ((Cell("x"),),)),
        Grid("Stages", (words,), (), ((Cell("x"),),)),
        Grid("Stages", ("a",), (), ((Cell(words, words=True),),)),
    ):
        assert render_plain((grid,), 80) is None


def test_made_up_documents_do_take_the_plain_layout() -> None:
    """The property above is not vacuous: plain documents are laid out without rich."""
    blocks: tuple[Block, ...] = (
        Paragraph((Span("critical path: " + " → ".join(["step"] * 40) + "  \n"),)),
        Grid("Stages", ("a", "b"), ("a",), ((Cell("1", words=True), Cell("x" * 50)),)),
        Listing(4, ("echo hi", "", "  done   ")),
        Paragraph((Span("   "),), rstrip=True),
    )
    shown = render_plain(blocks, 60)
    assert shown is not None
    assert shown == rich_prints(blocks, 60)


# -- made-up plans, through the command line's printer ----------------------------------------

ID = st.from_regex(r"[a-z][a-z0-9_-]{0,70}", fullmatch=True)


def plan_of(data: dict[str, Any]) -> Plan:
    document = source.loads(json.dumps(data, ensure_ascii=False).encode(), "made-up.yaml")
    assert not schema.validate(document)
    return make_plan(compile_workflow(model.build(document)).graph)


@st.composite
def workflows(draw: st.DrawFn, text: st.SearchStrategy[str] = SOME_TEXT) -> dict[str, Any]:
    """A chain of steps with `text` in names, scripts, conditions, inputs and env."""
    ids = draw(st.lists(ID, min_size=1, max_size=4, unique=True))
    steps = []
    for position, step_id in enumerate(ids):
        step: dict[str, Any] = {"id": step_id, "name": draw(text) or "n"}
        step["run"] = "echo " + draw(st.lists(text, min_size=1, max_size=4).map("\n".join))
        if draw(st.booleans()):
            literal = re.sub(r"['\\\n\r]", "", draw(text))
            step["condition"] = f"inputs.text == '{literal}'"
        if position:
            step["needs"] = [ids[position - 1]]
        if draw(st.booleans()):
            step["retries"] = draw(st.integers(0, 6))
        steps.append(step)
    return {
        "wfx": 1,
        "name": draw(text) or "w",
        "inputs": {"text": {"type": "string", "default": draw(text)}},
        "env": {"FROM_WORKFLOW": draw(text)},
        "steps": steps,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(workflows(), workflows(SIMPLE)),
    st.booleans(),
    st.sampled_from([None, "0", "100", "121", "160"]),
)
def test_made_up_plans_print_what_rich_prints(
    data: dict[str, Any], verbose: bool, columns: str | None
) -> None:
    the_plan = plan_of(data)
    with environment(COLUMNS=columns):
        assert dispatched(the_plan, verbose) == rich_plan_output(the_plan, verbose)
