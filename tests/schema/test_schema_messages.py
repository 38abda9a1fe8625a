"""What `wfx validate` says about a wrong workflow: message, position and hint (table-driven)."""

from __future__ import annotations

import textwrap
from typing import NamedTuple

import pytest

from wfx.diagnostics import Diagnostic, Severity
from wfx.schema import validate
from wfx.source import loads


def check(text: str) -> list[Diagnostic]:
    return validate(loads(textwrap.dedent(text).lstrip("\n"), "t.yaml"))


class Case(NamedTuple):
    yaml: str
    line: int
    column: int
    message: str
    hint: str | None = None


STEP = "wfx: 1\nsteps:\n  - id: a\n"  # a step at line 3; its further keys start at column 5

CASES = {
    "unknown key in a step points at the key": Case(
        STEP + "    run: echo\n    timout: 5s\n",
        5,
        5,
        "unknown key `timout` in step",
        "did you mean `timeout`?",
    ),
    "unknown key at the top level": Case(
        "wfx: 1\nstepz: []\n", 2, 1, "unknown key `stepz` in workflow", "did you mean `steps`?"
    ),
    "unknown key in retries": Case(
        STEP + "    run: echo\n    retries: {max: 2, backof: linear}\n",
        5,
        23,
        "unknown key `backof` in retries",
        "did you mean `backoff`?",
    ),
    "unknown key in defaults": Case(
        "wfx: 1\ndefaults:\n  onErorr: fail\nsteps: [{run: x}]\n",
        3,
        3,
        "unknown key `onErorr` in defaults",
        "did you mean `onError`?",
    ),
    "unknown key in an input": Case(
        "wfx: 1\ninputs:\n  env: {type: string, defualt: dev}\nsteps: [{run: x}]\n",
        3,
        23,
        "unknown key `defualt` in input `env`",
        "did you mean `default`?",
    ),
    "unknown key in a rollback lists what is allowed": Case(
        STEP + "    run: echo\n    rollback: {run: undo, needs: a}\n",
        5,
        27,
        "unknown key `needs` in rollback",
        "allowed here: `cmd`, `env`, `name`",
    ),
    "kebab-case key": Case(
        STEP + "    run: echo\n    working-directory: /tmp\n",
        5,
        5,
        "unknown key `working-directory`",
        "did you mean `workingDirectory`?",
    ),
    "GitHub Actions habit": Case(
        STEP + "    run: echo\n    if: failure()\n",
        5,
        5,
        "unknown key `if`",
        "did you mean `condition`?",
    ),
    "retries of the wrong type": Case(
        STEP + "    run: echo\n    retries: three\n",
        5,
        14,
        "`retries` must be an integer from 0 to 10000 or a mapping "
        "{max, delay, backoff, factor, maxDelay, jitter, on, except, deadline}, got a string",
        "retries: 3",
    ),
    "retries as a quoted number": Case(
        STEP + "    run: echo\n    retries: '3'\n",
        5,
        14,
        "got a string",
        "remove the quotes to make it a number",
    ),
    "negative retries shows the value": Case(
        STEP + "    run: echo\n    retries: -1\n", 5, 14, "must be an integer from 0 to 10000", None
    ),
    "onError outside its enum": Case(
        STEP + "    run: echo\n    onError: abort\n",
        5,
        14,
        "`onError` must be one of fail, continue, retry, got `abort`",
    ),
    "onError misspelt": Case(
        STEP + "    run: echo\n    onError: contine\n",
        5,
        14,
        "got `contine`",
        "did you mean `continue`?",
    ),
    "a duration in words": Case(
        STEP + "    run: echo\n    timeout: 5 minutes\n",
        5,
        14,
        "`timeout` must be a duration like `30s`, `5m` or `1h30m`, got `5 minutes`",
        "units `ms`, `s`, `m`, `h`",
    ),
    "a negative duration": Case(
        "wfx: 1\ntimeout: -3\nsteps: [{run: x}]\n", 2, 10, "must be a duration", None
    ),
    "a duration in a retry policy": Case(
        STEP + "    run: echo\n    retries: {delay: soon}\n", 5, 22, "`delay` must be a duration"
    ),
    "jitter out of range": Case(
        STEP + "    run: echo\n    retries: {jitter: 1.5}\n",
        5,
        23,
        "`jitter` must be a number between 0 and 1, got `1.5`",
    ),
    "missing wfx at line 1, column 1": Case(
        "# a comment\nsteps: [{run: x}]\n", 1, 1, "missing required key `wfx`", "`wfx: 1`"
    ),
    "missing steps": Case("wfx: 1\nname: x\n", 1, 1, "missing required key `steps`"),
    "wrong language version": Case(
        "wfx: 2\nsteps: [{run: x}]\n", 1, 6, "`wfx` must be `1` (the language version), got `2`"
    ),
    "a step with no kind": Case(
        STEP + "    name: nothing to do\n",
        3,
        5,
        "a step needs exactly one of `steps`, `run`, `cmd`, `uses`",
        "`run:` for a shell script",
    ),
    "a step with two kinds, at the second": Case(
        STEP + "    run: echo\n    cmd: [echo]\n",
        5,
        5,
        "a step has exactly one kind; this one has both `run` and `cmd`",
    ),
    "a step with three kinds": Case(
        STEP + "    uses: python:m:f\n    run: echo\n    cmd: [echo]\n",
        5,
        5,
        "this one has `uses`, `run` and `cmd`",
    ),
    "a rollback with no kind": Case(
        STEP + "    run: echo\n    rollback: {name: undo}\n",
        5,
        15,
        "a rollback needs exactly one of `run`, `cmd`, `uses`",
    ),
    "with on a run step": Case(
        STEP + "    run: echo\n    with: {a: 1}\n",
        5,
        5,
        "`with` is only allowed together with `uses`",
    ),
    "type on a leaf step": Case(
        STEP + "    run: echo\n    type: parallel\n",
        5,
        5,
        "`type` is only allowed together with `steps`",
        "belongs to groups",
    ),
    "maxParallel on a leaf step": Case(
        STEP + "    run: echo\n    maxParallel: 2\n",
        5,
        5,
        "`maxParallel` is only allowed together with `steps`, `matrix` or `forEach`",
    ),
    "shell on a cmd step": Case(
        STEP + "    cmd: [echo]\n    shell: bash\n",
        5,
        5,
        "`shell` cannot be used together with `cmd`",
        "without a shell",
    ),
    "shell on a uses rollback": Case(
        STEP + "    run: echo\n    rollback: {uses: 'python:m:f', shell: sh}\n",
        5,
        36,
        "`shell` cannot be used together with `uses`",
    ),
    "group type misspelt": Case(
        STEP + "    type: paralel\n    steps: [{run: x}]\n",
        4,
        11,
        "`type` must be `sequential` or `parallel`, got `paralel`",
        "did you mean `parallel`?",
    ),
    "uses that is not python:MODULE:FUNCTION": Case(
        STEP + "    uses: deploy_tools.k8s.apply\n",
        4,
        11,
        "`uses` must be `python:MODULE:FUNCTION`, e.g. `python:deploy_tools.k8s:apply`",
    ),
    "empty cmd": Case(STEP + "    cmd: []\n", 4, 10, "`cmd` must be a non-empty list of strings"),
    "a number inside cmd": Case(
        STEP + "    cmd: [sleep, 1]\n",
        4,
        18,
        "item 2 of `cmd` must be a string, got a number",
        "quote it to make it a string",
    ),
    "bad step id": Case(
        "wfx: 1\nsteps:\n  - id: 1st step\n    run: x\n",
        3,
        9,
        "`id` must start with a letter or `_`",
    ),
    "needs with a bad id inside a list": Case(
        STEP + "    run: x\n    needs: [ok, 'not ok']\n",
        5,
        17,
        "item 2 of `needs` must start with a letter",
    ),
    "needs naming a step twice": Case(
        STEP + "    run: x\n    needs: [b, b]\n", 5, 16, "`needs` lists `b` more than once"
    ),
    "needs of the wrong type": Case(
        STEP + "    run: x\n    needs: {b: 1}\n",
        5,
        12,
        "`needs` must be a step id or a list of step ids, got a mapping",
    ),
    "condition of the wrong type": Case(
        STEP + "    run: x\n    condition: 3\n",
        5,
        16,
        "`condition` must be an expression",
        "quote it",
    ),
    "a choice input without enum": Case(
        "wfx: 1\ninputs:\n  env: {type: choice}\nsteps: [{run: x}]\n",
        3,
        8,
        "missing required key `enum` in input `env`",
        "`type: choice`",
    ),
    "an input name with a space": Case(
        "wfx: 1\ninputs:\n  my input: {type: string}\nsteps: [{run: x}]\n",
        3,
        3,
        "input name `my input` must start with a letter or `_`",
    ),
    "an environment variable name with a dash": Case(
        "wfx: 1\nenv:\n  MY-VAR: x\nsteps: [{run: x}]\n",
        3,
        3,
        "environment variable name `MY-VAR` must contain only letters, digits and `_`",
    ),
    "an environment value that is a mapping": Case(
        "wfx: 1\nenv:\n  A: {b: 1}\nsteps: [{run: x}]\n",
        3,
        6,
        "`A` must be a string, number or boolean, got a mapping",
    ),
    "a secret listed twice": Case(
        "wfx: 1\nsecrets: [TOKEN, TOKEN]\nsteps: [{run: x}]\n",
        2,
        18,
        "`secrets` lists `TOKEN` more than once",
    ),
    "maxParallel zero": Case(
        "wfx: 1\nmaxParallel: 0\nsteps: [{run: x}]\n",
        2,
        14,
        "`maxParallel` must be an integer of at least 1, got `0`",
    ),
    "empty steps": Case(
        "wfx: 1\nsteps: []\n", 2, 8, "`steps` must be a non-empty list of steps, got an empty list"
    ),
    "a step that is a string": Case(
        "wfx: 1\nsteps:\n  - echo hi\n",
        3,
        5,
        "item 1 of `steps` must be a mapping with one of `steps`, `run`, `cmd` or `uses`,"
        " got a string",
    ),
    "a step deep in groups": Case(
        "wfx: 1\nsteps:\n  - steps:\n      - steps:\n          - {run: x, retries: {max: -2}}\n",
        5,
        37,
        "`max` must be an integer from 0 to 10000"
        " (for retries that go on until a time, set `deadline`), got `-2`",
    ),
    "a finally step": Case(
        "wfx: 1\nsteps: [{run: x}]\nfinally:\n  - {run: y, onError: skip}\n",
        4,
        23,
        "`onError` must be one of",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_message_position_and_hint(case: Case) -> None:
    found = check(case.yaml)
    matching = [d for d in found if case.message in d.message]
    assert matching, [d.message for d in found]
    diagnostic = matching[0]
    assert diagnostic.severity is Severity.ERROR
    assert diagnostic.span is not None
    assert (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column) == (
        "t.yaml",
        case.line,
        case.column,
    )
    if case.hint is not None:
        assert diagnostic.hint is not None and case.hint in diagnostic.hint


@pytest.mark.parametrize(
    "text",
    [
        STEP + "    run: echo\n    cmd: [echo]\n",
        STEP + "    name: nothing\n",
        STEP + "    run: echo\n    retries: '3'\n",
        STEP + "    run: echo\n    timeout: 5 minutes\n",
    ],
)
def test_one_problem_gives_one_diagnostic_without_jsonschema_noise(text: str) -> None:
    found = check(text)
    assert len(found) == 1
    assert "valid under" not in found[0].message
    assert "is not of type" not in found[0].message


def test_all_problems_at_once_sorted_by_position() -> None:
    found = check(
        """
        wfx: 1
        timeout: forever
        steps:
          - id: a
            run: echo
            onError: abort
          - id: b
            cmd: [x]
            shell: bash
        maxParallel: 0
        """
    )
    positions = [(d.span.line, d.span.column) for d in found if d.span]
    assert positions == sorted(positions)
    assert [d.span.line for d in found if d.span] == [2, 6, 9, 10]


def test_a_misspelt_kind_is_reported_once() -> None:
    found = check(STEP + "    rn: echo\n")
    assert [d.message for d in found] == ["unknown key `rn` in step"]
    assert found[0].hint == "did you mean `run`?"


def test_diagnostics_carry_stable_codes() -> None:
    found = check(STEP + "    run: x\n    cmd: [x]\n    timout: 1s\n    onError: nope\n")
    assert {d.code for d in found} == {
        "schema.step-kind",
        "schema.unknown-key",
        "schema.invalid-value",
    }


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- wfx: 1\n", "got a list"),
        ("just words\n", "got a string"),
        ("42\n", "got a number"),
    ],
)
def test_a_document_that_is_not_a_mapping(text: str, got: str) -> None:
    found = validate(loads(text, "t.yaml"))
    assert len(found) == 1
    diagnostic = found[0]
    assert diagnostic.message == "a workflow file must be a mapping with `wfx: 1`, `steps`, …"
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (1, 1)
    assert diagnostic.hint is not None and got in diagnostic.hint


