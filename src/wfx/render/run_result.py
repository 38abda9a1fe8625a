"""How a run ended, for the end of `wfx run`: the workflow outputs as text lines, or one
JSON object for machines (`--format json`). Values arrive masked from the engine."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from wfx.runtime.events import RunStatus


def outputs_text(outputs: Mapping[str, Any]) -> str:
    """The workflow outputs as `name = JSON value` lines under a heading ("" for none)."""
    if not outputs:
        return ""
    lines = ["outputs:"]
    lines += [f"  {name} = {_json(value)}" for name, value in outputs.items()]
    return "\n".join(lines)


def result_json(
    *,
    run_id: str,
    workflow: str,
    status: RunStatus,
    exit_code: int,
    outputs: Mapping[str, Any],
    reason: str | None,
) -> str:
    """The run's end as one JSON object: id, workflow, status, exit code, reason, outputs."""
    document = {
        "runId": run_id,
        "workflow": workflow,
        "status": status.value,
        "exitCode": exit_code,
        "reason": reason,
        "outputs": {name: _plain(value) for name, value in outputs.items()},
    }
    return _json(document)


def _json(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and ±Infinity (which JSON cannot hold) as null, integral floats as ints."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
