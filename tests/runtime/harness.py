"""Helpers for engine tests: compile YAML text, run it for real, keep every event."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run


@dataclass
class Recorded:
    """A finished run and the events it emitted, with small queries for assertions."""

    result: RunResult
    events: list[ev.Event] = field(default_factory=list)

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def status(self, step: str) -> str:
        return self.result.steps[step].status.value  # type: ignore[index]

    def started(self) -> list[str]:
        return [e.step for e in self.of(ev.StepStarted)]

    def output(self, step: str) -> list[str]:
        return [e.text for e in self.of(ev.StepOutput) if e.step == step and not e.rollback]

    def rolled_back(self) -> list[str]:
        return [e.step for e in self.of(ev.RollbackStarted)]


def run_text(
    tmp_path: Path,
    text: str,
    inputs: Mapping[str, Any] | None = None,
    actions: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    sink: ev.EventSink | None = None,
) -> Recorded:
    """Write `text` as a workflow in `tmp_path`, compile and run it; return what happened.
    `sink` (a journal, say) gets every event too, for a run with the id `r`."""
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    graph = compile_file(path, inputs).graph
    recorded: list[ev.Event] = []
    options = RunOptions(
        actions=actions or {},
        events=recorded.append if sink is None else ev.Sinks([recorded.append, sink]),
        environ=environ,
        workspace=tmp_path / "workspace",
        seed=1,
        run_id=None if sink is None else "r",
    )

    async def main() -> RunResult:
        return await run(graph, options=options)

    result = anyio.run(main)
    return Recorded(result, recorded)


def most_at_once(markers: Path, names: Iterable[str]) -> int:
    """The most of `names` running at once, from the `NAME.start` and `NAME.end` files in
    `markers` whose last word is a `date +%s%N` time."""
    moments = []
    for name in names:
        moments.append((int((markers / f"{name}.start").read_text().split()[-1]), 1))
        moments.append((int((markers / f"{name}.end").read_text().split()[-1]), -1))
    running = most = 0
    for _, change in sorted(moments):
        running += change
        most = max(most, running)
    return most
