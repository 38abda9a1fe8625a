"""Resume seeding: how a run that picks up a journaled run starts, and where each of its
steps goes on (docs/durability.md)."""

from __future__ import annotations

import re
import time

import anyio

from wfx.fanout import PLACEHOLDER, base_id
from wfx.graph import EffectiveSettings, Node, NodeKind, Section
from wfx.model import StepId
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import ResumeState, StepRecord
from wfx.runtime.state import RunState, retrying_group, tolerates
from wfx.selection import NOT_SELECTED

#: journaled statuses a resumed run keeps as they are (everything else runs again)
KEPT = frozenset(
    {
        StepStatus.SUCCESS,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.ROLLED_BACK,
        StepStatus.ROLLBACK_FAILED,
    }
)

#: journaled statuses of steps whose effects a compensation undid (or tried to)
COMPENSATED = frozenset({StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED})


def seed(run: RunState, resume: ResumeState) -> None:
    """Seed the run from its journal: finished steps stay finished, in-flight ones run
    again with their attempt count. A run that is still failing keeps owing the
    compensations it had not finished; one that is not (it was interrupted) runs again
    every step a compensation undid or was undoing, so it never ends in success over
    undone work (docs/durability.md, "Resuming after compensation"). The instances of a
    dynamic fan-out are seeded the same way when the run creates them (`seed_node`)."""
    run.resume = resume
    for group_id in run.retried_groups:
        if group_id in resume.group_attempts:
            run.group_attempts[group_id] = resume.group_attempts[group_id]
    nodes: dict[str, Node] = {n.id: n for n in run.steps()}
    failed = [
        step_id
        for step_id, record in resume.steps.items()
        if record.status.is_failure
        and not _tolerated(run, nodes.get(step_id), step_id, record.exit_code)
        and not _group_runs_again(run, nodes.get(step_id), record)
    ]
    run.failing = bool(failed)
    for node in nodes.values():
        seed_node(run, node)
    if failed:
        run.reason = resume.reason or f"step `{failed[0]}` failed"


def seed_node(run: RunState, node: Node) -> None:
    """Where one step of a resumed run goes on: kept, run again, or resumed mid-attempts."""
    resume = run.resume
    record = None if resume is None else resume.steps.get(node.id)
    if resume is None or record is None:
        return
    if record.status is StepStatus.SKIPPED and record.reason == NOT_SELECTED:
        run.not_selected.add(node.index)
        return
    if record.kept_from is not None and record.status is StepStatus.SUCCESS:
        run.kept[node.index] = record.kept_from
    rollback = resume.rollbacks.get(node.id)
    touched = record.status in COMPENSATED or rollback is StepStatus.RUNNING
    if touched and not run.failing:
        _run_again(run, node, record)
    elif record.status is StepStatus.PENDING and record.attempts:
        _run_again(run, node, record)  # its group runs again: new attempt numbers
    elif record.status in KEPT:
        run.restored[node.index] = record
        run.completions = max(run.completions, record.completed or 0)
        undone = rollback is not None and rollback is not StepStatus.RUNNING
        if undone and record.status in COMPENSATED:
            run.rollbacks_done.add(node.id)
    elif record.attempts:
        run.resumed[node.index] = record


def _tolerated(run: RunState, node: Node | None, step_id: str, exit_code: int | None) -> bool:
    """Whether a journaled failure lets the run go on: the step's `onError`/`continueOn`, or
    for an instance of a dynamic fan-out (no node yet), its template's."""
    if node is not None:
        return tolerates(node, exit_code)
    template = run.graph.ids.get(StepId(base_id(step_id)))
    info = None if template is None else run.graph.nodes[template].fan_out
    settings = None if info is None else info.settings
    if settings is None:
        settings = _body_settings(run, step_id)
    return settings is not None and settings.tolerates(exit_code)


def _body_settings(run: RunState, step_id: str) -> EffectiveSettings | None:
    """The settings of the step of a dynamic group's body that `step_id` is a copy of
    (`test[3]` of the body's `test[*]`), if any."""
    for start in run.graph.nodes:
        info = start.fan_out
        if info is None or not info.body or start.kind is not NodeKind.GROUP_START:
            continue
        for node in info.body:
            pattern = re.escape(node.id).replace(re.escape(f"[{PLACEHOLDER}]"), r"\[\d+\]")
            if node.is_step and re.fullmatch(pattern, step_id):
                return node.settings
    return None


def _group_runs_again(run: RunState, node: Node | None, record: StepRecord) -> bool:
    """Whether a journaled failure is one a group with `groupRetries` answers by running
    again (so the run is not failing)."""
    if node is None:
        return False
    return retrying_group(run, node, record.status, record.exit_code) is not None


def _run_again(run: RunState, node: Node, record: StepRecord) -> None:
    """Run a step the journal says finished once more, as new attempts."""
    run.resumed[node.index] = record
    run.again.add(node.index)


def rerun_finally(run: RunState) -> None:
    """A resumed run that did main work again runs every `finally` step again: their
    earlier run saw a run that has since gone on."""
    if run.restored and _main_ran_again(run):
        for node in run.steps(Section.FINALLY):
            record = run.restored.pop(node.index, None)
            if record is not None:
                _run_again(run, node, record)


def _main_ran_again(run: RunState) -> bool:
    """Whether this resumed run started a main step (so `finally` must run again)."""
    return any(
        n.index not in run.restored and run.states[n.index].started is not None
        for n in run.steps(Section.MAIN)
    )


async def resume_point(run: RunState, node: Node) -> tuple[int, int]:
    """The attempt to start with, and how many attempts of earlier runs of the step
    are done with (its retry budget counts from there): (1, 0), or where a resumed step
    left off. A crash during an attempt runs that attempt again (same number, same
    idempotency key); a crash during a backoff wait keeps the wait's deadline; a step
    whose effects were compensated runs again with a fresh budget and new attempt
    numbers, so its idempotency key is not the one of the work that was undone."""
    record = run.resumed.pop(node.index, None)
    if record is None:
        return 1, 0
    if node.index in run.again:
        return record.attempts + 1, record.attempts
    if record.retrying:
        if record.retry_at is not None:
            await anyio.sleep(max(0.0, record.retry_at - time.time()))
        return record.attempts + 1, 0
    return max(1, record.attempts), 0
