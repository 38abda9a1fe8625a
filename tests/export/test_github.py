"""`wfx export --to github-actions`: the mapping, every loss kind (an error with the step's
line, or with --allow-lossy a warning and a comment), and every output checked by the real
actionlint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from wfx.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: examples without a fan-out (export refuses `matrix`/`forEach`: test_a_fan_out_is_refused)
FAN_OUTS = [e for e in EXAMPLES if "matrix:" in e.read_text() or "forEach:" in e.read_text()]
#: examples that call a sub-workflow (refused as well: test_a_call_is_refused)
CALLS = [e for e in EXAMPLES if "uses: ./" in e.read_text()]
EXPORTABLE = [e for e in EXAMPLES if e not in FAN_OUTS and e not in CALLS]
ACTIONLINT = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")


def export(path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["export", str(path), "--to", "github-actions", *args])


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def actionlint(*files: Path) -> None:
    """The real actionlint accepts every file (shellcheck is not asked: not installed), and
    no script holds a `${{ }}`, which GitHub would paste into it as code."""
    for file in files:
        for job in yaml.safe_load(file.read_text())["jobs"].values():
            for step in job["steps"]:
                assert "${{" not in step.get("run", ""), (file, step)
    done = subprocess.run(
        [ACTIONLINT, "-no-color", "-shellcheck=", "-pyflakes=", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


LOSSLESS = """
wfx: 1
name: Release
inputs:
  environment: {type: choice, enum: [dev, prd], default: dev, description: Where}
  dry: {type: boolean, default: false}
secrets: [TOKEN]
env:
  TARGET: ${{ inputs.environment }}
steps:
  - id: build
    timeout: 2m
    run: |
      echo "building for $TARGET"
      echo "version=1.2.3" >> "$WFX_OUTPUT"
  - id: checks
    type: parallel
    steps:
      - {id: unit, cmd: [echo, "unit ${{ inputs.environment }}"], timeout: 1m}
      - {id: lint, run: echo lint, onError: continue, timeout: 1m}
  - id: publish
    condition: ${{ inputs.environment == 'prd' && !inputs.dry }}
    env: {TOKEN: "${{ secrets.TOKEN }}"}
    timeout: 5m
    run: echo "publishing ${{ steps.build.outputs.version }} to ${{ inputs.environment }}"
finally:
  - {id: notify, condition: "${{ failure() }}", run: echo failed, timeout: 1m}
"""


def test_a_faithful_workflow_maps_without_loss(tmp_path: Path) -> None:
    path = write(tmp_path, LOSSLESS)
    result = export(path, "-o", str(tmp_path / "out.yml"))
    assert result.exit_code == 0, result.output
    assert result.output == ""  # no loss, no warning
    text = (tmp_path / "out.yml").read_text()
    assert "LOSSY" not in text
    actionlint(tmp_path / "out.yml")
    document = yaml.safe_load(text)
    inputs = document["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"] == {
        "type": "choice",
        "description": "Where",
        "required": False,
        "default": "dev",
        "options": ["dev", "prd"],
    }
    assert inputs["dry"]["type"] == "boolean"
    assert document["env"] == {"TARGET": "${{ inputs.environment }}"}
    jobs = document["jobs"]
    assert list(jobs) == ["build", "unit", "lint", "publish", "notify"]
    assert jobs["unit"]["needs"] == ["build"] and jobs["lint"]["needs"] == ["build"]
    assert jobs["publish"]["needs"] == ["unit", "lint", "build"]
    assert jobs["publish"]["if"] == "${{ inputs.environment == 'prd' && !inputs.dry }}"
    assert jobs["build"]["timeout-minutes"] == 2
    assert jobs["lint"]["continue-on-error"] is True
    assert jobs["build"]["outputs"] == {"version": "${{ steps.run.outputs.version }}"}
    run = jobs["publish"]["steps"][1]
    assert run["env"]["TOKEN"] == "${{ secrets.TOKEN }}"
    assert run["env"]["WFX_EXPR_1"] == "${{ needs.build.outputs.version }}"
    assert run["env"]["WFX_EXPR_2"] == "${{ inputs.environment }}"
    assert "${{" not in run["run"]  # values reach the script as data, never as code
    assert jobs["unit"]["steps"][1]["run"] == 'exec echo "$WFX_ARG_2"'
    assert jobs["notify"]["if"] == "${{ failure() }}"
    assert jobs["notify"]["needs"] == ["build", "unit", "lint", "publish"]


def test_values_never_become_script_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        wfx: 1
        inputs: {title: {type: string, default: "x"}}
        steps:
          - {id: a, run: 'echo "${{ inputs.title }}"; echo ${{ inputs.title }}', timeout: 1m}
        """,
    )
    result = export(path)
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.output)
    script = document["jobs"]["a"]["steps"][1]["run"]
    assert "inputs.title" not in script and "WFX_EXPR_1" in script


