"""`envFile:` (workflow, group, step) and `--env-file`: dotenv files read before anything runs,
layered like `env`, literal values, secrets read from them and masked, every problem with
its position."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from wfx.api import compile_file, plan_file
from wfx.diagnostics import DiagnosticsError
from wfx.plan import Plan
from wfx.render.plan_json import render_json
from wfx.render.plan_text import render_text
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run

LAYERS = ("CLI", "WF_FILE", "WF_ENV", "DEFAULTS", "GROUP_FILE", "GROUP_ENV", "STEP_FILE")

PRECEDENCE = """\
wfx: 1
envFile: wf.env
env: {WF_ENV: wf-env, DEFAULTS: wf-env, GROUP_FILE: wf-env, GROUP_ENV: wf-env, STEP_FILE: wf-env}
defaults:
  env: {DEFAULTS: defaults, GROUP_FILE: defaults, GROUP_ENV: defaults, STEP_FILE: defaults}
steps:
  - id: group
    envFile: group.env
    env: {GROUP_ENV: group-env, STEP_FILE: group-env}
    steps:
      - id: show
        envFile: [step.env, later.env]
        env: {STEP_ENV: step-env}
        run: |
          for name in CLI WF_FILE WF_ENV DEFAULTS GROUP_FILE GROUP_ENV STEP_FILE STEP_ENV \\
            LITERAL; do eval "echo $name=\\$$name"; done
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def every_layer(tmp_path: Path) -> Path:
    """Each layer sets its own name and every name of the layers it must lose to."""
    names = [*LAYERS, "STEP_ENV"]
    files = {"cli.env": "CLI", "wf.env": "WF_FILE", "group.env": "GROUP_FILE"}
    for file, layer in files.items():
        lower = names[names.index(layer) :]
        write(tmp_path, file, "".join(f"{n}=from-{file}\n" for n in lower))
    write(tmp_path, "step.env", "STEP_FILE=first-file\nSTEP_ENV=step-file\n")
    write(tmp_path, "later.env", "STEP_FILE=step-file\nLITERAL='${HOME} $$ ${{ inputs.x }}'\n")
    return write(tmp_path, "wf.yaml", PRECEDENCE)


def run_graph(graph: object, events: list[ev.Event], workspace: Path) -> RunResult:
    options = RunOptions(
        events=events.append, workspace=workspace, environ={"PATH": "/usr/bin:/bin"}
    )

    async def main() -> RunResult:
        return await run(graph, options=options)  # type: ignore[arg-type]

    return anyio.run(main)


def printed(events: list[ev.Event]) -> dict[str, str]:
    lines = [e.text for e in events if isinstance(e, ev.StepOutput)]
    return dict(line.split("=", 1) for line in lines)


def test_layers_from_the_command_line_file_to_the_steps_env(tmp_path: Path) -> None:
    path = every_layer(tmp_path)
    graph = compile_file(path, env_files=[tmp_path / "cli.env"]).graph
    events: list[ev.Event] = []
    result = run_graph(graph, events, tmp_path / "ws")
    assert result.status is ev.RunStatus.SUCCESS
    values = printed(events)
    assert values == {
        "CLI": "from-cli.env",
        "WF_FILE": "from-wf.env",
        "WF_ENV": "wf-env",
        "DEFAULTS": "defaults",
        "GROUP_FILE": "from-group.env",
        "GROUP_ENV": "group-env",
        "STEP_FILE": "step-file",
        "STEP_ENV": "step-env",
        "LITERAL": "${HOME} $$ ${{ inputs.x }}",
    }


SECRET = "tok-from-the-env-file-1234"

WITH_SECRET = """\
wfx: 1
secrets: [TOKEN]
envFile: wf.env
steps:
  - id: use
    condition: ${{ secrets.TOKEN != '' }}
    run: |
      echo "env=$TOKEN"
      echo "token=$TOKEN" >> "$WFX_OUTPUT"
outputs:
  token: ${{ steps.use.outputs.token }}
"""


def test_a_secret_read_from_an_env_file_is_the_secret_and_is_masked(tmp_path: Path) -> None:
    write(tmp_path, "wf.env", f"TOKEN={SECRET}\nPLAIN=visible\n")
    path = write(tmp_path, "wf.yaml", WITH_SECRET)
    graph = compile_file(path).graph
    events: list[ev.Event] = []
    result = run_graph(graph, events, tmp_path / "ws")
    assert result.status is ev.RunStatus.SUCCESS  # the condition saw the secret
    assert [e.text for e in events if isinstance(e, ev.StepOutput)] == ["env=***"]
    assert result.outputs == {"token": "***"}
    assert SECRET not in repr(events)
    the_plan = plan_file(path)[1]
    shown = render_json(the_plan) + text_of(the_plan)
    assert SECRET not in shown
    assert "visible" in shown


def test_the_workflows_file_wins_over_the_command_line_for_a_secret(tmp_path: Path) -> None:
    write(tmp_path, "wf.env", f"TOKEN={SECRET}\n")
    write(tmp_path, "cli.env", "TOKEN=from-the-command-line\n")
    path = write(tmp_path, "wf.yaml", WITH_SECRET)
    events: list[ev.Event] = []
    graph = compile_file(path, env_files=[tmp_path / "cli.env"]).graph
    result = run_graph(graph, events, tmp_path / "ws")
    assert result.steps["use"].outputs == {"token": "***"}  # type: ignore[index]
    assert "from-the-command-line" not in repr(events)


def problems(path: Path, env_files: list[Path] | None = None) -> list[str]:
    with pytest.raises(DiagnosticsError) as caught:
        compile_file(path, env_files=env_files or [])
    return [f"{d.span}: {d.code}: {d.message}" for d in caught.value.diagnostics]


