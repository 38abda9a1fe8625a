"""The process layer: exit status, output capture, and no process left behind.

Reliability tests T5, T6, T8, T9 and T10 of RELIABILITY-TESTS.md live here, together with
the cancellation contract the engine relies on (T7's "signal once, then escalate").
Processes are counted by a /proc census of the `WFX_TEST_TOKEN` marker (see conftest.py).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from wfx.runtime import process as process_module
from wfx.runtime.process import (
    ProcessOutcome,
    ProcessStartError,
    ProcessTracker,
    Stream,
    run_process,
)

if TYPE_CHECKING:
    from conftest import Census

pytestmark = pytest.mark.anyio

SCRIPTS = Path(__file__).parent / "scripts"
T5_TREE = 'sleep 1000 & (sleep 1000 &) ; setsid sleep 1000 & trap "" TERM; sleep 1000'


async def run(
    argv: list[str], census: Census | None = None, **options: object
) -> tuple[ProcessOutcome, list[tuple[Stream, str]]]:
    """Run `argv` with the test's environment; return the outcome and every line seen."""
    lines: list[tuple[Stream, str]] = []
    settings: dict[str, object] = {
        "env": census.env if census else dict(os.environ),
        "cwd": None,
        "timeout": 30.0,
        "kill_grace": 1.0,
        "on_output": lambda stream, text: lines.append((stream, text)),
    }
    settings.update(options)
    outcome = await run_process(argv, **settings)  # type: ignore[arg-type]
    return outcome, lines


def sh(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, "sh", *args]


# --- exit status and output -------------------------------------------------------------


async def test_exit_status_lines_and_byte_counts() -> None:
    outcome, lines = await run(sh("printf 'a\\nb'; printf xyz >&2; exit 7"))
    assert (outcome.returncode, outcome.signal, outcome.timed_out) == (7, None, False)
    assert not outcome.succeeded
    assert sorted(lines) == [("stderr", "xyz"), ("stdout", "a"), ("stdout", "b")]
    assert (outcome.stdout_bytes, outcome.stderr_bytes) == (3, 3)
    assert outcome.leftovers == ()


async def test_success_is_exit_zero_in_time() -> None:
    outcome, _ = await run(["true"])
    assert outcome.succeeded and not outcome.timed_out
    assert outcome.duration > 0  # measured (how fast is for bench/: process_overhead)


async def test_child_gets_exactly_the_given_environment_plus_a_fresh_marker() -> None:
    env = {"PATH": os.environ["PATH"], "GREETING": "hello"}
    script = 'echo "$GREETING|${HOME-unset}|$WFX_PROCESS_TOKEN"'
    first, second = [(await run(sh(script), env=env))[1] for _ in range(2)]
    greeting, home, token = first[0][1].split("|")
    assert (greeting, home) == ("hello", "unset")
    assert re.fullmatch("[0-9a-f]{17,}", token)
    assert second[0][1].split("|")[2] != token


