"""Export to Argo Workflows: a `Workflow` whose entrypoint is a DAG of one task per wfx
step, built with hera's models (`pip install 'wfx[argo]'`) and dumped as YAML.

A `run` step is a script template (its shell the script's command, each `${{ }}` an
environment variable holding an Argo `{{...}}` value, as wfx runs it); a `cmd` step a
container template whose argv is given as is (each `${{ }}` passed through an
environment variable and Kubernetes' `$(NAME)`, never through a shell). `finally` steps
form the exit handler. Secrets come from the Kubernetes Secret `wfx-secrets`, one key
per secret. What Argo cannot express faithfully is a Loss (wfx.export).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

from wfx.diagnostics import DiagnosticsError, error
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
from wfx.export.expressions import Untranslatable, parse_expression
from wfx.expr import ExpressionError, parse_template
from wfx.expr.ast import Binary, FunctionCall, Literal, Logical, NamedValue, Node, Not, Property
from wfx.expr.ast import references as references_in
from wfx.shell import EvaluatedValueError, prepare_script

TARGET = "argo"

#: the image every step runs in unless `--image` names another
DEFAULT_IMAGE = "ubuntu:24.04"

#: the Kubernetes Secret the workflow's secrets are read from, one key per secret
SECRET_NAME = "wfx-secrets"

#: where a step's `$WFX_OUTPUT` file is, and where each output read by another step goes
OUTPUT_FILE = "/tmp/wfx-output"
OUTPUT_DIR = "/tmp/wfx-outputs"

_NAME = re.compile(r"[^a-z0-9-]")
_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_BACKOFFS = ("constant", "exponential")

#: splits `$WFX_OUTPUT` (name=value lines) into one file per output when the script ends,
#: for Argo's output parameters; an EXIT trap keeps the script's own exit status
_SPLIT_OUTPUTS = (
    f'trap \'mkdir -p {OUTPUT_DIR}; if [ -f "$WFX_OUTPUT" ]; then while IFS= read -r l;'
    f' do printf %s "${{l#*=}}" > "{OUTPUT_DIR}/${{l%%=*}}"; done < "$WFX_OUTPUT"; fi\' EXIT\n'
)


def export_argo(plan: dict[str, Any], image: str = DEFAULT_IMAGE) -> Exported:
    """The plan as an Argo `Workflow` (YAML text) and what it loses."""
    exporter = _ArgoExporter(plan, image)
    workflow = exporter.workflow()
    losses = tuple(exporter.losses.found)
    body = dump_yaml(workflow_document(workflow))
    return Exported(header(TARGET, plan["file"], losses) + body, losses)


def workflow_document(workflow: Any) -> dict[str, Any]:
    """A hera Workflow model as the plain data Argo reads (camelCase, no nulls)."""
    document: dict[str, Any] = workflow.model_dump(by_alias=True, exclude_none=True)
    return document


def argo_name(step_id: str) -> str:
    """An Argo task or template name for a wfx step id (lower case, letters, digits, `-`)."""
    cleaned = _NAME.sub("-", step_id.lower()).strip("-")
    return cleaned or "step"


class _ArgoExporter:
    """Builds the hera Workflow model, collecting every loss."""

    def __init__(self, plan: dict[str, Any], image: str) -> None:
        try:
            from hera.workflows import models  # noqa: PLC0415 - an optional extra
        except ImportError as exc:  # pragma: no cover - the test extra installs it
            problem = error(
                "export.hera", f"export to Argo needs hera ({exc})", None, "pip install 'wfx[argo]'"
            )
            raise DiagnosticsError([problem]) from None
        self.m = models
        self.plan = plan
        self.image = image
        self.losses = Losses()
        self.steps = {k: {**v, "id": k} for k, v in plan["steps"].items()}
        self.main = [s for stage in plan["stages"] for s in stage]
        self.final = [s for stage in plan["finally"] for s in stage]
        names = Names(reserved=("main", "finally"))
        self.names = {step_id: names.take(argo_name(step_id)) for step_id in self.steps}
        self.rollback_names = {
            step_id: names.take("rollback-" + self.names[step_id])
            for step_id, step in self.steps.items()
            if step.get("rollbackAction")
        }
        self.read_outputs: dict[str, set[str]] = {}
        self._held: dict[str, Any] = {}
        #: the template being built, whose step outputs reach it as input parameters
        #: (a leaf template cannot read `{{tasks...}}`: the DAG task passes them)
        self._building: str | None = None
        #: each template's input parameters: name → (step id, output)
        self.inputs_of: dict[str, dict[str, tuple[str, str]]] = {}

    # -- the workflow -----------------------------------------------------------------------

    def workflow(self) -> Any:
        m, plan = self.m, self.plan
        for step in self.steps.values():
            self._scan_outputs(step)
        leaves = [self._template(self.steps[s], "action") for s in self.main + self.final]
        leaves += [self._template(self.steps[s], "rollbackAction") for s in self._rollbacks()]
        templates = [self._dag("main", self.main, final=False)]
        if self.final or self._rollbacks():
            templates.append(self._dag("finally", self.final, final=True))
        templates += leaves
        spec: dict[str, Any] = {
            "entrypoint": "main",
            "templates": templates,
            "arguments": m.Arguments(parameters=self._parameters()),
        }
        if len(templates) > 1 and (self.final or self._rollbacks()):
            spec["on_exit"] = "finally"
        if plan.get("timeout") is not None:
            spec["active_deadline_seconds"] = math.ceil(plan["timeout"])
        if plan.get("maxParallel") is not None:
            spec["parallelism"] = plan["maxParallel"]
        for group_id, group in plan.get("groups", {}).items():
            if group.get("maxParallel") is not None:
                self.losses.add(
                    "max-parallel",
                    f"group `{group_id}`: `maxParallel` is dropped",
                    group_position(plan, group_id),
                )
        unmapped_losses(plan, self.losses, "Argo")
        name = argo_name(plan.get("name") or "wfx")
        return m.Workflow(
            api_version="argoproj.io/v1alpha1",
            kind="Workflow",
            metadata=m.ObjectMeta(generate_name=name + "-"),
            spec=m.WorkflowSpec(**spec),
        )

    def _parameters(self) -> list[Any]:
        parameters = []
        for name, spec in self.plan.get("inputSpecs", {}).items():
            value = self.plan["inputs"].get(name, spec.get("default"))
            entry: dict[str, Any] = {"name": name}
            if value is not None:
                entry["value"] = _text(value)
            if spec.get("enum") is not None:
                entry["enum"] = [_text(v) for v in spec["enum"]]
            if spec.get("description"):
                entry["description"] = spec["description"]
            if spec.get("pattern"):
                self.losses.add("input-pattern", f"input `{name}`: its `pattern` is not checked")
            parameters.append(self.m.Parameter(**entry))
        return parameters

    def _rollbacks(self) -> list[str]:
        return [s for s in self.plan["compensation"] if self.steps[s].get("rollbackAction")]

    # -- the DAGs ---------------------------------------------------------------------------

    def _dag(self, name: str, order: list[str], *, final: bool) -> Any:
        m = self.m
        tasks = []
        previous: str | None = None
        if final and self._rollbacks():
            self.losses.add(
                "rollback",
                "saga rollback: Argo's exit handler cannot tell which steps succeeded; it runs"
                f" every rollback ({', '.join(self._rollbacks())}) one after another, in the"
                " plan's order, when the workflow did not succeed",
                first_with_rollback(self.plan),
            )
            for step_id in self._rollbacks():
                task: dict[str, Any] = {
                    "name": self.rollback_names[step_id],
                    "template": self.rollback_names[step_id],
                    "when": "{{workflow.status}} != Succeeded",
                    "continue_on": m.ContinueOn(failed=True, error=True),
                }
                self._pass_outputs(task, exit_handler=True)
                if previous:  # it continues on failure, so the next rollback still runs
                    task["dependencies"] = [previous]
                tasks.append(m.DAGTask(**task))
                previous = task["name"]
        for step_id in order:
            step = self.steps[step_id]
            task = {"name": self.names[step_id], "template": self.names[step_id]}
            needs = [self.names[n] for n in step["needs"]]
            if final and previous:
                needs.append(previous)
            if needs:
                task["dependencies"] = list(dict.fromkeys(needs))
            when = self._when(step, final)
            if when:
                task["when"] = when
            if step["onError"] == "continue":
                task["continue_on"] = m.ContinueOn(failed=True)
            self._pass_outputs(task, exit_handler=final)
            tasks.append(m.DAGTask(**task))
        return m.Template(name=name, dag=m.DAGTemplate(tasks=tasks))

    def _when(self, step: dict[str, Any], final: bool) -> str | None:
        texts = [
            self.plan["groups"][g]["conditionText"]
            for g in step["groups"]
            if self.plan["groups"][g].get("conditionText")
        ]
        own = step["conditionText"]
        if own != ("always()" if final else "success()"):
            texts.append(own)
        parts = []
        for text in texts:
            try:
                parts.append(self._condition(parse_expression(text), final))
            except Untranslatable as exc:
                self.losses.add(
                    "expression", f"condition `{text}`: {exc}; the task runs without it", step
                )
        parts = [p for p in parts if p != "true"]
        if not parts:
            return None
        return " && ".join(f"({p})" for p in parts) if len(parts) > 1 else parts[0]

    def _condition(self, node: Node, final: bool) -> str:
        """A wfx condition as an Argo `when` (govaluate after `{{}}` substitution): only
        comparisons of values, `&&`, `||`, `!`, and in `finally` the status functions."""
        if isinstance(node, Logical):
            return f" {node.op} ".join(f"({self._condition(o, final)})" for o in node.operands)
        if isinstance(node, Not):
            return f"!({self._condition(node.operand, final)})"
        if isinstance(node, Binary):
            left, right = self._operand(node.left, final), self._operand(node.right, final)
            return f"{left} {node.op} {right}"
        if isinstance(node, FunctionCall) and final and not node.args:
            status = {
                "always": "true",
                "success": "{{workflow.status}} == Succeeded",
                "failure": "{{workflow.status}} != Succeeded",
            }.get(node.name.lower())
            if status is not None:
                return status
        if isinstance(node, FunctionCall) and node.name.lower() == "success" and not final:
            return "true"  # a DAG task runs only when its dependencies succeeded
        raise Untranslatable("Argo's `when` has no equivalent of this expression")

    def _operand(self, node: Node, final: bool) -> str:
        if isinstance(node, Literal):
            if isinstance(node.value, str):
                return "'" + node.value.replace("'", "\\'") + "'"
            if isinstance(node.value, bool):
                return "true" if node.value else "false"
            if node.value is None:
                raise Untranslatable("null has no Argo equivalent")
            return _number(node.value)
        return "'" + self._reference(node, final) + "'"

    def _reference(self, node: Node, final: bool = False) -> str:
        """A bare reference as an Argo `{{...}}` template."""
        path = _path(node)
        if path is None:
            raise Untranslatable("only a plain value reference has an Argo equivalent")
        head = path[0].lower()
        if head == "inputs" and len(path) == 2:
            return "{{workflow.parameters." + path[1] + "}}"
        if head == "workflow" and len(path) == 2 and path[1].lower() == "runid":
            return "{{workflow.name}}"  # unique per run, as generateName makes it
        if head == "steps" and len(path) == 4 and path[2].lower() == "outputs":
            if path[1] not in self.names:
                raise Untranslatable(f"`{'.'.join(path)}` has no Argo equivalent")
            if self._building is not None:  # a leaf template: an input its task passes
                name = f"wfx-{self.names[path[1]]}-{path[3]}"
                self.inputs_of.setdefault(self._building, {})[name] = (path[1], path[3])
                return "{{inputs.parameters." + name + "}}"
            return self._output(path[1], path[3], exit_handler=final)
        raise Untranslatable(f"`{'.'.join(path)}` has no Argo equivalent")

    def _output(self, step_id: str, output: str, *, exit_handler: bool) -> str:
        """A step's output where a DAG reads it: from the task in the main DAG; in the exit
        handler, which cannot see the main DAG's tasks, from the workflow's outputs."""
        if exit_handler:
            return "{{workflow.outputs.parameters." + self._global(step_id, output) + "}}"
        return "{{tasks." + self.names[step_id] + ".outputs.parameters." + output + "}}"

    def _global(self, step_id: str, output: str) -> str:
        """The workflow-wide name of a step's output (its `globalName`)."""
        return f"wfx-{self.names[step_id]}-{output}"

    def _pass_outputs(self, task: dict[str, Any], *, exit_handler: bool) -> None:
        """The arguments a task passes its template: the step outputs it reads."""
        wanted = self.inputs_of.get(task["template"])
        if wanted:
            task["arguments"] = self.m.Arguments(
                parameters=[
                    self.m.Parameter(
                        name=name, value=self._output(*wanted[name], exit_handler=exit_handler)
                    )
                    for name in sorted(wanted)
                ]
            )

    # -- templates --------------------------------------------------------------------------

    def _template(self, step: dict[str, Any], which: str) -> Any:
        """The template of a step's action (or its rollback's), with an input parameter
        for each step output it reads."""
        m = self.m
        rollback = which == "rollbackAction"
        name = (self.rollback_names if rollback else self.names)[step["id"]]
        self._building = name
        try:
            template = self._leaf(step, which, name)
        finally:
            self._building = None
        inputs = self.inputs_of.get(name)
        if inputs:
            template.inputs = m.Inputs(parameters=[m.Parameter(name=n) for n in sorted(inputs)])
        return template

    def _leaf(self, step: dict[str, Any], which: str, name: str) -> Any:
        m = self.m
        action = step[which]
        rollback = which == "rollbackAction"
        settings: dict[str, Any] = {"name": name}
        if not rollback:
            self._settings(step, settings)
        elif action.get("timeout") is not None:
            settings["active_deadline_seconds"] = str(math.ceil(action["timeout"]))
            if math.ceil(action["timeout"]) != action["timeout"]:
                self.losses.add(
                    "timeout", "the rollback's timeout is rounded up to whole seconds", step
                )
        if action["kind"] == "uses":
            self.losses.add(
                "python", f"`{action['uses']}` is a Python callable of wfx; the task fails", step
            )
            message = f"wfx step {step['id']} calls {action['uses']}, which cannot run here"
            settings["container"] = self._failing(message)
        else:
            self._runs(step, action, rollback, settings)
        if step["id"] in self.read_outputs and not rollback:
            # declared even by a task that fails in its step's place: its readers name them
            settings["outputs"] = m.Outputs(
                parameters=[
                    m.Parameter(
                        name=output,
                        value_from=m.ValueFrom(path=f"{OUTPUT_DIR}/{output}", default=""),
                        global_name=self._global(step["id"], output),
                    )
                    for output in sorted(self.read_outputs[step["id"]])
                ]
            )
        return m.Template(**settings)

    def _runs(
        self, step: dict[str, Any], action: dict[str, Any], rollback: bool, settings: dict[str, Any]
    ) -> None:
        """What a `run` or `cmd` action runs: a script or a container."""
        m = self.m
        source = action.get("source", {})
        env = self._env(step, source.get("env", {}))
        directory = source.get("workingDirectory")
        if directory is not None:
            self.losses.add(
                "working-directory",
                f"working directory `{directory}` is relative to the workflow file, which is"
                " not in the pod",
                step,
            )
        if "WFX_WORKSPACE" in str(source):
            self.losses.add(
                "workspace",
                "$WFX_WORKSPACE: each task is its own pod, files are not shared between tasks",
                step,
            )
        if action["kind"] == "cmd":
            args = [self._argument(step, item, n, env) for n, item in enumerate(source["cmd"])]
            settings["container"] = m.Container(
                image=self.image, command=args[:1], args=args[1:], env=_env_vars(m, env)
            )
            return
        script = self._script(step, source.get("run", ""), action.get("shell"), env)
        if script is None:
            message = f"wfx step {step['id']}: its script cannot be exported, see the header"
            settings["container"] = self._failing(message)
            return
        command = _command(action.get("shell"))
        if step["id"] in self.read_outputs and not rollback:
            if command[0] in ("bash", "sh"):
                script = _SPLIT_OUTPUTS + script
            else:
                self.losses.add("outputs", "outputs of a non-sh shell are not read", step)
        settings["script"] = m.ScriptTemplate(
            image=self.image, command=command, source=script, env=_env_vars(m, env)
        )

    def _failing(self, message: str) -> Any:
        """A container that fails saying why, in the place of a step that cannot run."""
        command = ["sh", "-c", f"echo {shlex.quote(message)} >&2; exit 1"]
        return self.m.Container(image=self.image, command=command)

    def _settings(self, step: dict[str, Any], settings: dict[str, Any]) -> None:
        m = self.m
        if step.get("timeout") is not None:
            settings["active_deadline_seconds"] = str(math.ceil(step["timeout"]))
            if math.ceil(step["timeout"]) != step["timeout"]:
                self.losses.add("timeout", "the timeout is rounded up to whole seconds", step)
        retry = step["retry"]
        if retry["attempts"] > 1:
            shape: dict[str, Any] = {"duration": f"{_number(retry['delay'])}s"}
            factor = retry["factor"] if retry["backoff"] == "exponential" else 1
            if factor != 1 and float(factor).is_integer():
                shape["factor"] = m.IntOrString(str(int(factor)))
            if retry.get("maxDelay") not in (None, "inf", "Infinity"):
                shape["cap"] = f"{_number(float(retry['maxDelay']))}s"
            backoff = m.Backoff(**shape)
            if retry["backoff"] not in _BACKOFFS or not float(factor).is_integer():
                self.losses.add(
                    "backoff",
                    f"{retry['backoff']} backoff (factor {factor}): Argo multiplies by a whole"
                    " factor",
                    step,
                )
            if retry.get("jitter"):
                self.losses.add("jitter", "Argo's retries have no jitter", step)
            if retry.get("on", "any") != "any" or retry.get("except"):
                self.losses.add(
                    "retry-filter",
                    "`retries.on`/`except`: Argo retries every failure (retryPolicy Always)",
                    step,
                )
            if retry.get("deadline") is not None:
                self.losses.add(
                    "retry-deadline",
                    f"retries `deadline` {_number(retry['deadline'])}s: Argo's retries have no"
                    " deadline for all attempts together",
                    step,
                )
            settings["retry_strategy"] = m.RetryStrategy(
                limit=str(retry["attempts"] - 1), retry_policy="Always", backoff=backoff
            )
        if step["provenance"].get("killGrace", {}).get("origin", "built-in") != "built-in":
            self.losses.add("kill-grace", "killGrace: the pod's grace period is Argo's", step)

    def _env(self, step: dict[str, Any], chain: Mapping[str, str]) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for name, text in chain.items():
            env[name] = self._value(step, text, f"env.{name}")
        env.update(
            {
                "WFX_STEP_ID": step["id"],
                "WFX_RUN_ID": "{{workflow.name}}",
                "WFX_ATTEMPT": "1",
                "WFX_WORKSPACE": "/tmp",
                "WFX_OUTPUT": OUTPUT_FILE,
            }
        )
        return env

    def _script(
        self, step: dict[str, Any], text: str, shell: str | None, env: dict[str, Any]
    ) -> str | None:
        """The script with each `${{ }}` as a variable; None when that cannot be done
        (the task then fails in its place: its text, kept, would run values as code)."""
        try:
            prepared = prepare_script(
                parse_template(text), lambda e: self._holder(step, e.text.strip(), env), shell
            )
        except (ExpressionError, EvaluatedValueError) as exc:
            self.losses.add("expression", f"the script: {exc}; the task fails in its place", step)
            return None
        for name, value in prepared.env.items():
            env.setdefault(name, self._held.get(value, value))
        return prepared.text

    def _holder(self, step: dict[str, Any], text: str, env: dict[str, Any]) -> str:
        """The value a script's `WFX_EXPR_n` variable gets for one expression (a secret's
        reference stands in as a token until the variable is made)."""
        value = self._expression_value(step, text, "run")
        if isinstance(value, dict):
            token = f"\x00{len(self._held)}"
            self._held[token] = value
            return token
        return str(value)

    def _argument(self, step: dict[str, Any], item: str, number: int, env: dict[str, Any]) -> str:
        literal = item.replace("$(", "$$(")  # Kubernetes expands $(NAME) in argv
        if "${{" not in item:
            return literal
        name = f"WFX_ARG_{number + 1}"
        env[name] = self._value(step, item, f"cmd[{number}]")
        return f"$({name})"

    def _value(self, step: dict[str, Any], text: str, where: str) -> Any:
        """A text with `${{ }}`: each expression an Argo `{{...}}` (or a secret)."""
        whole = _EXPRESSION.fullmatch(text.strip())
        if whole is not None and self._secret(whole.group(1).strip()):
            return self._secret(whole.group(1).strip())
        return _EXPRESSION.sub(
            lambda match: str(self._expression_value(step, match.group(1).strip(), where)), text
        )

    def _expression_value(self, step: dict[str, Any], text: str, where: str) -> Any:
        secret = self._secret(text)
        if secret is not None:
            return secret
        try:
            root = parse_expression(text)
            path = _path(root)
            if path is not None and path[0].lower() == "env" and len(path) == 2:
                return f"$({path[1]})"  # Kubernetes expands a variable set before it
            return self._reference(root)
        except Untranslatable as exc:
            self.losses.add(
                "expression", f"{where}: `{text}`: {exc}; empty text in its place", step
            )
            return ""

    def _secret(self, text: str) -> dict[str, Any] | None:
        try:
            path = _path(parse_expression(text))
        except Untranslatable:
            return None
        if path is None or path[0].lower() != "secrets" or len(path) != 2:
            return None
        return {"secretKeyRef": {"name": SECRET_NAME, "key": path[1]}}

    def _scan_outputs(self, step: dict[str, Any]) -> None:
        texts = [step["conditionText"]]
        for action in (step.get("action"), step.get("rollbackAction")):
            if action:
                source = action.get("source", {})
                texts += [source.get("run", ""), *source.get("cmd", [])]
                texts += list(source.get("env", {}).values())
        for text in texts:
            for match in _EXPRESSION.finditer(text if "${{" in text else "${{" + text + "}}"):
                try:
                    root = parse_expression(match.group(1).strip())
                except Untranslatable:
                    continue
                for reference in references_in(root):
                    path = reference.path
                    if path[0].lower() == "steps" and len(path) > 3 and path[2] == "outputs":
                        self.read_outputs.setdefault(path[1], set()).add(path[3])


def _path(node: Node) -> tuple[str, ...] | None:
    """`a.b.c` as ("a", "b", "c"); None for anything but a plain property chain."""
    names: list[str] = []
    while isinstance(node, Property):
        names.append(node.name)
        node = node.target
    if not isinstance(node, NamedValue):
        return None
    return (node.name, *reversed(names))


def _env_vars(m: Any, env: Mapping[str, Any]) -> list[Any]:
    variables = []
    for name, value in env.items():
        if isinstance(value, dict):
            ref = value["secretKeyRef"]
            source = m.EnvVarSource(
                secret_key_ref=m.SecretKeySelector(name=ref["name"], key=ref["key"])
            )
            variables.append(m.EnvVar(name=name, value_from=source))
        else:
            variables.append(m.EnvVar(name=name, value=str(value)))
    return variables


def _command(shell: str | None) -> list[str]:
    """The script's command: wfx's built-in `bash -eo pipefail`, or the step's shell with
    the script file where `{0}` is (Argo appends the file)."""
    if shell is None:
        return ["bash", "-eo", "pipefail"]
    return [word for word in shlex.split(shell) if word != "{0}"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
