"""The execution graph drawn as Mermaid or Graphviz DOT, with groups as subgraphs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from wfx.graph import ExecutionGraph, Node, NodeKind, Section, is_template, template_id
from wfx.model import StepId
from wfx.plan import Plan, PlannedStep

_ESCAPES = {"_": "__", "-": "_h", "/": "_s"}


def _safe(step_id: str) -> str:
    """A node id Mermaid and DOT accept, different for every step id (ids may hold `-`, and
    fan-out instances `[`, `,`, `.` and any character of a matrix value)."""
    if step_id.isascii() and step_id.replace("_", "").isalnum():
        return "n_" + step_id
    if step_id.isascii() and step_id.replace("_", "").replace("-", "").isalnum():
        return "d_" + step_id.replace("_", "__").replace("-", "_h")
    return "x_" + "".join(_safe_char(c) for c in step_id)


def _safe_char(char: str) -> str:
    if char == "_":
        return "__"
    if char.isascii() and char.isalnum():
        return char
    return f"_{ord(char):x}_"


def _group_kind(node: Node) -> str:
    """How a group's children run: `sequential`, `parallel`, or a fan-out's kind."""
    return node.fan_out.kind.value if node.fan_out else node.step.group_type.value


def _name(node: Node) -> StepId:
    """The name a node has in the plan: a dynamic fan-out's start is its template `id[*]`."""
    return template_id(node.id) if is_template(node) else node.id


def _step(plan: Plan, node: Node) -> PlannedStep:
    """The planned step a drawn node stands for; a dynamic group's `id[*]` stands for the
    steps of its body: the first of them (a rollback on any shows)."""
    found = plan.steps.get(_name(node))
    if found is not None:
        return found
    assert node.fan_out is not None
    body = [plan.steps[s] for s in node.fan_out.template_steps()]
    return dataclasses.replace(body[0], rollback=any(s.rollback for s in body))


def _mermaid_label(text: str) -> str:
    """A quoted Mermaid label: `"` and `#` written as Mermaid entity codes."""
    return '"' + text.replace("#", "#35;").replace('"', "#quot;") + '"'


def _dot_label(text: str) -> str:
    """A quoted DOT string (non-ASCII characters as they are, not as JSON escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _children(graph: ExecutionGraph) -> dict[str | None, list[Node]]:
    """Leaf steps and group starts keyed by their innermost group (None: top level)."""
    tree: dict[str | None, list[Node]] = {}
    for node in graph.nodes:
        if node.kind is NodeKind.GROUP_END:
            continue
        parent = node.groups[-1] if node.groups else None
        tree.setdefault(parent, []).append(node)
    return tree


def _edges(graph: ExecutionGraph) -> Iterator[tuple[str, str]]:
    for node in graph.nodes:
        if node.is_step or is_template(node):
            for dep in graph.step_dependencies(node.index):
                yield _name(graph.nodes[dep]), _name(node)


def _finally_edges(graph: ExecutionGraph) -> Iterator[tuple[str, str]]:
    """From each last main step to each first `finally` step: they run after everything."""
    main = list(graph.steps(Section.MAIN))
    waited_for = {graph.nodes[d].id for n in main for d in graph.step_dependencies(n.index)}
    last = [n.id for n in main if n.id not in waited_for]
    first = [n.id for n in graph.steps(Section.FINALLY) if not graph.step_dependencies(n.index)]
    for before in last:
        for after in first:
            yield before, after


def render_mermaid(graph: ExecutionGraph, plan: Plan) -> str:
    """A Mermaid flowchart: one node per step, groups as subgraphs, edges as dependencies,
    dotted edges into the `finally` steps, `↩` on steps with a rollback."""
    tree = _children(graph)
    lines = ["flowchart TD"]
    lines += _mermaid_level(tree, None, plan, "  ")
    lines += [f"  {_safe(a)} --> {_safe(b)}" for a, b in _edges(graph)]
    lines += [f"  {_safe(a)} -.-> {_safe(b)}" for a, b in _finally_edges(graph)]
    for step_id, step in plan.steps.items():
        if step.condition.verdict.value == "never":
            lines.append(f"  style {_safe(step_id)} stroke-dasharray: 5 5")
    return "\n".join(lines) + "\n"


def _mermaid_level(
    tree: dict[str | None, list[Node]], parent: str | None, plan: Plan, indent: str
) -> list[str]:
    lines: list[str] = []
    for node in tree.get(parent, []):
        if node.kind is NodeKind.GROUP_START and not is_template(node):
            label = f"{node.id} ({_group_kind(node)})"
            lines.append(f"{indent}subgraph {_safe(node.id)}_group[{_mermaid_label(label)}]")
            lines += _mermaid_level(tree, node.id, plan, indent + "  ")
            lines.append(f"{indent}end")
        else:
            name = _name(node)
            label = name + (" ↩" if _step(plan, node).rollback else "")
            shape = (
                f"([{_mermaid_label(label)}])"
                if node.section is Section.FINALLY
                else f"[{_mermaid_label(label)}]"
            )
            lines.append(f"{indent}{_safe(name)}{shape}")
    return lines


def render_dot(graph: ExecutionGraph, plan: Plan) -> str:
    """A Graphviz digraph: clusters for groups, dashed nodes for steps that never run."""
    tree = _children(graph)
    lines = ["digraph wfx {", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    lines += _dot_level(tree, None, plan, "  ")
    lines += [f"  {_safe(a)} -> {_safe(b)};" for a, b in _edges(graph)]
    lines += [f"  {_safe(a)} -> {_safe(b)} [style=dashed];" for a, b in _finally_edges(graph)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_level(
    tree: dict[str | None, list[Node]], parent: str | None, plan: Plan, indent: str
) -> list[str]:
    lines: list[str] = []
    for node in tree.get(parent, []):
        if node.kind is NodeKind.GROUP_START and not is_template(node):
            label = f"{node.id} ({_group_kind(node)})"
            lines.append(f"{indent}subgraph cluster_{_safe(node.id)} {{")
            lines.append(f"{indent}  label={_dot_label(label)};")
            lines += _dot_level(tree, node.id, plan, indent + "  ")
            lines.append(f"{indent}}}")
        else:
            step = _step(plan, node)
            label = _name(node) + (" ↩" if step.rollback else "")
            attributes = [f"label={_dot_label(label)}"]
            if step.condition.verdict.value == "never":
                attributes.append("style=dashed")
            if node.section is Section.FINALLY:
                attributes.append("shape=ellipse")
            lines.append(f"{indent}{_safe(_name(node))} [{', '.join(attributes)}];")
    return lines
