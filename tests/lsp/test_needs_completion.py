"""Completion in a step's `needs` offers exactly the ids `wfx validate` accepts there: not
the step itself, nor a group around it, nor a step that waits for it (a cycle: a later
sibling in a sequential group, a step after its group), nor a `finally` step for a main
step, nor a step inside a group with `groupRetries` it is outside of, nor an id already
listed; asked through a real client while the list is half typed."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from wfx import api
from wfx.diagnostics import Severity
from wfx.lsp.analysis import analyse
from wfx.lsp.context import frames
from wfx.lsp.features import complete
from wfx.lsp.text import Position

from .test_server import open_document, published, uri_of

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "wfx", "lsp", "--stdio"])
CURSOR = "§"

WORKFLOW = """\
wfx: 1
steps:
  - id: build
    run: echo build
  - id: checks
    type: parallel
    steps:
      - id: unit
        run: echo unit
      - id: suite
        steps:
          - id: first
            run: echo first
          - id: second
            run: echo second
  - id: flaky
    groupRetries: {max: 1, delay: 50ms}
    steps:
      - id: attempt
        run: echo attempt
  - id: deploy
    run: echo deploy
  - id: notify
    needs: [deploy]
    run: echo notify
finally:
  - id: clean
    run: echo clean
  - id: report
    run: echo report
"""

#: what every step written before `deploy` may be named by it
BEFORE_DEPLOY = ["build", "checks", "unit", "suite", "first", "second", "flaky"]
MAIN = [*BEFORE_DEPLOY, "deploy", "notify"]

#: the client tests share one server (the examples test below is synchronous)
in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    params = types.InitializeParams(
        capabilities=pytest_lsp.client_capabilities("visual-studio-code")
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


def with_needs(step: str, needs: str) -> str:
    """WORKFLOW with `needs` (the cursor marked by CURSOR) on the line after `id: step`."""
    line = next(x for x in WORKFLOW.splitlines() if x.endswith(f"id: {step}"))
    indent = " " * line.index("id:")
    return WORKFLOW.replace(line + "\n", f"{line}\n{indent}needs: {needs}\n", 1)


async def offered(client: LanguageClient, tmp_path: Path, text: str) -> list[str]:
    """The labels the server completes at CURSOR in `text`."""
    index = text.index(CURSOR)
    text = text.replace(CURSOR, "")
    line = text.count("\n", 0, index)
    character = index - (text.rfind("\n", 0, index) + 1)
    uri = uri_of(tmp_path, f"needs-{abs(hash(text))}.yaml")
    await published(client, uri, open_document(client, uri, text))
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(line, character))
    )
    assert result is not None
    items = result.items if isinstance(result, types.CompletionList) else result
    return [item.label for item in items]


@in_module_loop
@pytest.mark.parametrize(
    "needs",
    ["[§", "[§]", "§", "\n      - §", "\n    - §", "[b§", "\n      - b§"],
    ids=["flow-open", "flow-closed", "scalar", "block", "block-compact", "partial", "block-word"],
)
async def test_a_main_step_is_offered_neither_itself_nor_later_steps_nor_finally_steps(
    client: LanguageClient, tmp_path: Path, needs: str
) -> None:
    assert await offered(client, tmp_path, with_needs("deploy", needs)) == BEFORE_DEPLOY


@in_module_loop
@pytest.mark.parametrize(
    "needs",
    ["[build, checks, §", "[build, checks, §]", "\n      - build\n      - checks\n      - §"],
    ids=["flow-open", "flow-closed", "block"],
)
async def test_ids_already_listed_are_not_offered_again(
    client: LanguageClient, tmp_path: Path, needs: str
) -> None:
    found = await offered(client, tmp_path, with_needs("deploy", needs))
    assert found == ["unit", "suite", "first", "second", "flaky"]


@in_module_loop
async def test_a_word_being_retyped_in_the_middle_of_the_list_is_offered(
    client: LanguageClient, tmp_path: Path
) -> None:
    text = with_needs("deploy", "[build, ch§, unit]")
    assert await offered(client, tmp_path, text) == ["checks", "suite", "first", "second", "flaky"]


@in_module_loop
@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("second", ["build", "unit", "first"]),  # not its groups, nor what comes after them
        ("first", ["build", "unit"]),  # not its later sibling in a sequential group
        ("unit", ["build", "suite", "first", "second"]),  # its parallel siblings are fine
        ("suite", ["build", "unit"]),  # not its own children
        ("attempt", ["build", "checks", "unit", "suite", "first", "second"]),
        ("build", []),  # everything else comes after it
    ],
)
async def test_in_nested_groups_only_steps_that_do_not_wait_for_the_step(
    client: LanguageClient, tmp_path: Path, step: str, expected: list[str]
) -> None:
    assert await offered(client, tmp_path, with_needs(step, "[§")) == expected
    block = with_needs(step, "\n" + " " * 20 + "- §")
    assert await offered(client, tmp_path, block) == expected


@in_module_loop
@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ("clean", MAIN),  # the main steps, but not the later `finally` step (a cycle)
        ("report", [*MAIN, "clean"]),
    ],
)
async def test_a_finally_step_may_name_main_steps_and_earlier_finally_steps(
    client: LanguageClient, tmp_path: Path, step: str, expected: list[str]
) -> None:
    assert await offered(client, tmp_path, with_needs(step, "[§")) == expected


@in_module_loop
@pytest.mark.parametrize(
    "typing",
    ["    ti", "    retries:", "    onError:", "    matrix:", "    run:"],
    ids=["key", "retries", "onError", "matrix", "run"],
)
async def test_needs_completion_while_another_step_is_half_typed(
    client: LanguageClient, tmp_path: Path, typing: str
) -> None:
    text = with_needs("deploy", "[build, §").replace(
        "    run: echo notify", "    run: echo notify\n" + typing
    )
    if typing == "    run:":
        text = text.replace("    run: echo notify\n", "")
    assert await offered(client, tmp_path, text) == BEFORE_DEPLOY[1:]


# --- against `wfx validate`, over examples -------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHECKED = [
    "production-deployment.yaml",  # `finally` steps
    "flaky-checks.yaml",  # `groupRetries`
    "per-service-pipeline.yaml",  # a group fanned out at run time
    "nested-test-matrix.yaml",  # fan-out in a fanned-out group
    "dependency-pipeline.yaml",
    "microservice-release.yaml",
    "release-with-reusable-deploy.yaml",  # a sub-workflow call
    "dynamic-fan-out.yaml",
]


def _errors(text: str) -> list[tuple[str, str]]:
    return sorted(
        (d.code, d.message)
        for d in api.check_text(text, "wf.yaml").diagnostics
        if d.severity is Severity.ERROR
    )


def _needs_lines(text: str) -> Iterator[tuple[str, list[str], int, str]]:
    """For each step written in block style with an `id`: its id, the ids its `needs`
    lists, the line its `needs` is (or would be) on, and the text with that line removed
    (a `needs` on one line replaced, or none inserted after the `id`)."""
    analysis = analyse(text, "wf.yaml")
    assert analysis.document is not None
    lines = text.splitlines()
    for site in analysis.steps.values():
        id_line = lines[site.range.start.line]
        keys = [f for f in frames(id_line) if f.key is not None]
        if site.path is None or not keys or keys[-1].key != "id":
            continue  # a step written as a flow mapping: no block keys to complete in
        step = analysis.document.data
        for part in site.path:
            step = step[part]
        needs = step.get("needs", [])
        listed = [needs] if isinstance(needs, str) else list(needs)
        if "needs" in step:
            number = analysis.document.positions.key((*site.path, "needs")).line - 1
            if not lines[number].rstrip().endswith(("]", *listed)) or not listed:
                continue  # written on more than one line
            rest = lines[number + 1 :]  # the `needs` line is replaced
        else:
            number = site.range.start.line + 1
            rest = lines[number:]  # a `needs` line is inserted after the `id`
        needs_line = " " * keys[-1].column + "{}"
        yield site.id, listed, number, "\n".join([*lines[:number], needs_line, *rest])


@pytest.mark.parametrize("name", CHECKED)
def test_the_ids_offered_in_needs_are_exactly_those_validate_accepts(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    written = list(analyse(text, name).steps)
    checked = 0
    for step, listed, number, template in _needs_lines(text):
        typing = template.replace("{}", "needs: [" + "".join(f"{n}, " for n in listed), 1)
        line = typing.splitlines()[number]
        found = complete(analyse(typing, "wf.yaml"), Position(number, len(line)))
        offered = [c.label for c in found]
        baseline = _errors(template.replace("{}", f"needs: {listed}".replace("'", ""), 1))
        accepted = [
            candidate
            for candidate in written
            if _errors(template.replace("{}", f"needs: [{', '.join([*listed, candidate])}]", 1))
            == baseline
        ]
        assert offered == accepted, f"{name}: step {step}"
        checked += 1
    assert checked >= 3


FANNED_OUT = """\
wfx: 1
steps:
  - id: svc
    matrix: {service: [api, web]}
    steps:
      - id: build
        run: echo build
      - id: test
        needs: INSIDE
        run: echo test
  - id: after
    needs: OUTSIDE
    run: echo after
