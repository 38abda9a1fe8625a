"""The end-of-run summary: collected from events, drawn as a table and written as Markdown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Console

from wfx.model import StepId
from wfx.render.summary import (
    RunLine,
    StepLine,
    run_headline,
    summary_from_events,
    summary_markdown,
    summary_table,
)
from wfx.runtime.events import (
    Event,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFailed,
    StepOutput,
    StepSkipped,
    StepStarted,
    StepStatus,
    StepSucceeded,
)

RUN = "run-1"
T0 = 1_000.0


def s(name: str) -> StepId:
    return StepId(name)


def story() -> list[Event]:
    """build succeeds then is rolled back, test is skipped, deploy fails, cleanup never runs."""
    return [
        Notice(RUN, T0, "secret `TOKEN` is not set"),
        RunStarted(
            RUN, T0, "deploy", "wf.yaml", (s("build"), s("test"), s("deploy")), (s("cleanup"),)
        ),
        StepStarted(RUN, T0, s("build"), 1),
        StepOutput(RUN, T0, s("build"), "stdout", "ok"),
        StepSucceeded(RUN, T0, s("build"), StepStatus.SUCCESS, 1, 1.234),
        StepSkipped(RUN, T0, s("test"), StepStatus.SKIPPED, reason="its condition is false"),
        StepStarted(RUN, T0, s("deploy"), 1),
        StepFailed(RUN, T0, s("deploy"), StepStatus.FAILED, 3, 7.56, 1, reason="exit code 1"),
        RollbackStarted(RUN, T0, s("build")),
        RollbackFinished(RUN, T0, s("build"), StepStatus.ROLLED_BACK, 0.4),
        RunFinished(RUN, T0, RunStatus.FAILED, 9.87, reason="step `deploy` failed: exit code 1"),
    ]


def table_text(steps: object) -> str:
    console = Console(width=80, color_system=None, record=True)
    console.print(summary_table(steps))  # type: ignore[arg-type]
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def test_summary_from_events_collects_the_run_and_its_steps_in_plan_order() -> None:
    run, steps = summary_from_events(story())
    assert run == RunLine(
        "deploy", RUN, RunStatus.FAILED, 9.87, "step `deploy` failed: exit code 1"
    )
    assert steps == [
        StepLine("build", StepStatus.ROLLED_BACK, 1, 1.234),
        StepLine("test", StepStatus.SKIPPED, 0, 0.0, "its condition is false"),
        StepLine("deploy", StepStatus.FAILED, 3, 7.56, "exit code 1"),
        StepLine("cleanup", StepStatus.PENDING),
    ]


def test_a_run_that_never_finished_says_so() -> None:
    run, steps = summary_from_events(story()[:3])
    assert run_headline(run) == "deploy — did not finish"
    assert steps[0] == StepLine("build", StepStatus.RUNNING, 1)


def test_summary_table_has_a_reason_column_when_a_step_did_not_succeed() -> None:
    _, steps = summary_from_events(story())
    assert table_text(steps) == (
        "step      status         attempts   duration   reason\n"
        "─────────────────────────────────────────────────────────────────────\n"
        "build     ↩ rolledBack          1       1.2s\n"
        "test      ⊘ skipped             -          -   its condition is false\n"
        "deploy    ✗ failed              3       7.6s   exit code 1\n"
        "cleanup   · pending             -          -\n"
    )


def test_summary_table_of_a_clean_run_has_no_reason_column() -> None:
    steps = [
        StepLine("build", StepStatus.SUCCESS, 1, 0.25),
        StepLine("ship", StepStatus.SUCCESS, 2, 75),
    ]
    assert table_text(steps) == (
        "step    status      attempts   duration\n"
        "───────────────────────────────────────\n"
        "build   ✓ success          1      250ms\n"
        "ship    ✓ success          2      1m15s\n"
    )


def test_summary_table_shows_instance_ids_and_reasons_as_written_not_as_markup() -> None:
    steps = [
        StepLine("build[api,3.12]", StepStatus.SUCCESS, 1, 0.25),
        StepLine("fetch[0]", StepStatus.FAILED, 1, 0.5, "no [bold]such[/bold] file"),
    ]
    lines = table_text(steps).splitlines()
    assert lines[2].startswith("build[api,3.12]   ✓ success")
    assert lines[3].startswith("fetch[0]")
    assert lines[3].endswith("no [bold]such[/bold] file")


@dataclass(frozen=True)
class FakeStepResult:
    id: str
    status: StepStatus
    attempts: int
    duration: float
    outputs: Mapping[str, object] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class FakeRunResult:
    steps: Mapping[str, FakeStepResult]


def test_summary_table_takes_finished_events_or_a_run_result_alike() -> None:
    event = StepFailed(RUN, T0, s("a"), StepStatus.FAILED, 1, 2.0, 1, reason="exit code 1")
    result = FakeRunResult(
        {"a": FakeStepResult("a", StepStatus.FAILED, 1, 2.0, reason="exit code 1")}
    )
    assert (
        table_text([event])
        == table_text(result)
        == table_text([StepLine("a", StepStatus.FAILED, 1, 2.0, "exit code 1")])
    )
    assert "a      ✗ failed          1         2s   exit code 1" in table_text(result)


def test_summary_markdown_has_a_headline_the_reason_and_a_table() -> None:
    run, steps = summary_from_events(story())
    assert summary_markdown(run, steps) == (
        "### wfx run: deploy — failed in 9.9s\n"
        "\n"
        "step `deploy` failed: exit code 1\n"
        "\n"
        "| step | status | attempts | duration | reason |\n"
        "| --- | --- | ---: | ---: | --- |\n"
        "| build | ↩ rolledBack | 1 | 1.2s |  |\n"
        "| test | ⊘ skipped | - | - | its condition is false |\n"
        "| deploy | ✗ failed | 3 | 7.6s | exit code 1 |\n"
        "| cleanup | · pending | - | - |  |\n"
        "\n"
    )


def test_summary_markdown_of_a_success_and_hostile_text_stays_one_table() -> None:
    run = RunLine("a|b", RUN, RunStatus.SUCCESS, 3.4)
    steps = [StepLine("x", StepStatus.FAILED, 1, 1, "bad | pipe\n<script>")]
    assert summary_markdown(run, steps).splitlines() == [
        "### wfx run: a\\|b — success in 3.4s",
        "",
        "| step | status | attempts | duration | reason |",
        "| --- | --- | ---: | ---: | --- |",
        "| x | ✗ failed | 1 | 1s | bad \\| pipe &lt;script> |",
        "",
    ]


def test_appended_markdown_summaries_stay_apart() -> None:
    run = RunLine("w", RUN, RunStatus.SUCCESS, 1)
    steps = [StepLine("a", StepStatus.SUCCESS, 1, 1)]
    text = summary_markdown(run, steps) + summary_markdown(run, steps)
    assert "|\n\n### wfx run: w" in text