def test_a_valid_workflow_using_every_key_has_no_diagnostics() -> None:
    found = check(
        """
        wfx: 1
        name: Everything
        description: Every key of the language once.
        inputs:
          env: {type: choice, enum: [dev, prd], default: dev, description: where}
          version: {type: string, pattern: '^v\\d+$', required: true}
          count: {type: number, default: 2}
          dry: {type: boolean, default: false}
        secrets: [TOKEN]
        env: {A: a, B: 1, C: true}
        defaults:
          timeout: 5m
          killGrace: 2s
          retries: {max: 0, delay: 1s, backoff: exponential, factor: 2, maxDelay: 30s, jitter: 0.2}
          onError: fail
          shell: bash -eo pipefail
          workingDirectory: .
          env: {D: d}
        timeout: 1h30m
        maxParallel: 4
        steps:
          - id: group
            name: A group
            type: parallel
            maxParallel: 2
            shell: sh -e
            env: {E: e}
            steps:
              - {id: a, run: echo a, timeout: 1.5s, retries: 2, onError: continue}
              - {id: b, cmd: [echo, b], needs: a, condition: "${{ success() }}"}
              - id: c
                uses: python:tools.mod:func
                with: {x: 1, y: [1, 2]}
                needs: [a, b]
                condition: true
                workingDirectory: sub
                killGrace: 500ms
                rollback: {uses: 'python:tools.mod:undo', with: {x: 1}, timeout: 10, name: undo}
          - id: d
            run: echo d
            rollback: {run: echo undo, shell: bash, env: {F: f}, workingDirectory: /tmp}
        finally:
          - {id: last, run: echo done, condition: always()}
        outputs:
          result: ${{ steps.a.outputs.x }}
        """
    )
    assert found == []
