"""The execution graph drawn as Mermaid or Graphviz DOT, with groups as subgraphs."""

from __future__ import annotations

import json
from collections.abc import Iterator

from wfx.graph import ExecutionGraph, Node, NodeKind, Section
from wfx.plan import Plan


def _safe(step_id: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in step_id)


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
    for node in graph.steps():
        for dep in graph.step_dependencies(node.index):
            yield graph.nodes[dep].id, node.id


def render_mermaid(graph: ExecutionGraph, plan: Plan) -> str:
    """A Mermaid flowchart: one node per step, groups as subgraphs, edges as dependencies."""
    tree = _children(graph)
    lines = ["flowchart TD"]
    lines += _mermaid_level(tree, None, plan, "  ")
    lines += [f"  {_safe(a)} --> {_safe(b)}" for a, b in _edges(graph)]
    for step_id, step in plan.steps.items():
        if step.condition.verdict.value == "never":
            lines.append(f"  style {_safe(step_id)} stroke-dasharray: 5 5")
    return "\n".join(lines) + "\n"


def _mermaid_level(
    tree: dict[str | None, list[Node]], parent: str | None, plan: Plan, indent: str
) -> list[str]:
    lines: list[str] = []
    for node in tree.get(parent, []):
        if node.kind is NodeKind.GROUP_START:
            label = f"{node.id} ({node.step.group_type.value})"
            lines.append(f"{indent}subgraph {_safe(node.id)}_group[{json.dumps(label)}]")
            lines += _mermaid_level(tree, node.id, plan, indent + "  ")
            lines.append(f"{indent}end")
        else:
            label = node.id + (" ↩" if plan.steps[node.id].rollback else "")
            shape = (
                f"([{json.dumps(label)}])"
                if node.section is Section.FINALLY
                else f"[{json.dumps(label)}]"
            )
            lines.append(f"{indent}{_safe(node.id)}{shape}")
    return lines


def render_dot(graph: ExecutionGraph, plan: Plan) -> str:
    """A Graphviz digraph: clusters for groups, dashed nodes for steps that never run."""
    tree = _children(graph)
    lines = ["digraph wfx {", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    lines += _dot_level(tree, None, plan, "  ")
    lines += [f"  {_safe(a)} -> {_safe(b)};" for a, b in _edges(graph)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_level(
    tree: dict[str | None, list[Node]], parent: str | None, plan: Plan, indent: str
) -> list[str]:
    lines: list[str] = []
    for node in tree.get(parent, []):
        if node.kind is NodeKind.GROUP_START:
            label = f"{node.id} ({node.step.group_type.value})"
            lines.append(f"{indent}subgraph cluster_{_safe(node.id)} {{")
            lines.append(f"{indent}  label={json.dumps(label)};")
            lines += _dot_level(tree, node.id, plan, indent + "  ")
            lines.append(f"{indent}}}")
        else:
            step = plan.steps[node.id]
            attributes = [f"label={json.dumps(node.id)}"]
            if step.condition.verdict.value == "never":
                attributes.append("style=dashed")
            if node.section is Section.FINALLY:
                attributes.append("shape=ellipse")
            lines.append(f"{indent}{_safe(node.id)} [{', '.join(attributes)}];")
    return lines
