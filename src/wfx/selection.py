"""Which steps of a workflow a run runs: all of them, a part (`--only`, `--from`, `--skip`),
or what a redrive of an earlier run must do again. Pure functions on the graph: the results
of earlier runs come in as plain maps (step id -> run id), read from the journal by
`wfx.runtime.redrive`.

Every main step gets one disposition: it runs, its result is kept from an earlier run (it
does not run), or it is skipped because it was not selected. `finally` steps always run.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from wfx.diagnostics import Diagnostic, DiagnosticsError, closest, error
from wfx.graph import ExecutionGraph, NodeKind, Section, reachable
from wfx.model import StepId


class Disposition(enum.Enum):
    """What a run does with one main step."""

    RUN = "run"
    KEEP = "keep"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Choice:
    """One step's disposition and why; `source` is the run a kept result comes from."""

    step: StepId
    disposition: Disposition
    reason: str
    source: str | None = None


@dataclass(frozen=True)
class Selection:
    """What a run does with each main step, in graph order; `redrives` names the run a
    redrive starts from (None for a part of a workflow)."""

    choices: Mapping[StepId, Choice]
    redrives: str | None = None
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The options that chose it (`only`, `from`, `skip`), for the plan to repeat."""

    def with_(self, disposition: Disposition) -> list[StepId]:
        """The steps with `disposition`, in graph order."""
        return [c.step for c in self.choices.values() if c.disposition is disposition]

    @property
    def kept(self) -> dict[StepId, str]:
        """Each kept step and the run its result comes from."""
        return {
            c.step: c.source
            for c in self.choices.values()
            if c.disposition is Disposition.KEEP and c.source is not None
        }

    @property
    def not_selected(self) -> frozenset[StepId]:
        """The steps the run skips."""
        return frozenset(self.with_(Disposition.SKIP))


#: the reason of a step skipped because the options left it out (the journal's word too)
NOT_SELECTED = "not selected"


def check_ids(graph: ExecutionGraph, options: Mapping[str, Iterable[str]]) -> None:
    """Refuse (exit 2) ids in `options` (option name -> ids) that name no main step or
    group, each with a "did you mean"."""
    known = _main_ids(graph)
    problems: list[Diagnostic] = []
    for option, ids in options.items():
        for step in ids:
            if step not in known:
                problems.append(_unknown(graph, option, step, known))
    if problems:
        raise DiagnosticsError(problems)


def _unknown(graph: ExecutionGraph, option: str, step: str, known: Collection[str]) -> Diagnostic:
    if step in graph.ids:
        hint = "`finally` steps always run: they cannot be chosen"
    else:
        close = closest(step, known)
        hint = f"did you mean `{close}`?" if close else "`wfx plan FILE` lists the step ids"
    return error("select.unknown", f"--{option}: no step `{step}` in the workflow", None, hint)


def _main_ids(graph: ExecutionGraph) -> set[str]:
    """The ids a selection may name: main leaf steps and main groups."""
    return {
        n.id
        for n in graph.nodes
        if n.section is Section.MAIN and n.kind is not NodeKind.GROUP_START
    }


def leaves(graph: ExecutionGraph, ids: Iterable[str]) -> set[StepId]:
    """The leaf steps `ids` name: a step itself, a group every step inside it."""
    found: set[StepId] = set()
    for step in ids:
        node = graph.node(step)
        if node.is_step:
            found.add(node.id)
        else:
            found.update(n.id for n in graph.steps(Section.MAIN) if node.id in n.groups)
    return found


def dependencies(graph: ExecutionGraph) -> dict[StepId, set[StepId]]:
    """Each main step's direct leaf dependencies (looking through group barriers)."""
    nodes = graph.nodes
    return {
        n.id: {nodes[d].id for d in graph.step_dependencies(n.index)}
        for n in graph.steps(Section.MAIN)
    }


def needs_of(deps: Mapping[StepId, set[StepId]], start: Iterable[StepId]) -> set[StepId]:
    """Every step the steps `start` need, transitively (a step of `start` only when
    another one needs it)."""
    return reachable(lambda step: deps.get(step, ()), start)