#: each kind of loss, and a workflow that has it (at the line named)
LOSSES = {
    "retries": ("{id: s, run: 'true', timeout: 1m, retries: {max: 2, delay: 1s}}", 4),
    "jitter": ("{id: s, run: 'true', timeout: 1m, retries: {max: 2, delay: 1s, jitter: 0.5}}", 4),
    "timeout": ("{id: s, run: 'true', timeout: 90s}", 4),
    "kill-grace": ("{id: s, run: 'true', timeout: 1m, killGrace: 3s}", 4),
    "python": ("{id: s, uses: 'python:tools:go', timeout: 1m}", 4),
    "expression": ("{id: s, run: 'echo ${{ case(true, 1, 2) }}', timeout: 1m}", 4),
    "secret-condition": (
        "{id: s, run: 'true', timeout: 1m, condition: '${{ secrets.T != 1 }}'}",
        4,
    ),
    "rollback": ("{id: s, run: 'true', timeout: 1m, rollback: {run: 'true'}}", 4),
    "max-parallel": ("{id: s, maxParallel: 1, steps: [{id: s_in, run: 'true'}]}", 4),
    "group-timeout": ("{id: s, groupTimeout: 5m, steps: [{id: s_in, run: 'true'}]}", 4),
    "group-retries": ("{id: s, groupRetries: 2, steps: [{id: s_in, run: 'true'}]}", 4),
    "continue-on": ("{id: s, run: 'exit 3', timeout: 1m, continueOn: [3, 4]}", 4),
    "executor": ("{id: s, run: 'true', executor: 'dask://10.0.0.1:8786'}", 4),
    "workspace": ("{id: s, run: 'ls $WFX_WORKSPACE', timeout: 1m}", 4),
    "status-function": ("{id: s, run: 'true', timeout: 1m, condition: '${{ failure() }}'}", 4),
    "env-order": ("{id: s, run: 'true', timeout: 1m, env: {A: x, B: '${{ env.A }}'}}", 4),
}


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_each_loss_is_an_error_with_the_step_line(tmp_path: Path, kind: str) -> None:
    step, line = LOSSES[kind]
    path = write(tmp_path, f"wfx: 1\nsecrets: [T]\nsteps:\n  - {step}\n")
    refused = export(path)
    assert refused.exit_code == 2
    where = f"{path}:{line}:5: error"
    assert where in refused.output, refused.output
    assert f"error: [{kind}]" in refused.output


def test_workflow_level_losses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        wfx: 1
        timeout: 10m
        maxParallel: 2
        concurrency: {group: deploy, mode: cancel}
        inputs: {v: {type: string, pattern: '^v', default: v1}}
        steps:
          - {id: s, run: 'true', timeout: 1m}
        """,
    )
    refused = export(path)
    assert refused.exit_code == 2
    for text in (
        "workflow `timeout`",
        "`maxParallel`",
        "its `pattern`",
        "[concurrency] concurrency group `deploy` (cancel)",
    ):
        assert text in refused.output


def test_allow_lossy_warns_per_loss_and_comments_the_output(tmp_path: Path) -> None:
    steps = "".join(
        f"  - {s.replace('id: s', 'id: s_' + k.replace('-', '_'))}\n"
        for k, (s, _) in LOSSES.items()
    )
    path = write(tmp_path, f"wfx: 1\nsecrets: [T]\nsteps:\n{steps}")
    out = tmp_path / "out.yml"
    result = export(path, "--allow-lossy", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    header = text.split("\nname:", 1)[0]
    for kind in LOSSES:
        assert f"[{kind}]" in header
    assert result.output.count("warning:") == header.count("#   - ")
    actionlint(out)


@pytest.mark.parametrize("breaker", ["\u2028", "\u2029", "\x85", "\r"])
def test_a_loss_comment_cannot_end_its_line_and_add_keys(tmp_path: Path, breaker: str) -> None:
    """A YAML 1.1 reader ends a comment at NEL, U+2028 and U+2029 too: a concurrency
    group's name in the header's loss comment added `injected:` to the exported file."""
    group = f"g{breaker}injected: true #".encode("unicode_escape").decode()
    path = write(tmp_path, f'wfx: 1\nconcurrency: {{group: "{group}"}}\nsteps:\n  - run: x\n')
    out = tmp_path / "out.yml"
    result = export(path, "--allow-lossy", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert list(yaml.safe_load(text)) == ["name", "on", "jobs"]
    assert f"g<U+{ord(breaker):04X}>injected: true #" in text.split("\nname:", 1)[0]


def test_every_example_exports_to_a_workflow_actionlint_accepts(tmp_path: Path) -> None:
    written = []
    for example in EXPORTABLE:
        out = tmp_path / (example.stem + ".yml")
        result = export(example, "--allow-lossy", "-o", str(out))
        assert result.exit_code == 0, (example, result.output)
        written.append(out)
    actionlint(*written)


def test_an_invalid_workflow_is_diagnosed_not_exported(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - {id: a, needs: [nope], run: 'true'}\n")
    result = export(path, "--allow-lossy")
    assert result.exit_code == 2
    assert "nope" in result.output and "jobs:" not in result.output


def test_a_fan_out_is_refused_even_when_lossy_is_allowed() -> None:
    assert FAN_OUTS
    for example in FAN_OUTS:
        result = export(example, "--allow-lossy")
        assert result.exit_code == 2, result.output
        assert "fans out (`matrix` or `forEach`)" in result.output


def test_a_call_is_refused_even_when_lossy_is_allowed() -> None:
    assert CALLS
    for example in CALLS:
        result = export(example, "--allow-lossy")
        assert result.exit_code == 2, result.output
        assert "calls the sub-workflow" in result.output


def test_a_rollbacks_timeout_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wfx: 1\nsteps:\n  - {id: a, run: 'true', rollback: {run: undo, timeout: 2m}}\n",
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yml"))
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "out.yml").read_text())
    (undo,) = [s for s in document["jobs"]["wfx-compensate"]["steps"] if s.get("run") == "undo"]
    assert undo["timeout-minutes"] == 2
    assert "[timeout]" not in result.output
    actionlint(tmp_path / "out.yml")
    odd = write(
        tmp_path,
        "wfx: 1\nsteps:\n  - {id: a, run: 'true', rollback: {run: undo, timeout: 90s}}\n",
    )
    refused = export(odd, "--allow-lossy")
    assert f"{odd}:3:5: warning: [timeout] step `a`: the rollback's timeout 1m30s" in (
        refused.output
    )


def test_an_output_that_cannot_be_written_is_said_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    result = export(path, "-o", str(tmp_path / "missing" / "out.yml"))
    assert result.exit_code == 2
    assert f"error: -o {tmp_path / 'missing' / 'out.yml'}: No such file or directory" in (
        result.output
    )


def test_step_ids_github_takes_for_the_same_job_get_their_own(tmp_path: Path) -> None:
    """GitHub ignores case in job ids, and the compensation job has an id of its own: no
    job overwrites another, and every `needs` names the right one."""
    path = write(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: build, run: echo one, rollback: {run: echo undo}}
          - {id: Build, run: 'echo "v=2" >> "$WFX_OUTPUT"'}
          - {id: wfx-compensate, run: 'echo ${{ steps.Build.outputs.v }}'}
        """,
    )
    out = tmp_path / "out.yml"
    result = export(path, "--allow-lossy", "-o", str(out))
    assert result.exit_code == 0, result.output
    jobs = yaml.safe_load(out.read_text())["jobs"]
    assert list(jobs) == ["build", "Build-2", "wfx-compensate-2", "wfx-compensate"]
    assert jobs["Build-2"]["needs"] == ["build"]
    assert jobs["wfx-compensate-2"]["needs"] == ["Build-2"]
    assert jobs["wfx-compensate-2"]["steps"][1]["env"]["WFX_EXPR_1"] == (
        "${{ needs.Build-2.outputs.v }}"
    )
    actionlint(out)


