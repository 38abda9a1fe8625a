"""Which executor runs each step of a run. A step's own `executor:` (on the step or an
enclosing group) wins; then the run's executor (`wfx run --executor`, `WFX_EXECUTOR`);
then the workflow's `defaults.executor`; else this machine. `uses: python:` steps run in
wfx's own process whatever is chosen."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

from wfx.graph import ExecutionGraph, Node, Origin, Setting
from wfx.model import Action, StepKind
from wfx.runtime.actions import Attempt
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, Executor, OutputSink

#: the name of this machine's executor
LOCAL = "local"


def named_by(setting: Setting, run_has_executor: bool) -> str | None:
    """The executor name a step's effective `executor` setting decides, or None when the
    run's executor (or the local one) runs the step."""
    if setting.value is None:
        return None
    if setting.origin is Origin.DEFAULTS and run_has_executor:
        return None
    return str(setting.value)


def names_needed(graph: ExecutionGraph, run_has_executor: bool) -> list[str]:
    """Every executor name the process steps of `graph` run on, besides `local`."""
    found: dict[str, None] = {}
    for node in _process_steps(graph):
        assert node.settings is not None
        name = named_by(node.settings.executor, run_has_executor)
        if name is not None and name != LOCAL:
            found[name] = None
    return list(found)


def _process_steps(graph: ExecutionGraph) -> Iterator[Node]:
    """The process steps, a dynamic fan-out's template standing for its instances."""
    for node in graph.nodes:
        template = node.fan_out is not None and node.fan_out.dynamic and node.is_step is False
        settings = node.fan_out.settings if template and node.fan_out else node.settings
        if (node.is_step or template) and node.step.kind is not StepKind.USES and settings:
            yield node if node.is_step else dataclasses.replace(node, settings=settings)


class Executors:
    """The executors of one run, by the names steps give them."""

    def __init__(
        self,
        local: Executor,
        default: Executor | None = None,
        named: Mapping[str, Executor] | None = None,
        python: Executor | None = None,
    ) -> None:
        self.local = local
        self.python = python
        """Where `uses: python:` attempts go; None: called in wfx's own process."""
        self.run_has_executor = default is not None
        # `--executor local` is this run's own local executor (its scratch, its env)
        self.default = local if default is None or default.name == LOCAL else default
        self.named = {**(named or {}), LOCAL: local}

    def of(self, node: Node) -> Executor:
        """The executor of `node`'s process attempts (and of its rollback)."""
        settings = node.settings
        if settings is None:
            return self.default
        name = named_by(settings.executor, self.run_has_executor)
        if name is None:
            return self.default
        return self.named.get(name) or _Unopened(name)

    def of_action(self, node: Node, action: Action) -> Executor | None:
        """The executor of one of `node`'s actions (its step's or its rollback's)."""
        return self.python if action.kind is StepKind.USES else self.of(node)

    def all(self) -> list[Executor]:
        """Every executor of the run, each once."""
        unique: dict[int, Executor] = {}
        for executor in (self.local, self.default, *self.named.values()):
            unique.setdefault(id(executor), executor)
        return list(unique.values())

    def kill_all(self) -> None:
        """Kill every process of every running attempt, on every executor (a second Ctrl-C)."""
        for executor in self.all():
            executor.kill_all()


class _Unopened:
    """A step names an executor the caller did not open: each attempt fails saying so."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def capacity(self) -> int | None:
        return None

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        reason = f"executor `{self.name}` was not opened for this run (RunOptions.executors)"
        return Attempt(StepStatus.FAILED, reason=reason)

    async def cancel(self, key: str, grace: float) -> None:
        """Nothing runs."""

    def kill_all(self) -> None:
        """Nothing runs."""

    def where(self, key: str) -> str | None:
        return None
