"""The graph formats: every line of the Mermaid output is valid flowchart syntax, every step
is its own node, rollbacks are marked and `finally` steps hang off the end of the run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from wfx import api
from wfx.render.plan_graph import render_dot, render_mermaid

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

NODE_ID = r"[A-Za-z][A-Za-z0-9_]*"
#: a quoted label: no quote, newline or backslash escape inside (Mermaid has no `\"`)
LABEL = r'"[^"\n\\]*"'
MERMAID_LINE = [
    re.compile(r"flowchart TD"),
    re.compile(rf" *subgraph {NODE_ID}\[{LABEL}\]"),
    re.compile(r" *end"),
    re.compile(rf" *{NODE_ID}(\[{LABEL}\]|\(\[{LABEL}\]\))"),
    re.compile(rf" *{NODE_ID} (-->|-\.->) {NODE_ID}"),
    re.compile(rf" *style {NODE_ID} stroke-dasharray: 5 5"),
]
#: words Mermaid reads as keywords when they stand as a node id
KEYWORDS = {"end", "graph", "flowchart", "subgraph", "style", "class", "click", "default"}


def mermaid_problems(text: str) -> list[str]:
    """Lines that are not Mermaid flowchart syntax, and nodes used before being declared."""
    problems = []
    declared: set[str] = set()
    depth = 0
    for line in text.rstrip("\n").split("\n"):
        if not any(pattern.fullmatch(line) for pattern in MERMAID_LINE):
            problems.append(f"not flowchart syntax: {line!r}")
            continue
        words = line.split()
        if words[0] == "subgraph":
            depth += 1
        elif words[0] == "end":
            depth -= 1
        elif "-->" in words or "-.->" in words:
            problems += [f"undeclared node {w}" for w in (words[0], words[2]) if w not in declared]
        elif words[0] != "style" and words[0] != "flowchart":
            node = re.match(NODE_ID, words[0])
            assert node is not None
            if node.group() in declared or node.group() in KEYWORDS:
                problems.append(f"node id {node.group()} repeated or a keyword")
            declared.add(node.group())
    if depth:
        problems.append("unbalanced subgraph/end")
    return problems


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_draws_valid_mermaid(example: Path) -> None:
    graph, plan = api.plan_file(example)
    assert mermaid_problems(render_mermaid(graph, plan)) == []


TRICKY = """
wfx: 1
steps:
  - id: end
    run: echo end
    rollback: {run: echo undo}
  - {id: a-b, run: echo 1, needs: [end]}
  - {id: a_b, run: echo 2, needs: [end]}
  - id: group-1
    type: parallel
    needs: [a-b, a_b]
    steps:
      - {id: x_y, run: echo 3}
      - {id: x-y, run: echo 4, condition: "false"}
finally:
  - {id: tidy, run: echo tidy}
  - {id: report, run: echo report, needs: [tidy]}
"""


def test_tricky_ids_rollbacks_and_finally(workflow_file: Callable[[str], Path]) -> None:
    graph, plan = api.plan_file(workflow_file(TRICKY))
    text = render_mermaid(graph, plan)
    assert mermaid_problems(text) == []
    assert '  n_end["end ↩"]' in text
    assert "\\u" not in text
    # the last main steps lead, dotted, into the first `finally` step only
    assert "  n_x_y -.-> n_tidy" in text and "  d_x_hy -.-> n_tidy" in text
    assert "-.-> n_report" not in text
    assert "  n_tidy --> n_report" in text
    assert "  style d_x_hy stroke-dasharray: 5 5" in text
    dot = render_dot(graph, plan)
    assert 'n_end [label="end ↩"];' in dot
    assert "n_x_y -> n_tidy [style=dashed];" in dot
    assert "\\u" not in dot