def dependents_of(deps: Mapping[StepId, set[StepId]], start: Iterable[StepId]) -> set[StepId]:
    """Every step that needs one of `start`, transitively (a step of `start` only when it
    needs another one)."""
    reverse: dict[StepId, set[StepId]] = {s: set() for s in deps}
    for step, needed in deps.items():
        for dep in needed:
            reverse[dep].add(step)
    return reachable(lambda step: reverse.get(step, ()), start)


def part(
    graph: ExecutionGraph,
    *,
    only: Collection[str] = (),
    from_: str | None = None,
    skip: Collection[str] = (),
    earlier: Mapping[StepId, str] | None = None,
) -> Selection:
    """The part of the workflow `--only`, `--from` and `--skip` choose. Steps the chosen
    ones need but that do not run themselves (earlier steps of `--from`) take their result
    from `earlier` (step -> the latest run where it succeeded); a missing one is an error
    naming it. A step that needs a skipped step is skipped too."""
    options = {"only": tuple(only), "from": (from_,) if from_ else (), "skip": tuple(skip)}
    check_ids(graph, {k: v for k, v in options.items() if v})
    deps = dependencies(graph)
    chosen = set(deps)
    if only:
        wanted = leaves(graph, only)
        chosen &= wanted | needs_of(deps, wanted)
    if from_:
        start = leaves(graph, [from_])
        chosen &= start | dependents_of(deps, start)
    skipped = leaves(graph, skip)
    chosen -= skipped | dependents_of(deps, skipped)
    needed = needs_of(deps, chosen) - chosen
    _check_available(needed, earlier or {}, deps)
    choices = {}
    for step in deps:
        if step in chosen:
            choices[step] = Choice(step, Disposition.RUN, "selected")
        elif step in needed:
            source = (earlier or {})[step]
            choices[step] = Choice(step, Disposition.KEEP, f"kept from run {source}", source)
        else:
            choices[step] = Choice(step, Disposition.SKIP, NOT_SELECTED)
    return Selection(choices, None, {k: v for k, v in options.items() if v})


def _check_available(
    needed: set[StepId], earlier: Mapping[StepId, str], deps: Mapping[StepId, set[StepId]]
) -> None:
    missing = [s for s in deps if s in needed and s not in earlier]
    if not missing:
        return
    listed = ", ".join(f"`{s}`" for s in missing)
    raise DiagnosticsError(
        [
            error(
                "select.missing",
                f"no earlier result of {listed}, which the selected steps need:"
                " no run in the journal succeeded at " + ("it" if len(missing) == 1 else "them"),
                None,
                "run the workflow (or `--only` those steps) first, or start earlier with --from",
            )
        ]
    )


def redrive(
    graph: ExecutionGraph,
    run_id: str,
    succeeded: Mapping[StepId, str],
    again: Mapping[StepId, str],
    not_selected: Collection[StepId] = (),
) -> Selection:
    """A redrive of run `run_id`: steps in `succeeded` (step -> the run that ran it) are
    kept, unless `again` (step -> why) names them or they need a step that runs again;
    steps `run_id` did not select (it ran part of the workflow) stay skipped; every other
    main step runs again."""
    deps = dependencies(graph)
    skipped = set(not_selected) & set(deps)
    redo = {s for s in deps if (s not in succeeded or s in again) and s not in skipped}
    downstream = dependents_of(deps, redo) - redo - skipped
    choices = {}
    for step in deps:
        if step in skipped:
            choices[step] = Choice(step, Disposition.SKIP, f"{NOT_SELECTED} in run {run_id}")
        elif step in redo:
            reason = again.get(step) or f"did not run in run {run_id}"
            choices[step] = Choice(step, Disposition.RUN, reason)
        elif step in downstream:
            choices[step] = Choice(step, Disposition.RUN, "needs a step that runs again")
        else:
            source = succeeded[step]
            choices[step] = Choice(step, Disposition.KEEP, f"kept from run {source}", source)
    return Selection(choices, run_id)