def test_every_problem_at_once_with_its_position(tmp_path: Path) -> None:
    write(tmp_path, "step.env", "TOKEN=x\nok=1\nnot a line\n9X=1\nNO_VALUE\n")
    path = write(
        tmp_path,
        "wf.yaml",
        """\
        wfx: 1
        secrets: [TOKEN]
        envFile: [missing.env]
        steps:
          - id: s
            envFile: step.env
            run: echo hi
        """,
    )
    found = problems(path, [tmp_path / "cli-missing.env"])
    step_env = tmp_path / "step.env"
    missing = f"{path}:3:11: envfile.missing: env file `missing.env` does not exist"
    assert any(p.startswith(missing) for p in found)
    assert any(f"{path}:6:14: envfile.secret:" in p and "`TOKEN`" in p for p in found)
    assert any(p.startswith(f"{step_env}:3:1: envfile.syntax:") for p in found)
    assert any(p.startswith(f"{step_env}:4:1: envfile.name:") for p in found)
    assert any(p.startswith(f"{step_env}:5:1: envfile.no-value:") for p in found)
    assert any(p.startswith("None: envfile.missing: env file `") for p in found)
    assert len(found) == 6


def text_of(the_plan: Plan) -> str:
    """The verbose text plan as a colourless terminal shows it."""
    console = Console(width=200, color_system=None, record=True, file=io.StringIO())
    console.print(render_text(the_plan, verbose=True))
    return console.export_text()


def test_a_called_workflow_reads_its_own_env_files(tmp_path: Path) -> None:
    """A child runs with its own settings: its `envFile` (relative to its own file) as when
    it runs on its own, and none of the caller's; a problem in it is reported at its line."""
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/child.env", "REGION=child-region\nTIER=child\n")
    write(tmp_path, "sub/step.env", "TIER=step\n")
    write(tmp_path, "top.env", "TOP=top-only\n")
    write(
        tmp_path,
        "sub/child.yaml",
        """\
        wfx: 1
        envFile: child.env
        steps:
          - id: show
            envFile: step.env
            run: echo "$REGION $TIER ${TOP:-unset}"
        """,
    )
    path = write(
        tmp_path,
        "top.yaml",
        "wfx: 1\nenvFile: top.env\nsteps:\n  - id: call\n    uses: ./sub/child.yaml\n",
    )
    events: list[ev.Event] = []
    result = run_graph(compile_file(path).graph, events, tmp_path / "ws")
    assert result.status is ev.RunStatus.SUCCESS, result.reason
    assert [e.text for e in events if isinstance(e, ev.StepOutput)] == ["child-region step unset"]
    (tmp_path / "sub" / "step.env").unlink()
    [missing] = problems(path)
    assert missing.startswith(f"{tmp_path / 'sub' / 'child.yaml'}:5:14: envfile.missing:")


def test_a_called_workflows_outputs_read_its_own_env(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/child.env", "REGION=eu-west-1\n")
    write(
        tmp_path,
        "sub/child.yaml",
        """\
        wfx: 1
        inputs:
          who: {type: string}
        envFile: child.env
        env: {GREETING: "hello ${{ inputs.who }}"}
        steps:
          - run: 'true'
        outputs:
          where: ${{ env.REGION }}
          greeting: ${{ env.GREETING }}
        """,
    )
    path = write(
        tmp_path,
        "top.yaml",
        """\
        wfx: 1
        env: {REGION: caller-region}
        steps:
          - id: call
            uses: ./sub/child.yaml
            with: {who: ada}
        outputs:
          where: ${{ steps.call.outputs.where }}
          greeting: ${{ steps.call.outputs.greeting }}
        """,
    )
    result = run_graph(compile_file(path).graph, [], tmp_path / "ws")
    assert result.status is ev.RunStatus.SUCCESS, result.reason
    assert result.outputs == {"where": "eu-west-1", "greeting": "hello ada"}


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("{outside}/secret.env", "envfile.path"),  # absolute
        ("../outside/secret.env", "envfile.escape"),
        ("link.env", "envfile.symlink"),
        (".git/config", "envfile.git"),
        (".GIT/config", "envfile.git"),  # the same file where case is ignored (macOS)
    ],
)
def test_a_workflow_names_env_files_only_under_its_root(
    tmp_path: Path, written: str, code: str
) -> None:
    """A pull request's workflow cannot make `wfx plan` show a file of the machine it is
    planned on (`/proc/self/environ`, `~/.aws/credentials`, the token a CI checkout
    keeps in `.git/config`): nothing outside the project root, or in `.git`, is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_text("TOKEN=ghp_outside\n")
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "config").write_text("[http]\n\textraheader = AUTHORIZATION: basic c2Vj\n")
    (project / ".GIT").mkdir()
    (project / ".GIT" / "config").write_text("TOKEN=c2Vj\n")
    (project / "link.env").symlink_to(outside / "secret.env")
    flow = project / "wf.yaml"
    flow.write_text(
        f"wfx: 1\nenvFile: {written.format(outside=outside)}\nsteps:\n  - {{id: a, run: 'true'}}\n"
    )
    with pytest.raises(DiagnosticsError) as raised:
        plan_file(flow)
    assert [d.code for d in raised.value.diagnostics] == [code]
    assert "ghp_outside" not in str(raised.value) and "c2Vj" not in str(raised.value)


def test_the_command_line_names_an_env_file_anywhere(tmp_path: Path) -> None:
    """`--env-file` is the operator's choice, not the workflow's: any path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "vars.env").write_text("REGION=eu-west-1\n")
    flow = tmp_path / "project" / "wf.yaml"
    flow.parent.mkdir()
    flow.write_text("wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    _, plan = plan_file(flow, env_files=[outside / "vars.env"])
    assert "eu-west-1" in render_json(plan)
