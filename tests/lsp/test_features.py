"""The language server's answers as pure functions of a text and a position: the same
diagnostics as `wfx validate`, the cursor's context in half-typed YAML, hover,
completion and go-to-definition."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx import api
from wfx.cli import cli
from wfx.diagnostics import Severity, Span
from wfx.lsp.analysis import analyse
from wfx.lsp.context import context_at
from wfx.lsp.features import complete, definition, hover
from wfx.lsp.text import Position, Range, span_range

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted(
    (ROOT / "examples" / "invalid").glob("*.yaml")
)

WORKFLOW = """\
wfx: 1
inputs:
  target: {type: choice, enum: [dev, prd], default: dev}
defaults:
  timeout: 30s
steps:
  - id: build
    run: |
      echo build
      note: not a key
    retries: 2
  - id: checks
    type: parallel
    steps:
      - id: unit
        run: echo unit
      - id: lint
        cmd: [echo, lint]
  - id: deploy
    needs: [build, checks]
    condition: ${{ inputs.target == 'prd' }}
    run: echo "${{ steps.build.outputs.url }}"
    onError: continue
"""


def at(text: str, marker: str, offset: int = 0) -> Position:
    """The position of the first `marker` in `text`, plus `offset` characters."""
    index = text.index(marker) + offset
    line = text.count("\n", 0, index)
    return Position(line, index - (text.rfind("\n", 0, index) + 1))


def labels(text: str, position: Position) -> list[str]:
    return [c.label for c in complete(analyse(text, "wf.yaml"), position)]


# --- diagnostics ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_diagnostics_are_exactly_those_of_wfx_validate(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    analysis = analyse(text, str(path))
    assert analysis.checked.diagnostics == api.check([path]).diagnostics
    assert len(analysis.diagnostics) == len(analysis.checked.diagnostics)


def test_a_diagnostic_has_its_range_severity_code_and_hint() -> None:
    text = WORKFLOW.replace("needs: [build, checks]", "needs: [biuld, checks]")
    [found] = analyse(text, "wf.yaml").diagnostics
    assert found.code == "compile.unknown-need"
    assert found.severity is Severity.ERROR
    assert found.range == Range(at(text, "biuld"), at(text, "biuld", 5))
    assert found.message.splitlines() == [
        "`needs` names unknown step `biuld`",
        "hint: did you mean `build`?",
    ]


def test_a_span_without_an_end_covers_the_word_it_points_at() -> None:
    lines = ["steps:", "  - timout: 5m"]
    assert span_range(Span("f", 2, 5), lines) == Range(Position(1, 4), Position(1, 11))
    assert span_range(Span("f", 2, 5, 2, 11), lines) == Range(Position(1, 4), Position(1, 10))
    assert span_range(None, lines) == Range(Position(0, 0), Position(0, 6))


# --- where the cursor is -------------------------------------------------------------------


def test_the_context_is_read_from_indentation_while_the_yaml_does_not_parse() -> None:
    text = "wfx: 1\nsteps:\n  - id: a\n    retries:\n      ma\n  - ti\n    needs: [a, \n"
    lines = text.splitlines()
    in_policy = context_at(lines, 4, 8)
    assert (in_policy.path, in_policy.in_value, in_policy.typed) == (
        ("steps", None, "retries"),
        False,
        "ma",
    )
    new_item = context_at(lines, 5, 6)
    assert (new_item.path, new_item.in_value, new_item.typed) == (("steps", None), False, "ti")
    in_needs = context_at(lines, 6, 15)
    assert (in_needs.path, in_needs.in_value, in_needs.key) == (("steps", None), True, "needs")


def test_text_inside_a_block_scalar_is_a_value_never_a_key() -> None:
    lines = WORKFLOW.splitlines()
    position = at(WORKFLOW, "note:", 2)
    context = context_at(lines, position.line, position.character)
    assert context.in_value
    assert context.path == ()


# --- hover ---------------------------------------------------------------------------------


def test_hover_on_a_key_shows_its_description_values_and_hint() -> None:
    found = hover(analyse(WORKFLOW, "wf.yaml"), at(WORKFLOW, "onError", 2))
    assert found is not None
    assert found.markdown.startswith("**`onError`**\n\nWhat a final failure means:")
    assert "Values: `fail`, `continue`, `retry`" in found.markdown
    assert found.range == Range(at(WORKFLOW, "onError"), at(WORKFLOW, "onError", 7))


def test_the_same_key_means_what_its_place_says() -> None:
    analysis = analyse(WORKFLOW, "wf.yaml")
    in_defaults = hover(analysis, at(WORKFLOW, "timeout", 1))
    assert in_defaults is not None
    assert "Default time limit for one attempt of each step" in in_defaults.markdown
    assert "*Hint:* write seconds as a number, or amounts with units" in in_defaults.markdown
    on_input = hover(analysis, at(WORKFLOW, "target", 1))
    assert on_input is None  # an input's name is the author's, not a key of the language


def test_hover_on_a_step_shows_its_effective_settings_and_their_origins() -> None:
    analysis = analyse(WORKFLOW, "wf.yaml")
    for position in (at(WORKFLOW, "id: build", 5), at(WORKFLOW, "[build", 2)):
        found = hover(analysis, position)
        assert found is not None
        assert "step `build` (run, line 7)" in found.markdown
        assert "timeout = 30s  (from defaults (line 5))" in found.markdown
        assert "retries = 2" in found.markdown
    group = hover(analysis, at(WORKFLOW, "checks]", 1))
    assert group is not None
    assert "group `checks`" in group.markdown


def test_hover_on_a_step_of_a_file_with_errors_says_why_there_are_no_settings() -> None:
    text = WORKFLOW.replace("retries: 2", "retries: -2")
    found = hover(analyse(text, "wf.yaml"), at(text, "id: build", 5))
    assert found is not None
    assert "once the file has no errors" in found.markdown


# --- completion ----------------------------------------------------------------------------


def test_completion_offers_the_keys_of_the_mapping_at_the_cursor_minus_those_written() -> None:
    text = WORKFLOW + "    \n"
    found = labels(text, Position(len(text.splitlines()) - 1, 4))
    assert {"timeout", "retries", "rollback", "env"} <= set(found)
    assert not {"id", "run", "needs", "condition", "onError"} & set(found)  # already there
    ruled_out = {"cmd", "uses", "steps", "type", "groupTimeout", "groupRetries", "with"}
    assert not ruled_out & set(found)  # a run step (`maxParallel` may go with `matrix:`)


def test_completion_knows_nested_mappings_and_the_top_level() -> None:
    text = "wfx: 1\ndefaults:\n  \nsteps:\n  - id: a\n    run: x\n    retries:\n      \n"
    assert "shell" in labels(text, Position(2, 2))
    assert "needs" not in labels(text, Position(2, 2))
    assert set(labels(text, Position(7, 6))) == {
        "max",
        "delay",
        "backoff",
        "factor",
        "maxDelay",
        "jitter",
        "on",
        "except",
        "deadline",
    }
    assert "wfx" not in labels("wfx: 1\n\n", Position(1, 0))
    assert "secrets" in labels("wfx: 1\n\n", Position(1, 0))


def test_completion_offers_fixed_values() -> None:
    text = WORKFLOW.replace("onError: continue", "onError: ")
    assert labels(text, at(text, "onError: ", 9)) == ["fail", "continue", "retry"]


def test_completion_offers_step_ids_in_needs_written_any_way() -> None:
    ids = ["build", "checks", "unit", "lint"]  # not `deploy` itself
    flow = WORKFLOW.replace("needs: [build, checks]", "needs: [build, ")
    assert labels(flow, at(flow, "needs: [build, ", 15)) == ids[1:]  # not `build` again
    block = WORKFLOW.replace("needs: [build, checks]", "needs:\n      - ")
    assert labels(block, at(block, "needs:\n      - ", 15)) == ids
    compact = WORKFLOW.replace("needs: [build, checks]", "needs:\n    - ")
    assert labels(compact, at(compact, "needs:\n    - ", 13)) == ids


def test_completion_inside_expressions() -> None:
    ids = ["build", "checks", "unit", "lint", "deploy"]
    text = WORKFLOW.replace("steps.build.outputs.url", "steps.")
    assert labels(text, at(text, "steps. }}", 6)) == ids
    text = WORKFLOW.replace("steps.build.outputs.url", "steps.build.")
    assert labels(text, at(text, "steps.build. }}", 12)) == [
        "outputs",
        "status",
        "attempts",
        "duration",
        "exitCode",
    ]
    text = WORKFLOW.replace("inputs.target ==", "inputs. ==")
    assert labels(text, at(text, "inputs. ==", 7)) == ["target"]
    bare = WORKFLOW.replace("condition: ${{ inputs.target == 'prd' }}", "condition: ")
    assert "inputs" in labels(bare, at(bare, "condition: ", 11))


def test_the_completion_replaces_the_word_typed_so_far() -> None:
    text = WORKFLOW.replace("needs: [build, checks]", "needs: [build, ch")
    [first, *_] = complete(analyse(text, "wf.yaml"), at(text, "build, ch", 9))
    assert first.replace == Range(at(text, "build, ch", 7), at(text, "build, ch", 9))


# --- definition ----------------------------------------------------------------------------


def test_definition_from_needs_and_from_steps_in_an_expression() -> None:
    analysis = analyse(WORKFLOW, "wf.yaml")
    build = Range(at(WORKFLOW, "id: build", 4), at(WORKFLOW, "id: build", 9))
    checks = Range(at(WORKFLOW, "id: checks", 4), at(WORKFLOW, "id: checks", 10))
    assert definition(analysis, at(WORKFLOW, "[build", 3)) == build
    assert definition(analysis, at(WORKFLOW, "checks]", 2)) == checks
    assert definition(analysis, at(WORKFLOW, "steps.build", 8)) == build
    assert definition(analysis, at(WORKFLOW, "echo unit", 6)) is None
    block = WORKFLOW.replace("needs: [build, checks]", "needs:\n      - checks")
    assert definition(analyse(block, "wf.yaml"), at(block, "- checks", 4)) == Range(
        at(block, "id: checks", 4), at(block, "id: checks", 10)
    )


def test_definition_works_while_the_file_does_not_parse() -> None:
    text = WORKFLOW.replace("needs: [build, checks]", "needs: [build, checks")
    analysis = analyse(text, "wf.yaml")
    assert [d.code for d in analysis.diagnostics] == ["yaml.syntax"]
    assert definition(analysis, at(text, "[build", 3)) == Range(
        at(text, "id: build", 4), at(text, "id: build", 9)
    )


# --- never a crash -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(WORKFLOW)),
    inserted=st.text(alphabet=" \n-:[]{},'\"#|>&*!$.abcdei{}", max_size=8),
    line=st.integers(-1, 30),
    character=st.integers(-1, 60),
)
def test_any_text_at_any_position_gives_answers_never_an_exception(
    cut: int, inserted: str, line: int, character: int
) -> None:
    text = WORKFLOW[:cut] + inserted + WORKFLOW[cut:]
    logger = logging.getLogger("wfx.lsp")
    failures: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = failures.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        analysis = analyse(text, "wf.yaml")
        assert all(d.code != "lsp.internal" for d in analysis.diagnostics)
        position = Position(line, character)
        hover(analysis, position)
        complete(analysis, position)
        definition(analysis, position)
    finally:
        logger.removeHandler(handler)
    assert failures == []


@pytest.mark.parametrize(
    "line",
    [
        "  - id: a\n    a" + " " * 100_000 + "b",
        "    run: " + "${{ " * 30_000 + "}}",
        "    run: " + "steps." * 40_000,
        "    " + "a " * 100_000 + ":x",
    ],
    ids=["spaces", "openings", "references", "words"],
)
def test_a_hostile_long_line_costs_linear_time(line: str) -> None:
    """Each would take hours with a backtracking pattern: the test finishing is the check."""
    text = "wfx: 1\nsteps:\n" + line + "\n"
    analysis = analyse(text, "wf.yaml")
    last = analysis.lines[-1]
    for character in (len(last) // 2, len(last)):
        position = Position(len(analysis.lines) - 1, character)
        complete(analysis, position)
        hover(analysis, position)
        definition(analysis, position)


# --- the command ---------------------------------------------------------------------------


def test_without_pygls_the_command_says_what_to_install_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pygls", None)
    monkeypatch.delitem(sys.modules, "wfx.lsp.server", raising=False)
    result = CliRunner().invoke(cli, ["lsp"])
    assert result.exit_code == 2
    assert "install wfx[lsp]" in result.output
