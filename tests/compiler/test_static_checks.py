"""Static checks: every problem the compiler can see before running, with its position."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wfx import api
from wfx.compiler import compile_workflow
from wfx.diagnostics import Diagnostic, DiagnosticsError, Severity, Span
from wfx.expr import Template
from wfx.model import Action, Defaults, Step, StepId, StepKind, StepRef, Workflow

Write = Callable[[str], Path]


def diagnose(write: Write, text: str, inputs: dict[str, str] | None = None) -> list[Diagnostic]:
    report = api.check([write(text)], inputs)
    return report.diagnostics


def errors(write: Write, text: str) -> list[tuple[int, int, str]]:
    return [
        (d.span.line, d.span.column, d.message)
        for d in diagnose(write, text)
        if d.severity is Severity.ERROR and d.span
    ]


def test_a_valid_workflow_has_no_diagnostics(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: a
        run: echo a
      - id: b
        run: echo b
        needs: [a]
    """
    assert diagnose(workflow_file, text) == []


def test_duplicate_ids_point_at_the_second(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: build
        run: echo 1
      - id: build
        run: echo 2
    """
    assert errors(workflow_file, text) == [
        (5, 9, "duplicate step id `build` (first used at line 3)")
    ]


def test_unknown_need_suggests_the_close_id(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: build
        run: echo 1
      - id: test
        run: echo 2
        needs: [biuld]
    """
    [found] = diagnose(workflow_file, text)
    assert (found.span.line, found.span.column) == (7, 13)
    assert found.message == "`needs` names unknown step `biuld`"
    assert found.hint == "did you mean `build`?"


def test_cycle_lists_every_step_with_its_line(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - type: parallel
        steps:
          - {id: a, run: echo a, needs: [c]}
          - {id: b, run: echo b, needs: [a]}
          - {id: c, run: echo c, needs: [b]}
    """
    [found] = diagnose(workflow_file, text)
    assert found.code == "compile.cycle"
    for name, line in (("a", 5), ("b", 6), ("c", 7)):
        assert f"`{name}` ({found.span.file}:{line})" in found.message


def test_a_group_needing_its_own_child_is_a_cycle(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: g
        needs: [inner]
        steps:
          - {id: inner, run: echo}
    """
    [found] = diagnose(workflow_file, text)
    assert found.code == "compile.cycle"
    assert "`g`" in found.message and "`inner`" in found.message


def test_a_cycle_inside_a_group_fanned_out_at_run_time_is_reported(
    workflow_file: Write,
) -> None:
    """The body of such a group leaves the graph (the run copies it per item), and the
    graph's own sort did not see its cycles: `wfx run` then waited forever."""
    text = """
    wfx: 1
    steps:
      - id: list
        run: echo 'items=[1, 2]' >> "$WFX_OUTPUT"
      - id: each
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        steps:
          - {id: first, run: echo, needs: [second]}
          - {id: second, run: echo}
          - {id: alone, run: echo, needs: [alone]}
    """
    found = diagnose(workflow_file, text)
    assert [d.code for d in found] == ["compile.cycle", "compile.cycle"]
    assert "`first` (" in found[0].message and "`second` (" in found[0].message
    assert "`alone` (" in found[1].message and "[" not in found[1].message.split("`alone`")[0]


def test_unknown_names_in_expressions(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      version: {type: string, default: v1}
    secrets: [TOKEN]
    steps:
      - id: build
        run: echo ${{ inputs.verison }} ${{ secrets.TOKN }}
      - id: ship
        run: echo ${{ steps.biuld.outputs.x }} ${{ steps.build.output }}
        needs: [build]
    """
    found = {(line, message) for line, _, message in errors(workflow_file, text)}
    assert found == {
        (7, "unknown input `verison` in `inputs.verison`"),
        (7, "unknown secret `TOKN` in `secrets.TOKN`"),
        (9, "unknown step `biuld` in `steps.biuld.outputs.x`"),
        (9, "unknown step property `output` in `steps.build.output`"),
    }


def test_unknown_context_is_reported_at_its_column(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - run: echo ${{ github.sha }}
    """
    [(line, column, message)] = errors(workflow_file, text)
    assert (line, column) == (3, 19)
    assert "github" in message


def test_steps_context_is_refused_in_workflow_env(workflow_file: Write) -> None:
    text = """
    wfx: 1
    env:
      X: ${{ steps.a.outputs.y }}
    steps:
      - {id: a, run: echo}
    """
    [(_, _, message)] = errors(workflow_file, text)
    assert "`steps` is not available in workflow `env`" in message


def test_retry_with_zero_retries_is_an_error(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - run: echo
        retries: 0
        onError: retry
    """
    [(line, _, message)] = errors(workflow_file, text)
    assert line == 4 and "can never retry" in message


def test_retry_with_zero_retries_inherited_from_a_group_is_an_error(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - retries: 0
        steps:
          - id: flaky
            run: echo
            onError: retry
    """
    [(line, _, message)] = errors(workflow_file, text)
    assert line == 3 and "step `flaky` inherits it" in message


def test_retries_without_max_keeps_the_inherited_max(workflow_file: Write) -> None:
    text = """
    wfx: 1
    defaults:
      retries: {max: 2, delay: 1s}
    steps:
      - id: a
        run: echo
        retries: {backoff: linear}
    """
    from wfx.api import compile_file

    graph = compile_file(workflow_file(text)).graph
    schedule = graph.node("a").settings.retry.value
    assert (schedule.attempts, schedule.delays) == (3, (1.0, 2.0))


def test_derived_ids_never_collide(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - run: echo first
      - id: step
        steps:
          - run: echo inner
    """
    from wfx.api import compile_file

    graph = compile_file(workflow_file(text)).graph
    assert [n.id for n in graph.steps()] == ["step-1", "step-1_"]


def test_rollback_on_a_group_is_an_error(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: g
        steps:
          - run: echo
        rollback: {run: echo undo}
    """
    [(line, _, message)] = errors(workflow_file, text)
    assert line == 6 and "not on a group" in message


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("{type: number, default: abc}", "expected a number"),
        ("{type: string, enum: [dev, prd], default: qa}", "is not one of"),
        ("{type: string, pattern: '^v[0-9]+$', default: '1.0'}", "does not match the pattern"),
        ("{type: boolean, default: maybe}", "expected a boolean"),
        ("{type: string, pattern: '([', default: x}", "invalid pattern"),
    ],
)
def test_input_defaults_must_fit_their_declaration(
    workflow_file: Write, declaration: str, message: str
) -> None:
    text = f"""
    wfx: 1
    inputs:
      x: {declaration}
    steps:
      - run: echo
    """
    [(line, column, found)] = errors(workflow_file, text)
    assert (line, column) == (3, 3)
    assert message in found


def test_reading_a_step_that_is_not_upstream_warns(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - type: parallel
        steps:
          - {id: a, run: echo}
          - {id: b, run: 'echo ${{ steps.a.outputs.x }}'}
    """
    [found] = diagnose(workflow_file, text)
    assert found.severity is Severity.WARNING
    assert "does not wait for `a`" in found.message


def test_all_problems_are_reported_at_once_in_order(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - {id: a, run: echo, needs: [zz]}
      - {id: a, run: echo}
      - {run: 'echo ${{ nope }}'}
    """
    lines = [line for line, _, _ in errors(workflow_file, text)]
    assert lines == sorted(lines) and len(lines) == 3


def test_every_cycle_is_reported_in_one_pass_with_each_steps_file_and_line(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    steps:
      - {id: a, run: echo, needs: [b]}
      - {id: b, run: echo}
      - id: g
        needs: [inner]
        steps:
          - {id: inner, run: echo}
      - id: h
        steps:
          - {id: child, run: echo, needs: [h]}
      - {id: me, run: echo, needs: [me]}
    """
    found = diagnose(workflow_file, text)
    assert [d.code for d in found] == ["compile.cycle"] * 4
    name = str(found[0].span.file)
    assert [d.message for d in found] == [
        f"dependency cycle: `a` ({name}:3), which waits for `b` ({name}:4), which waits for `a`",
        f"dependency cycle: `g` ({name}:5), which waits for `inner` ({name}:8),"
        " which waits for `g`",
        f"dependency cycle: `h` ({name}:9), which waits for `child` ({name}:11),"
        " which waits for `h`",
        f"dependency cycle: `me` ({name}:12), which waits for `me`",
    ]
    assert [(d.span.line, d.span.column) for d in found] == [(3, 10), (5, 9), (9, 9), (12, 10)]


def test_two_cycles_through_one_step_are_one_knot(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - type: parallel
        steps:
          - {id: a, run: echo, needs: [b, c]}
          - {id: b, run: echo, needs: [a]}
          - {id: c, run: echo, needs: [a]}
          - {id: d, run: echo, needs: [a]}
    """
    [found] = diagnose(workflow_file, text)
    assert found.code == "compile.cycle"
    name = found.span.file
    assert found.message == (
        f"dependency cycle: `a` ({name}:5), which waits for `b` ({name}:6), which waits for `a`;"
        f" other cycles through the same steps also involve `c` ({name}:7)"
    )
    assert "`d`" not in found.message  # waits for the knot, is not part of it


def test_a_cycle_of_twenty_thousand_steps_is_found_without_recursion() -> None:
    span = Span("big.yaml", 1, 1)
    count = 20_000
    steps = tuple(
        Step(
            kind=StepKind.CMD,
            span=Span("big.yaml", i + 1, 1),
            path=("steps", i),
            id=StepId(f"s{i}"),
            needs=(StepRef(StepId(f"s{(i - 1) % count}"), span),),
            action=Action(StepKind.CMD, span, cmd=(Template(("true",)),)),
        )
        for i in range(count)
    )
    workflow = Workflow(
        "big.yaml", span, None, None, (), (), {}, Defaults(), None, None, steps, (), {}
    )
    with pytest.raises(DiagnosticsError) as caught:
        compile_workflow(workflow)
    [found] = caught.value.diagnostics
    assert found.message.startswith("dependency cycle: `s0` (big.yaml:1), which waits for `s19999`")
    assert found.message.count("which waits for") == count


def test_uses_naming_main_or_wfx_itself_is_refused_with_its_position(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    steps:
      - uses: python:__main__:main
      - uses: python:wfx.cli:main
      - uses: "python:wfx:api"
        rollback: {uses: 'python:wfx.runtime.engine:run'}
      - uses: python:wfx_tools:fine
    """
    found = diagnose(workflow_file, text)
    assert {d.code for d in found} == {"compile.forbidden-callable"}
    assert [(d.span.line, d.span.column) for d in found] == [(3, 11), (4, 11), (5, 11), (6, 22)]
    assert "`__main__`" in found[0].message and "`wfx.cli`" in found[1].message
    assert all("python:my_tools:deploy" in (d.hint or "") for d in found)


CONSTANT_ERRORS = """
wfx: 1
inputs:
  x: {type: string, default: a}
env:
  A: "${{ format('{0} {1}', 'a') }}"
steps:
  - id: s
    run: |
      echo ${{ fromJSON('not json') }}
      echo ${{ inputs.x && fromJSON('only when x is true') }}
      echo ${{ case(1, 'a', 'b') }} ${{ format('{0}', inputs.x) }} ${{ format('{0}', 'ok') }}
    condition: ${{ success() && format('{0}') == 'x' }}
  - id: t
    uses: python:m:f
    with:
      a: ["${{ toJSON(fromJSON('{')) }}"]
    condition: "${{ format('{0}') == 'x' && success() }}"
"""


def test_expression_errors_on_literals_are_reported_at_their_position(
    workflow_file: Write,
) -> None:
    found = errors(workflow_file, CONSTANT_ERRORS)
    assert [(line, column) for line, column, _ in found] == [
        (5, 11),
        (9, 16),
        (11, 16),
        (16, 23),
        (17, 21),
    ]
    assert found[0][2] == (
        "the following format string references more arguments than were supplied: {0} {1}"
    )
    assert found[1][2].startswith("error parsing JSON when evaluating fromJSON")
    assert found[2][2] == "case predicate must evaluate to a boolean value"


def test_plan_refuses_a_proven_expression_error(workflow_file: Write) -> None:
    path = workflow_file(CONSTANT_ERRORS)
    with pytest.raises(DiagnosticsError) as caught:
        api.plan_file(path)
    assert [d.span.line for d in caught.value.diagnostics if d.span] == [5, 9, 11, 16, 17]


def test_a_comparison_the_input_declaration_already_decides_warns(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      env: {type: choice, enum: [dev, staging, production], default: dev}
      opt: {type: choice, enum: [a, b]}
      n: {type: number, default: 1}
      flag: {type: boolean, default: false}
      s: {type: string}
    steps:
      - run: echo
        condition: inputs.env == 'prod' || inputs.env == 'DEV' || inputs['env'] != 'qa'
      - run: echo ${{ inputs.n == 'abc' }} ${{ inputs.n == '0x10' }} ${{ 'yes' == inputs.flag }}
      - run: echo ${{ inputs.opt == '' }} ${{ inputs.opt == 'c' }} ${{ inputs.s == 'x' }}
      - run: echo ${{ inputs.flag == 1 }} ${{ inputs.n == true }} ${{ inputs.env == 'Staging' }}
    """
    found = diagnose(workflow_file, text)
    assert {d.severity for d in found} == {Severity.WARNING}
    assert {d.code for d in found} == {"compile.fixed-comparison"}
    assert [(d.span.line, d.span.column, d.message) for d in found] == [
        (
            10,
            16,
            "`inputs.env == 'prod'` is always false:"
            " input `env` is one of dev, staging, production",
        ),
        (
            10,
            63,
            "`inputs['env'] != 'qa'` is always true:"
            " input `env` is one of dev, staging, production",
        ),
        (11, 19, "`inputs.n == 'abc'` is always false: input `n` is a number"),
        (
            11,
            70,
            "`'yes' == inputs.flag` is always false: input `flag` is a boolean (true or false)",
        ),
        (12, 43, "`inputs.opt == 'c'` is always false: input `opt` is one of a, b, ''"),
    ]


def test_reads_are_checked_against_everything_upstream_through_groups(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    type: parallel
    steps:
      - id: build
        steps:
          - {id: compile, run: echo}
          - {id: pack, run: 'echo ${{ steps.compile.outputs.x }} ${{ steps.build.status }}'}
      - {id: lint, run: echo}
      - id: ship
        needs: [build]
        steps:
          - id: push
            run: 'echo ${{ steps.compile.outputs.x }} ${{ steps.pack.outputs.y }}'
            rollback: {run: 'echo ${{ steps.push.outputs.z }} ${{ steps.LINT.outputs.w }}'}
      - {id: report, run: 'echo ${{ steps.push.outputs.z }} ${{ steps.ship.status }}'}
    finally:
      - {id: last, run: 'echo ${{ steps.lint.outputs.w }}'}
    """
    found = [(d.span.line, d.message) for d in diagnose(workflow_file, text)]
    assert found == [
        # a step inside `build` cannot see `build` finished
        (7, "`pack` reads `steps.build` but does not wait for `build`"),
        # `ship` waits for `build` (so for `compile` and `pack`), never for `lint`
        (14, "`push` reads `steps.lint` but does not wait for `lint`"),
        (15, "`report` reads `steps.push` but does not wait for `push`"),
        (15, "`report` reads `steps.ship` but does not wait for `ship`"),
    ]
