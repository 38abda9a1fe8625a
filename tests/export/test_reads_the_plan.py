"""Export reads the plan, not the YAML a second time: the JSON `wfx plan --format json`
prints is all an exporter is given, and it writes what `wfx export` writes even once the
workflow files are gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from wfx.cli import cli
from wfx.export import export_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def exportable(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return not any(mark in text for mark in ("matrix:", "forEach:", "uses: ./"))


@pytest.mark.parametrize("target", ["github-actions", "argo"])
def test_the_plan_json_alone_gives_the_same_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    names = [f"examples/{p.name}" for p in EXAMPLES if exportable(p)]
    assert len(names) >= 5
    plans, exported = {}, {}
    for name in names:
        planned = runner.invoke(cli, ["plan", name, "--format", "json"])
        assert planned.exit_code == 0, planned.output
        plans[name] = json.loads(planned.stdout)
        written = runner.invoke(cli, ["export", name, "--to", target, "--allow-lossy"])
        assert written.exit_code == 0, written.output
        exported[name] = written.stdout
    shutil.rmtree(tmp_path / "examples")  # nothing left to read a second time
    for name in names:
        assert export_plan(plans[name], target).text == exported[name], name
