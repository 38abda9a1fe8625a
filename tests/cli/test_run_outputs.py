"""The workflow outputs at the end of `wfx run`: text after the summary, or one JSON object
on stdout with `--format json` (alias `--output json`); secrets masked; also without a
journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import wfx

WORKFLOW = """\
wfx: 1
name: release
secrets: [TOKEN]
steps:
  - id: build
    env: {TOKEN: "${{ secrets.TOKEN }}"}
    run: |
      echo "version=1.2.3" >> "$WFX_OUTPUT"
      echo "token=$TOKEN" >> "$WFX_OUTPUT"
  - id: check
    run: exit ${{ inputs.code }}
inputs:
  code: {type: number, default: 0}
outputs:
  version: ${{ steps.build.outputs.version }}
  token: ${{ steps.build.outputs.token }}
"""

SECRET = "s3cr3t-value-42"


def write(tmp_path: Path) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(WORKFLOW)
    return path


def test_outputs_are_printed_after_the_summary(tmp_path: Path) -> None:
    result = wfx("run", str(write(tmp_path)), env={"TOKEN": SECRET}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    heading = lines.index("outputs:")
    assert any("build" in line and "success" in line for line in lines[:heading])
    assert lines[heading + 1 :] == ['  version = "1.2.3"', '  token = "***"']
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(("option", "journal"), [("--format", []), ("--output", ["--no-journal"])])
def test_json_is_the_only_thing_on_stdout(tmp_path: Path, option: str, journal: list[str]) -> None:
    result = wfx(
        "run", str(write(tmp_path)), option, "json", *journal, env={"TOKEN": SECRET}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "success"
    assert document["exitCode"] == 0
    assert document["workflow"] == "release"
    assert document["outputs"] == {"version": "1.2.3", "token": "***"}
    assert document["runId"] in result.stderr  # the run view went to stderr
    assert SECRET not in result.stdout + result.stderr


def test_a_failed_run_reports_its_status_and_the_outputs_it_has(tmp_path: Path) -> None:
    result = wfx("run", str(write(tmp_path)), "-i", "code=4", "--format", "json", "--no-journal")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["exitCode"] == 1
    assert document["outputs"]["version"] == "1.2.3"
    assert "check" in document["reason"]


def test_no_outputs_no_heading(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\nsteps:\n  - run: 'true'\n")
    result = wfx("run", str(path), "--no-journal")
    assert result.returncode == 0
    assert "outputs:" not in result.stdout


def test_outputs_read_the_workflows_env_its_env_files_and_secrets(tmp_path: Path) -> None:
    """`env` is available everywhere: in the workflow outputs it holds the workflow's own
    variables (`--env-file`, `envFile`, `env`), a secret among them masked."""
    (tmp_path / "wf.env").write_text(f"REGION=eu-west-1\nTOKEN={SECRET}\n")
    (tmp_path / "cli.env").write_text("TIER=gold\nREGION=us-east-1\n")
    path = tmp_path / "wf.yaml"
    path.write_text(
        "wfx: 1\nsecrets: [TOKEN]\nenvFile: wf.env\n"
        "env: {HOST: 'api.${{ env.REGION }}.example.com', KEY: '${{ secrets.TOKEN }}'}\n"
        "steps:\n  - run: 'true'\n"
        "outputs:\n  host: ${{ env.HOST }}\n  tier: ${{ env.TIER }}\n  key: ${{ env.KEY }}\n"
    )
    result = wfx("run", str(path), "--env-file", "cli.env", "--no-journal", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[lines.index("outputs:") + 1 :] == [
        '  host = "api.eu-west-1.example.com"',
        '  tier = "gold"',
        '  key = "***"',
    ]
    assert SECRET not in result.stdout + result.stderr


def test_the_plan_shows_the_outputs_a_run_will_print(tmp_path: Path) -> None:
    """A reviewer sees the workflow's outputs in every plan view, as written (only the run
    knows their values), and the JSON carries them for exporters."""
    import jsonschema

    write(tmp_path)
    text = wfx("plan", "release.yaml", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "outputs (printed at the end of the run):" in text.stdout
    assert "version = ${{ steps.build.outputs.version }}" in text.stdout
    from markdown_it import MarkdownIt

    markdown = wfx("plan", "release.yaml", "--format", "markdown", cwd=tmp_path).stdout
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<td><code>token</code></td>\n<td>${{ steps.build.outputs.token }}</td>" in html
    shown = wfx("plan", "release.yaml", "--format", "json", cwd=tmp_path).stdout
    data = json.loads(shown)
    assert data["outputs"] == {
        "version": "${{ steps.build.outputs.version }}",
        "token": "${{ steps.build.outputs.token }}",
    }
    schema_path = Path(__file__).resolve().parents[2] / "schema" / "plan.schema.json"
    jsonschema.validate(data, json.loads(schema_path.read_text()))
