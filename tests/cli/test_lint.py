"""`wfx lint`: valid but unsafe uses of `${{ }}` (T13's lint part), with their positions."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from wfx.cli import cli

ROOT = Path(__file__).resolve().parents[2]

RISKY = """wfx: 1
inputs:
  branch: {type: string, default: main}
secrets: [TOKEN]
steps:
  - id: evaluates
    run: |
      echo "${{ inputs.branch }}"
      eval "git checkout ${{ inputs.branch }}"
      bash -c "echo ${{ steps.evaluates.outputs.x }}"
      trap "echo ${{ inputs.branch }}" EXIT
      cat <<'END'
      ${{ inputs.branch }}
      END
  - id: shell
    cmd: [sh, -c, "echo ${{ inputs.branch }}"]
  - id: argument
    cmd: [curl, -H, "Authorization: ${{ secrets.TOKEN }}", https://example.com]
  - id: fine
    cmd: [git, checkout, "${{ inputs.branch }}"]
"""

#: the corpus: (line, column, code) of every risky use above
EXPECTED = [
    (9, 29, "lint.value-as-code"),
    (10, 24, "lint.value-as-code"),
    (11, 21, "lint.value-as-code"),
    (13, 10, "lint.quoted-heredoc"),
    (16, 28, "lint.value-as-code"),
    (18, 40, "lint.secret-argument"),
]


def test_every_risky_use_is_found_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(RISKY)
    result = CliRunner().invoke(cli, ["lint", "--format", "json", str(path)])
    assert result.exit_code == 1
    found = [(d["line"], d["column"], d["code"]) for d in json.loads(result.stdout)]
    assert found == EXPECTED  # recall 6/6 on the corpus, no false positive


def test_the_examples_are_clean() -> None:
    examples = [str(p) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    result = CliRunner().invoke(cli, ["lint", *examples])
    assert (result.exit_code, result.stderr) == (0, "")


def test_an_invalid_file_is_reported_not_linted(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\nsteps:\n  - {run: echo, timout: 1s}\n")
    result = CliRunner().invoke(cli, ["lint", str(path)])
    assert result.exit_code == 2
    assert "unknown key `timout`" in result.stderr


def test_every_invalid_file_is_reported_at_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("wfx: 1\nsteps:\n  - {run: echo, timout: 1s}\n")
    second.write_text("wfx: 1\nsteps:\n  - {run: echo, onError: abort}\n")
    result = CliRunner().invoke(cli, ["lint", "--format", "json", str(first), str(second)])
    assert result.exit_code == 2
    assert [Path(d["file"]).name for d in json.loads(result.stdout)] == ["a.yaml", "b.yaml"]


def test_values_the_shell_would_evaluate_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "wfx: 1\ninputs:\n  n: {type: string, default: '1'}\n  k: {type: number, default: 1}\n"
        "steps:\n  - id: s\n    run: |\n"
        "      echo $(( ${{ inputs.n }} + 1 ))\n"
        "      if let c=${{ inputs.n }}; then :; fi\n"
        '      [[ "${{ inputs.n }}" -eq 1 ]]\n'
        "      echo $(( ${{ inputs.k }} + 1 ))\n"
    )
    result = CliRunner().invoke(cli, ["lint", "--format", "json", str(path)])
    assert result.exit_code == 2
    found = [(d["line"], d["column"], d["code"]) for d in json.loads(result.stdout)]
    assert found == [
        (8, 19, "compile.evaluated-value"),
        (9, 19, "compile.evaluated-value"),
        (10, 14, "compile.evaluated-value"),
    ]  # `inputs.k` is a number input: admitted


def test_a_non_posix_shell_without_a_placeholder_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "wfx: 1\ndefaults: {shell: node}\nsteps:\n"
        "  - {id: a, run: console.log(1)}\n"
        "  - {id: b, shell: 'python3 {0}', run: print(1), rollback: {run: '1', shell: perl}}\n"
        "  - {id: c, shell: sh -e, run: 'true'}\n"
    )
    result = CliRunner().invoke(cli, ["lint", "--format", "json", str(path)])
    assert result.exit_code == 1
    found = [(d["line"], d["code"]) for d in json.loads(result.stdout)]
    assert found == [(2, "lint.shell-without-file"), (5, "lint.shell-without-file")]
