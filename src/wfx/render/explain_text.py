"""`wfx explain` as plain text."""

from __future__ import annotations

from wfx.explain import Explanation, GroupExplanation
from wfx.graph import RetrySchedule
from wfx.model import OnError, StepKind
from wfx.render.units import duration, retry_rules, value, waits


def render_explanation(explanation: Explanation) -> str:
    """Where the step stands and why, its settings and their origins, and its failure path."""
    step = explanation.step
    where = f"{step.file} line {step.line}" if step.file else f"line {step.line}"
    lines = [f"step `{step.id}` ({step.kind.value}, {where})"]
    lines += ["", f"Position: stage {step.stage + 1} of the {step.section.value} steps"]
    if explanation.is_finally:
        lines.append(
            "  a `finally` step: it starts once every main step has ended and compensation"
            " (if any) is done, whatever happened (success, failure, timeout or Ctrl-C;"
            " only a second Ctrl-C skips it)"
        )
    elif not explanation.chain:
        lines.append("  it waits for nothing: it can start as soon as the run starts")
    for hop in explanation.chain:
        lines.append(f"  `{hop.step}` waits for `{hop.waits_for}`: {hop.reason}")
    lines += ["", "Settings:"]
    for name, setting in explanation.settings.items():
        if name == "executor" and step.kind is StepKind.USES:
            lines.append("  executor = local  (a Python step runs in wfx's own process)")
            continue
        lines.append(
            f"  {name} = {_setting_value(name, setting.value)}  (from {setting.describe()})"
        )
    lines += ["", f"Condition: {step.condition.text} -> {step.condition.verdict.value}"]
    if step.condition.note:
        lines.append(f"  {step.condition.note}")
    lines += ["", "If it fails:", *_failure_lines(explanation)]
    return "\n".join(lines) + "\n"


def _setting_value(name: str, setting: object) -> str:
    """A setting as the plan writes it: durations, the retry waits (with their jitter
    range), YAML/JSON values, never a Python repr."""
    if name == "executor" and setting is None:
        return "the run's (--executor, else local)"
    if name in ("timeout", "killGrace"):
        return duration(setting if isinstance(setting, int | float) else None, "none")
    if isinstance(setting, RetrySchedule):
        rules = "".join(f"; {rule}" for rule in retry_rules(setting))
        return f"{setting.attempts - 1} (waits {waits(setting)}){rules}"
    if hasattr(setting, "value"):
        return str(setting.value)
    if hasattr(setting, "parts"):
        return "".join(
            p if isinstance(p, str) else "${{ " + p.text.strip() + " }}" for p in setting.parts
        )
    if setting is None:
        return "default"
    return setting if isinstance(setting, str) else value(setting)


def _failure_lines(explanation: Explanation) -> list[str]:
    if explanation.is_finally:
        return _finally_failure_lines(explanation)
    lines = [_attempts_line(explanation)]
    tolerated = explanation.on_error is OnError.CONTINUE
    for group_id, reruns in [] if tolerated else explanation.group_reruns:
        lines.append(
            f"  group `{group_id}` has groupRetries: first its succeeded steps are rolled"
            f" back and it runs again (up to {reruns} more time{'s' if reruns > 1 else ''});"
            " when those are spent:"
        )
    if explanation.on_error is OnError.CONTINUE:
        lines.append(
            "  onError: continue -> it is marked failed and the run goes on"
            " (the run ends 'completed with failures', exit 3)"
        )
    else:
        lines += _continue_on_lines(explanation)
        lines.append("  onError: fail -> the run fails (exit 1); running steps are cancelled")
    if explanation.skipped_on_failure:
        lines.append("  skipped (they depend on it): " + ", ".join(explanation.skipped_on_failure))
    if explanation.cancelled_on_failure:
        lines.append(
            "  cancelled or never started, if not yet finished: "
            + ", ".join(explanation.cancelled_on_failure)
        )
    if explanation.compensated:
        lines.append(
            "  rollbacks, in this order: "
            + " -> ".join(explanation.compensated)
            + " (plus any parallel step with a rollback that already succeeded)"
        )
    elif explanation.on_error is not OnError.CONTINUE:
        lines.append("  no rollback runs (no earlier step has one)")
    lines.append("  then the `finally` steps run")
    return lines


