"""The run journal: a SQLite write-ahead log of every state transition of every run.

The engine's events pass through :class:`Journal` as a sink; each transition (run
created, step started, attempt finished with its outputs, retry scheduled,
rollback started/finished, run finished) is committed before the engine goes on,
because the engine emits it before acting on it; only an attempt's end is held back, to
ride with the next commit (the next start record, or `commit_pending` before the engine
waits: docs/durability.md). From the journal a run that died
can be resumed (:func:`load_resume_state`), listed, shown and pruned.

The database is SQLite in WAL mode with `synchronous=NORMAL`: a commit survives the
death of the wfx process (kill -9) at once, and the file survives power loss intact,
though the last commits before a power loss may be lost (the steps they recorded are
then run again: at-least-once, see docs/durability.md). Secrets never reach it: the
engine masks every event first.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from wfx.diagnostics import WfxError
from wfx.runtime import events as ev
from wfx.runtime.failpoints import failpoint
from wfx.runtime.statedir import state_dir
from wfx.selection import NOT_SELECTED

SCHEMA_VERSION = 7
WORKSPACES = "workspaces"
SCRATCH = "scratch"

#: at most this much output text is kept per step for `wfx logs`
LOG_LIMIT = 1024 * 1024

_SCHEMA = [
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        file TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        definition TEXT NOT NULL,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        outputs TEXT,
        started REAL NOT NULL,
        finished REAL,
        owner_pid INTEGER,
        owner_start TEXT,
        heartbeat REAL
    )""",
    """CREATE INDEX runs_by_file ON runs (file, started)""",
    """CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        started REAL,
        finished REAL,
        outputs TEXT,
        exit_code INTEGER,
        signal INTEGER,
        reason TEXT,
        completed INTEGER,
        retry_at REAL,
        PRIMARY KEY (run_id, step_id)
    )""",
    """CREATE TABLE rollbacks (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_id TEXT NOT NULL,
        status TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        reason TEXT,
        PRIMARY KEY (run_id, step_id)
    )""",
    """CREATE TABLE logs (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        stream TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id, seq)
    )""",
]

#: schema version -> statements that migrate a database from the version before it
_MIGRATIONS: dict[int, list[str]] = {
    1: _SCHEMA,
    2: ["ALTER TABLE runs ADD COLUMN workspace TEXT"],
    3: [
        "ALTER TABLE steps ADD COLUMN ran_on TEXT",
        """CREATE TABLE attempts (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            ran_on TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id, attempt)
        )""",
    ],
    4: [
        "ALTER TABLE runs ADD COLUMN redrives TEXT",
        "ALTER TABLE steps ADD COLUMN kept_from TEXT",
    ],
    5: [
        """CREATE TABLE fanouts (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            items TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id)
        )""",
    ],
    # steps and attempts keyed by their primary key alone (WITHOUT ROWID): a step's
    # records are one b-tree instead of a table and its index, so each commit of a step
    # writes about half the pages (docs/performance.md)
    6: [
        """CREATE TABLE steps_by_key (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            started REAL,
            finished REAL,
            outputs TEXT,
            exit_code INTEGER,
            signal INTEGER,
            reason TEXT,
            completed INTEGER,
            retry_at REAL,
            ran_on TEXT,
            kept_from TEXT,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID""",
        "INSERT INTO steps_by_key SELECT run_id, step_id, status, attempts, started, finished,"
        " outputs, exit_code, signal, reason, completed, retry_at, ran_on, kept_from FROM steps",
        "DROP TABLE steps",
        "ALTER TABLE steps_by_key RENAME TO steps",
        """CREATE TABLE attempts_by_key (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            ran_on TEXT NOT NULL,
            PRIMARY KEY (run_id, step_id, attempt)
        ) WITHOUT ROWID""",
        "INSERT INTO attempts_by_key SELECT run_id, step_id, attempt, ran_on FROM attempts",
        "DROP TABLE attempts",
        "ALTER TABLE attempts_by_key RENAME TO attempts",
    ],
    # the attempt of a `pending` step that may start at any moment, recorded before it
    # does (the next step of a chain, started as soon as the one before it succeeds)
    7: ["ALTER TABLE steps ADD COLUMN intent INTEGER"],
}


class JournalError(WfxError):
    """The journal cannot be used: corrupt, from a newer wfx, or locked."""


class JournalCorruptError(JournalError):
    """The journal file is damaged; wfx refuses to guess what already ran."""


class JournalUnwritableError(JournalError):
    """The journal cannot be written (read-only file, directory or file system): it is not
    damaged, and read-only commands still read it."""


class RunNotResumableError(JournalError):
    """The run does not exist or already ended."""


class RunLockedError(JournalError):
    """Another live wfx process owns the run."""


@dataclass(frozen=True)
class RunRecord:
    """One run as the journal knows it."""

    id: str
    workflow: str
    file: str
    fingerprint: str
    definition: str
    inputs: Mapping[str, Any]
    status: str
    reason: str | None
    outputs: Mapping[str, Any] | None
    started: float
    finished: float | None
    owner_pid: int | None
    owner_start: str | None
    workspace: str | None = None
    redrives: str | None = None
    """The run this one redrives (`wfx retry`), if it is a redrive."""


