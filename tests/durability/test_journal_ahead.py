"""A journal opened ahead of its command (a warm server's spare copy opens the journal the
command before it wrote to): the command takes that connection only when its journal is
that very file, still writable; in every other case it opens its own, exactly as it would
have, and nothing is ever written to a file the command did not name."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from wfx.runtime import journal as journal_module
from wfx.runtime.journal import Journal, JournalUnwritableError, close_ahead, open_ahead

ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def _nothing_held_ahead() -> Iterator[None]:
    yield
    close_ahead()


def _journal(directory: Path) -> Path:
    """An existing journal (as the command before left it), closed."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "state.db"
    Journal(path).close()
    return path


def _held() -> sqlite3.Connection | None:
    ahead = journal_module._AHEAD
    return None if ahead is None else ahead.db


def _runs(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT id FROM runs ORDER BY id")]


def _record_run(journal: Journal, run_id: str) -> None:
    journal.create_run(
        run_id, workflow="w", file="w.yaml", fingerprint="f", definition="{}", inputs={}
    )


def test_the_command_takes_the_journal_opened_ahead_when_it_is_that_file(tmp_path: Path) -> None:
    path = _journal(tmp_path / ".wfx")
    open_ahead(str(path))
    held = _held()
    assert held is not None
    journal = Journal.for_command(Path(os.path.relpath(path)))  # as the command names it
    assert journal.db is held
    assert journal_module.last_written() == str(path)
    _record_run(journal, "run-1")
    journal.close()
    assert _runs(path) == ["run-1"]


def test_a_journal_replaced_since_is_opened_again(tmp_path: Path) -> None:
    path = _journal(tmp_path / ".wfx")
    open_ahead(str(path))
    held = _held()
    fresh = _journal(tmp_path / "elsewhere")
    os.replace(fresh, path)  # a new file under the same name
    journal = Journal.for_command(path)
    assert journal.db is not held
    _record_run(journal, "run-2")
    journal.close()
    assert _runs(path) == ["run-2"]


def test_a_state_directory_removed_since_is_made_again(tmp_path: Path) -> None:
    path = _journal(tmp_path / ".wfx")
    open_ahead(str(path))
    held = _held()
    shutil.rmtree(tmp_path / ".wfx")  # `rm -rf .wfx` between two runs
    path.parent.mkdir()
    journal = Journal.for_command(path)
    assert journal.db is not held
    _record_run(journal, "run-3")
    journal.close()
    assert _runs(path) == ["run-3"]


def test_another_journal_is_opened_on_its_own_and_the_one_ahead_left_alone(
    tmp_path: Path,
) -> None:
    """The journal opened ahead is left open, untouched, to the process's end: closing it,
    when it is the last connection, would write to a journal the command never named."""
    first = _journal(tmp_path / "a" / ".wfx")
    second = _journal(tmp_path / "b" / ".wfx")
    open_ahead(str(first))
    held = _held()
    assert held is not None
    untouched = sorted((f.name, f.read_bytes()) for f in first.parent.iterdir())
    journal = Journal.for_command(second)
    assert journal.db is not held
    assert journal_module._AHEAD is None
    assert held in journal_module._LEFT_OPEN
    assert sorted((f.name, f.read_bytes()) for f in first.parent.iterdir()) == untouched
    _record_run(journal, "run-4")
    journal.close()
    assert _runs(second) == ["run-4"]
    assert _runs(first) == []


def test_no_journal_is_made_ahead_where_there_is_none(tmp_path: Path) -> None:
    open_ahead(str(tmp_path / ".wfx" / "state.db"))
    assert _held() is None
    assert not (tmp_path / ".wfx").exists()


def test_opening_ahead_writes_nothing_and_waits_for_no_writer(tmp_path: Path) -> None:
    """The spare opens the journal while another wfx may be writing to it, and writes
    nothing of its own (the command finds out itself what it may write)."""
    path = _journal(tmp_path / ".wfx")
    log = path.with_name("state.db-wal")
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO meta (key, value) VALUES ('other', 'wfx')")
        before = (path.read_bytes(), log.stat().st_size if log.exists() else 0)
        journal_module._WRITTEN = None
        started = time.monotonic()
        open_ahead(str(path))
        assert time.monotonic() - started < 1
        assert _held() is not None
        assert journal_module.last_written() is None  # opened ahead: not written by a command
        assert (path.read_bytes(), log.stat().st_size if log.exists() else 0) == before
        writer.execute("COMMIT")


def test_a_journal_made_unwritable_since_is_found_so(tmp_path: Path) -> None:
    """A connection keeps the access it opened with: a journal made immutable (root) or
    read-only after it was opened ahead is opened again, and found unwritable, as it
    would be without the server."""
    path = _journal(tmp_path / ".wfx")
    open_ahead(str(path))
    assert _held() is not None
    if ROOT:
        made = subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(JournalUnwritableError):
            Journal.for_command(path)
    finally:
        if ROOT:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def test_closing_writes_the_log_into_the_database_file_though_one_is_open_ahead(
    tmp_path: Path,
) -> None:
    """The copy closes its journal after it told `wfx` it finished; with the next copy's
    connection open, closing is no longer the last one's, which would move the write-ahead
    log into the database file: the copy does that itself, and starts the log again with
    one record, so that the next command's first record does not sync a new log's header."""
    path = _journal(tmp_path / ".wfx")
    close_now = journal_module.close_later()
    try:
        journal = Journal.for_command(path)
        _record_run(journal, "run-5")
        journal.close()  # later: by close_now
        with closing(sqlite3.connect(path)) as next_copy:  # another process's, open ahead
            assert next_copy.execute("SELECT count(*) FROM runs").fetchone() == (1,)
            close_now()
            log = path.with_name("state.db-wal")
            page = next_copy.execute("PRAGMA page_size").fetchone()[0]
            frame = 24 + page
            assert 32 < log.stat().st_size <= 32 + 4 * frame  # started again, with one record
            uri = f"{path.resolve().as_uri()}?immutable=1"  # the database file alone
            with closing(sqlite3.connect(uri, uri=True)) as alone:
                assert [row[0] for row in alone.execute("SELECT id FROM runs")] == ["run-5"]
    finally:
        journal_module._CLOSE_LATER = None


def test_a_journal_closed_beside_one_held_open_leaves_every_run_in_the_file(
    tmp_path: Path,
) -> None:
    """A `wfx` in its own process closes its journal while a warm server's spare holds it
    open: not the last connection, it moves the log into the database file itself."""
    path = _journal(tmp_path / ".wfx")
    with closing(sqlite3.connect(path)) as spare:
        assert spare.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        journal = Journal(path)
        _record_run(journal, "run-6")
        journal.close()
        uri = f"{path.resolve().as_uri()}?immutable=1"  # the database file alone
        with closing(sqlite3.connect(uri, uri=True)) as alone:
            assert [row[0] for row in alone.execute("SELECT id FROM runs")] == ["run-6"]