def test_a_script_that_cannot_take_its_values_as_data_fails_in_its_place(
    tmp_path: Path,
) -> None:
    """Pasted, `${{ inputs.n }}` in bash arithmetic would be code: the job fails instead."""
    path = write(
        tmp_path,
        """
        wfx: 1
        inputs:
          n: {type: number, default: 3}
        steps:
          - id: count
            run: for (( i = 0; i < ${{ inputs.n }}; i++ )); do echo $i; done
        """,
    )
    out = tmp_path / "out.yml"
    result = export(path, "--allow-lossy", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "arithmetic" in result.output and "the job fails in its place" in result.output
    (run,) = [s for s in yaml.safe_load(out.read_text())["jobs"]["count"]["steps"] if "run" in s]
    assert run["run"].endswith("exit 1") and "inputs.n" not in run["run"]
    actionlint(out)


def test_the_workflows_outputs_are_a_loss(tmp_path: Path) -> None:
    """`outputs:` of the workflow (what `wfx run` prints at its end) are not silently
    dropped: an error, or with --allow-lossy a warning and a header comment."""
    path = write(
        tmp_path,
        """
        wfx: 1
        outputs:
          version: ${{ steps.build.outputs.version }}
        steps:
          - {id: build, run: 'echo version=1 >> "$WFX_OUTPUT"'}
        """,
    )
    refused = export(path)
    assert refused.exit_code == 2
    assert "error: [workflow-outputs] the workflow's outputs (version)" in refused.output
    lossy = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yml"))
    assert lossy.exit_code == 0, lossy.output
    assert "# LOSSY" in (tmp_path / "out.yml").read_text()
    assert "[workflow-outputs]" in (tmp_path / "out.yml").read_text()


def test_a_script_with_line_breaking_characters_comes_out_unchanged(tmp_path: Path) -> None:
    """NEL, U+2028 and U+2029 are line breaks to a YAML reader unless escaped: written raw,
    a script that held one came out changed."""
    script = "echo a\x85b\u2028c\u2029d"
    path = write(tmp_path, f"wfx: 1\nsteps:\n  - id: a\n    run: {json.dumps(script)}\n")
    out = tmp_path / "out.yml"
    result = export(path, "-o", str(out))
    assert result.exit_code == 0, result.output
    [job] = yaml.safe_load(out.read_text())["jobs"].values()
    assert any(script in step.get("run", "") for step in job["steps"])
    actionlint(out)
