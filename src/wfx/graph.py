"""The execution graph: what runs, after what, with which settings. Pure data, no I/O.

Leaf steps (run, cmd, uses) are nodes. A group becomes two zero-cost barrier
nodes, a *start* that waits for the group's own dependencies and an *end* that
waits for all of its children, so that "B needs group A" or "a sequential group
after a parallel one" costs a number of edges linear in the number of steps.
Nodes are stored in a topological order, so every dependency of node ``i`` has a
smaller index.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wfx.diagnostics import Span
from wfx.fanout import Instance, template_name
from wfx.model import Action, Condition, FanOutKind, OnError, Step, StepId, Workflow


class Origin(enum.Enum):
    """Where an effective setting came from."""

    STEP = "step"
    GROUP = "group"
    DEFAULTS = "defaults"
    WORKFLOW = "workflow"
    BUILTIN = "built-in"


@dataclass(frozen=True, slots=True)
class Setting:
    """An effective setting's value and its provenance (`source` names the group)."""

    value: Any
    origin: Origin
    span: Span | None = None
    source: str | None = None

    def describe(self) -> str:
        """Human words for the provenance, e.g. "group `checks` (line 12)"."""
        where = f" (line {self.span.line})" if self.span else ""
        if self.origin is Origin.GROUP:
            return f"group `{self.source}`{where}"
        return f"{self.origin.value}{where}"


#: the built-in `executor` setting: none named, the step runs on the run's executor
NO_EXECUTOR = Setting(None, Origin.BUILTIN)
#: the built-in `resources` setting: the step holds none
NO_RESOURCES = Setting(None, Origin.BUILTIN)
#: the built-in `continueOn` setting: no exit code lets the run go on by itself
NO_CONTINUE_ON = Setting(None, Origin.BUILTIN)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """A resolved retry policy: attempts counts the first try; delays are the real waits."""

    attempts: int
    delay: float
    backoff: str
    factor: float
    max_delay: float
    jitter: float
    delays: tuple[float, ...]
    on: tuple[int | str, ...] | None = None
    """Failures worth retrying: exit codes and `timeout`; None: any failure (`on: any`)."""
    except_: tuple[int, ...] = ()
    """Exit codes never retried (`except`)."""
    deadline: float | None = None
    """Seconds all attempts and the waits between them may take together (`deadline`)."""

    def retries_within_deadline(self) -> int:
        """At most how many retries can start before the deadline, were every attempt to fail
        at once: a wait that would end after the deadline is not waited (all of them
        without a deadline)."""
        spent = 0.0
        for count, wait in enumerate(self.delays):
            spent += wait
            if self.deadline is not None and spent > self.deadline:
                return count
        return len(self.delays)

    def retries_on(self, status_timeout: bool, exit_code: int | None) -> bool:
        """Whether a failed attempt (a timeout, or its exit code) is worth another attempt."""
        if not status_timeout and exit_code is not None and exit_code in self.except_:
            return False
        if self.on is None:
            return True
        if status_timeout:
            return "timeout" in self.on
        return exit_code is not None and exit_code in self.on


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Every setting a leaf step runs with, each with where it came from."""

    timeout: Setting
    retry: Setting
    kill_grace: Setting
    on_error: Setting
    shell: Setting
    working_directory: Setting
    env: Mapping[str, Setting]
    executor: Setting = NO_EXECUTOR
    """Where the step's process runs (a name for `open_executor`); None: the run's."""
    resources: Setting = NO_RESOURCES
    """Abstract resources the step's process holds (a Mapping[str, float]); None: none."""
    continue_on: Setting = NO_CONTINUE_ON
    """Exit codes (a tuple of ints) whose final failure the run tolerates; None: none."""

    def tolerates(self, exit_code: int | None) -> bool:
        """Whether a final failure with `exit_code` lets the run go on (`onError: continue`,
        or an exit code `continueOn` lists)."""
        if self.on_error.value is OnError.CONTINUE:
            return True
        codes = self.continue_on.value
        return codes is not None and exit_code is not None and exit_code in codes

    def named(self) -> dict[str, Setting]:
        """The scalar settings by their YAML key name (env excluded)."""
        return {
            "timeout": self.timeout,
            "retries": self.retry,
            "killGrace": self.kill_grace,
            "onError": self.on_error,
            "continueOn": self.continue_on,
            "shell": self.shell,
            "workingDirectory": self.working_directory,
            "executor": self.executor,
            "resources": self.resources,
        }


