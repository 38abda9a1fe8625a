"""action.yml: a composite action whose steps install wfx and run the comment script that
test_pr_comment.py exercises; its `run:` lines are run here as the runner would run
them (bash, the step's `env:` with its expressions filled in), against a fake `gh`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ci_harness import FakeGitHub

from wfx.ci.comment import MARKER

ROOT = Path(__file__).resolve().parents[2]
ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def steps() -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in ACTION["runs"]["steps"]}


def fill(text: str, values: dict[str, str]) -> str:
    """`text` with each `${{ expression }}` replaced as GitHub would (only the ones known)."""
    return EXPRESSION.sub(lambda m: values[m[1]], text)


def run_step(step: dict[str, Any], values: dict[str, str], cwd: Path, **extra: str) -> int:
    environment = {**os.environ, **extra}
    environment.update({name: fill(str(v), values) for name, v in step["env"].items()})
    assert step["shell"] == "bash"
    # how the runner runs a `shell: bash` step
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    return subprocess.run(command, cwd=cwd, env=environment, check=False).returncode


def test_the_action_is_a_composite_action_with_documented_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert ACTION["name"] and ACTION["description"]
    for name, declared in ACTION["inputs"].items():
        assert declared.get("description"), name
    for step in ACTION["runs"]["steps"]:
        assert "id" in step
        assert ("run" in step) != ("uses" in step)
        if "run" in step:
            # values reach the shell through the environment, never as script text
            assert "${{" not in step["run"], step["id"]
            assert step["shell"] == "bash"
    assert ACTION["outputs"]["invalid"]["value"] == "${{ steps.plan.outputs.invalid }}"


def test_every_expression_names_a_declared_input_or_an_earlier_step() -> None:
    seen: set[str] = set()
    for step in ACTION["runs"]["steps"]:
        text = yaml.safe_dump({k: v for k, v in step.items() if k != "run"})
        for expression in EXPRESSION.findall(text):
            if expression.startswith("inputs."):
                assert expression.removeprefix("inputs.") in ACTION["inputs"]
            elif expression.startswith("steps."):
                assert expression.split(".")[1] in seen, expression
            else:
                assert expression == "github.action_path", expression
        seen.add(step["id"])
    assert steps()["python"]["uses"].startswith("actions/setup-python@")
    assert steps()["python"]["with"]["update-environment"] is False


def test_the_install_step_installs_this_repository_and_names_its_python(tmp_path: Path) -> None:
    """With a stand-in for Python that records what it is asked to do."""
    log = tmp_path / "python-calls"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$0 $*" >> "{log}"\n'
        'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    outputs = tmp_path / "outputs"
    runner_temp = tmp_path / "runner"
    values = {
        "steps.python.outputs.python-path": str(python),
        "inputs.wfx-source": "",
        "github.action_path": str(ROOT),
    }
    step = steps()["install"]
    code = run_step(
        step, values, tmp_path, RUNNER_TEMP=str(runner_temp), GITHUB_OUTPUT=str(outputs)
    )
    assert code == 0
    venv_python = runner_temp / "wfx-venv" / "bin" / "python"
    calls = log.read_text("utf-8").splitlines()
    assert calls[0] == f"{python} -m venv {runner_temp / 'wfx-venv'}"
    assert calls[1].startswith(f"{venv_python} -m pip install ")
    assert calls[1].endswith(f" {ROOT}")
    assert outputs.read_text("utf-8") == f"python={venv_python}\n"

    log.unlink()
    values["inputs.wfx-source"] = "wfx==0.1.0"
    assert (
        run_step(step, values, tmp_path, RUNNER_TEMP=str(runner_temp), GITHUB_OUTPUT="/dev/null")
        == 0
    )
    assert log.read_text("utf-8").splitlines()[1].endswith(" wfx==0.1.0")


def test_the_plan_step_runs_the_comment_script(
    repository: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    """The step as the runner runs it: the comment is created, the invalid file fails the
    step, and the output says so."""
    outputs = tmp_path / "outputs"
    values = {
        "inputs.github-token": "ghs_FromTheWorkflow0000",
        "steps.install.outputs.python": sys.executable,
        "inputs.base": "main",
        "inputs.files": ACTION["inputs"]["files"]["default"],
        "inputs.pull-request": "12",
        "inputs.repository": "octo/shop",
        "inputs.comment": "true",
        "inputs.comment-author": "",
        "inputs.fail-on-invalid": "true",
    }
    code = run_step(steps()["plan"], values, repository, GITHUB_OUTPUT=str(outputs))
    assert code == 2
    (comment,) = [c for c in github.comments() if str(c["body"]).startswith(MARKER)]
    assert "`jobs/new.wfx.yml`" in str(comment["body"])
    assert {c["token"] for c in github.calls()} == {"ghs_FromTheWorkflow0000"}
    assert outputs.read_text("utf-8") == "invalid=true\n"


def test_docs_list_every_input_and_their_snippets_are_valid_yaml() -> None:
    text = (ROOT / "docs" / "ci.md").read_text("utf-8")
    documented = re.findall(r"^\| `([a-z-]+)` \| ", text, flags=re.MULTILINE)
    assert documented == list(ACTION["inputs"])
    snippets = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    assert len(snippets) == 3
    for snippet in snippets:
        assert isinstance(yaml.safe_load(snippet), dict)
    hooks = yaml.safe_load(snippets[2])["repos"][0]["hooks"]
    declared = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))
    assert [h["id"] for h in hooks] == [h["id"] for h in declared]


ACTIONLINT = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
SARIF_SCHEMA = ROOT / "tests" / "render" / "sarif-schema-2.1.0.json"


def test_the_docs_workflows_pass_actionlint(tmp_path: Path) -> None:
    """docs/ci.md's two GitHub workflows (the plan comment, the SARIF upload) and the one
    of docs/plan.md that comments by hand, checked by the real actionlint."""
    text = (ROOT / "docs" / "ci.md").read_text("utf-8")
    workflows = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)[:2]
    assert [yaml.safe_load(w)["name"] for w in workflows] == ["wfx plan", "wfx scan"]
    by_hand = (ROOT / "docs" / "plan.md").read_text("utf-8").split("## Posting the plan")[1]
    workflows.append(re.findall(r"```yaml\n(.*?)```", by_hand, flags=re.DOTALL)[0])
    files = [tmp_path / f"docs-{number}.yml" for number in range(len(workflows))]
    for file, workflow in zip(files, workflows, strict=True):
        file.write_text(workflow, encoding="utf-8")
    done = subprocess.run(
        [ACTIONLINT, "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_sarif_step_writes_a_log_the_official_schema_accepts(tmp_path: Path) -> None:
    """The `run:` of docs/ci.md's SARIF workflow, run as the runner runs it, in a checkout
    with a risky workflow file deep in it and another YAML file."""
    text = (ROOT / "docs" / "ci.md").read_text("utf-8")
    workflow = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)[1])
    (lint,) = [
        s for s in workflow["jobs"]["scan"]["steps"] if s.get("name") == "Lint the workflows"
    ]
    deep = tmp_path / "ops" / "deploy"
    deep.mkdir(parents=True)
    (deep / "release.wfx.yaml").write_text(
        "wfx: 1\ninputs:\n  ref: {type: string, default: main}\nsteps:\n"
        '  - id: checkout\n    run: eval "git checkout ${{ inputs.ref }}"\n',
        encoding="utf-8",
    )
    (tmp_path / "config.yaml").write_text("a: 1\n", encoding="utf-8")
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", lint["run"]]
    assert subprocess.run(command, cwd=tmp_path, env=environment, check=False).returncode == 0
    log = json.loads((tmp_path / "wfx.sarif").read_text("utf-8"))
    schema = json.loads(SARIF_SCHEMA.read_text("utf-8"))
    assert list(jsonschema.Draft4Validator(schema).iter_errors(log)) == []
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "lint.value-as-code"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "ops/deploy/release.wfx.yaml",
        "uriBaseId": "%SRCROOT%",
    }


def test_actionlint_reads_the_action_and_its_inputs(tmp_path: Path) -> None:
    """A workflow that uses the action (`uses: ./`) with every input: actionlint reads
    action.yml as GitHub does and accepts them, and refuses one it does not declare."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    every = {name: "x" for name in ACTION["inputs"]}
    workflow = {
        "name": "uses wfx",
        "on": "pull_request",
        "jobs": {
            "plan": {
                "runs-on": "ubuntu-latest",
                "steps": [{"uses": "actions/checkout@v5"}, {"uses": "./", "with": every}],
            }
        },
    }
    path = tmp_path / ".github" / "workflows" / "plan.yml"

    def lint() -> subprocess.CompletedProcess[str]:
        path.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
        command = [ACTIONLINT, "-no-color", "-shellcheck=", "-pyflakes="]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)

    done = lint()
    assert done.returncode == 0, done.stdout + done.stderr
    every["fail-on-error"] = "x"
    done = lint()
    assert done.returncode == 1
    assert 'input "fail-on-error" is not defined in action "wfx plan"' in done.stdout


def test_the_actions_steps_pass_actionlint_as_a_jobs_steps(tmp_path: Path) -> None:
    """actionlint does not look inside a composite action: its steps, put in a job of a
    workflow whose `workflow_dispatch` declares the same inputs, get its checks (the
    actions they use, their inputs and runtime; every expression's context)."""
    inputs = {name: {"type": "string"} for name in ACTION["inputs"]}
    workflow = {
        "name": "the action's steps",
        "on": {"workflow_dispatch": {"inputs": inputs}},
        "jobs": {"plan": {"runs-on": "ubuntu-latest", "steps": ACTION["runs"]["steps"]}},
    }
    path = tmp_path / "steps.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False), encoding="utf-8")
    done = subprocess.run(
        [ACTIONLINT, "-no-color", "-shellcheck=", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