@dataclass(frozen=True)
class StepRecord:
    """One step of a run as the journal knows it."""

    step_id: str
    status: ev.StepStatus
    """`running` also for a step waiting between attempts (then `retrying` is true)."""
    attempts: int
    started: float | None
    finished: float | None
    outputs: Mapping[str, Any]
    exit_code: int | None
    signal: int | None
    reason: str | None
    completed: int | None
    retry_at: float | None
    retrying: bool = False
    """Whether the step is waiting for its next attempt (journaled as `retrying`)."""
    where: str | None = None
    """Where its last attempt ran (`local`, a worker's address); None: no attempt ended."""
    attempts_where: Mapping[int, str] = field(default_factory=dict)
    """Where each ended attempt ran, by attempt number."""
    kept_from: str | None = None
    """The run that ran the step, when this run kept its result instead of running it."""

    @property
    def status_word(self) -> str:
        """The status as the journal stores it and `wfx show --json` prints it."""
        return _RETRYING if self.retrying else self.status.value


#: how the journal stores a step waiting for its next attempt (not a StepStatus)
_RETRYING = "retrying"

#: how the journal stores a step whose current attempt has not ended
_UNFINISHED = frozenset({ev.StepStatus.RUNNING.value, _RETRYING})


def _step_status(stored: str) -> tuple[ev.StepStatus, bool]:
    """A journaled step status as (status, retrying): the SQL edge of StepStatus."""
    if stored == _RETRYING:
        return ev.StepStatus.RUNNING, True
    return ev.StepStatus(stored), False


def _intent_taken(row: Any) -> Any:
    """A step row as its status says, except that a `pending` step whose attempt was
    recorded as about to start (`intent`) reads as that attempt running: it may have
    started before the crash, so a resume treats it as one that was in flight."""
    intent = row[13]
    if intent is None or row[1] != ev.StepStatus.PENDING.value or intent <= row[2]:
        return row
    return (row[0], ev.StepStatus.RUNNING.value, intent, *row[3:])


@dataclass(frozen=True)
class ResumeState:
    """What a resumed run starts from: finished steps, attempts made, owed compensations."""

    run_id: str
    steps: Mapping[str, StepRecord]
    rollbacks: Mapping[str, ev.StepStatus]
    status: str
    reason: str | None
    failing: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    workspace: str | None = None
    """The run's `$WFX_WORKSPACE`: a resumed run goes on in the same directory."""
    group_attempts: Mapping[str, int] = field(default_factory=dict)
    """The attempt each group with `groupRetries` had reached, by group id."""
    fanouts: Mapping[str, list[Any]] = field(default_factory=dict)
    """The item list of each dynamic fan-out the run expanded, by the fan-out's id."""


#: how the `attempts` table marks a group's attempt (not where a step's attempt ran)
GROUP_ATTEMPT = "group"


#: SQLite's primary result codes that mean "cannot write (or create) the file", not damage
_UNWRITABLE_CODES = frozenset({3, 8, 14})  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN


def cannot_write(exc: BaseException) -> bool:
    """Whether a SQLite error says the journal cannot be written or opened, not that it is
    damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and (code or 0) & 0xFF in _UNWRITABLE_CODES


#: connections closed, from `close_later` on, only when the process says so
_CLOSE_LATER: list[sqlite3.Connection] | None = None


def close_later() -> Callable[[], None]:
    """From now on, a journal's connection is put away by the returned function, not
    closed by `Journal.close`. A warm server's copy calls it after it told `wfx` that
    it finished (every commit is in the write-ahead log by then, durable as before), so
    what follows costs the command nothing:

    - the log is written into the database file, which alone then holds every run that
      ended, as closing the last connection would have done (1-3 ms, a sync);
    - the log is started again with one record (the schema's, unchanged): the first
      record of an empty log syncs the log's header (2-3 ms here, more on a real disk),
      which the next command's first record would otherwise pay;
    - the connection is left open to the process's end, which a copy reaches at once:
      closed, the last connection would remove the log again. SQLite then finds the log
      as after any end without a close, and keeps it (docs/durability.md).

    A journal opened ahead that no command took is left open likewise, untouched: a
    command that wrote to no journal writes nothing."""
    global _CLOSE_LATER  # noqa: PLW0603 - one process-wide policy, set once by the copy
    waiting: list[sqlite3.Connection] = []
    _CLOSE_LATER = waiting

    def close_now() -> None:
        while waiting:
            db = waiting.pop()
            with contextlib.suppress(sqlite3.Error):
                _move_log_into_file(db, empty=True)
                _start_log_again(db)
            _LEFT_OPEN.append(db)

    return close_now


#: connections `close_later` put away: open until the process ends
_LEFT_OPEN: list[sqlite3.Connection] = []


def _move_log_into_file(db: sqlite3.Connection, *, empty: bool = False) -> None:
    """Copy the write-ahead log into the database file, which alone then holds every run
    that ended: before a connection closes, waiting for no one (closing the last one
    does it anyway, and then this costs nothing more; but a warm server's spare may hold
    the journal open, `open_ahead`); with `empty`, also emptying the log, waiting a
    moment at most for another writer."""
    if empty:
        db.execute("PRAGMA busy_timeout = 100")
    checkpoint = "PRAGMA wal_checkpoint(TRUNCATE)" if empty else "PRAGMA wal_checkpoint(PASSIVE)"
    db.execute(checkpoint).fetchall()


def _start_log_again(db: sqlite3.Connection) -> None:
    """Write the schema record again, unchanged: the first record of the emptied log."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


#: the database this process last opened to write (absolute): a warm server's copy tells
#: the server, whose next copy opens it ahead of its command (`open_ahead`)
_WRITTEN: str | None = None


def last_written() -> str | None:
    """The journal this process last opened to write, as an absolute path (or None)."""
    return _WRITTEN


@dataclass(frozen=True)
class _Ahead:
    """A journal opened ahead of the command that will use it, and the file it was then:
    its absolute path and identity (device, inode)."""

    journal: Journal
    where: str
    identity: tuple[int, int]

    @property
    def db(self) -> sqlite3.Connection:
        """Its connection."""
        return self.journal.db


#: the journal `open_ahead` opened, until a command takes it (or it is closed)
_AHEAD: _Ahead | None = None


def _identity(where: str) -> tuple[int, int]:
    """The file at `where` (device, inode; OSError when there is none): while a journal
    opened ahead holds it open, no other file can have the same."""
    found = os.stat(where)
    return found.st_dev, found.st_ino


def _still_writable(where: str) -> bool:
    """Whether the journal and its directory may still be written as when they were opened
    (a connection keeps what it opened: a file made immutable, read-only or another's
    since then must be opened again, to be found unwritable as it would be)."""
    return os.access(where, os.W_OK) and os.access(os.path.dirname(where), os.W_OK)


def open_ahead(path: str) -> None:
    """Open the journal at `path` now, ahead of a command that may write to it: a warm
    server's spare copy does, for the journal the command before it wrote to, while it
    waits (opening it, with its write-ahead log, takes 2-3 ms of a command's start). Only
    an existing, writable journal of this wfx's schema is opened, and nothing is written
    to it; otherwise nothing is, and the command opens its journal itself.
    `Journal.for_command` takes it when the command's journal is that very file."""
    global _AHEAD  # noqa: PLW0603 - one journal held ahead per process
    try:
        before = _identity(path)
        journal = Journal(Path(path), ahead=True)
    except (OSError, sqlite3.Error, JournalError):
        return
    try:
        after = _identity(path)
    except OSError:
        after = None
    # replaced while it was being opened (not the file it names), or opened read-only
    if after != before or not _still_writable(path):
        with contextlib.suppress(sqlite3.Error):
            journal.db.close()
        return
    journal.db.execute("PRAGMA busy_timeout = 30000")  # from now on: as any journal waits
    _AHEAD = _Ahead(journal, path, before)


def _take_ahead() -> _Ahead | None:
    global _AHEAD
    ahead, _AHEAD = _AHEAD, None
    return ahead


def close_ahead() -> None:
    """Close the journal opened ahead, if no command took it (a spare that ends)."""
    ahead = _take_ahead()
    if ahead is not None:
        with contextlib.suppress(sqlite3.Error):
            ahead.db.close()


@contextmanager
def damage_is_corruption(path: Path) -> Iterator[None]:
    """Turn SQLite's complaints about a damaged file into JournalCorruptError, and those
    about a file it cannot write into JournalUnwritableError."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        if cannot_write(exc):
            raise JournalUnwritableError(
                f"the journal {path} cannot be written: {why_unwritable(path, exc)}"
            ) from None
        raise JournalCorruptError(f"the journal {path} is damaged: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalCorruptError(f"the journal {path} holds damaged records: {exc}") from None


def why_unwritable(path: Path, exc: BaseException | None = None) -> str:
    """Why SQLite cannot write the journal at `path`, as far as the system can tell."""
    directory = path.parent
    try:
        if os.statvfs(directory if directory.exists() else ".").f_flag & os.ST_RDONLY:
            return f"{directory} is on a read-only file system"
    except OSError:
        pass
    if path.exists() and _immutable(path):
        return "the file is immutable (chattr +i)"
    if directory.exists() and _immutable(directory):
        return f"its directory {directory} is immutable (chattr +i)"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file is not writable (mode {path.stat().st_mode & 0o777:04o})"
    if directory.is_dir() and not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable (SQLite keeps files beside it)"
    return f"SQLite says: {exc}" if exc is not None else "SQLite cannot open it for writing"


def _immutable(path: Path) -> bool:
    """Whether `path` has the immutable attribute (which even root cannot write through)."""
    get_flags, immutable = 0x80086601, 0x10  # FS_IOC_GETFLAGS, FS_IMMUTABLE_FL
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        raw = fcntl.ioctl(fd, get_flags, struct.pack("l", 0))
        return bool(struct.unpack("l", raw)[0] & immutable)
    except OSError:
        return False
    finally:
        os.close(fd)


_T = TypeVar("_T")
_P = ParamSpec("_P")


def _guarded(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """A journal read that reports a damaged database as JournalCorruptError."""

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        journal: Any = args[0]
        if journal.ended and not journal.db.in_transaction:
            journal.commit_pending()  # what this journal recorded is read back
        with damage_is_corruption(getattr(journal, "path", Path("?"))):
            return method(*args, **kwargs)

    return guarded


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of living process `pid` (field 22 of /proc/PID/stat);
    None when there is no such process or it is a zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def owner_alive(pid: int | None, start: str | None) -> bool:
    """Whether the process that owns a run is still that same living process."""
    if pid is None:
        return False
    current = process_start_time(pid)
    return current is not None and current == start


#: a start record: (run, step, attempt, time); an attempt again (a retry, a resume) keeps
#: the step's first start time
_STARTED = (
    "INSERT INTO steps (run_id, step_id, status, attempts, started)"
    " VALUES (?, ?, 'running', ?, ?)"
    " ON CONFLICT (run_id, step_id) DO UPDATE SET status = 'running',"
    " attempts = excluded.attempts, retry_at = NULL, intent = NULL,"
    " started = COALESCE(steps.started, excluded.started)"
)


def _after_step_started() -> None:
    failpoint("journal.after-step-started")


def _after_step_finished() -> None:
    failpoint("journal.after-step-finished")


class Journal:
    """A connection to the journal database; also an event sink for the engine."""

    def __init__(self, path: Path, *, read_only: bool = False, ahead: bool = False) -> None:
        """Open (or create) the journal at `path`. JournalUnwritableError when it cannot be
        written; with `read_only`, a journal that cannot be written is opened for reading.
        With `ahead` (:func:`open_ahead`), it is opened without writing, and only as it is:
        JournalError when it would have to be migrated, or waited for more than 20 ms."""
        self.path = path
        self._ahead = ahead
        self.read_only = False
        self.ended: list[tuple[Any, ...]] = []
        """End records (an attempt that finished) not yet written: each is written in the
        next transaction, which the next start record (or `commit_pending`) opens."""
        self.started: list[tuple[Any, ...]] = []
        """Start records held back for the next commit (their intents are durable)."""
        self.intended: dict[tuple[str, str], int] = {}
        """The attempt each (run, step) was recorded as about to start, until it starts."""
        self._together: list[Callable[[], None]] | None = None
        """Inside :meth:`together`: the failpoints to pass once its transaction commits."""
        try:
            self._open_for_writing()
        except JournalUnwritableError:
            if not read_only:
                raise
            self._open_for_reading()
        self.run_id: str | None = None
        self.completions = 0
        self.log_sizes: dict[str, int] = {}
        self.log_seq: dict[str, int] = {}
        self.pending_logs: list[tuple[str, str, str, str]] = []

    def _open_for_writing(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalUnwritableError(
                f"the journal {self.path} cannot be written: {why_unwritable(self.path, exc)}"
            ) from None
        with damage_is_corruption(self.path):
            wait = 0.02 if self._ahead else 30.0
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=wait)
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
            except BaseException:
                self.db.close()
                raise
        if not self._ahead:
            global _WRITTEN  # noqa: PLW0603 - what this process last opened to write
            _WRITTEN = os.path.abspath(self.path)

    def _open_for_reading(self) -> None:
        """Read a journal nobody may write: `mode=ro`, or, when SQLite cannot even make its
        shared-memory file (a read-only directory or file system) and no write-ahead log
        is pending, `immutable=1`. Nothing is migrated or written."""
        self.read_only = True
        uri = self.path.resolve().as_uri()
        wal = self.path.with_name(self.path.name + "-wal")
        with damage_is_corruption(self.path):
            try:
                self.db = self._connect_read_only(uri + "?mode=ro")
            except sqlite3.OperationalError as exc:
                if not cannot_write(exc) or (wal.exists() and wal.stat().st_size):
                    raise
                self.db = self._connect_read_only(uri + "?mode=ro&immutable=1")
            version = self._version()
        if version != SCHEMA_VERSION:
            self.db.close()
            raise JournalUnwritableError(
                f"the journal {self.path} cannot be written ({why_unwritable(self.path)}),"
                f" and it is from another wfx (schema {version}, this wfx reads {SCHEMA_VERSION})"
            )

    @staticmethod
    def _connect_read_only(uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def for_command(cls, path: Path) -> Journal:
        """The journal at `path` for a command that writes to it: the one opened ahead
        (`open_ahead`) when it is that very file (the same inode at the same path) and
        it and its directory may still be written; else opened now (the one opened ahead
        is then left open, untouched, to the process's end)."""
        ahead = _take_ahead()
        if ahead is not None:
            try:
                same = (
                    ahead.where == os.path.abspath(path)
                    and _identity(ahead.where) == ahead.identity
                    and _still_writable(ahead.where)
                )
            except OSError:
                same = False
            if same:
                global _WRITTEN  # noqa: PLW0603 - what this process last opened to write
                _WRITTEN = ahead.where
                ahead.journal.path = path
                return ahead.journal
            _LEFT_OPEN.append(ahead.db)  # closing it could write to a journal not named
        return cls(path)

    @classmethod
    def open(cls, explicit_dir: str | Path | None = None) -> Journal:
        """The journal where :func:`state_dir` says it is."""
        return cls(state_dir(explicit_dir).database)

    def close(self) -> None:
        """Write the records still held back, and close the database connection (at
        once, or when `close_later` says so)."""
        try:
            if (self.ended or self.started) and not self.read_only:
                self.commit_pending()
        finally:
            if _CLOSE_LATER is None:
                if not self.read_only:
                    with contextlib.suppress(sqlite3.Error):
                        _move_log_into_file(self.db)
                self.db.close()
            else:
                _CLOSE_LATER.append(self.db)

    # -- schema -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"the journal {self.path} was written by a newer wfx (schema {version});"
                f" this wfx reads up to schema {SCHEMA_VERSION}"
            )
        if self._ahead:  # nothing written: the command itself finds out what it may write
            if version != SCHEMA_VERSION:
                raise JournalError(f"the journal {self.path} is not this wfx's to open ahead")
            return
        with self.transaction():
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    self.db.execute(statement)
            # written even when nothing changed: SQLite opens a file it may not write
            # read-only without a word, and wfx must know now, not at the run's first step
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )

    def _version(self) -> int:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise JournalCorruptError(f"{self.path} is not a wfx journal")
            return 0
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise JournalCorruptError(f"{self.path} has no valid schema version")
        return int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One committed transaction (BEGIN IMMEDIATE: writers queue, never interleave); the
        end records held back (`ended`) are written first, in it. Inside :meth:`together`,
        it is part of that one transaction, committed when `together` ends."""
        ended, self.ended = self.ended, []
        started, self.started = self.started, []
        if self._together is not None:
            try:
                self._write_held(started, ended)
                yield
            except BaseException:
                self.started = started + self.started  # rolled back with the whole: held
                self.ended = ended + self.ended
                raise
            self._together.extend(_after_step_started for _ in started)
            self._together.extend(_after_step_finished for _ in ended)
            return
        with damage_is_corruption(self.path):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._write_held(started, ended)
                yield
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                self.started = started + self.started  # not written: still held back
                self.ended = ended + self.ended
                raise
            self.db.execute("COMMIT")
        for _ in started:
            _after_step_started()
        for _ in ended:
            _after_step_finished()

    @contextmanager
    def together(self) -> Iterator[None]:
        """What is recorded inside is written in one transaction, committed when the block
        ends (a burst of steps' start records: one commit, not one per step, and every
        one of them durable before any of those steps starts). A failure inside writes
        none of it. The failpoints after each record pass after that commit."""
        if self._together is not None:
            yield
            return
        passed: list[Callable[[], None]] = []
        with self.transaction():
            self._together = passed
            try:
                yield
            finally:
                self._together = None
        for point in passed:
            point()

    def _passed(self, point: Callable[[], None]) -> None:
        """The failpoint after a record: now, or after the commit of :meth:`together`."""
        if self._together is None:
            point()
        else:
            self._together.append(point)

    def check_integrity(self) -> str:
        """`PRAGMA integrity_check`: 'ok' for a sound database."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- creating and claiming runs ---------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        workflow: str,
        file: str,
        fingerprint: str,
        definition: str,
        inputs: Mapping[str, Any],
        workspace: str | None = None,
        redrives: str | None = None,
        kept: Sequence[StepRecord] = (),
        not_selected: Sequence[str] = (),
    ) -> None:
        """Record a new run, owned by this process: `redrives` is the run it redrives,
        `kept` the earlier results it keeps (each naming its run in `kept_from`),
        `not_selected` the steps it skips. Those are recorded with the run, so a resume of
        it keeps and skips the same steps whenever it was killed."""
        failpoint("journal.create-run")
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (id, workflow, file, fingerprint, definition, inputs, status,"
                " started, owner_pid, owner_start, heartbeat, workspace, redrives)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    workflow,
                    file,
                    fingerprint,
                    definition,
                    json.dumps(inputs, default=str),
                    time.time(),
                    os.getpid(),
                    process_start_time(os.getpid()),
                    time.time(),
                    workspace,
                    redrives,
                ),
            )
            for record in kept:
                self._insert_kept(run_id, record)
            self.db.executemany(
                "INSERT INTO steps (run_id, step_id, status, reason) VALUES (?, ?, 'skipped', ?)",
                [(run_id, step, NOT_SELECTED) for step in not_selected],
            )
        self.completions = max((r.completed or 0 for r in kept), default=0)
        self.run_id = run_id

    def workspace_for(self, run_id: str) -> Path:
        """Where a run's workspace lives when nobody chose one: beside the journal, so it
        outlives a reboot, is there again for `wfx resume`, and goes with `--prune`."""
        return (self.path.parent / WORKSPACES / run_id).resolve()

    def scratch_for(self, run_id: str) -> Path:
        """Where a journaled run keeps its `$WFX_OUTPUT` files while it runs: beside the
        journal, so a killed run leaves nothing in /tmp and its resume starts clean."""
        return (self.path.parent / SCRATCH / run_id).resolve()

    def claim(self, run_id: str) -> RunRecord:
        """Take ownership of an unfinished run whose owner died; RunLockedError if it lives."""
        with self.transaction():
            run = self.run(run_id)
            if run is None:
                raise RunNotResumableError(f"no run `{run_id}` in {self.path}")
            if run.finished is not None:
                raise RunNotResumableError(
                    f"run `{run.id}` already ended ({run.status}); start a new run instead"
                )
            if owner_alive(run.owner_pid, run.owner_start) and run.owner_pid != os.getpid():
                raise RunLockedError(
                    f"run `{run_id}` is owned by live process {run.owner_pid}; wait for it,"
                    " or stop it first"
                )
            self.db.execute(
                "UPDATE runs SET owner_pid = ?, owner_start = ?, heartbeat = ?, status = 'running'"
                " WHERE id = ?",
                (os.getpid(), process_start_time(os.getpid()), time.time(), run_id),
            )
        self.run_id = run_id
        self.completions = self._max_completion(run_id)
        return run

    @_guarded
    def _max_completion(self, run_id: str) -> int:
        row = self.db.execute(
            "SELECT COALESCE(MAX(completed), 0) FROM steps WHERE run_id = ?", (run_id,)
        ).fetchone()
        return int(row[0])

    # -- the sink ---------------------------------------------------------------------------

    def __call__(self, event: ev.Event) -> None:
        """Record one engine event (the journal is an event sink)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _step_started(self, event: ev.StepStarted) -> None:
        """Record an attempt's start, durable before its process starts: committed now,
        or held back for the next commit when its intent is durable already (the step
        was recorded as about to start: :meth:`intend`)."""
        failpoint("journal.step-started")
        record = (event.run_id, event.step, event.attempt, event.time)
        if self.intended.pop((event.run_id, event.step), None) == event.attempt:
            self.started.append(record)
            return
        with self.transaction():
            self.db.execute(_STARTED, record)
        self._passed(_after_step_started)

    def intend(self, run_id: str, step: str, attempt: int) -> None:
        """Record that a pending step's `attempt` may start at any moment, so that it can
        start without a commit of its own (its start record is then held back, like an
        end record): a resume takes the step for one whose attempt was running at the
        crash (the same attempt number again). The records held back ride along."""
        failpoint("journal.step-intended")
        with self.transaction():
            self.db.execute(
                "INSERT INTO steps (run_id, step_id, status, intent) VALUES (?, ?, 'pending', ?)"
                " ON CONFLICT (run_id, step_id) DO UPDATE SET intent = excluded.intent",
                (run_id, step, attempt),
            )
        self.intended[run_id, step] = attempt
        failpoint("journal.after-step-intended")

    def _write_held(self, started: list[tuple[Any, ...]], ended: list[tuple[Any, ...]]) -> None:
        """Write the start and end records held back (inside the caller's transaction):
        the starts first, as each step started before it ended."""
        if started:
            self._write_started(started)
        if ended:
            self._write_ended(ended)

    def _write_started(self, started: list[tuple[Any, ...]]) -> None:
        """Write start records (inside the caller's transaction)."""
        self.db.executemany(_STARTED, started)

    def _step_retrying(self, event: ev.StepRetrying) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE steps SET status = 'retrying', retry_at = ?, reason = ?, ran_on = ?"
                " WHERE run_id = ? AND step_id = ?",
                (event.time + event.delay, event.reason, event.where, event.run_id, event.step),
            )
            self._attempt_ran(event.run_id, event.step, event.attempt, event.where)
        failpoint("journal.retry-scheduled")

    def _step_finished(self, event: ev.StepFinished) -> None:
        """Hold the end record back for the next transaction: the next step's start record
        usually follows at once, and one commit then carries both. Either way it is
        durable before any step starts after it, and the engine calls `commit_pending`
        before it waits for anything else (docs/durability.md)."""
        failpoint("journal.step-finished")
        completed = None
        if event.status is ev.StepStatus.SUCCESS:
            self.completions += 1
            completed = self.completions
        self.ended.append(
            (
                event.run_id,
                event.step,
                event.status.value,
                event.attempts,
                event.time,
                json.dumps(dict(event.outputs), default=str) if event.outputs else "{}",
                event.exit_code,
                event.signal,
                event.reason,
                completed,
                event.where,
            )
        )

    def commit_pending(self) -> None:
        """Write the records held back, now (the engine is about to wait)."""
        if self.ended or self.started:
            with self.transaction():
                pass

    def _write_ended(self, ended: list[tuple[Any, ...]]) -> None:
        """Write held-back end records (inside the caller's transaction), after the output
        lines before them: a step's last lines are committed with its final status."""
        self._insert_pending_logs()
        self.db.executemany(
            "INSERT INTO steps (run_id, step_id, status, attempts, finished, outputs,"
            " exit_code, signal, reason, completed, ran_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, step_id) DO UPDATE SET status = excluded.status,"
            " attempts = excluded.attempts, finished = excluded.finished,"
            " outputs = excluded.outputs, exit_code = excluded.exit_code,"
            " signal = excluded.signal, reason = excluded.reason,"
            " completed = excluded.completed, retry_at = NULL,"
            " ran_on = COALESCE(excluded.ran_on, steps.ran_on)",
            ended,
        )
        for record in ended:  # a first attempt's place is the step's `ran_on` alone
            if record[3] > 1:
                self._attempt_ran(record[0], record[1], record[3], record[10])

    def _insert_kept(self, run_id: str, record: StepRecord) -> None:
        """Record (inside the caller's transaction) a step whose result run `run_id` keeps
        from the earlier run `record.kept_from`, as that run recorded it."""
        self.db.execute(
            "INSERT OR REPLACE INTO steps (run_id, step_id, status, attempts, started,"
            " finished, outputs, exit_code, signal, reason, completed, kept_from)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                record.step_id,
                record.status.value,
                record.attempts,
                record.started,
                record.finished,
                json.dumps(dict(record.outputs), default=str),
                record.exit_code,
                record.signal,
                record.reason,
                record.completed,
                record.kept_from,
            ),
        )

    def _fan_out_expanded(self, event: ev.FanOutExpanded) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO fanouts (run_id, step_id, items) VALUES (?, ?, ?)",
                (event.run_id, event.step, json.dumps(list(event.items), default=str)),
            )

    @_guarded
    def fanouts(self, run_id: str) -> dict[str, list[Any]]:
        """The item list of each dynamic fan-out a run expanded."""
        rows = self.db.execute("SELECT step_id, items FROM fanouts WHERE run_id = ?", (run_id,))
        return {r[0]: json.loads(r[1]) for r in rows}

    def _attempt_ran(self, run_id: str, step_id: str, attempt: int, where: str | None) -> None:
        """Record where an attempt that ended ran (nothing when no attempt ran)."""
        if where is not None and attempt:
            self.db.execute(
                "INSERT OR REPLACE INTO attempts (run_id, step_id, attempt, ran_on)"
                " VALUES (?, ?, ?, ?)",
                (run_id, step_id, attempt, where),
            )

    def _output(self, event: ev.StepOutput) -> None:
        size = self.log_sizes.get(event.step, 0)
        if size >= LOG_LIMIT:
            return
        text = event.text[: LOG_LIMIT - size]
        self.log_sizes[event.step] = size + len(text)
        self.pending_logs.append((event.run_id, event.step, event.stream, text))
        if len(self.pending_logs) >= 256:
            self._flush_log()

    def _flush_log(self) -> None:
        if self.pending_logs:
            with self.transaction():
                self._insert_pending_logs()

    def _insert_pending_logs(self) -> None:
        """Write the buffered output lines (inside the caller's transaction)."""
        if not self.pending_logs:
            return
        rows = []
        for run, step_id, stream, text in self.pending_logs:
            seq = self.log_seq.get(step_id)
            if seq is None:
                seq = self._next_seq(run, step_id)
            self.log_seq[step_id] = seq + 1
            rows.append((run, step_id, seq, stream, text))
        self.pending_logs = []
        self.db.executemany(
            "INSERT OR REPLACE INTO logs (run_id, step_id, seq, stream, text)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    @_guarded
    def _next_seq(self, run_id: str, step_id: str) -> int:
        row = self.db.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM logs WHERE run_id = ? AND step_id = ?",
            (run_id, step_id),
        ).fetchone()
        return int(row[0])

    def _rollback_started(self, event: ev.RollbackStarted) -> None:
        failpoint("journal.rollback-started")
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO rollbacks (run_id, step_id, status, started)"
                " VALUES (?, ?, 'running', ?)",
                (event.run_id, event.step, event.time),
            )
            self.db.execute("UPDATE runs SET status = 'compensating' WHERE id = ?", (event.run_id,))
        failpoint("journal.after-rollback-started")

    def _rollback_finished(self, event: ev.RollbackFinished) -> None:
        failpoint("journal.rollback-finished")
        with self.transaction():
            self._insert_pending_logs()
            self.db.execute(
                "UPDATE rollbacks SET status = ?, finished = ?, reason = ?"
                " WHERE run_id = ? AND step_id = ?",
                (event.status.value, event.time, event.reason, event.run_id, event.step),
            )
            self.db.execute(
                "UPDATE steps SET status = ? WHERE run_id = ? AND step_id = ?",
                (event.status.value, event.run_id, event.step),
            )
        failpoint("journal.after-rollback-finished")

    def _group_retrying(self, event: ev.GroupRetrying) -> None:
        """A group runs again: its steps are pending once more (their attempt counts kept,
        so the next attempts get new numbers), their compensations forgotten, and the
        group's next attempt number is kept (in `attempts`, marked as a group's)."""
        failpoint("journal.group-retrying")
        keys = [(event.run_id, step) for step in event.steps]
        with self.transaction():
            self._insert_pending_logs()
            self.db.executemany(
                "UPDATE steps SET status = 'pending', finished = NULL, outputs = NULL,"
                " exit_code = NULL, signal = NULL, reason = NULL, completed = NULL,"
                " retry_at = NULL WHERE run_id = ? AND step_id = ?",
                keys,
            )
            self.db.executemany("DELETE FROM rollbacks WHERE run_id = ? AND step_id = ?", keys)
            self.db.execute(
                "UPDATE runs SET status = 'running' WHERE id = ? AND status = 'compensating'",
                (event.run_id,),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO attempts (run_id, step_id, attempt, ran_on)"
                " VALUES (?, ?, ?, ?)",
                (event.run_id, event.group, event.next_attempt, GROUP_ATTEMPT),
            )
        failpoint("journal.after-group-retrying")

    def _run_finished(self, event: ev.RunFinished) -> None:
        self._flush_log()
        failpoint("journal.run-finished")
        status = event.status.value
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, reason = ?, outputs = ?, finished = ?,"
                " owner_pid = NULL WHERE id = ?",
                (
                    status,
                    event.reason,
                    json.dumps(dict(event.outputs), default=str),
                    None if status == "interrupted" else event.time,
                    event.run_id,
                ),
            )

    # -- reading ----------------------------------------------------------------------------

    @_guarded
    def run(self, run_id: str) -> RunRecord | None:
        """One run by id (a unique prefix is enough)."""
        rows = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ? OR id LIKE ? ORDER BY id",
            (run_id, run_id + "%"),
        ).fetchall()
        exact = [r for r in rows if r[0] == run_id]
        chosen = exact or rows
        if len(chosen) != 1:
            return None
        return _run_record(chosen[0])

    @_guarded
    def runs(self, file: str | None = None) -> list[RunRecord]:
        """All runs, newest first (optionally of one workflow file)."""
        query = f"SELECT {_RUN_COLUMNS} FROM runs"
        parameters: tuple[Any, ...] = ()
        if file is not None:
            query += " WHERE file = ?"
            parameters = (file,)
        query += " ORDER BY started DESC"
        return [_run_record(r) for r in self.db.execute(query, parameters)]

    @_guarded
    def latest_unfinished(self, file: str) -> RunRecord | None:
        """The newest run of `file` that did not end."""
        row = self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE file = ? AND finished IS NULL"
            " ORDER BY started DESC LIMIT 1",
            (file,),
        ).fetchone()
        return None if row is None else _run_record(row)

    @_guarded
    def steps(self, run_id: str, *, intents: bool = False) -> dict[str, StepRecord]:
        """The journaled steps of a run by id; with `intents`, a `pending` step recorded as
        about to start reads as that attempt in flight (what a resume must assume), else
        as `pending` (what it is to whoever looks at the run)."""
        rows = self.db.execute(
            "SELECT step_id, status, attempts, started, finished, outputs, exit_code, signal,"
            " reason, completed, retry_at, ran_on, kept_from, intent FROM steps"
            " WHERE run_id = ?",
            (run_id,),
        ).fetchall()
        if intents:
            rows = [_intent_taken(r) for r in rows]
        places: dict[str, dict[int, str]] = {}
        for step_id, attempt, where in self.db.execute(
            "SELECT step_id, attempt, ran_on FROM attempts WHERE run_id = ? ORDER BY attempt",
            (run_id,),
        ):
            places.setdefault(step_id, {})[attempt] = where
        for r in rows:  # a step that ended after one attempt: its place is its `ran_on`
            if r[2] == 1 and r[11] is not None and r[1] not in _UNFINISHED:
                places.setdefault(r[0], {}).setdefault(1, r[11])
        return {
            r[0]: StepRecord(
                r[0],
                _step_status(r[1])[0],
                r[2],
                r[3],
                r[4],
                json.loads(r[5]) if r[5] else {},
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
                _step_status(r[1])[1],
                r[11],
                places.get(r[0], {}),
                r[12],
            )
            for r in rows
        }

    @_guarded
    def rollbacks(self, run_id: str) -> dict[str, ev.StepStatus]:
        """Each compensation of a run and its status (running, rolledBack, rollbackFailed)."""
        rows = self.db.execute("SELECT step_id, status FROM rollbacks WHERE run_id = ?", (run_id,))
        return {r[0]: ev.StepStatus(r[1]) for r in rows}

    @_guarded
    def logs(self, run_id: str, step_id: str | None = None) -> list[tuple[str, str, str]]:
        """(step, stream, text) lines of a run (optionally of one step) in the order wfx
        received them: every step's lines interleaved as they ran. Lines are inserted in
        that order, so SQLite's rowid is their journal sequence."""
        query = "SELECT step_id, stream, text FROM logs WHERE run_id = ?"
        parameters: tuple[Any, ...] = (run_id,)
        if step_id is not None:
            query += " AND step_id = ?"
            parameters = (run_id, step_id)
        ordered = self.db.execute(query + " ORDER BY rowid", parameters)
        return [(r[0], r[1], r[2]) for r in ordered]

    @_guarded
    def resume_state(self, run_id: str) -> ResumeState:
        """What a resumed run needs to know about `run_id`."""
        run = self.run(run_id)
        if run is None:
            raise JournalError(f"no run `{run_id}` in {self.path}")
        steps = self.steps(run.id, intents=True)
        rollbacks = self.rollbacks(run.id)
        failing = any(s.status.is_failure for s in steps.values()) or bool(rollbacks)
        return ResumeState(
            run.id,
            steps,
            rollbacks,
            run.status,
            run.reason,
            failing,
            workspace=run.workspace,
            group_attempts=self.group_attempts(run.id),
            fanouts=self.fanouts(run.id),
        )

    @_guarded
    def group_attempts(self, run_id: str) -> dict[str, int]:
        """The attempt each group with `groupRetries` has reached (absent: its first)."""
        rows = self.db.execute(
            "SELECT step_id, MAX(attempt) FROM attempts WHERE run_id = ? AND ran_on = ?"
            " GROUP BY step_id",
            (run_id, GROUP_ATTEMPT),
        )
        return {r[0]: int(r[1]) for r in rows}

    def forget_unstarted(self, run_id: str) -> bool:
        """Delete run `run_id` if it is unfinished and never started a step of its own (a
        run killed while it waited for its concurrency group: nothing of it ran), with the
        workspace and scratch wfx made for it; True when it was deleted."""
        with self.transaction():
            row = self.db.execute(
                "SELECT workspace FROM runs WHERE id = ? AND finished IS NULL", (run_id,)
            ).fetchone()
            if row is None:
                return False
            started = self.db.execute(
                "SELECT 1 FROM steps WHERE run_id = ? AND started IS NOT NULL"
                " AND kept_from IS NULL LIMIT 1",
                (run_id,),
            ).fetchone()
            if started is not None:
                return False
            self.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.scratch_for(run_id), ignore_errors=True)
        made_by_wfx = self.workspace_for(run_id)
        if row[0] is not None and Path(row[0]).resolve() == made_by_wfx:
            shutil.rmtree(made_by_wfx, ignore_errors=True)
        return True

    def prune(self, older_than: float) -> int:
        """Delete finished runs that ended more than `older_than` seconds ago, and the
        workspaces wfx made for them (never one the user chose); how many runs."""
        cutoff = time.time() - older_than
        with self.transaction():
            doomed = self.db.execute(
                "SELECT id, workspace FROM runs WHERE finished IS NOT NULL AND finished < ?",
                (cutoff,),
            ).fetchall()
            self.db.execute(
                "DELETE FROM runs WHERE finished IS NOT NULL AND finished < ?", (cutoff,)
            )
        for run_id, workspace in doomed:
            shutil.rmtree(self.scratch_for(run_id), ignore_errors=True)
            made_by_wfx = self.workspace_for(run_id)
            if workspace is not None and Path(workspace).resolve() == made_by_wfx:
                shutil.rmtree(made_by_wfx, ignore_errors=True)
        return len(doomed)


_RUN_COLUMNS = (
    "id, workflow, file, fingerprint, definition, inputs, status, reason, outputs, started,"
    " finished, owner_pid, owner_start, workspace, redrives"
)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        json.loads(row[5]),
        row[6],
        row[7],
        json.loads(row[8]) if row[8] else None,
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
    )


_HANDLERS: dict[type, Any] = {
    ev.StepStarted: Journal._step_started,
    ev.StepRetrying: Journal._step_retrying,
    ev.StepOutput: Journal._output,
    ev.RollbackStarted: Journal._rollback_started,
    ev.RollbackFinished: Journal._rollback_finished,
    ev.GroupRetrying: Journal._group_retrying,
    ev.RunFinished: Journal._run_finished,
    ev.FanOutExpanded: Journal._fan_out_expanded,
    **{kind: Journal._step_finished for kind in ev.FINISHED_BY_STATUS.values()},
}