@dataclass(frozen=True, slots=True)
class FanOutInfo:
    """A fan-out's facts, carried by its two group barriers.

    A static fan-out lists its `instances` (each a real node, or an instance group); a
    dynamic one (`dynamic`) has none until the run knows its list: then `source` is the
    `forEach` expression, `template` the step and `settings` its settings, which every
    instance the run creates shares. `max_parallel` None: no cap of its own.
    """

    kind: FanOutKind
    dynamic: bool
    instances: tuple[StepId, ...]
    max_parallel: int | None
    fail_fast: bool
    limit: int
    source: str = ""
    settings: EffectiveSettings | None = None
    template: Step | None = None
    """The step every instance of a dynamic fan-out runs (its condition included)."""
    body: tuple[Node, ...] = ()
    """A dynamic fan-out of a group: the nodes of one instance, compiled once. Their ids,
    groups and instance key hold the placeholder key (`test[\x00]`, see
    `wfx.fanout.PLACEHOLDER`); `index` is the position in `body` and `deps` positions in
    it, -1 standing for the fan-out's start. The run copies them per item."""

    def under(self, prefix: str, groups: tuple[StepId, ...] = ()) -> FanOutInfo:
        """The fan-out seen from the workflow that calls its own (ids under `prefix`,
        inside the caller's `groups`)."""
        instances = tuple(StepId(prefix + i) for i in self.instances)
        body = tuple(
            dataclasses.replace(
                node,
                id=StepId(prefix + node.id),
                groups=(*groups, *(StepId(prefix + g) for g in node.groups)),
                instance=None if node.instance is None else node.instance.under(prefix),
                fan_out=None if node.fan_out is None else node.fan_out.under(prefix, groups),
                scope=prefix + node.scope,
            )
            for node in self.body
        )
        return dataclasses.replace(self, instances=instances, body=body)

    def template_steps(self) -> tuple[StepId, ...]:
        """The leaf steps of a dynamic group's body, as plans name them (`test[*]`)."""
        return tuple(StepId(template_name(n.id)) for n in self.body if n.is_step)


class NodeKind(enum.Enum):
    """A leaf step that runs, or one of a group's two barriers."""

    STEP = "step"
    GROUP_START = "group-start"
    GROUP_END = "group-end"


class Section(enum.Enum):
    """The main steps, or the `finally` steps that run after them whatever happened."""

    MAIN = "main"
    FINALLY = "finally"


@dataclass(frozen=True, slots=True)
class Node:
    """One vertex of the graph; `deps` are indices of the nodes it waits for."""

    index: int
    id: StepId
    kind: NodeKind
    step: Step
    section: Section
    deps: tuple[int, ...]
    groups: tuple[StepId, ...]
    settings: EffectiveSettings | None = None
    group_retry: RetrySchedule | None = None
    """A group barrier's `groupRetries` schedule (None: the group is not re-run)."""
    instance: Instance | None = None
    """The fan-out instance this node belongs to (its `matrix`/`item`/`index`)."""
    fan_out: FanOutInfo | None = None
    """On the two barriers of a fan-out: its instances, cap and template."""
    scope: str = ""
    """The sub-workflow call the node belongs to, as its id prefix (`deploy/`, nested
    `a/b/`); "" for the top workflow. Its expressions read that call's contexts."""
    cleanup: bool = False
    """A sub-workflow's `finally` step: it runs when the sub-workflow's own steps are done,
    whatever happened to them, before the calling step ends."""

    @property
    def is_step(self) -> bool:
        """True for a leaf step (something that runs), False for a group barrier."""
        return self.kind is NodeKind.STEP

    @property
    def action(self) -> Action | None:
        """What a leaf step executes."""
        return self.step.action

    @property
    def condition(self) -> Condition | None:
        """The step's own condition (a group's condition sits on its start barrier)."""
        return self.step.condition

    @property
    def span(self) -> Span:
        """Where the step is written."""
        return self.step.span


@dataclass(frozen=True, slots=True)
class CallScope:
    """A sub-workflow call compiled into the graph: the calling step (`id`, whose barriers
    are the group around the child's nodes), the child workflow, the scope the caller
    itself sits in, and the child's inputs as far as they are known before the run
    (`runtime_inputs` names those only the run can give)."""

    id: StepId
    scope: str
    step: Step
    workflow: Workflow
    inputs: Mapping[str, Any]
    runtime_inputs: frozenset[str] = frozenset()
    env: Mapping[str, Setting] = field(default_factory=dict)
    """The child's own variables (its `envFile` and `env`): what `env` holds in its
    `outputs`."""

    @property
    def prefix(self) -> str:
        """The id prefix of the child's nodes, e.g. `deploy/`."""
        return f"{self.id}/"