def _continue_on_lines(explanation: Explanation) -> list[str]:
    codes = explanation.step.continue_on
    if not codes:
        return []
    listed = ", ".join(str(c) for c in codes)
    return [
        f"  continueOn: exit code {listed} -> it is marked failed and the run goes on"
        " (exit 3); after any other failure:"
    ]


def _finally_failure_lines(explanation: Explanation) -> list[str]:
    lines = [_attempts_line(explanation)]
    if explanation.on_error is OnError.CONTINUE:
        lines.append("  onError: continue -> it is marked failed and the run's result stands")
    else:
        lines.append(
            "  onError: fail -> the run fails (exit 1); nothing is cancelled or rolled back:"
            " the main steps have ended and compensation has already run"
        )
    if explanation.skipped_on_failure:
        lines.append(
            "  skipped (they depend on it and their condition asks for success): "
            + ", ".join(explanation.skipped_on_failure)
        )
    if explanation.still_run_on_failure:
        lines.append(
            "  the other `finally` steps still run: " + ", ".join(explanation.still_run_on_failure)
        )
    return lines


def _attempts_line(explanation: Explanation) -> str:
    if explanation.attempts > 1:
        waiting = waits(explanation.step.retry)
        rules = "".join(f"; {rule}" for rule in retry_rules(explanation.step.retry))
        return f"  it is tried {explanation.attempts} times in all, waiting {waiting}{rules}"
    return "  it is not retried"


def _whole_group_lines(group: GroupExplanation) -> list[str]:
    lines = []
    if group.group_timeout is None:
        lines.append("  groupTimeout = none: only the workflow's `timeout` bounds the group")
    else:
        lines.append(
            f"  groupTimeout = {duration(group.group_timeout)}: then its running steps are"
            " killed, the others skipped, and the group fails"
        )
    if group.group_retries is None or group.group_retries.attempts < 2:
        lines.append("  groupRetries = none: a failed group is not run again")
    else:
        rules = "".join(f"; {rule}" for rule in retry_rules(group.group_retries))
        lines.append(
            f"  groupRetries = {group.group_retries.attempts - 1}"
            f" (waits {waits(group.group_retries)}){rules}: after a failure its succeeded"
            " steps are rolled back, then all its steps run again"
        )
    return lines


def render_group_explanation(explanation: GroupExplanation) -> str:
    """A group: where it stands and why, what its children inherit, and what it holds."""
    group = explanation
    kind = f"calls {group.uses}" if group.uses else group.type.value
    lines = [f"group `{group.id}` ({kind}, line {group.line})"]
    lines += ["", f"Position: in the {group.section.value} steps"]
    if not group.chain:
        lines.append("  it waits for nothing: it can start as soon as the run starts")
    for hop in group.chain:
        lines.append(f"  `{hop.step}` waits for `{hop.waits_for}`: {hop.reason}")
    order = "all start together" if group.type.value == "parallel" else "run one after another"
    cap = f", at most {group.max_parallel} at once" if group.max_parallel else ""
    lines += ["", f"Children ({len(group.children)}; they {order}{cap}):"]
    lines += [f"  `{c.id}` ({c.kind.value}, line {c.line})" for c in group.children]
    lines.append("  steps inside, in order: " + (", ".join(group.steps) or "none"))
    if group.uses is not None:
        lines += ["", f"A sub-workflow call: its steps take every setting from {group.uses}"]
        condition = group.condition or "success() (default)"
        lines += ["", f"Condition: {condition}; when it is false, every step inside is skipped"]
        return "\n".join(lines) + "\n"
    lines += ["", "Settings its steps inherit (unless they set their own):"]
    for name, setting in group.settings.items():
        lines.append(
            f"  {name} = {_setting_value(name, setting.value)}  (from {setting.describe()})"
        )
    for name, setting in group.env.items():
        lines.append(
            f"  env {name} = {_setting_value('env', setting.value)}  (from {setting.describe()})"
        )
    lines += ["", "The group as a whole (its own, not inherited):", *_whole_group_lines(group)]
    condition = group.condition or "success() (default)"
    lines += ["", f"Condition: {condition}; when it is false, every step inside is skipped"]
    return "\n".join(lines) + "\n"
