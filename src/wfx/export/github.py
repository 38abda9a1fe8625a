"""Export to GitHub Actions: one job per wfx step, so that `needs`, parallel groups and
each step's own timeout, condition and `onError` keep their meaning.

Values never become script text: each `${{ }}` of a `run` script reaches it through a
`WFX_EXPR_n` variable, exactly as wfx runs it (wfx.shell.prepare_script), and each
`cmd` item that holds one through a `WFX_ARG_n` variable. A step's outputs
(`$WFX_OUTPUT`) become job outputs when another step reads them.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

from wfx.export import (
    Exported,
    Losses,
    Names,
    dump_yaml,
    first_with_rollback,
    group_position,
    header,
    unmapped_losses,
)
from wfx.export.expressions import (
    GITHUB_FUNCTIONS,
    Untranslatable,
    failure_functions,
    parse_expression,
    translate,
    uses_status_function,
)
from wfx.expr import ExpressionError, parse_template
from wfx.expr.ast import references
from wfx.shell import EvaluatedValueError, prepare_script

TARGET = "github-actions"

#: where each job's runner is; the exported file says so at the top for people to change
RUNNER = "ubuntu-latest"

#: the action that puts the repository's files where the steps expect them
CHECKOUT = "actions/checkout@v5"

#: the job that runs the rollbacks when the run failed (a wfx step id never has a `-`
#: followed by this, so it cannot clash)
COMPENSATE_JOB = "wfx-compensate"

#: a step that hands the outputs a step wrote to `$WFX_OUTPUT` to GitHub Actions
_COPY_OUTPUTS = 'if [ -f "$WFX_OUTPUT" ]; then cat "$WFX_OUTPUT" >> "$GITHUB_OUTPUT"; fi'

_JOB_ID = re.compile(r"[^A-Za-z0-9_-]")
_INPUT_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "choice": "choice"}
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def export_github(plan: dict[str, Any]) -> Exported:
    """The plan as a GitHub Actions workflow (YAML text) and what it loses."""
    exporter = _GitHubExporter(plan)
    document = exporter.workflow()
    losses = tuple(exporter.losses.found)
    body = dump_yaml(document)
    return Exported(header(TARGET, plan["file"], losses) + body, losses)


def job_id(step_id: str) -> str:
    """A GitHub job id for a wfx step id (fan-out and sub-workflow ids hold `[`, `,`, `/`)."""
    cleaned = _JOB_ID.sub("_", step_id)
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else "_" + cleaned


class _GitHubExporter:
    """Builds the workflow document, collecting every loss."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.losses = Losses()
        self.steps: dict[str, dict[str, Any]] = {
            k: {**v, "id": k} for k, v in plan["steps"].items()
        }
        self.main = [s for stage in plan["stages"] for s in stage]
        self.final = [s for stage in plan["finally"] for s in stage]
        names = Names(reserved=(COMPENSATE_JOB,))
        self.job_ids = {step_id: names.take(job_id(step_id)) for step_id in self.steps}
        self.read_outputs: dict[str, set[str]] = {}
        self.directory = _workflow_directory(plan["file"])

    # -- the document -----------------------------------------------------------------------

    def workflow(self) -> dict[str, Any]:
        plan = self.plan
        self._workflow_losses()
        document: dict[str, Any] = {"name": plan.get("name") or plan["file"]}
        document["on"] = {"workflow_dispatch": {"inputs": self._inputs()}}
        for step in self.steps.values():
            self._read_steps(step)  # which outputs are read, before any job is built
        env = self._workflow_env()
        if env:
            document["env"] = env
        jobs: dict[str, Any] = {}
        for step_id in self.main:
            jobs[self.job_ids[step_id]] = self._job(self.steps[step_id], final=False)
        compensation = self._compensation_job()
        if compensation is not None:
            jobs[COMPENSATE_JOB] = compensation
        for step_id in self.final:
            jobs[self.job_ids[step_id]] = self._job(
                self.steps[step_id], final=True, after_compensation=compensation is not None
            )
        for step_id, names in self.read_outputs.items():
            outputs = jobs[self.job_ids[step_id]].setdefault("outputs", {})
            for name in sorted(names):
                outputs[name] = "${{ steps.run.outputs." + name + " }}"
        document["jobs"] = jobs
        return document

    def _workflow_losses(self) -> None:
        plan = self.plan
        if plan.get("timeout") is not None:
            self.losses.add(
                "workflow-timeout",
                "the workflow `timeout` has no GitHub Actions equivalent (each job keeps its own)",
            )
        if plan.get("maxParallel") is not None:
            self.losses.add("max-parallel", "`maxParallel` has no equivalent for jobs")
        for group_id, group in plan.get("groups", {}).items():
            if group.get("maxParallel") is not None:
                self.losses.add(
                    "max-parallel",
                    f"group `{group_id}`: `maxParallel` is dropped",
                    group_position(plan, group_id),
                )
        unmapped_losses(plan, self.losses, "GitHub Actions")

    def _inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for name, spec in self.plan.get("inputSpecs", {}).items():
            entry: dict[str, Any] = {"type": _INPUT_TYPES[spec["type"]]}
            if spec.get("description"):
                entry["description"] = spec["description"]
            entry["required"] = bool(spec.get("required"))
            given = self.plan["inputs"].get(name, spec.get("default"))
            if given is not None:
                entry["default"] = given
            if spec.get("enum") is not None:
                entry["options"] = [str(v) for v in spec["enum"]]
            if spec.get("pattern"):
                self.losses.add(
                    "input-pattern", f"input `{name}`: its `pattern` is not checked on dispatch"
                )
            inputs[name] = entry
        return inputs

    def _workflow_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for name, text in self.plan.get("envSource", {}).items():
            env[name] = self._value(text, None, "workflow env", allow_env=False)
        return env

    # -- one job per step -------------------------------------------------------------------

    def _job(
        self, step: dict[str, Any], *, final: bool, after_compensation: bool = False
    ) -> dict[str, Any]:
        job: dict[str, Any] = {"name": step.get("name") or step["id"]}
        needs = [self.job_ids[n] for n in step["needs"]]
        if final:
            needs = [self.job_ids[s] for s in self.main] + needs
            if after_compensation:
                needs.append(COMPENSATE_JOB)
        condition = self._condition(step, final)
        needs += [self.job_ids[s] for s in self._read_steps(step) if self.job_ids[s] not in needs]
        if needs:
            job["needs"] = list(dict.fromkeys(needs))
        if condition is not None:
            job["if"] = condition
        job["runs-on"] = RUNNER
        self._settings(step, job)
        job["steps"] = [{"uses": CHECKOUT}, *self._run_steps(step, step["action"], "run")]
        return job

    def _condition(self, step: dict[str, Any], final: bool) -> str | None:
        texts = [
            self.plan["groups"][g]["conditionText"]
            for g in step["groups"]
            if self.plan["groups"][g].get("conditionText")
        ]
        own = step["conditionText"]
        default = "always()" if final else "success()"
        if own != default:
            texts.append(own)
        if not final:
            for text in texts:
                for name in failure_functions(text):
                    self.losses.add(
                        "status-function",
                        f"`{name}` in a main step: wfx asks whether the run is failing,"
                        " GitHub Actions only whether a job this one needs failed",
                        step,
                    )
        translated = [part for part in (self._condition_part(t, step) for t in texts) if part]
        if final and not any(uses_status_function(t) for t in texts):
            translated.insert(0, "always()")
        if not translated:
            return None
        joined = " && ".join(f"({t})" if len(translated) > 1 else t for t in translated)
        return "${{ " + joined + " }}"

    def _condition_part(self, text: str, step: dict[str, Any]) -> str:
        """One condition in GitHub Actions' terms ('' when it has none: the job runs
        without it). A job's `if` cannot read secrets."""
        if any(r.path[0].lower() == "secrets" for r in references(parse_expression(text))):
            self.losses.add(
                "secret-condition",
                f"condition `{text}`: a job's `if` cannot read secrets; the job runs"
                " without this condition",
                step,
            )
            return ""
        return self._expression(text, step, "condition", "the job runs without it") or ""

    def _settings(self, step: dict[str, Any], job: dict[str, Any]) -> None:
        timeout = step.get("timeout")
        if timeout is not None:
            job["timeout-minutes"] = self._minutes(step, timeout, "timeout")
        if step["onError"] == "continue":
            job["continue-on-error"] = True
        retry = step["retry"]
        if retry["attempts"] > 1:
            self.losses.add(
                "retries",
                f"retries (up to {retry['attempts']} attempts): GitHub Actions does not retry"
                " a job",
                step,
            )
            if retry.get("jitter"):
                self.losses.add("jitter", "the retry jitter is dropped with the retries", step)
        if step["provenance"].get("killGrace", {}).get("origin", "built-in") != "built-in":
            self.losses.add(
                "kill-grace",
                f"killGrace {_seconds(step['killGrace'])}: GitHub Actions' grace is its own",
                step,
            )

    def _minutes(self, step: dict[str, Any], timeout: float, what: str) -> int:
        """A timeout in GitHub's whole minutes (rounded up: a loss when not whole)."""
        minutes = max(1, math.ceil(timeout / 60))
        if minutes * 60 != timeout:
            self.losses.add(
                "timeout",
                f"{what} {_seconds(timeout)} becomes timeout-minutes: {minutes}"
                " (GitHub Actions counts whole minutes)",
                step,
            )
        return minutes

    # -- what runs --------------------------------------------------------------------------

    def _run_steps(
        self, step: dict[str, Any], action: dict[str, Any], name: str
    ) -> list[dict[str, Any]]:
        source = action.get("source", {})
        if action["kind"] == "uses":
            self.losses.add(
                "python",
                f"`{action['uses']}` is a Python callable of wfx; the job fails in its place",
                step,
            )
            message = f"wfx step {step['id']} calls {action['uses']}, which cannot run here"
            return [_failing(name, message)]
        env = self._step_env(step, source.get("env", {}))
        if action["kind"] == "cmd":
            script: str | None = self._cmd_script(step, source.get("cmd", []), env)
            shell = "bash"
        else:
            script = self._run_script(step, source.get("run", ""), action.get("shell"), env)
            shell = _shell(action.get("shell"))
        if script is None:
            message = f"wfx step {step['id']}: its script cannot be exported, see the header"
            return [_failing(name, message)]
        if "WFX_WORKSPACE" in script:
            self.losses.add(
                "workspace",
                "$WFX_WORKSPACE: each job has its own runner, files are not shared between jobs",
                step,
            )
        run_step: dict[str, Any] = {"id": name, "shell": shell}
        directory = posixpath.normpath(
            posixpath.join(self.directory, source.get("workingDirectory", ""))
        )
        if "${{" in directory:
            directory = self._value(directory, step, "working directory")
        if directory != ".":
            run_step["working-directory"] = directory
        run_step["env"] = env
        run_step["run"] = script
        steps = [run_step]
        if step["id"] in self.read_outputs and name == "run":
            steps.append(
                {
                    "name": "wfx outputs",
                    "shell": "bash",
                    "run": _COPY_OUTPUTS,
                    "env": {"WFX_OUTPUT": env["WFX_OUTPUT"]},
                }
            )
        return steps

    def _step_env(self, step: dict[str, Any], chain: Mapping[str, str]) -> dict[str, str]:
        workflow_env = self.plan.get("envSource", {})
        env: dict[str, str] = {}
        for name, text in chain.items():
            if workflow_env.get(name) == text:
                continue  # the workflow's own env, set once at the top
            env[name] = self._value(text, step, f"env.{name}", own=env)
        env.update(
            {
                "WFX_STEP_ID": step["id"],
                "WFX_RUN_ID": "${{ github.run_id }}",
                "WFX_ATTEMPT": "1",
                "WFX_WORKSPACE": "${{ github.workspace }}",
                "WFX_OUTPUT": "${{ runner.temp }}/wfx-output-" + self.job_ids[step["id"]],
            }
        )
        return env

    def _run_script(
        self, step: dict[str, Any], text: str, shell: str | None, env: dict[str, str]
    ) -> str | None:
        """The script with each `${{ }}` as a variable; None when that cannot be done
        (the step then fails in its place: its text, pasted, would run values as code)."""
        try:
            template = parse_template(text)
            prepared = prepare_script(
                template, lambda e: self._value_of(e.text.strip(), step, "run"), shell
            )
        except (ExpressionError, EvaluatedValueError) as exc:
            self.losses.add("expression", f"the script: {exc}; the job fails in its place", step)
            return None
        env.update(prepared.env)
        return prepared.text

    def _cmd_script(self, step: dict[str, Any], items: list[str], env: dict[str, str]) -> str:
        words = []
        for number, item in enumerate(items, 1):
            if "${{" not in item:
                words.append(shlex.quote(item))
                continue
            name = f"WFX_ARG_{number}"
            env[name] = self._value(item, step, f"cmd[{number - 1}]")
            words.append(f'"${name}"')
        return "exec " + " ".join(words)

    # -- values and expressions ------------------------------------------------------------

    def _value(
        self,
        text: str,
        step: dict[str, Any] | None,
        where: str,
        *,
        allow_env: bool = True,
        own: Mapping[str, str] | None = None,
    ) -> str:
        """A text with `${{ }}` in it, each expression translated (GitHub Actions fills the
        value in: env and `with` values are data, not code)."""

        def one(match: re.Match[str]) -> str:
            inner = match.group(1).strip()
            self._check_env_reads(inner, step, where, allow_env, own or {})
            return self._value_of(inner, step, where)

        return _EXPRESSION.sub(one, text)

    def _check_env_reads(
        self,
        text: str,
        step: dict[str, Any] | None,
        where: str,
        allow_env: bool,
        own: Mapping[str, str],
    ) -> None:
        try:
            read = [r.path for r in references(parse_expression(text))]
        except Untranslatable:
            return
        for path in read:
            if path[0].lower() != "env":
                continue
            if not allow_env or (len(path) > 1 and path[1] in own):
                self.losses.add(
                    "env-order",
                    f"{where}: `{text}` reads an env value GitHub Actions sets at the same level",
                    step,
                )

    def _value_of(self, text: str, step: dict[str, Any] | None, where: str) -> str:
        translated = self._expression(text, step, where, "empty text in its place")
        return "${{ " + (translated or "''") + " }}"

    def _expression(
        self, text: str, step: dict[str, Any] | None, where: str, instead: str
    ) -> str | None:
        """The expression in GitHub Actions' terms; None (a loss, saying what the output
        has `instead`) when it has none."""
        try:
            return translate(text, lambda path: self._relabel(path, step), GITHUB_FUNCTIONS)
        except Untranslatable as exc:
            self.losses.add("expression", f"{where}: `{text}`: {exc}; {instead}", step)
            return None

    def _relabel(
        self, path: tuple[str, ...], step: dict[str, Any] | None
    ) -> tuple[tuple[str, ...], int]:
        head = path[0].lower()
        if head in ("inputs", "env", "secrets"):
            return (head,), 1
        if head == "steps":
            if len(path) >= 3 and path[2].lower() == "outputs" and path[1] in self.job_ids:
                return ("needs", self.job_ids[path[1]], "outputs"), 3
            raise Untranslatable(
                f"`{'.'.join(path[:3])}`: GitHub Actions knows another job's outputs and"
                " result, not wfx's status, attempts or duration"
            )
        if head == "workflow" and len(path) >= 2:
            field = {"name": ("github", "workflow"), "runid": ("github", "run_id")}
            if path[1].lower() in field:
                return field[path[1].lower()], 2
        raise Untranslatable(f"`{'.'.join(path[:2])}` has no GitHub Actions equivalent")

    def _read_steps(self, step: dict[str, Any]) -> list[str]:
        """The steps whose outputs `step` reads (their jobs must be in its `needs`)."""
        texts = [step["conditionText"]]
        for action in (step.get("action"), step.get("rollbackAction")):
            if action:
                source = action.get("source", {})
                texts += [source.get("run", ""), *source.get("cmd", [])]
                texts += list(source.get("env", {}).values())
        found: list[str] = []
        for text in texts:
            for match in _EXPRESSION.finditer(text if "${{" in text else "${{" + text + "}}"):
                try:
                    root = parse_expression(match.group(1).strip())
                except Untranslatable:
                    continue
                for reference in references(root):
                    path = reference.path
                    if path[0].lower() == "steps" and len(path) > 1 and path[1] in self.steps:
                        found.append(path[1])
                        if len(path) > 3 and path[2].lower() == "outputs":
                            self.read_outputs.setdefault(path[1], set()).add(path[3])
        return [s for s in dict.fromkeys(found) if s != step["id"]]

    # -- rollbacks --------------------------------------------------------------------------

    def _compensation_job(self) -> dict[str, Any] | None:
        order = [s for s in self.plan["compensation"] if self.steps[s].get("rollbackAction")]
        if not order:
            return None
        self.losses.add(
            "rollback",
            "saga rollback: wfx undoes the steps that succeeded in reverse order of completion;"
            f" the `{COMPENSATE_JOB}` job runs their rollbacks in the plan's order"
            f" ({', '.join(order)}) after any job failed, each only if its job succeeded",
            first_with_rollback(self.plan),
        )
        steps: list[dict[str, Any]] = [{"uses": CHECKOUT}]
        for step_id in order:
            step = self.steps[step_id]
            for item in self._run_steps(
                step, step["rollbackAction"], "rollback-" + self.job_ids[step_id]
            ):
                if item.get("name") == "wfx outputs":
                    continue
                item["if"] = "${{ needs." + self.job_ids[step_id] + ".result == 'success' }}"
                item["continue-on-error"] = True
                timeout = step["rollbackAction"].get("timeout")
                if timeout is not None:
                    item["timeout-minutes"] = self._minutes(step, timeout, "the rollback's timeout")
                steps.append(item)
        return {
            "name": "wfx compensation (rollbacks)",
            "needs": [self.job_ids[s] for s in self.main],
            "if": "${{ failure() || cancelled() }}",
            "runs-on": RUNNER,
            "steps": steps,
        }


def _shell(shell: str | None) -> str:
    """A wfx `shell` as GitHub Actions' `shell`: the built-in is `bash` (which GitHub runs
    as `bash --noprofile --norc -eo pipefail`, as wfx does); a shell without `{0}` gets
    the script file where wfx gives `-c SCRIPT`."""
    if shell is None:
        return "bash"
    return shell if "{0}" in shell else f"{shell} {{0}}"


def _workflow_directory(file: str) -> str:
    """The workflow file's directory relative to the repository (wfx runs steps there)."""
    directory = posixpath.dirname(file.replace("\\", "/"))
    if posixpath.isabs(directory) or not directory:
        return "."
    return posixpath.normpath(directory)


def _seconds(value: float) -> str:
    from wfx.durations import format_duration  # noqa: PLC0415 - only for messages

    return format_duration(value)


def _failing(name: str, message: str) -> dict[str, Any]:
    """A step that fails saying why, in the place of one that cannot be exported."""
    return {"id": name, "shell": "bash", "run": f"echo {shlex.quote(message)} >&2; exit 1"}