@dataclass(frozen=True)
class ExecutionGraph:
    """A compiled workflow: nodes in topological order plus lookup tables."""

    workflow: Workflow
    nodes: tuple[Node, ...]
    ids: Mapping[StepId, int]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    calls: Mapping[str, CallScope] = field(default_factory=dict)
    """Each sub-workflow call by the prefix of its nodes' ids (`deploy/`)."""
    env: Mapping[str, Setting] = field(default_factory=dict)
    """The workflow's own variables (`--env-file`, `envFile`, `env`, later winning): what
    `env` holds in its `outputs`."""

    def steps(self, section: Section | None = None) -> Iterator[Node]:
        """The leaf nodes (optionally of one section) in topological order."""
        for node in self.nodes:
            if node.is_step and (section is None or node.section is section):
                yield node

    def node(self, step_id: str) -> Node:
        """The node of a leaf step, or the end barrier of a group."""
        return self.nodes[self.ids[StepId(step_id)]]

    def step_dependencies(self, index: int) -> tuple[int, ...]:
        """The leaf steps node `index` waits for directly (looking through barriers; a
        dynamic fan-out's start stands for its instances)."""
        found: dict[int, None] = {}
        seen: set[int] = set()
        stack = list(self.nodes[index].deps)
        while stack:
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if self.nodes[dep].is_step or is_template(self.nodes[dep]):
                found[dep] = None
            else:
                stack.extend(self.nodes[dep].deps)
        return tuple(sorted(found))

    def stages(self, section: Section = Section.MAIN) -> list[list[StepId]]:
        """Kahn levels of the leaf steps: the sets that may run together, in order. A
        dynamic fan-out stands in its stage as its template, `id[*]` (a group's: the steps
        of its body, `test[*]`, at their levels inside it)."""
        level = self.levels()
        by_level: dict[int, list[StepId]] = {}
        for node in self.nodes:
            if node.section is not section:
                continue
            if node.is_step:
                by_level.setdefault(level[node.index], []).append(node.id)
            elif is_template(node):
                for offset, step_id in template_levels(node):
                    by_level.setdefault(level[node.index] + offset, []).append(step_id)
        return [by_level[k] for k in sorted(by_level)]

    def templates(self) -> dict[StepId, Node]:
        """The start barrier of each dynamic fan-out of a step, by its template's id
        `id[*]`; each step of a dynamic group's body, by its id (`test[*]`)."""
        found: dict[StepId, Node] = {}
        for node in self.nodes:
            if not is_template(node):
                continue
            assert node.fan_out is not None
            if not node.fan_out.body:
                found[template_id(node.id)] = node
            for member in node.fan_out.body:
                if member.is_step:
                    shown = StepId(template_name(member.id))
                    found[shown] = dataclasses.replace(member, id=shown)
        return found

    def template_starts(self) -> dict[StepId, int]:
        """Each template step a plan names (`fetch[*]`, a dynamic group's `test[*]`) with
        the index of its fan-out's start, which stands for it in the graph."""
        found: dict[StepId, int] = {}
        for node in self.nodes:
            if is_template(node):
                assert node.fan_out is not None
                for step_id in node.fan_out.template_steps() or (template_id(node.id),):
                    found[step_id] = node.index
        return found

    def levels(self) -> list[int]:
        """For each node, the number of leaf steps (a dynamic fan-out counting as one) on
        the longest chain before it."""
        level = [0] * len(self.nodes)
        for node in self.nodes:
            best = 0
            for dep in node.deps:
                before = self.nodes[dep]
                weight = 1 if before.is_step else template_depth(before)
                best = max(best, level[dep] + weight)
            level[node.index] = best
        return level


def is_template(node: Node) -> bool:
    """Whether `node` is the start of a dynamic fan-out (its instances come at run time)."""
    return node.kind is NodeKind.GROUP_START and node.fan_out is not None and node.fan_out.dynamic


def template_id(fan_out_id: str) -> StepId:
    """How plans name a dynamic fan-out's template: `fetch[*]`."""
    return StepId(f"{fan_out_id}[*]")


def template_levels(start: Node) -> list[tuple[int, StepId]]:
    """The steps a dynamic fan-out's template shows in the plan's stages, each with its
    level inside the template: `id[*]` at 0, or a group body's steps at theirs."""
    info = start.fan_out
    assert info is not None
    if not info.body:
        return [(0, template_id(start.id))]
    level = [0] * len(info.body)
    found = []
    for node in info.body:
        for dep in node.deps:
            if dep >= 0:
                weight = 1 if info.body[dep].is_step else 0
                level[node.index] = max(level[node.index], level[dep] + weight)
        if node.is_step:
            found.append((level[node.index], StepId(template_name(node.id))))
    return found


def template_depth(node: Node) -> int:
    """How many levels of leaf steps a node stands for: a dynamic fan-out its template's
    (one for a step, the longest chain of a group body's), a barrier none."""
    if not is_template(node):
        return 0
    return 1 + max((offset for offset, _ in template_levels(node)), default=0)


_Vertex = TypeVar("_Vertex")


def reachable(
    edges: Callable[[_Vertex], Iterable[_Vertex]], start: Iterable[_Vertex]
) -> set[_Vertex]:
    """Every vertex reached from `start` by one or more `edges` (a vertex of `start`
    only when reached again): the one closure the compiler and step selection walk."""
    seen: set[_Vertex] = set()
    stack = list(start)
    while stack:
        for nxt in edges(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
