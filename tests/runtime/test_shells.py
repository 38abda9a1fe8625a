"""Non-POSIX `shell:` settings: the script as a file where `{0}` stands, and no `${{ }}` in a
script wfx cannot quote for (values arrive through `env:` instead)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import run_text

from wfx.api import compile_file
from wfx.diagnostics import DiagnosticsError

PYTHON = """
wfx: 1
inputs:
  who: {type: string, default: "world'; import os; os.system('touch CANARY') #"}
steps:
  - id: py
    shell: python3 {0}
    env: {WHO: "${{ inputs.who }}"}
    run: |
      import os, sys
      print("hello", os.environ["WHO"])
      print("script file:", os.path.basename(sys.argv[0]).endswith(".py"))
      with open(os.environ["WFX_OUTPUT"], "a") as out:
          out.write("path=" + sys.argv[0] + "\\n")
"""


def test_a_python_script_runs_from_a_file_in_place_of_the_placeholder(tmp_path: Path) -> None:
    run = run_text(tmp_path, PYTHON)
    assert run.result.exit_code == 0, run.result.reason
    assert run.output("py") == [
        "hello world'; import os; os.system('touch CANARY') #",
        "script file: True",
    ]
    script = Path(run.result.steps["py"].outputs["path"])
    assert not script.exists()  # removed after the attempt
    assert not (tmp_path / "CANARY").exists()


def test_the_placeholder_works_for_a_posix_shell_with_values(tmp_path: Path) -> None:
    text = """
    wfx: 1
    inputs:
      x: {type: string, default: "$(touch CANARY) two  spaces"}
    steps:
      - id: s
        shell: bash --noprofile --norc -eo pipefail {0}
        run: printf '[%s]\\n' ${{ inputs.x }} "$0"
    """
    run = run_text(tmp_path, text)
    assert run.output("s")[0] == "[$(touch CANARY) two  spaces]"
    assert run.output("s")[1].endswith(".script]")
    assert not (tmp_path / "CANARY").exists()


def test_node_runs_a_script_file(tmp_path: Path) -> None:
    text = """
    wfx: 1
    steps:
      - id: js
        shell: node {0}
        env: {N: "21"}
        run: console.log(Number(process.env.N) * 2)
    """
    run = run_text(tmp_path, text)
    assert run.output("js") == ["42"]


def test_a_rollback_runs_with_its_own_shell(tmp_path: Path) -> None:
    text = """
    wfx: 1
    steps:
      - id: deploy
        run: echo deployed
        rollback:
          shell: python3 {0}
          run: print("undone by", "python")
      - id: fail
        run: exit 1
    """
    run = run_text(tmp_path, text)
    assert run.status("deploy") == "rolledBack"
    assert [e.text for e in run.events if getattr(e, "rollback", False)] == ["undone by python"]


def test_without_the_placeholder_the_script_is_an_argument_after_c(tmp_path: Path) -> None:
    text = """
    wfx: 1
    steps:
      - {id: py, shell: python3, run: "import sys; print(sys.argv)"}
    """
    assert run_text(tmp_path, text).output("py") == ["['-c']"]


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("step", "steps:\n  - id: s\n    shell: python3 {0}\n    run: print('${{ inputs.x }}')\n"),
        (
            "defaults",
            "defaults: {shell: 'pwsh -File {0}'}\nsteps:\n  - id: s\n"
            "    run: Write-Output '${{ inputs.x }}'\n",
        ),
        (
            "group",
            "steps:\n  - id: g\n    shell: node {0}\n    steps:\n      - id: s\n"
            "        run: console.log('${{ inputs.x }}')\n",
        ),
        (
            "rollback",
            "steps:\n  - id: s\n    run: 'true'\n    rollback:\n      shell: /usr/bin/env python3\n"
            "      run: print('${{ inputs.x }}')\n",
        ),
    ],
)
def test_a_value_in_a_script_for_a_non_posix_shell_is_refused(
    where: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\ninputs:\n  x: {type: string, default: a}\n" + text)
    with pytest.raises(DiagnosticsError) as caught:
        compile_file(path)
    [problem] = caught.value.diagnostics
    assert problem.code == "compile.unquotable-shell"
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "${{" in t)
    assert problem.span is not None and problem.span.line == line
    assert problem.hint is not None and "env:" in problem.hint


@pytest.mark.parametrize("shell", ["sh -e", "dash", "/bin/bash -e", "env bash", "zsh", "ksh -e"])
def test_posix_shells_take_values(shell: str, tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "wfx: 1\ninputs:\n  x: {type: string, default: a}\n"
        f"steps:\n  - {{id: s, shell: '{shell}', run: 'echo ${{{{ inputs.x }}}}'}}\n"
    )
    assert compile_file(path).graph


def test_the_environment_reaches_python_unchanged(tmp_path: Path) -> None:
    value = "x\"; os.system('touch CANARY'); \"\n\\' ${HOME} $(id)"
    text = """
    wfx: 1
    inputs:
      v: {type: string}
    steps:
      - id: py
        shell: python3 {0}
        env: {V: "${{ inputs.v }}"}
        run: |
          import os
          print(repr(os.environ["V"]))
    """
    run = run_text(tmp_path, text, inputs={"v": value}, environ=dict(os.environ))
    assert run.output("py") == [repr(value)]
    assert not (tmp_path / "CANARY").exists()


def test_the_python_script_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "python-script.yaml"
    run = run_text(tmp_path, example.read_text(), environ={"PATH": "/usr/bin:/bin"})
    assert run.result.exit_code == 0, run.result.reason
    assert run.output("summarise") == ["sum of 3 numbers: 6"]
    assert run.result.outputs == {"sum": "6"}
    report = (tmp_path / "workspace" / "report.json").read_text()
    assert report == '{"greeting": "hello, \'world\'; $(id)", "sum": 6}'
