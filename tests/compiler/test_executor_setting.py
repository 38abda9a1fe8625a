"""`executor:` in `defaults`, on groups and on steps: the effective setting with its
provenance, the plan (text, Markdown, JSON) saying where each step runs, `wfx explain`,
and the engine sending each step to the executor it names."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import anyio
import jsonschema

from wfx import api
from wfx.explain import explain
from wfx.render.explain_text import render_explanation
from wfx.render.plan_json import plan_to_dict
from wfx.render.plan_markdown import render_markdown
from wfx.render.plan_text import render_text
from wfx.resources import read_text
from wfx.runtime import events as ev
from wfx.runtime.actions import Attempt
from wfx.runtime.engine import RunOptions, run
from wfx.runtime.executor import AttemptRequest, OutputSink
from wfx.runtime.local import LocalExecutor

WORKFLOW = """\
wfx: 1
defaults: {executor: "dask://scheduler:8786"}
steps:
  - id: build
    run: echo build
  - id: notify
    uses: python:tools:notify
  - id: gpu
    executor: dask:local
    steps:
      - id: train
        cmd: [echo, train]
  - id: here
    executor: local
    run: echo here
"""


def plan_of(tmp_path: Path, text: str = WORKFLOW) -> Any:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return api.plan_file(path)[1]


def test_the_effective_executor_and_where_it_came_from(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    record = plan_to_dict(plan)
    jsonschema.Draft202012Validator(json.loads(read_text("schema", "plan.schema.json"))).validate(
        record
    )
    steps = record["steps"]
    assert {name: steps[name]["executor"] for name in steps} == {
        "build": "dask://scheduler:8786",
        "notify": "local",  # a Python step runs in wfx's own process
        "train": "dask:local",
        "here": "local",
    }
    assert steps["build"]["provenance"]["executor"]["origin"] == "defaults"
    assert steps["train"]["provenance"]["executor"] == {
        "origin": "group",
        "line": 9,
        "group": "gpu",
    }
    assert steps["here"]["provenance"]["executor"]["origin"] == "step"


def test_text_and_markdown_plans_say_where_each_step_runs(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(render_text(plan))
    text = console.export_text()
    assert "runs on: dask://scheduler:8786 (from defaults (line 2); --executor replaces it)" in text
    assert "runs on: local (a Python step runs in wfx's own process)" in text
    assert "runs on: dask:local (from group `gpu` (line 9))" in text
    markdown = render_markdown(plan)
    assert "- runs on: local \\(from step \\(line 14\\)\\)" in markdown


def test_a_plan_without_executors_says_nothing_of_them(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "wfx: 1\nsteps:\n  - {id: a, run: echo}\n")
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(render_text(plan))
    assert "runs on" not in console.export_text()
    assert plan_to_dict(plan)["steps"]["a"]["executor"] is None


def test_explain_shows_the_executor_setting(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    graph, plan = api.plan_file(path)
    text = render_explanation(explain(graph, plan, "train"))
    assert "executor = dask:local  (from group `gpu` (line 9))" in text
    python = render_explanation(explain(graph, plan, "notify"))
    assert "executor = local  (a Python step runs in wfx's own process)" in python


class Named(LocalExecutor):
    """A real local executor that answers to another name and says so. It starts attempts
    at once (`begin`), so its `run_attempt` is `begin` and then `finish`, as the executor
    port requires of such an executor (wfx.runtime.executor.StartsAtOnce): the engine
    calls either."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.keys: list[str] = []

    def begin(self, request: AttemptRequest, on_output: OutputSink) -> Any:
        self.keys.append(request.key)
        begun = super().begin(request, on_output)
        return self._named(begun) if isinstance(begun, Attempt) else _Named(self, begun)

    def ready(self, request: AttemptRequest, on_output: OutputSink) -> Any:
        made = super().ready(request, on_output)
        return self._named(made) if isinstance(made, Attempt) else _NamedReady(self, request, made)

    def _named(self, result: Attempt) -> Attempt:
        return Attempt(result.status, result.outputs, result.exit_code, where=self.name)


class _NamedReady:
    """An attempt made ready to start (the next step of a chain), named when it starts."""

    def __init__(self, executor: Named, request: AttemptRequest, made: Any) -> None:
        self.executor, self.request, self.made = executor, request, made

    def start(self) -> Any:
        self.executor.keys.append(self.request.key)
        begun = self.made.start()
        if isinstance(begun, Attempt):
            return self.executor._named(begun)
        return _Named(self.executor, begun)


class _Named:
    def __init__(self, executor: Named, begun: Any) -> None:
        self.executor, self.begun = executor, begun

    async def finish(self) -> Attempt:
        return self.executor._named(await self.begun.finish())

    def when_succeeded(self, callback: Any) -> None:
        self.begun.when_succeeded(callback)


def test_the_engine_runs_each_step_on_the_executor_it_names(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    graph = api.compile_file(path).graph
    scheduler, cluster = Named("dask://scheduler:8786"), Named("dask:local")
    events: list[ev.Event] = []

    async def main() -> Any:
        for executor in (scheduler, cluster):
            await executor.start()
        options = RunOptions(
            actions={"python:tools:notify": lambda: None},
            events=events.append,
            environ={"PATH": os.environ["PATH"]},
            workspace=tmp_path / "ws",
            executors={scheduler.name: scheduler, cluster.name: cluster},
        )
        try:
            return await run(graph, options=options)
        finally:
            for executor in (scheduler, cluster):
                await executor.close()

    result = anyio.run(main)
    assert result.status is ev.RunStatus.SUCCESS
    where = {e.step: e.where for e in events if isinstance(e, ev.StepFinished)}
    assert where == {
        "build": "dask://scheduler:8786",
        "notify": "local",
        "train": "dask:local",
        "here": "local",
    }
    assert [k.split(":")[-2] for k in scheduler.keys] == ["build"]
    assert [k.split(":")[-2] for k in cluster.keys] == ["train"]