"""


@in_module_loop
async def test_a_step_inside_a_fanned_out_group_is_named_only_from_inside_it(
    client: LanguageClient, tmp_path: Path
) -> None:
    inside = FANNED_OUT.replace("INSIDE", "[§").replace("OUTSIDE", "[]")
    assert await offered(client, tmp_path, inside) == ["build"]  # its instance's `build`
    outside = FANNED_OUT.replace("INSIDE", "[]").replace("OUTSIDE", "[§")
    assert await offered(client, tmp_path, outside) == ["svc"]  # `build` is `build[api]`...


@in_module_loop
@pytest.mark.parametrize(
    ("needs", "expected"),
    [
        ("needs: [§", BEFORE_DEPLOY),
        ("needs: [§], run: echo}", BEFORE_DEPLOY),
        ("needs: [build, §", BEFORE_DEPLOY[1:]),
        ("run: echo, needs: [build, ch§, unit]}", ["checks", "suite", "first", "second", "flaky"]),
        ("needs: b§, run: echo}", BEFORE_DEPLOY),
    ],
    ids=["open", "closed", "listed", "middle", "scalar"],
)
async def test_in_a_step_written_as_a_flow_mapping(
    client: LanguageClient, tmp_path: Path, needs: str, expected: list[str]
) -> None:
    flow = "  - {id: deploy, " + needs  # the mapping closed or not yet
    text = WORKFLOW.replace("  - id: deploy\n    run: echo deploy", flow)
    assert await offered(client, tmp_path, text) == expected


@in_module_loop
async def test_in_a_new_step_that_has_no_run_yet(client: LanguageClient, tmp_path: Path) -> None:
    text = WORKFLOW.replace("finally:", "  - id: new\n    needs: [§\nfinally:")
    assert await offered(client, tmp_path, text) == MAIN
    block = WORKFLOW.replace("finally:", "  - id: new\n    needs:\n      - §\nfinally:")
    assert await offered(client, tmp_path, block) == MAIN
