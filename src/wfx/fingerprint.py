"""The fingerprint of a workflow and its inputs: what `wfx plan` prints and a run records,
so that `wfx run --plan` and `wfx resume` can tell a changed workflow from the one
reviewed. Apart from the plan so that a run need not import the planner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wfx.walk import all_steps

if TYPE_CHECKING:
    from wfx.model import Workflow


def fingerprint(workflow: Workflow, inputs: Mapping[str, Any]) -> str:
    """A hash of the normalised workflow, of every sub-workflow it calls (by file name) and
    of the resolved inputs (comments don't count)."""
    covered: dict[str, Any] = {"workflow": workflow.data, "inputs": inputs}
    included = included_definitions(workflow)
    if included:
        covered["included"] = included
    canonical = json.dumps(
        covered,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def included_definitions(workflow: Workflow) -> dict[str, Any]:
    """The data of every sub-workflow `workflow` calls, directly or not, by file name."""
    found: dict[str, Any] = {}
    pending = [workflow]
    while pending:
        for step in all_steps(pending.pop()):
            child = step.call.workflow if step.call is not None else None
            if child is not None and child.file not in found:
                found[child.file] = child.data
                pending.append(child)
    return found
