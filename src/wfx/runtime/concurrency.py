"""Concurrency groups: at most one run of a group at a time among the runs sharing a state dir.

Every run of a group has a row in `concurrency.db` beside the journal (its own SQLite file,
so that it needs no journal migration and works with `--no-journal`): its run id, the pid
and kernel start time of the wfx process, since when, and whether it holds the group. The
living row with the smallest sequence number holds the group; the others wait, in order of
arrival. A row is alive while its process is that same living process (the journal's test
for a run's owner, :func:`owner_alive`): a run killed with kill -9 leaves a row that the
next run to look deletes, so a dead holder never blocks the group and a killed queued run
leaves nothing that counts. A dead holder's row stays until the run whose turn it is has
stopped the step processes that holder left running (as `wfx resume` does), so a step of
the dead run never runs beside the next run's. Every change is one `BEGIN IMMEDIATE`
transaction, so two runs arriving together never both hold the group.

A waiting run polls (there is no cross-process wake-up in SQLite), every
:data:`POLL_SECONDS`.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from wfx.model import ConcurrencyMode
from wfx.runtime.journal import (
    Journal,
    JournalUnwritableError,
    RunLockedError,
    damage_is_corruption,
    owner_alive,
    process_start_time,
)
from wfx.runtime.process import Leftover, stop_leftovers
from wfx.runtime.statedir import DATABASE as JOURNAL_DATABASE

DATABASE = "concurrency.db"

#: how often a waiting run looks again
POLL_SECONDS = 0.1

_SCHEMA = """CREATE TABLE IF NOT EXISTS members (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    run_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    since REAL NOT NULL,
    holding INTEGER NOT NULL DEFAULT 0
)"""


class ConcurrencyBusyError(RunLockedError):
    """`mode: fail`: another live run is in the group (exit 75, like a locked run)."""


@dataclass(frozen=True)
class Member:
    """A run in a group: holding it, or waiting for it."""

    seq: int
    run_id: str
    pid: int
    since: float
    holding: bool

    def describe(self) -> str:
        """`run ID (pid N), which holds it since 15:02:03`."""
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        how = "holds it" if self.holding else "has waited for it"
        return f"run {self.run_id} (pid {self.pid}), which {how} since {when}"


class Gate:
    """One run's place in its concurrency group: enter, wait for its turn, leave."""

    def __init__(
        self, directory: Path, group: str, mode: ConcurrencyMode, grace: float = 10.0
    ) -> None:
        """The group `group` among the runs whose state dir is `directory`; `grace`: how long
        a dead holder's step processes get between SIGTERM and SIGKILL."""
        self.path = directory / DATABASE
        self.group = group
        self.mode = mode
        self.grace = grace
        self.seq: int | None = None
        self.run_id = ""
        self.cancelled: list[Member] = []
        """The runs this one stopped (`mode: cancel`), for the run to say so."""
        self._db: sqlite3.Connection | None = None
        self._dead_waiters: list[str] = []
        """Runs found dead while they waited (never their turn): their journal records go."""
        self._dead_holders: dict[int, str] = {}
        """Dead holders found by the last look (seq -> run id): their rows stay until the
        run whose turn it is has stopped what they left running."""
        self.taken_over: list[tuple[str, list[Leftover]]] = []
        """The dead holders this run took the group from, with the processes it stopped."""

    # -- the database ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalUnwritableError(f"{self.path} cannot be written: {exc}") from None
            with damage_is_corruption(self.path):
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
            self._db = db
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        with damage_is_corruption(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _living(self, db: sqlite3.Connection) -> list[Member]:
        """The group's living members in order of arrival; the dead waiters' rows deleted,
        the dead holders' noted."""
        self._dead_holders = {}
        rows = db.execute(
            "SELECT seq, run_id, pid, pid_start, since, holding FROM members WHERE grp = ?"
            " ORDER BY seq",
            (self.group,),
        ).fetchall()
        living = []
        for seq, run_id, pid, start, since, holding in rows:
            if seq == self.seq or owner_alive(pid, start):
                living.append(Member(seq, run_id, pid, since, bool(holding)))
            elif holding:
                self._dead_holders[seq] = run_id
            else:
                db.execute("DELETE FROM members WHERE seq = ?", (seq,))
                if not holding:
                    self._dead_waiters.append(run_id)
        return living

    def _forget_dead_waiters(self) -> None:
        """A run killed while it waited ran nothing: leave no record of it in the journal
        beside this group's (a held group's dead holder keeps its record: it ran)."""
        dead, self._dead_waiters = self._dead_waiters, []
        journal_file = self.path.parent / JOURNAL_DATABASE
        if not dead or not journal_file.exists():
            return
        journal = Journal(journal_file)
        try:
            for run_id in dead:
                journal.forget_unstarted(run_id)
        finally:
            journal.close()

    # -- a run's way through the group --------------------------------------------------------

    def enter(self, run_id: str) -> None:
        """Join the group's queue. `fail`: ConcurrencyBusyError when another live run is in
        it (nothing joined). `cancel`: the runs in it are sent SIGTERM (they stop as on
        Ctrl-C: compensation and `finally` run, then they leave)."""
        with self._transaction() as db:
            others = self._living(db)
            if others and self.mode is ConcurrencyMode.FAIL:
                raise ConcurrencyBusyError(
                    f"concurrency group `{self.group}` is taken: {others[0].describe()};"
                    " this workflow's `concurrency.mode` is `fail`"
                )
            self.seq = self._join(db, run_id)
        self._forget_dead_waiters()
        if self.mode is ConcurrencyMode.CANCEL:
            self._cancel(others)

    def _join(self, db: sqlite3.Connection, run_id: str) -> int:
        self.run_id = run_id
        me = os.getpid()
        cursor = db.execute(
            "INSERT INTO members (grp, run_id, pid, pid_start, since) VALUES (?, ?, ?, ?, ?)",
            (self.group, run_id, me, process_start_time(me), time.time()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _cancel(self, members: list[Member]) -> None:
        """SIGTERM each member that is still the process that joined (no stranger killed
        for having reused a pid)."""
        with self._transaction() as db:
            starts = {
                seq: start
                for seq, start in db.execute(
                    "SELECT seq, pid_start FROM members WHERE grp = ?", (self.group,)
                )
            }
        for member in members:
            if member.pid != os.getpid() and owner_alive(member.pid, starts.get(member.seq)):
                try:
                    os.kill(member.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                self.cancelled.append(member)

    def ahead(self) -> Member | None:
        """The first living member before this run (the holder, or the first in the queue),
        or None when it is this run's turn, which it then takes unless a dead holder's
        processes must be stopped first (:meth:`wait_turn` does)."""
        assert self.seq is not None, "enter() first"
        with self._transaction() as db:
            living = self._living(db)
            if not any(m.seq == self.seq for m in living):  # taken for dead: join again
                self.seq = self._join(db, self.run_id)
                living = self._living(db)
            first: Member | None = living[0]
            if living[0].seq == self.seq:
                first = None
            if first is None and not self._dead_holders:
                db.execute(
                    "UPDATE members SET holding = 1, since = ? WHERE seq = ? AND holding = 0",
                    (time.time(), self.seq),
                )
        self._forget_dead_waiters()
        return first

    async def wait_turn(self, waiting: Callable[[Member], None]) -> None:
        """Return once this run holds the group; call `waiting` with the member ahead each
        time that member changes (who the run waits for)."""
        told: tuple[int, bool] | None = None
        while (first := self.ahead()) is not None or self._dead_holders:
            if first is None:
                await self._stop_dead_holders()
                continue
            if (first.seq, first.holding) != told:
                told = (first.seq, first.holding)
                waiting(first)
            await anyio.sleep(POLL_SECONDS)

    async def _stop_dead_holders(self) -> None:
        """Stop what the dead holders left running (in a thread: it waits their grace), then
        let their rows go."""
        dead, self._dead_holders = self._dead_holders, {}
        for seq, run_id in dead.items():
            stopped = await anyio.to_thread.run_sync(stop_leftovers, run_id, self.grace)
            self.taken_over.append((run_id, stopped))
            with self._transaction() as db:
                db.execute("DELETE FROM members WHERE seq = ? AND holding = 1", (seq,))

    def leave(self) -> None:
        """Leave the group (hold or queue), letting the next run in; safe to call twice."""
        if self._db is None:
            return
        try:
            if self.seq is not None:
                with self._transaction() as db:
                    db.execute("DELETE FROM members WHERE seq = ?", (self.seq,))
                self.seq = None
        finally:
            self._db.close()
            self._db = None


def took_over(run_id: str, stopped: list[Leftover]) -> str:
    """What a run says when it took its group from a dead holder: the processes it stopped."""
    if not stopped:
        return f"taken over from run {run_id}, whose wfx died; it left no step process running"
    shown = ", ".join(f"{p.pid} ({p.command[:60]})" for p in stopped[:5])
    more = f" and {len(stopped) - 5} more" if len(stopped) > 5 else ""
    count = f"{len(stopped)} process{'' if len(stopped) == 1 else 'es'}"
    return (
        f"taken over from run {run_id}, whose wfx died: stopped {count} run {run_id} left"
        f" running first: {shown}{more}"
    )
