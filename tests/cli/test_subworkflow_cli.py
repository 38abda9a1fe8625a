"""`--root` on the commands that read workflows, and sub-workflow diagnostics on the
command line: positions in the child file with its source line shown."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from wfx.cli import cli


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def project(tmp_path: Path) -> Path:
    (tmp_path / "shared.yaml").write_text(
        "wfx: 1\ninputs: {n: {type: number}}\nsteps:\n  - {id: s, run: echo shared}\n"
    )
    top = tmp_path / "project" / "wf.yaml"
    top.parent.mkdir()
    top.write_text("wfx: 1\nsteps:\n  - id: c\n    uses: ../shared.yaml\n    with: {n: 2}\n")
    return top


def test_root_lets_a_call_reach_a_shared_directory(tmp_path: Path) -> None:
    top = project(tmp_path)
    code, _, err = invoke("validate", str(top))
    assert code == 2
    assert f"{top}:4:11: error: `../shared.yaml` leaves the project root" in err
    root = str(tmp_path)
    assert invoke("validate", "--root", root, str(top))[0] == 0
    code, out, _ = invoke("plan", "--root", root, str(top))
    assert code == 0 and "c/s" in out
    code, out, _ = invoke("explain", "--root", root, str(top), "c/s")
    assert code == 0 and out.startswith("step `c/s` (run, ")
    code, out, _ = invoke("run", "--root", root, "--no-journal", str(top))
    assert code == 0, out
    assert "shared" in out


def test_an_error_in_a_child_shows_the_child_line(tmp_path: Path) -> None:
    top = project(tmp_path)
    (tmp_path / "shared.yaml").write_text(
        "wfx: 1\ninputs: {n: {type: number}}\nsteps:\n  - {id: s, run: echo, timout: 1m}\n"
    )
    code, _, err = invoke("validate", "--root", str(tmp_path), str(top))
    assert code == 2
    assert f"{tmp_path / 'project' / '..' / 'shared.yaml'}" not in err
    assert "shared.yaml:4:" in err and "timout: 1m" in err
