"""The plan as JSON: a stable contract, described by schema/plan.schema.json.

Fields are only ever added within one `version`; a change in meaning bumps it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from wfx.graph import RetrySchedule, Setting
from wfx.plan import Plan, PlannedAction, PlannedGroup, PlannedStep, Resolved, Unknown
from wfx.render.diagnostics import as_json
from wfx.render.units import jitter_range


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON-ready data."""
    return {
        "version": plan.version,
        "file": plan.file,
        "name": plan.name,
        "description": plan.description,
        "fingerprint": plan.fingerprint,
        "inputs": {k: json_value(v) for k, v in plan.inputs.items()},
        "inputDescriptions": dict(plan.input_descriptions),
        "env": {k: json_value(v) for k, v in plan.env.items()},
        "secrets": list(plan.secrets),
        "timeout": plan.timeout,
        "type": plan.type,
        "maxParallel": plan.max_parallel,
        "concurrency": None if plan.concurrency is None else dict(plan.concurrency),
        "stages": plan.stages,
        "finally": plan.finally_stages,
        "steps": {step_id: _step(step) for step_id, step in plan.steps.items()},
        "groups": {group_id: _group(group) for group_id, group in plan.groups.items()},
        "fanOuts": {
            fan_out_id: {
                "kind": fan_out.kind,
                "dynamic": fan_out.dynamic,
                "instances": list(fan_out.instances),
                "source": fan_out.source or None,
                "maxParallel": fan_out.max_parallel,
                "failFast": fan_out.fail_fast,
                "maxInstances": fan_out.limit,
                "assumption": fan_out.assumption,
                **({"template": list(fan_out.template)} if fan_out.template else {}),
            }
            for fan_out_id, fan_out in plan.fan_outs.items()
        },
        "compensation": plan.compensation,
        "criticalPath": plan.critical_path,
        "worstCaseSeconds": plan.worst_case_seconds,
        "warnings": json.loads(as_json(plan.warnings)),
        "inputSpecs": {k: json_value(v) for k, v in plan.input_specs.items()},
        "envSource": dict(plan.env_source),
        "outputs": dict(plan.outputs),
    }


#: above this many steps the JSON is written compactly (Python's indenting encoder is slow)
COMPACT_ABOVE = 500


def render_json(plan: Plan) -> str:
    """The plan as JSON text: indented for people, compact for very large plans."""
    indent = None if len(plan.steps) > COMPACT_ABOVE else 2
    return json.dumps(plan_to_dict(plan), indent=indent, ensure_ascii=False)


def retry_filters(schedule: RetrySchedule) -> dict[str, Any]:
    """Which failures a retry policy retries (`on`: `any` or a list) and its deadline."""
    return {
        "on": "any" if schedule.on is None else list(schedule.on),
        "except": list(schedule.except_),
        "deadline": schedule.deadline,
    }


def _room(schedule: RetrySchedule) -> dict[str, Any]:
    """With a deadline, at most how many retries fit in it (`retriesWithinDeadline`)."""
    if schedule.deadline is None:
        return {}
    return {"retriesWithinDeadline": schedule.retries_within_deadline()}


def _group(group: PlannedGroup) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": group.name,
        "type": group.type,
        "maxParallel": group.max_parallel,
        "conditionText": group.condition,
        "groups": list(group.groups),
        "section": group.section.value,
        "line": group.line,
        "column": group.column,
        "groupTimeout": group.group_timeout,
        "groupRetries": None
        if group.group_retries is None
        else {
            "attempts": group.group_retries.attempts,
            "delays": list(group.group_retries.delays),
            "jitter": group.group_retries.jitter,
            **retry_filters(group.group_retries),
        },
    }
    if group.uses is not None:
        record["uses"] = group.uses
        record["file"] = group.file
        record["with"] = json_value(group.with_)
        record["secrets"] = list(group.secrets)
    return record


def _step(step: PlannedStep) -> dict[str, Any]:
    return {
        "name": step.name,
        "kind": step.kind.value,
        "section": step.section.value,
        "line": step.line,
        "column": step.column,
        "groups": list(step.groups),
        "stage": step.stage,
        "needs": list(step.needs),
        "condition": step.condition.verdict.value,
        "conditionText": step.condition.text,
        "conditionNote": step.condition.note or None,
        "timeout": step.timeout,
        "killGrace": step.kill_grace,
        "retry": {
            "attempts": step.retry.attempts,
            "delays": list(step.retry.delays),
            "waitRanges": [list(jitter_range(d, step.retry.jitter)) for d in step.retry.delays],
            "backoff": step.retry.backoff,
            "delay": step.retry.delay,
            "factor": step.retry.factor,
            "maxDelay": json_value(step.retry.max_delay),
            "jitter": step.retry.jitter,
            **retry_filters(step.retry),
            **_room(step.retry),
        },
        "onError": step.on_error.value,
        "continueOn": list(step.continue_on) or None,
        "rollback": step.rollback,
        "command": step.command,
        "action": action_to_dict(step.action),
        "rollbackAction": action_to_dict(step.rollback_action),
        "resolved": [_resolved(r) for r in step.resolved],
        "provenance": {name: _provenance(s) for name, s in step.settings.items()},
        "worstCaseSeconds": step.worst_case,
        "executor": step.executor,
        **({"file": step.file, "cleanup": step.cleanup} if step.file is not None else {}),
    }


def action_to_dict(action: PlannedAction | None) -> dict[str, Any] | None:
    """What runs, for people and for exporters: the script, argv or callable and `with`
    (static values in place, `${{ }}` where only the run knows the value, secrets as
    `***`), with the environment, shell, working directory and timeout it runs with."""
    if action is None:
        return None
    record: dict[str, Any] = {"kind": action.kind.value, "name": action.name}
    if action.run is not None:
        record["run"] = action.run
    if action.kind.value == "cmd":
        record["cmd"] = list(action.cmd)
    if action.uses is not None:
        record["uses"] = action.uses
        record["with"] = json_value(action.with_)
    record.update(
        env=dict(action.env),
        shell=action.shell,
        workingDirectory=action.working_directory,
        timeout=action.timeout,
        source=dict(action.source),
    )
    return record


def _resolved(item: Resolved) -> dict[str, Any]:
    record: dict[str, Any] = {"where": item.where, "expression": item.text}
    if isinstance(item.value, Unknown):
        record["runtime"] = item.value.reason
    else:
        record["value"] = json_value(item.value)
    return record


def _provenance(setting: Setting) -> dict[str, Any]:
    return {
        "origin": setting.origin.value,
        "line": setting.span.line if setting.span else None,
        "group": setting.source,
    }


def json_value(value: Any) -> Any:
    """JSON-safe values: unknowns as {"runtime": reason}, non-finite numbers as text."""
    if isinstance(value, Unknown):
        return {"runtime": value.reason}
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value
