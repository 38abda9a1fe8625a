"""A journal wfx cannot write is not "damaged": `wfx run` and `wfx resume` say what is
wrong (exit 2, nothing runs), and `wfx runs`, `wfx show` and `wfx logs` still read it.

How the journal is made read-only, honestly, when the tests run as root (root writes
through file modes, so `chmod 0444` proves nothing there):
- `file`: the immutable attribute (`chattr +i`), which root cannot write through either;
  `chmod 0444` when not root.
- `directory`: the same on the journal's directory, so SQLite cannot create the files it
  keeps beside the database (`-wal`, `-shm`); `chmod 0555` when not root.
- `mount`: a read-only bind mount of the journal's directory, in a private mount namespace
  made by `unshare` (a user namespace too when not root), around each wfx command.
A way the machine does not offer (no `chattr` support, no namespaces) is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FLOW = "wfx: 1\nsteps:\n  - {id: hello, run: echo hello}\n"
ROOT = os.geteuid() == 0


def _wfx(cwd: Path, *args: str, mount: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "wfx", *args]
    if mount is not None:
        remount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        namespaces = ["--mount"] if ROOT else ["--user", "--map-root-user", "--mount"]
        command = ["unshare", *namespaces, "sh", "-c", remount, str(mount), *command]
    environment = {k: v for k, v in os.environ.items() if k != "WFX_STATE_DIR"}
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**environment, "NO_COLOR": "1"},
        timeout=120,
    )


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) cannot be written, even by root, until the end."""
    if not ROOT:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    made = subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture
def journaled(tmp_path: Path) -> tuple[Path, str]:
    """A directory with one finished, journaled run (its WAL checkpointed and gone)."""
    (tmp_path / "wf.yaml").write_text(FLOW)
    assert _wfx(tmp_path, "run", "wf.yaml").returncode == 0
    state = tmp_path / ".wfx"
    assert not (state / "state.db-wal").exists()
    [run] = json.loads(_wfx(tmp_path, "runs", "--json").stdout)
    return tmp_path, str(run["id"])


def _assert_refused_and_readable(
    root: Path, run_id: str, why: str, mount: Path | None = None
) -> None:
    before = (root / ".wfx" / "state.db").read_bytes()
    ran = _wfx(root, "run", "wf.yaml", mount=mount)
    if mount is not None and "unshare" in ran.stderr and ran.returncode != 2:
        pytest.skip(f"no private read-only mount here: {ran.stderr.strip()}")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert f"the journal .wfx/state.db cannot be written: {why}" in ran.stderr
    assert "damaged" not in ran.stderr and "internal error" not in ran.stderr
    assert "--state-dir" in ran.stderr  # the hint says what to do
    assert "hello" not in ran.stdout, "a step ran"
    resumed = _wfx(root, "resume", run_id, mount=mount)
    assert resumed.returncode == 2 and "cannot be written" in resumed.stderr
    listed = _wfx(root, "runs", "--json", mount=mount)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = _wfx(root, "show", run_id, mount=mount)
    assert shown.returncode == 0 and "hello" in shown.stdout, shown.stderr
    logged = _wfx(root, "logs", run_id, mount=mount)
    assert (logged.returncode, logged.stdout) == (0, "[hello] hello\n"), logged.stderr
    pruned = _wfx(root, "runs", "--prune", "--older-than", "1s", mount=mount)
    assert pruned.returncode == 2 and "cannot be written" in pruned.stderr
    assert (root / ".wfx" / "state.db").read_bytes() == before


def test_a_read_only_journal_file(journaled: tuple[Path, str]) -> None:
    root, run_id = journaled
    why = "the file is immutable (chattr +i)" if ROOT else "the file is not writable (mode 0444)"
    with _read_only(root / ".wfx" / "state.db"):
        _assert_refused_and_readable(root, run_id, why)


def test_a_journal_in_a_read_only_directory(journaled: tuple[Path, str]) -> None:
    root, run_id = journaled
    state = root / ".wfx"
    why = f"its directory {'.wfx'} is " + ("immutable (chattr +i)" if ROOT else "not writable")
    with _read_only(state):
        _assert_refused_and_readable(root, run_id, why)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1) here")
def test_a_journal_on_a_read_only_file_system(journaled: tuple[Path, str]) -> None:
    root, run_id = journaled
    _assert_refused_and_readable(
        root, run_id, ".wfx is on a read-only file system", mount=root / ".wfx"
    )
