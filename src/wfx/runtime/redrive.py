"""Redrives and parts of a workflow, on the journal's side: which earlier results a new run
may keep (and where they come from), and how a run starts from a Selection
(`wfx.selection`) — kept steps restored, steps not selected skipped (docs/durability.md,
"Redrive").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from typing import Any

from wfx.graph import Section
from wfx.model import StepId
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import Journal, RunRecord, StepRecord, owner_alive
from wfx.runtime.state import RunState
from wfx.selection import NOT_SELECTED, Disposition, Selection

#: an earlier result a new run may keep: the journaled step, its `kept_from` set to the
#: run that ran it
Kept = Mapping[StepId, StepRecord]


def kept_record(record: StepRecord, run_id: str) -> StepRecord:
    """`record` of run `run_id`, naming the run that ran it (a result kept in `run_id`
    still names the run it was kept from)."""
    return dataclasses.replace(record, kept_from=record.kept_from or run_id)


def succeeded(journal: Journal, run_id: str) -> dict[StepId, StepRecord]:
    """The steps of run `run_id` a redrive keeps: those that succeeded and whose effects no
    compensation undid, tried to undo or was undoing (those run again, as on resume)."""
    rollbacks = journal.rollbacks(run_id)
    return {
        StepId(step): kept_record(record, run_id)
        for step, record in journal.steps(run_id).items()
        if record.status is StepStatus.SUCCESS and step not in rollbacks
    }


def why_again(journal: Journal, run_id: str) -> dict[StepId, str]:
    """For each journaled step of `run_id` that did not succeed, how it ended there (what
    the plan of a redrive says of it)."""
    rollbacks = journal.rollbacks(run_id)
    found: dict[StepId, str] = {}
    for step, record in journal.steps(run_id).items():
        if step in rollbacks:
            found[StepId(step)] = f"compensated in run {run_id}: its effects were undone"
        elif record.status is not StepStatus.SUCCESS:
            found[StepId(step)] = f"{_ended(record)} in run {run_id}"
    return found


def _ended(record: StepRecord) -> str:
    if record.retrying or record.status is StepStatus.RUNNING:
        return "was running when the run stopped"
    return str(record.status.value)


def latest_results(journal: Journal, record_file: str, inputs: Mapping[str, Any]) -> Kept:
    """For each step, its result in the newest run of `record_file` with the same `inputs`
    where it succeeded and was not compensated (what `--from` keeps); runs a live process
    still owns are left out."""
    found: dict[StepId, StepRecord] = {}
    for run in journal.runs(record_file):
        if not _usable(run, inputs):
            continue
        for step, record in succeeded(journal, run.id).items():
            found.setdefault(step, record)
    return found


def _usable(run: RunRecord, inputs: Mapping[str, Any]) -> bool:
    if run.finished is None and owner_alive(run.owner_pid, run.owner_start):
        return False
    return _same(run.inputs, inputs)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def sources(kept: Kept) -> dict[StepId, str]:
    """Each kept result's run, as `wfx.selection` takes it."""
    return {step: record.kept_from or "" for step, record in kept.items()}


def apply(run: RunState, selection: Selection, kept: Kept) -> None:
    """Start `run` from `selection`: kept steps take their journaled result (and count in
    the order of completions), steps not selected are skipped; `finally` always runs."""
    for node in run.graph.steps(Section.MAIN):
        choice = selection.choices.get(node.id)
        if choice is None or choice.disposition is Disposition.RUN:
            continue
        if choice.disposition is Disposition.SKIP:
            run.not_selected.add(node.index)
            continue
        record = kept[node.id]
        run.restored[node.index] = record
        run.kept[node.index] = record.kept_from or ""
        run.completions = max(run.completions, record.completed or 0)


def not_selected(journal: Journal, run_id: str) -> list[StepId]:
    """The steps run `run_id` skipped because it ran only part of the workflow."""
    return [
        StepId(step)
        for step, record in journal.steps(run_id).items()
        if record.status is StepStatus.SKIPPED and record.reason == NOT_SELECTED
    ]


def newest_run(journal: Journal, ids: Collection[str]) -> RunRecord | None:
    """The newest of the runs `ids` (None when the journal has none of them)."""
    found = [r for r in (journal.run(i) for i in ids) if r is not None]
    return max(found, key=lambda r: r.started, default=None)
