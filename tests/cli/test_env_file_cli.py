"""`envFile:` and `--env-file` from the command line: a missing file is exit 2 with its
position and nothing runs; a secret read from an env file reaches neither the output nor
the journal nor the plan."""

from __future__ import annotations

from pathlib import Path

from cli_process import wfx

SECRET = "pw-from-dotenv-5678"


def test_a_missing_env_file_is_exit_2_with_its_position_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "wf.yaml"
    path.write_text(f"wfx: 1\nsteps:\n  - envFile: deploy.env\n    run: touch {marker}\n")
    result = wfx("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3:14: error: env file `deploy.env` does not exist" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / ".wfx").exists()  # not even recorded


def test_a_secret_from_an_env_file_is_masked_in_output_journal_and_plan(tmp_path: Path) -> None:
    (tmp_path / "secrets.env").write_text(f"DB_PASSWORD={SECRET}\nDB_USER=admin\n")
    path = tmp_path / "wf.yaml"
    path.write_text(
        "wfx: 1\nsecrets: [DB_PASSWORD]\nsteps:\n"
        '  - id: connect\n    run: echo "$DB_USER:$DB_PASSWORD"\n'
    )
    result = wfx("run", str(path), "--env-file", "secrets.env", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[connect] admin:***" in result.stdout
    journal = b"".join(p.read_bytes() for p in (tmp_path / ".wfx").glob("state.db*"))
    assert b"admin:***" in journal
    assert SECRET.encode() not in journal
    shown = wfx("plan", str(path), "--env-file", "secrets.env", "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert '"DB_USER": "admin"' in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr


def test_a_malformed_env_file_line_is_never_quoted(tmp_path: Path) -> None:
    """A mistyped line of an env file may hold a secret (`DB_PASSWORD: value`): diagnostics
    point at its line and name it when they can, but never print its text, in any format and
    on any command."""
    (tmp_path / "secrets.env").write_text(
        f'DB_PASSWORD: {SECRET}\n"{SECRET}"=x\nTOKEN="{SECRET}\n{SECRET}:x:1\n'
    )
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\nenvFile: secrets.env\nsteps:\n  - run: echo hi\n")
    results = [
        wfx("validate", str(path), cwd=tmp_path),
        wfx("validate", str(path), "--format", "json", cwd=tmp_path),
        wfx("plan", str(path), cwd=tmp_path),
        wfx("run", str(path), "--env-file", "secrets.env", cwd=tmp_path),
    ]
    for result in results:
        assert result.returncode == 2, result.stderr
        assert "envfile.syntax" in result.stdout or "secrets.env:1:1: error:" in result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert "`DB_PASSWORD`" in results[0].stderr  # the name before the mistake is shown