def test_a_forked_child_hands_out_markers_of_its_own() -> None:
    """Markers are a random stem and a counter: a child made by fork must not repeat the
    parent's (the counter alone would), or a census could take one tree for another."""
    from wfx.runtime.process import _MARKERS

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only reports its next marker
        os.write(write_end, _MARKERS.fresh().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_marker = os.read(read_end, 100).decode()
    os.close(read_end)
    parent_marker = _MARKERS.fresh()
    assert child_marker[:16] != parent_marker[:16]
    assert child_marker != parent_marker


async def test_stdin_is_empty_so_a_reader_finishes_at_once() -> None:
    outcome, lines = await run(["cat"], timeout=5)
    assert outcome.succeeded
    assert lines == []


async def test_runs_in_its_own_session_in_the_given_directory(tmp_path: Path) -> None:
    _, lines = await run(sh('echo "$(ps -o sid= -p $$) $$"; pwd'), cwd=str(tmp_path))
    sid, pid = lines[0][1].split()
    assert sid == pid
    assert lines[1][1] == str(tmp_path)


# --- start failures ---------------------------------------------------------------------


def _not_executable(tmp_path: Path) -> list[str]:
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    return [str(script)]


def _no_shebang(tmp_path: Path) -> list[str]:
    binary = tmp_path / "junk"
    binary.write_bytes(b"\x00\x01\x02junk")
    binary.chmod(0o755)
    return [str(binary)]


def _bad_interpreter(tmp_path: Path) -> list[str]:
    script = tmp_path / "y.sh"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    return [str(script)]


@pytest.mark.parametrize(
    ("make_argv", "cwd", "message"),
    [
        (lambda _: ["wfx-no-such-command"], None, "command not found: wfx-no-such-command"),
        (_not_executable, None, "permission denied: "),
        (_no_shebang, None, "not an executable"),
        (_bad_interpreter, None, "interpreter not found"),
        (lambda _: ["true"], "missing", "working directory does not exist: "),
        (lambda _: ["true"], "a-file", "working directory is not a directory: "),
        (lambda _: [], None, "empty command"),
        (lambda _: ["echo", "nul\0byte"], None, "cannot start echo"),
    ],
)
async def test_start_failures_are_clear_wfx_errors(
    tmp_path: Path, make_argv: object, cwd: str | None, message: str
) -> None:
    (tmp_path / "a-file").write_text("")
    argv = make_argv(tmp_path)  # type: ignore[operator]
    directory = str(tmp_path / cwd) if cwd else None
    with pytest.raises(ProcessStartError, match=re.escape(message)) as caught:
        await run(argv, cwd=directory)
    assert not isinstance(caught.value, OSError)


async def test_start_failures_leak_no_descriptors(tmp_path: Path) -> None:
    attempts = [["no-such-program-wfx"], ["true"], ["echo", "nul\0byte"]]
    await run(["true"])  # warm up
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        for argv, cwd in zip(attempts, [None, str(tmp_path / "missing"), None], strict=True):
            with pytest.raises(ProcessStartError):
                await run(argv, cwd=cwd)
    assert len(os.listdir("/proc/self/fd")) == before


def test_closing_a_child_still_running_kills_and_reaps_it() -> None:
    process_module._devnull()  # the one /dev/null every child's stdin shares, kept open
    before = len(os.listdir("/proc/self/fd"))
    environment = process_module.Environment(os.environ)
    child = process_module._Child.spawn(
        ["sleep", "600"], environment.encoded({}), environment.get("PATH"), None
    )
    # two pipes, a pidfd and the epoll set that waits on them, all made at the start
    assert len(os.listdir("/proc/self/fd")) == before + 4
    child.close()
    assert child.returncode == -signal.SIGKILL
    assert len(os.listdir("/proc/self/fd")) == before


# --- T5: a timeout kills the whole tree -------------------------------------------------


async def test_t5_timeout_kills_the_whole_tree_including_setsid_and_term_ignorers(
    census: Census, signals_sent: list[tuple[str, int, int]]
) -> None:
    outcome, _ = await run(sh(T5_TREE), census, timeout=1.0, kill_grace=1.0)
    survivors = census.alive()
    figures = f"T5: returned after {outcome.duration:.2f}s, survivors {len(survivors)}"
    print(figures)
    assert survivors == [], figures
    assert outcome.timed_out and not outcome.succeeded
    assert outcome.signal == signal.SIGKILL  # the shell ignored TERM
    # The path: TERM to the group (and the setsid sleep) once, then KILL after the grace,
    # not a wait for the `sleep 1000`s to end.
    group_signals = [signum for how, _, signum in signals_sent if how == "group"]
    assert group_signals[:2] == [signal.SIGTERM, signal.SIGKILL], signals_sent
    assert len(outcome.leftovers) == 4
    assert {leftover.command for leftover in outcome.leftovers} == {"sleep 1000"}


async def test_timeout_returns_as_soon_as_a_term_honouring_child_is_gone(census: Census) -> None:
    outcome, _ = await run(["sleep", "100"], census, timeout=0.2, kill_grace=60)
    # Returning at once vs sitting out the 60 s grace: half the grace tells them apart on
    # any machine (a behaviour bound, not a speed budget).
    assert outcome.duration < 30
    assert (outcome.timed_out, outcome.signal, outcome.returncode) == (True, 15, None)
    assert census.alive() == []


# --- T6: a grandchild holds the pipe ----------------------------------------------------


@pytest.mark.slow
async def test_t6_grandchild_holding_the_pipe_never_hangs(census: Census) -> None:
    repetitions, hangs, killed = 100, 0, 0
    limiter = anyio.CapacityLimiter(20)

    async def once(index: int) -> None:
        nonlocal hangs, killed
        async with limiter:
            timeout = 60.0 if index % 2 else None
            # A hang is waiting for the `sleep 600`: 60 s tells it from a kill on any machine.
            with anyio.move_on_after(60):
                outcome, lines = await run(sh("sleep 600 & echo done"), census, timeout=timeout)
                assert lines == [("stdout", "done")]
                assert outcome.succeeded
                # the path: the holder was found and killed, not waited for
                assert [leftover.command for leftover in outcome.leftovers] == ["sleep 600"]
                killed += 1
                return
            hangs += 1

    async with anyio.create_task_group() as group:
        for index in range(repetitions):
            group.start_soon(once, index)
    figures = f"T6: hangs {hangs}/{repetitions}, holders killed {killed}"
    print(figures)
    assert hangs == 0, figures
    assert killed == repetitions, figures
    assert census.alive() == [], figures


async def test_background_child_without_the_pipe_is_found_and_killed(census: Census) -> None:
    outcome, _ = await run(sh("sleep 600 >/dev/null 2>&1 &"), census, pipe_grace=60)
    # The pipes are closed, so there is no pipe grace to sit out: returning at once vs after
    # the 60 s grace, which half of it tells apart on any machine.
    assert outcome.duration < 30
    assert [leftover.command for leftover in outcome.leftovers] == ["sleep 600"]
    assert census.alive() == []


async def test_leftover_ignoring_term_gets_the_grace_then_kill(
    census: Census, signals_sent: list[tuple[str, int, int]]
) -> None:
    script = '(trap "" TERM; exec sleep 600) & echo started'
    outcome, _ = await run(sh(script), census, pipe_grace=0.3, kill_grace=0.5)
    # A lower bound only: the pipe grace and the kill grace were both given (a slow machine
    # can only lengthen this); then TERM, then KILL, instead of a wait for the sleep.
    assert outcome.duration >= 0.3 + 0.5
    kinds = [signum for _, _, signum in signals_sent]
    assert signal.SIGTERM in kinds and signal.SIGKILL in kinds, signals_sent
    assert kinds.index(signal.SIGTERM) < kinds.index(signal.SIGKILL), signals_sent
    assert outcome.succeeded and len(outcome.leftovers) == 1
    assert census.alive() == []


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (neither gone nor a zombie), as /proc tells."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


async def test_a_pipe_holder_out_of_reach_does_not_hang_the_run(census: Census) -> None:
    # No marker (env -i) and out of the group (setsid): nothing can find it, we stop reading.
    outcome, lines = await run(
        sh("setsid env -i sleep 30 & echo $!"), census, pipe_grace=0.3, timeout=None
    )
    holder = int(lines[0][1])
    try:
        # the run was over while the holder still lived: it was not waited for
        assert _running(holder)
        assert outcome.succeeded and outcome.leftovers == ()
    finally:
        os.kill(holder, signal.SIGKILL)


# --- cancellation from outside and escalation (the engine's side of T7) ------------------


_TRAPPED_CHILD = '\'trap "echo term >> $0" TERM; : > "$0.set"; while :; do sleep 0.05; done\''
TRAPPED_TREE = (
    'trap "echo term >> $1" TERM; '
    f'sh -c {_TRAPPED_CHILD} "$2" & '
    f'setsid sh -c {_TRAPPED_CHILD} "$3" & '
    'until [ -f "$2.set" ] && [ -f "$3.set" ]; do sleep 0.02; done; '
    "echo ready; while :; do sleep 0.05; done"
)
"""A shell, a child in its group and an escaped (setsid) child, each logging every TERM;
`ready` once both children have set their traps (a fixed pause was not always enough
under load)."""


async def _cancel_trapped_tree(census: Census, logs: list[Path]) -> anyio.CancelScope:
    with anyio.CancelScope() as scope:

        def cancel_when_ready(stream: Stream, text: str) -> None:
            if text == "ready":
                scope.cancel()

        await run(
            sh(TRAPPED_TREE, *map(str, logs)), census, kill_grace=0.5, on_output=cancel_when_ready
        )
    return scope


async def test_cancellation_terms_each_process_once_then_kills(
    census: Census, tmp_path: Path, signals_sent: list[tuple[str, int, int]]
) -> None:
    logs = [tmp_path / name for name in ("main", "member", "escaped")]
    scope = await _cancel_trapped_tree(census, logs)
    assert scope.cancelled_caught  # the cancellation went on after the cleanup
    assert [log.read_text() for log in logs] == ["term\n"] * 3
    # the traps keep looping: they were KILLed after the grace, not waited for
    assert signal.SIGKILL in [signum for _, _, signum in signals_sent], signals_sent
    assert census.alive() == []


@pytest.fixture
def signals_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Every signal wfx sends, as (\"group\" or \"pid\", target's process group, signal).

    Signals sent back to back coalesce in the kernel, so a trap cannot tell one TERM from
    two: the tests that need to know record what is sent instead.
    """
    sent: list[tuple[str, int, int]] = []
    killpg, pidfd_send_signal = os.killpg, signal.pidfd_send_signal

    def record_group(pgid: int, signum: int) -> None:
        sent.append(("group", pgid, signum))
        killpg(pgid, signum)

    def record_pidfd(fd: int, signum: int, *rest: Any) -> None:
        sent.append(("pid", _group_of_pidfd(fd), signum))
        pidfd_send_signal(fd, signum, *rest)

    monkeypatch.setattr(os, "killpg", record_group)
    monkeypatch.setattr(signal, "pidfd_send_signal", record_pidfd)
    return sent


def _group_of_pidfd(fd: int) -> int:
    try:
        pid = re.findall(r"Pid:\s+(-?\d+)", Path(f"/proc/self/fdinfo/{fd}").read_text())[0]
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return -1
    return int(stat[stat.rindex(b")") + 2 :].split()[2])


def _terms(sent: list[tuple[str, int, int]]) -> tuple[list[int], list[int]]:
    """The groups TERMed as a whole, and the groups of processes TERMed one by one."""
    terms = [(how, group) for how, group, signum in sent if signum == signal.SIGTERM]
    return [g for how, g in terms if how == "group"], [g for how, g in terms if how == "pid"]


async def test_cancellation_sends_term_to_the_group_once_and_to_each_escapee_once(
    census: Census, tmp_path: Path, signals_sent: list[tuple[str, int, int]]
) -> None:
    await _cancel_trapped_tree(census, [tmp_path / name for name in ("a", "b", "c")])
    groups, one_by_one = _terms(signals_sent)
    assert len(groups) == 1
    assert one_by_one and groups[0] not in one_by_one  # members are not TERMed twice
    assert census.alive() == []


@pytest.mark.slow
async def test_cancellation_during_a_timeouts_grace_sends_no_second_term(
    census: Census, signals_sent: list[tuple[str, int, int]]
) -> None:
    # the timeout leaves `sh` a whole second to set its trap (under load, 0.3 s was not
    # always enough: TERM then ended it with no grace to cancel during); the outer
    # cancellation fires while the timeout's 3 s grace runs
    with anyio.move_on_after(2.0) as outer:
        await run(sh('trap "" TERM; sleep 600'), census, timeout=1.0, kill_grace=3.0)
    assert outer.cancelled_caught
    groups, one_by_one = _terms(signals_sent)
    assert (len(groups), one_by_one) == (1, [])
    # one grace, then KILL: no second TERM and grace for the cancellation
    to_group = [signum for how, _, signum in signals_sent if how == "group"]
    assert to_group == [signal.SIGTERM, signal.SIGKILL], signals_sent
    assert census.alive() == []


async def test_kill_all_escalates_at_once_while_the_grace_runs(
    census: Census, signals_sent: list[tuple[str, int, int]]
) -> None:
    tracker = ProcessTracker()
    ready = anyio.Event()
    finished_at = 0.0

    async def step(scope: anyio.CancelScope) -> None:
        nonlocal finished_at
        with scope:
            await run(
                sh('trap "" TERM; echo ready; sleep 600'),
                census,
                kill_grace=60,
                tracker=tracker,
                on_output=lambda stream, text: ready.set(),
            )
        finished_at = time.monotonic()

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as group:
        group.start_soon(step, scope)
        await ready.wait()
        assert tracker.live() == 1
        scope.cancel()  # first Ctrl-C: TERM, which the step ignores
        await anyio.sleep(0.3)
        assert tracker.live() == 1
        assert signal.SIGKILL not in [signum for _, _, signum in signals_sent]
        killed_at = time.monotonic()
        tracker.kill_all()  # second Ctrl-C
        assert ("group", signal.SIGKILL) in [(how, sig) for how, _, sig in signals_sent]
    # Finished at once rather than after the 60 s grace: half of it tells them apart on
    # any machine (a behaviour bound, not a speed budget).
    assert finished_at - killed_at < 30
    assert tracker.live() == 0
    assert census.alive() == []


async def test_a_failing_output_callback_kills_the_tree_and_surfaces(
    census: Census, signals_sent: list[tuple[str, int, int]]
) -> None:
    def explode(stream: Stream, text: str) -> None:
        raise RuntimeError("callback broke")

    with pytest.raises((RuntimeError, ExceptionGroup)) as caught:
        await run(sh("echo hi; sleep 600"), census, on_output=explode, kill_grace=5)
    # raised where the line was read: by the supervising task itself, or by a reading task
    raised = caught.value
    errors = raised.exceptions if isinstance(raised, ExceptionGroup) else (raised,)
    assert [str(error) for error in errors] == ["callback broke"]
    # the tree was TERMed (and gone at once), not waited for
    assert ("group", signal.SIGTERM) in [(how, signum) for how, _, signum in signals_sent]
    assert census.alive() == []


# --- T8: large or binary output ---------------------------------------------------------


def _capture_in_fresh_interpreter(
    argv: list[str], tmp_path: Path, max_line: int = 65536, log_limit: int = 1 << 20
) -> dict[str, object]:
    command = [sys.executable, str(SCRIPTS / "capture.py"), str(max_line)]
    command += [str(tmp_path / "log"), str(log_limit), "--", *argv]
    done = subprocess.run(command, capture_output=True, check=True, timeout=120)
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_t8_interleaved_200mb_on_both_streams_in_bounded_memory(tmp_path: Path) -> None:
    each = 100_000_000
    spew = [sys.executable, str(SCRIPTS / "spew.py"), str(each)]
    report = _capture_in_fresh_interpreter(spew, tmp_path)
    print(f"T8 interleaved 2x{each} B: {report}")
    assert (report["stdout_bytes"], report["stderr_bytes"]) == (each, each)
    assert report["chars"] == {"stdout": each // 100 * 99, "stderr": each // 100 * 99}
    assert report["peak_rss_kb"] < 100_000  # type: ignore[operator]
    assert (tmp_path / "log").stat().st_size == 1 << 20


def test_t8_one_gigabyte_without_a_newline_in_bounded_memory(tmp_path: Path) -> None:
    size = 1 << 30
    report = _capture_in_fresh_interpreter(["head", "-c", str(size), "/dev/zero"], tmp_path)
    print(f"T8 1 GiB no newline: {report}")
    assert report["stdout_bytes"] == size
    assert report["chars"] == {"stdout": size, "stderr": 0}
    assert report["longest"] == 65536
    assert report["peak_rss_kb"] < 100_000  # type: ignore[operator]


async def test_invalid_utf8_is_replaced_not_fatal() -> None:
    outcome, lines = await run(sh("printf '\\377\\376ok\\n'"))
    assert outcome.succeeded
    assert lines == [("stdout", "\ufffd\ufffdok")]


async def test_a_character_split_across_two_writes_is_decoded_whole() -> None:
    _, lines = await run(sh("printf '\\303'; sleep 0.1; printf '\\251\\n'"))
    assert lines == [("stdout", "é")]


async def test_long_lines_arrive_in_chunks_of_at_most_max_line_characters() -> None:
    script = "printf 'ééééé\\nabcdefgh\\n\\nabcdefghij'"
    _, lines = await run(sh(script), max_line=4)
    assert [text for _, text in lines] == ["éééé", "é", "abcd", "efgh", "", "abcd", "efgh", "ij"]


async def test_log_gets_raw_bytes_up_to_the_limit_and_counts_go_on() -> None:
    log = io.BytesIO()
    outcome, _ = await run(
        sh("printf 0123456789; sleep 0.1; printf 'abc\\377ghijkl' >&2"), log=log, log_limit=15
    )
    assert log.getvalue() == b"0123456789abc\xffg"
    assert (outcome.stdout_bytes, outcome.stderr_bytes) == (10, 10)


async def test_output_is_counted_without_a_callback() -> None:
    outcome = await run_process(
        sh("head -c 3000000 /dev/zero"), env=dict(os.environ), cwd=None, timeout=30, kill_grace=1
    )
    assert outcome.stdout_bytes == 3_000_000


# --- T9: exit-code fidelity -------------------------------------------------------------


def _oracle(argv: list[str]) -> tuple[int | None, int | None]:
    code = subprocess.run(argv, capture_output=True, check=False, start_new_session=True).returncode
    return (code, None) if code >= 0 else (None, -code)


T9_TABLE: list[list[str]] = [
    *(sh(f"exit {code}") for code in range(256)),
    sh("exit 300"),
    sh("kill -SEGV $$"),
    sh("kill -KILL $$"),
    sh("false | true"),
    ["bash", "-o", "pipefail", "-c", "false | true"],
    [sys.executable, "-c", "import sys; sys.exit(3)"],
    [sys.executable, "-c", "import os; os._exit(4)"],
    sh(f'ulimit -v 400000; exec {sys.executable} -c "bytearray(10**9)"'),
]


async def test_t9_exit_codes_and_signals_are_recorded_exactly() -> None:
    mismatches = []
    limiter = anyio.CapacityLimiter(8)

    async def check(argv: list[str]) -> None:
        async with limiter:
            outcome, _ = await run(argv)
        expected = _oracle(argv)
        if (outcome.returncode, outcome.signal) != expected or outcome.succeeded != (
            expected == (0, None)
        ):
            mismatches.append((argv, (outcome.returncode, outcome.signal), expected))

    async with anyio.create_task_group() as group:
        for argv in T9_TABLE:
            group.start_soon(check, argv)
    print(f"T9: mismatches {len(mismatches)}/{len(T9_TABLE)}")
    assert mismatches == []


@pytest.mark.parametrize(
    ("argv", "code", "signum"),
    [
        (sh("exit 300"), 44, None),
        (sh("kill -SEGV $$"), None, 11),
        (sh("false | true"), 0, None),
        (["bash", "-o", "pipefail", "-c", "false | true"], 1, None),
        (sh(f'ulimit -v 400000; exec {sys.executable} -c "bytearray(10**9)"'), 1, None),
    ],
)
async def test_t9_known_values(argv: list[str], code: int | None, signum: int | None) -> None:
    outcome, _ = await run(argv)
    assert (outcome.returncode, outcome.signal) == (code, signum)
    assert outcome.succeeded == (code == 0)


# --- T10: no zombie, fd or thread leaks -------------------------------------------------


def _own_zombies() -> int:
    me, count = str(os.getpid()).encode(), 0
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        count += fields[0] == b"Z" and fields[1] == me
    return count


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _resources() -> tuple[int, int, int]:
    return len(os.listdir("/proc/self/fd")), _status("Threads"), _status("VmRSS")


@pytest.mark.slow
async def test_t10_two_thousand_processes_leak_nothing(census: Census) -> None:
    limiter = anyio.CapacityLimiter(4)

    async def one(index: int) -> None:
        async with limiter:
            if index % 50 == 0:
                outcome, _ = await run(["sleep", "5"], census, timeout=0.05, kill_grace=0.2)
                assert outcome.timed_out
            else:
                outcome, _ = await run(sh("echo $0"), census, timeout=10)
                assert outcome.succeeded

    async def batch(count: int) -> None:
        async with anyio.create_task_group() as group:
            for index in range(count):
                group.start_soon(one, index)

    await batch(50)  # warm up: lazy imports and the event loop's caches
    fds, threads, rss = _resources()
    await batch(2000)
    await anyio.sleep(0.1)  # let any helper thread finish exiting
    fds_after, threads_after, rss_after = _resources()
    zombies = _own_zombies()
    figures = (
        f"T10: zombies {zombies}, fd delta {fds_after - fds}, thread delta "
        f"{threads_after - threads}, RSS growth {(rss_after - rss) / 1024:.1f} MB"
    )
    print(figures)
    assert zombies == 0, figures
    assert abs(fds_after - fds) <= 5, figures
    assert abs(threads_after - threads) <= 5, figures
    assert rss_after - rss < 50 * 1024, figures
    assert census.alive() == [], figures


# --- the fast path and per-process overhead ---------------------------------------------


async def test_no_proc_scan_when_the_group_is_empty_and_the_pipes_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans: list[object] = []
    real = process_module._census

    def counting_census(*args: Any, **kwargs: Any) -> Any:
        scans.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(process_module, "_census", counting_census)
    for argv in (["true"], sh("echo hi; exit 3"), sh("(echo child) ; wait")):
        await run(argv)
    assert scans == []
    await run(sh("sleep 600 & echo done"))
    assert scans != []


async def test_a_busy_event_loop_is_no_reason_to_scan_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of steps starting at once keep the loop busy past the pipe grace; pipes
    whose writers are all gone are then read to the end, not taken for a descendant
    holding them (a /proc scan per step was a cliff for 1,000 parallel steps)."""
    scans: list[object] = []
    real = process_module._census

    def counting_census(*args: Any, **kwargs: Any) -> Any:
        scans.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(process_module, "_census", counting_census)
    for argv in (["true"], sh("for i in 1 2 3; do echo line$i; done")):
        # a grace of 0 runs out at once, as a loop busy spawning processes makes it do
        outcome, lines = await run(argv, pipe_grace=0.0)
        assert outcome.succeeded
        assert [text for _, text in lines] == [f"line{i}" for i in range(1, len(lines) + 1)]
    assert len(lines) == 3
    assert scans == []


# The per-process overhead against subprocess.run is a benchmark:
# `python bench/run.py process_overhead`.


async def test_a_child_that_cannot_be_watched_is_killed_not_orphaned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = tmp_path / "started"

    def no_descriptors(pid: int) -> int:
        while not started.exists():  # the child really runs before we give up on it
            time.sleep(0.01)
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(process_module.os, "pidfd_open", no_descriptors)
    process_module._devnull()  # the one /dev/null every child's stdin shares, kept open
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ProcessStartError, match="cannot watch sh: Too many open files"):
        await run(sh(f"touch {started}; sleep 600"))
    assert len(os.listdir("/proc/self/fd")) == before
    assert _own_zombies() == 0
