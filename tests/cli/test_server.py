"""The warm server (wfx.server, wfx.launch): a command run through it behaves exactly as
the same command run in its own process, and the server never stands in for a process it
cannot be: another user's, one whose setup differs, or with code that changed.

Every test runs the real `wfx` command (the console script) against a real server with a
tag of its own (WFX_SERVER_TAG), and compares with `WFX_SERVER=0`, the command in its own
process."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: a Python another user may run (the project's may sit in a folder only root can read)
ANY_USERS_PYTHON = "/usr/bin/python3"
WFX = str(Path(sys.executable).parent / "wfx")

FACTS = """\
wfx: 1
steps:
  - id: facts
    run: |
      {
        echo "umask=$(umask)"
        echo "nofile=$(ulimit -n)"
        echo "nice=$(nice)"
        grep -E '^(SigIgn|SigBlk|Cpus_allowed_list)' /proc/self/status
        echo "pwd=$(pwd)"
        echo "foo=$FOO"
        echo "tz=$(date +%Z)"
      } > "$OUT"
"""


#: the start of the tag of every server this module's tests start in this test worker
_OURS = f"w{os.getpid()}-"


def _env(tag: str, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if k not in ("WFX_STATE_DIR", "CI")}
    return {
        **inherited,
        "NO_COLOR": "1",
        "WFX_SERVER": "1",
        "WFX_SERVER_TAG": _OURS + tag,
        "WFX_SERVER_IDLE": "120",
        **extra,
    }


@pytest.fixture(scope="module", autouse=True)
def _no_server_outlives_the_module() -> Iterator[None]:
    """Servers some tests start in passing (a `wfx run` after its server found its code
    changed starts the next one) would otherwise wait out their idle time after the
    suite: every process of a server of ours is told to end with the module."""
    yield
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            variables = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"wfx.server" in command and any(
            v.startswith(b"WFX_SERVER_TAG=" + _OURS.encode()) for v in variables
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGTERM)


def run(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    shell_prefix: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`wfx ARGS` as a user runs it (the console script), optionally behind a shell
    command that changes the process's state first (`umask 077;` ...)."""
    if shell_prefix:
        quoted = " ".join(_quote(a) for a in (WFX, *args))
        command: list[str] | str = f"{shell_prefix} exec {quoted}"
    else:
        command = [WFX, *args]
    return subprocess.run(
        command,
        shell=bool(shell_prefix),
        executable="/bin/bash" if shell_prefix else None,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=dict(env),
        timeout=timeout,
    )


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


_STATUS = """
import sys
sys.path[0] = sys.argv[1]  # as the `wfx` script's own path: the server's key covers it
from wfx import server
found = server.status()
print("none" if found is None else f"{found.pid} {found.served} {found.running} {found.spare}")
"""


def status(env: Mapping[str, str]) -> tuple[int, int, int, int] | None:
    """(pid, commands served, commands running, pid of its spare copy or 0) of the server
    of `env`, or None: asked the way `wfx server status` asks, without importing the
    command line each time."""
    done = subprocess.run(
        [sys.executable, "-c", _STATUS, str(Path(WFX).parent)],
        capture_output=True,
        text=True,
        env=dict(env),
        check=True,
        timeout=30,
    )
    words = done.stdout.split()
    if words == ["none"]:
        return None
    return int(words[0]), int(words[1]), int(words[2]), int(words[3])


def served(env: Mapping[str, str]) -> int | None:
    """How many commands the server of `env` has run, or None when none runs."""
    found = status(env)
    return None if found is None else found[1]


def wait_for_spare(env: Mapping[str, str], seconds: float = 30) -> tuple[int, int, int, int]:
    """The status of the server of `env` once it has a spare copy ready."""
    deadline = time.monotonic() + seconds
    while True:
        found = status(env)
        assert found is not None, "no server"
        if found[3] or time.monotonic() > deadline:
            assert found[3], "the server made no spare copy"
            return found
        time.sleep(0.1)


def start(env: Mapping[str, str]) -> None:
    done = run("server", "start", env=env)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a running server of this module's own (per test worker)."""
    cache = tmp_path_factory.mktemp("cache")
    env = _env(f"test-{uuid.uuid4().hex[:12]}", XDG_CACHE_HOME=str(cache))
    start(env)
    yield env
    run("server", "stop", env=env)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A server for one test, which stops or kills it."""
    env = _env(f"test-{uuid.uuid4().hex[:12]}", XDG_CACHE_HOME=str(tmp_path / "cache"))
    start(env)
    yield env
    run("server", "stop", env=env)


def both(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, shell_prefix: str = ""
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """The command through the server (checked to have gone through it), and in its own
    process."""
    before = served(env)
    assert before is not None
    through = run(*args, env=env, cwd=cwd, shell_prefix=shell_prefix)
    assert served(env) == before + 1, "the command did not go through the server"
    alone = run(*args, env={**env, "WFX_SERVER": "0"}, cwd=cwd, shell_prefix=shell_prefix)
    assert served(env) == before + 1
    return through, alone


# -- the same behaviour ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("validate", "examples/production-deployment.yaml"),
        ("plan", "examples/production-deployment.yaml", "-i", "environment=prd"),
        ("plan", "examples/production-deployment.yaml", "--format", "json"),
        ("plan", "examples/matrix-build.yaml", "--format", "markdown"),
        ("validate", "no-such-file.yaml"),
        ("plan", "examples/production-deployment.yaml", "-i", "nosuch=1"),
        ("bogus-command",),
        ("validate", "caf\udce9 \u00e9t\u00e9.yaml"),
        ("run", "--bogus-option", "x.yaml"),
    ],
)
def test_a_command_prints_and_exits_as_it_does_in_its_own_process(
    server: dict[str, str], args: tuple[str, ...]
) -> None:
    through, alone = both(*args, env=server, cwd=ROOT)
    assert (through.returncode, through.stdout, through.stderr) == (
        alone.returncode,
        alone.stdout,
        alone.stderr,
    )


def test_invalid_input_exits_2_with_its_diagnostics(server: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("wfx: 1\nsteps:\n  - id: a\n    run: x\n    retries: lots\n  - id: a\n")
    through, alone = both("run", str(bad), env=server, cwd=tmp_path)
    assert through.returncode == alone.returncode == 2
    assert through.stderr == alone.stderr
    assert "bad.yaml:" in through.stderr


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        # everything at once: each shows in the step's report, which must match
        "umask 077; ulimit -n 321; renice -n 7 -p $$ >/dev/null; trap '' USR1 USR2;"
        " taskset -p 1 $$ >/dev/null; export FOO='a b $(x)'; export TZ=Asia/Tokyo;",
    ],
    ids=["unchanged", "changed"],
)
def test_steps_see_the_process_state_of_the_wfx_command(
    server: dict[str, str], tmp_path: Path, prefix: str
) -> None:
    """umask, limits, priority, ignored signals, CPU affinity, environment, working
    directory: a step started through the server sees those of the `wfx` command."""
    if "taskset" in prefix and (os.cpu_count() or 1) < 2:
        prefix = prefix.replace(" taskset -p 1 $$ >/dev/null;", "")  # one CPU: no other set
    work = tmp_path / "work dir"
    work.mkdir()
    workflow = work / "facts.yaml"
    workflow.write_text(FACTS)
    outputs = []
    for name, env in (("through", server), ("alone", {**server, "WFX_SERVER": "0"})):
        out = tmp_path / f"{name}.txt"
        before = served(server)
        done = run(
            "run", "-q", "--no-journal", str(workflow),
            env={**env, "OUT": str(out)}, cwd=work, shell_prefix=prefix or "true;",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (served(server) == (before or 0) + 1) == (name == "through")
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1], outputs
    assert f"pwd={work}" in outputs[0]
    if prefix:
        for fact in ("umask=0077", "nofile=321", "nice=7", "foo=a b $(x)", "tz=JST"):
            assert fact in outputs[0], outputs[0]


def test_standard_input_is_the_commands_own(server: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\ninputs:\n  name: {type: string}\nsteps:\n"
        "  - id: hello\n    run: echo hello-${{ inputs.name }}\n"
    )
    (tmp_path / "in.yaml").write_text("name: from-stdin\n")
    before = served(server)
    with (tmp_path / "in.yaml").open("rb") as stdin:
        done = subprocess.run(
            [WFX, "run", "--no-journal", "--inputs", "/dev/stdin", "wf.yaml"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=server,
            check=False,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert "hello-from-stdin" in done.stdout
    assert served(server) == (before or 0) + 1


def test_a_closed_standard_stream_stays_closed(server: dict[str, str], tmp_path: Path) -> None:
    """`wfx --version >&-`: the command finds no stdout, as in its own process (where
    Python makes sys.stdout None and the version cannot be printed)."""
    through, alone = both("--version", env=server, cwd=tmp_path, shell_prefix="exec 1>&-;")
    assert through.returncode == alone.returncode
    assert through.stderr == alone.stderr


def test_output_to_a_terminal_is_what_the_terminal_would_get(
    server: dict[str, str], tmp_path: Path
) -> None:
    """A pseudo-terminal on stdout: colour and width come out as in the command's own
    process (sys.stdout is made anew on the command's terminal, line-buffered)."""
    pty = pytest.importorskip("pty")
    outputs = []
    for env in (server, {**server, "WFX_SERVER": "0"}):
        environment = {k: v for k, v in env.items() if k != "NO_COLOR"}
        environment.update(COLUMNS="70", TERM="xterm-256color")
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            [WFX, "plan", "examples/production-deployment.yaml", "-i", "environment=prd"],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            cwd=ROOT,
            env=environment,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
        os.close(primary)
        outputs.append(b"".join(chunks))
    assert b"\x1b[" in outputs[0]  # colour: it knew it wrote to a terminal
    assert outputs[0] == outputs[1]


def test_a_reader_that_goes_away_gets_no_traceback(server: dict[str, str]) -> None:
    done = subprocess.run(
        f"{WFX} plan examples/production-deployment.yaml -i environment=prd | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=server,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 1


# -- signals and ends -----------------------------------------------------------------

SLOW = """\
wfx: 1
steps:
  - id: slow
    run: echo started > "$MARK"; exec sleep 30
"""


def _start_slow(
    env: Mapping[str, str], tmp_path: Path, workflow: str = SLOW, *, session: bool = False
) -> tuple[subprocess.Popen[str], Path]:
    """`wfx run` of `workflow` (its first step writes "$MARK"), once that step started: in
    a process group of its own, whose parent (this test) is in the same session, as a
    shell's job is; with `session`, in a session of its own (an orphaned process group)."""
    (tmp_path / "slow.yaml").write_text(workflow)
    mark = tmp_path / "mark"
    mark.unlink(missing_ok=True)
    process = subprocess.Popen(
        [WFX, "run", "slow.yaml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**env, "MARK": str(mark)},
        start_new_session=session,
        process_group=None if session else 0,
    )
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.02)
    return process, mark


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_wfx_reaches_the_command(
    server: dict[str, str], tmp_path: Path, signum: int, code: int
) -> None:
    """Ctrl-C or SIGTERM to `wfx`: the run is interrupted as in its own process (the step
    stopped, the documented status) and the journal says so."""
    codes = []
    for env in (server, {**server, "WFX_SERVER": "0"}):
        before = served(server)
        process, _ = _start_slow(env, tmp_path)
        process.send_signal(signum)
        _out, err = process.communicate(timeout=60)
        codes.append(process.returncode)
        assert "Traceback" not in err
        assert (served(server) == (before or 0) + 1) == (env is server)
    assert codes[0] == codes[1]
    assert codes[0] in (130, code, -signum)


def test_a_killed_wfx_takes_its_command_with_it(server: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL to `wfx` (which can pass nothing on): the server kills the command's
    process too, as the command's own process would have died."""
    process, _ = _start_slow(server, tmp_path)
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while True:
        found = status(server)
        assert found is not None
        if found[2] == 0:
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_a_command_killed_by_a_signal_ends_wfx_by_the_same_signal(
    server: dict[str, str], tmp_path: Path
) -> None:
    process, _ = _start_slow(server, tmp_path)
    _quit_and_wait(process)
    alone, _ = _start_slow({**server, "WFX_SERVER": "0"}, tmp_path)
    _quit_and_wait(alone)
    assert process.returncode == alone.returncode


def _quit_and_wait(process: subprocess.Popen[str]) -> None:
    """SIGQUIT to `process`, which must end by it within 20 s (else it is killed, and the
    failure says how its signals stood)."""
    process.send_signal(signal.SIGQUIT)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            standing = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            standing = "(gone)"
        process.kill()
        process.communicate()
        signals = [line for line in standing.splitlines() if line.startswith("Sig")]
        pytest.fail(f"SIGQUIT did not end wfx: {signals}")


def test_a_command_outlives_a_killed_server(own_server: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL to the server (an OOM killer, a `pkill python`): the command it runs goes
    on, and `wfx` ends with the status the command announced as it ended."""
    found = status(own_server)
    assert found is not None
    workflow = (
        'wfx: 1\nsteps:\n  - id: a\n    run: echo started > "$MARK"; sleep 1; echo done\n'
        "  - id: b\n    needs: [a]\n    run: exit 3\n    onError: continue\n"
    )
    process, mark = _start_slow(own_server, tmp_path, workflow)
    os.kill(found[0], signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    alone = run(
        "run", "slow.yaml", env={**own_server, "WFX_SERVER": "0", "MARK": str(mark)}, cwd=tmp_path
    )
    assert process.returncode == alone.returncode == 3, err
    assert "done" in out
    assert "went away" not in err


def test_ctrl_z_stops_wfx_and_fg_resumes_the_command(
    server: dict[str, str], tmp_path: Path
) -> None:
    workflow = 'wfx: 1\nsteps:\n  - id: a\n    run: echo started > "$MARK"; sleep 0.5; echo done\n'
    process, _ = _start_slow(server, tmp_path, workflow)
    deadline = time.monotonic() + 30
    process.send_signal(signal.SIGTSTP)
    state = ""
    while state != "T":
        assert time.monotonic() < deadline, "wfx did not stop"
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGCONT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "done" in out


def test_ctrl_z_in_an_orphaned_process_group_stops_nothing(
    server: dict[str, str], tmp_path: Path
) -> None:
    """The kernel discards a SIGTSTP sent to an orphaned process group, so a wfx there
    goes on. The command's copy, which wfx stopped as it passed the stop on, must go on
    with it, not wait stopped for a SIGCONT that never comes."""
    workflow = 'wfx: 1\nsteps:\n  - id: a\n    run: echo started > "$MARK"; sleep 0.5; echo done\n'
    process, _ = _start_slow(server, tmp_path, workflow, session=True)
    process.send_signal(signal.SIGTSTP)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "done" in out


@pytest.mark.parametrize("how", ["wfx server stop", "SIGTERM"])
def test_stop_waits_for_the_running_command(
    own_server: dict[str, str], tmp_path: Path, how: str
) -> None:
    found = status(own_server)
    assert found is not None
    workflow = 'wfx: 1\nsteps:\n  - id: a\n    run: echo started > "$MARK"; sleep 1; echo done\n'
    process, _ = _start_slow(own_server, tmp_path, workflow)
    if how == "SIGTERM":
        os.kill(found[0], signal.SIGTERM)
    else:
        assert "stopping" in run("server", "stop", env=own_server).stdout
    time.sleep(0.3)
    assert status(own_server) is None  # no new command: the name is free at once
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "done" in out
    deadline = time.monotonic() + 20
    while Path(f"/proc/{found[0]}").exists():
        assert time.monotonic() < deadline, "the server did not exit after its last command"
        time.sleep(0.05)


# -- the spare copy --------------------------------------------------------------------


def _private_dirty_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise AssertionError("no Private_Dirty")


def test_a_command_runs_in_the_copy_forked_ahead_of_it(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """The server forks the copy of the next command while nothing runs; the command
    runs in it (its steps are that process's children), and a new one is forked after."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: echo parent=$PPID\n")
    spare = wait_for_spare(own_server)[3]
    done = run("run", "wf.yaml", env=own_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"parent={spare}" in done.stdout
    assert wait_for_spare(own_server)[3] not in (0, spare)


def test_the_next_copy_is_forked_while_a_command_waits_on_its_steps(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """While a command's steps alone work (wfx waits on a `sleep`), the server forks (and
    warms) the copy of the next command: it is ready before the command ends, and it is
    not the copy running the command. Back to back, the next command finds it warm."""
    first = wait_for_spare(own_server)[3]
    process, _ = _start_slow(own_server, tmp_path)
    try:
        _, _, running, spare = wait_for_spare(own_server, seconds=10)
        assert running == 1
        assert spare not in (0, first)
        assert process.poll() is None
    finally:
        process.kill()
        process.communicate()


BUSY = """\
wfx: 1
steps:
  - id: work
    uses: python:busy:spin
"""


def test_no_copy_is_forked_beside_a_command_that_works(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """A command whose own process computes (a Python step, in the copy itself) is never
    joined by the next command's copy: forking and warming it would take CPU from it."""
    (tmp_path / "busy.py").write_text(
        "import os, time\n"
        "def spin():\n"
        "    open(os.environ['MARK'], 'w').close()\n"
        "    end = time.process_time() + 2\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "    return {}\n"
    )
    wait_for_spare(own_server)
    process, _ = _start_slow(own_server, tmp_path, BUSY)
    try:
        time.sleep(0.8)
        found = status(own_server)
        assert found is not None
        assert process.poll() is None, "the step ended too soon to tell"
        assert found[2] == 1
        assert found[3] == 0, "a copy was forked beside a working command"
    finally:
        process.kill()
        process.communicate()


def test_a_spare_that_died_is_replaced_and_the_command_still_runs(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: echo parent=$PPID\n")
    server_pid, served_before, _, spare = wait_for_spare(own_server)
    os.kill(spare, signal.SIGKILL)
    time.sleep(0.3)
    done = run("run", "wf.yaml", env=own_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"parent={spare}" not in done.stdout
    after = wait_for_spare(own_server)
    assert after[:2] == (server_pid, served_before + 1)  # through the same server
    assert after[3] != spare


def test_commands_at_once_share_the_spare_and_forks_made_on_the_spot(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """Four commands started together: one gets the spare, the others forks of their
    own; each runs in its own process with its own output and status."""
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - id: a\n    run: sleep 0.3; echo n=$N parent=$PPID; exit $N\n"
        "    onError: continue\n"
    )
    _, served_before, _, spare = wait_for_spare(own_server)
    processes = [
        subprocess.Popen(
            [WFX, "run", "--state-dir", str(tmp_path / f"state{n}"), "wf.yaml"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**own_server, "N": str(n)},
        )
        for n in range(4)
    ]
    parents = []
    for n, process in enumerate(processes):
        out, err = process.communicate(timeout=60)
        assert process.returncode == (0 if n == 0 else 3), err  # 3: completed with failures
        line = next(word for word in out.split("\n") if f"n={n} " in word)
        parents.append(line.split("parent=")[1].split()[0])
    assert len(set(parents)) == 4
    assert str(spare) in parents
    after = wait_for_spare(own_server)
    assert after[1] == served_before + 4
    assert after[3] not in (0, spare)
    # every copy, forked on the spot or not, moved its journal's log into the database
    # file after its `wfx` ended: the server never kills a copy that said it finished
    for n in range(4):
        _wait_for_the_database_file_alone(tmp_path / f"state{n}" / "state.db", runs=1)


@pytest.mark.parametrize("kind", ["warm", "learn", "ahead"])
def test_the_spares_own_messages_are_refused_on_the_servers_socket(
    own_server: dict[str, str], kind: str
) -> None:
    """ "warm", "learn" and "ahead" pass only between the server and its spare, on a pair no
    one else holds: said to the server's socket, they are closed on, unanswered."""
    from wfx import launch

    spare = wait_for_spare(own_server)[3]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect("\0" + socket_name(own_server))
        conn.settimeout(10)
        conn.sendall(launch.frame((kind, 0, [])))
        assert conn.recv(1) == b""
    assert wait_for_spare(own_server)[3] == spare  # the spare took nothing


def test_the_spare_ends_with_its_server(own_server: dict[str, str]) -> None:
    spare = wait_for_spare(own_server)[3]
    assert "stopping" in run("server", "stop", env=own_server).stdout
    deadline = time.monotonic() + 20
    while Path(f"/proc/{spare}").exists() and "Z" not in _state(spare):
        assert time.monotonic() < deadline, "the spare outlived its server"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_spares_are_warmed_with_the_pages_commands_wrote_to(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """The first copies report the pages they wrote to (not warmed: each warmed page
    would count as written); later spares make their own copy of those pages before
    the command comes (docs/server.md)."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    unwarmed = _private_dirty_kib(wait_for_spare(own_server)[3])
    for _ in range(3):
        assert run("run", "wf.yaml", env=own_server, cwd=tmp_path).returncode == 0
    spare = wait_for_spare(own_server)[3]
    deadline = time.monotonic() + 20
    while (warmed := _private_dirty_kib(spare)) < unwarmed + 4096:
        assert time.monotonic() < deadline, f"not warmed: {unwarmed} KiB, then {warmed} KiB"
        time.sleep(0.1)


def _kept(env: Mapping[str, str]) -> int:
    """How many workflows `wfx server status` says the server keeps in memory."""
    shown = run("server", "status", env=env).stdout
    found = re.search(r"(\d+) workflow\(s\) kept in memory", shown)
    return int(found.group(1)) if found else 0


def _wait_until_kept(env: Mapping[str, str], count: int) -> None:
    deadline = time.monotonic() + 20
    while _kept(env) != count:
        assert time.monotonic() < deadline, f"kept {_kept(env)}, not {count}"
        time.sleep(0.05)


def test_a_workflow_read_from_the_cache_is_kept_in_memory_and_never_served_stale(
    own_server: dict[str, str], tmp_path: Path
) -> None:
    """A copy that unpickled a workflow from the model cache names it; the server keeps it
    unpickled for the copies after it (docs/server.md). A changed file, or a command whose
    key did not sign the entry, never gets the kept one."""
    workflow = tmp_path / "wf.yaml"
    workflow.write_text("wfx: 1\nsteps:\n  - id: a\n    run: echo first\n")
    for _ in range(2):  # compiled and stored; then read from the cache by a spare copy
        wait_for_spare(own_server)  # (a copy forked on the spot has no channel to tell)
        done = run("run", "wf.yaml", env=own_server, cwd=tmp_path)
        assert done.returncode == 0 and "first" in done.stdout, done.stderr
    _wait_until_kept(own_server, 1)
    done = run("run", "wf.yaml", env=own_server, cwd=tmp_path)
    assert done.returncode == 0 and "first" in done.stdout, done.stderr
    workflow.write_text("wfx: 1\nsteps:\n  - id: a\n    run: echo second\n")
    for _ in range(2):
        wait_for_spare(own_server)
        done = run("run", "wf.yaml", env=own_server, cwd=tmp_path)
        assert done.returncode == 0 and "second" in done.stdout and "first" not in done.stdout
    _wait_until_kept(own_server, 2)
    other_key = {**own_server, "XDG_CACHE_HOME": str(tmp_path / "elsewhere")}
    done = run("run", "wf.yaml", env=other_key, cwd=tmp_path)
    assert done.returncode == 0 and "second" in done.stdout, done.stderr


def test_a_run_is_in_its_journal_when_wfx_ends_though_the_copy_closes_it_later(
    server: dict[str, str], tmp_path: Path
) -> None:
    """The copy closes the journal (a checkpoint and a sync) after it told `wfx` it
    finished: by then every record is committed, and the closing does happen (the
    database file alone holds the run, though the next copy holds the journal open)."""
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n  - id: b\n    needs: [a]\n    run: 'true'\n"
    )
    state = tmp_path / "state"
    done = run("run", "--state-dir", str(state), "wf.yaml", env=server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(state / "state.db")) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("success",)]
        steps = db.execute("SELECT step_id, status FROM steps ORDER BY step_id").fetchall()
        assert steps == [("a", "success"), ("b", "success")]
    _wait_for_the_database_file_alone(state / "state.db", runs=1)


def _wait_for_the_database_file_alone(path: Path, runs: int) -> None:
    """Wait until the database file alone (its write-ahead log ignored) holds `runs` runs:
    the copy has moved the log into it, after `wfx` ended."""
    uri = f"{path.resolve().as_uri()}?immutable=1"
    deadline = time.monotonic() + 20
    while True:
        with closing(sqlite3.connect(uri, uri=True)) as alone, contextlib.suppress(sqlite3.Error):
            if alone.execute("SELECT count(*) FROM runs").fetchone() == (runs,):
                return
        assert time.monotonic() < deadline, "the copy never moved the log into the file"
        time.sleep(0.05)


def _holds(pid: int, path: Path, seconds: float = 20) -> bool:
    """Whether process `pid` has `path` open (waiting a while for it to)."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _run_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT id FROM runs")]


def test_the_next_copy_opens_the_journal_the_last_run_wrote_ahead_of_its_command(
    server: dict[str, str], tmp_path: Path
) -> None:
    """The spare forked after a run holds that run's journal open, and the next run there
    records into it; the database file alone has both runs once each copy has put the
    journal away. After a plan (which writes nothing), the next spare opens none."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    journal = (tmp_path / ".wfx" / "state.db").resolve()
    assert run("run", "wf.yaml", env=server, cwd=tmp_path).returncode == 0
    spare = wait_for_spare(server)[3]
    assert _holds(spare, journal), "the spare did not open the journal ahead"
    done = run("run", "wf.yaml", env=server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(_run_ids(journal)) == 2
    _wait_for_the_database_file_alone(journal, runs=2)
    assert _holds(wait_for_spare(server)[3], journal)
    assert run("plan", "wf.yaml", env=server, cwd=tmp_path).returncode == 0
    assert not _holds(wait_for_spare(server)[3], journal, seconds=1)


def test_a_journal_removed_after_it_was_opened_ahead_is_made_again(
    server: dict[str, str], tmp_path: Path
) -> None:
    """`rm -rf .wfx` between two runs: the spare holds the old journal, which nobody can
    reach any more; the next run makes a new one and records there."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    journal = (tmp_path / ".wfx" / "state.db").resolve()
    assert run("run", "wf.yaml", env=server, cwd=tmp_path).returncode == 0
    assert _holds(wait_for_spare(server)[3], journal)
    shutil.rmtree(tmp_path / ".wfx")
    done = run("run", "wf.yaml", env=server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(_run_ids(journal)) == 1


def test_an_idle_server_exits_by_itself(tmp_path: Path) -> None:
    env = _env(f"test-{uuid.uuid4().hex[:12]}", WFX_SERVER_IDLE="1")
    start(env)
    deadline = time.monotonic() + 30
    while served(env) is not None:
        assert time.monotonic() < deadline, "the server did not exit when idle"
        time.sleep(0.2)


def test_wfx_run_starts_a_server_and_plan_does_not(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    env = {**_env(f"test-{uuid.uuid4().hex[:12]}"), "WFX_SERVER": ""}
    try:
        assert run("plan", "wf.yaml", env=env, cwd=tmp_path).returncode == 0
        time.sleep(0.8)
        assert served(env) is None, "wfx plan started a server"
        assert run("run", "wf.yaml", env=env, cwd=tmp_path).returncode == 0
        deadline = time.monotonic() + 30
        while served(env) is None:
            assert time.monotonic() < deadline, "wfx run started no server"
            time.sleep(0.1)
        assert run("run", "wf.yaml", env=env, cwd=tmp_path).returncode == 0
        assert served(env) == 1
    finally:
        run("server", "stop", env=env)


def test_plan_never_starts_a_server_even_when_asked_to(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    env = _env(f"test-{uuid.uuid4().hex[:12]}")  # WFX_SERVER=1
    assert run("plan", "wf.yaml", env=env, cwd=tmp_path).returncode == 0
    time.sleep(0.8)
    assert served(env) is None


def test_under_ci_no_server_is_started(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    env = {**_env(f"test-{uuid.uuid4().hex[:12]}"), "WFX_SERVER": "", "CI": "true"}
    assert run("run", "wf.yaml", env=env, cwd=tmp_path).returncode == 0
    time.sleep(0.8)
    assert served(env) is None


def test_wfx_server_0_never_uses_a_running_server(server: dict[str, str]) -> None:
    before = served(server)
    assert run("--version", env={**server, "WFX_SERVER": "0"}).returncode == 0
    assert run("--version", env={**server, "WFX_SERVER": "off"}).returncode == 0
    assert served(server) == before


# -- who a server stands in for ---------------------------------------------------------


def test_a_different_setup_gets_a_server_of_its_own(server: dict[str, str]) -> None:
    """A variable Python reads as it starts (here PYTHONHASHSEED) is in the key: that
    command does not go to this server."""
    before = served(server)
    other = {**server, "PYTHONHASHSEED": "123", "WFX_SERVER": "0"}
    assert run("--version", env=other).returncode == 0
    assert served(server) == before


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare is not installed")
def test_a_command_in_another_namespace_never_reaches_the_server(server: dict[str, str]) -> None:
    """A `wfx` in a namespace of its own (here a new UTS namespace, as a container has)
    is not this server's to stand in for: it runs the command itself."""
    before = served(server)
    probe = subprocess.run(
        ["unshare", "--uts", "true"], capture_output=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip("this machine cannot make namespaces")
    done = run("--version", env=server, shell_prefix="true;")
    assert done.returncode == 0 and served(server) == (before or 0) + 1  # the control
    inside = subprocess.run(
        ["unshare", "--uts", WFX, "--version"],
        capture_output=True,
        text=True,
        env=server,
        check=False,
        timeout=60,
    )
    assert inside.returncode == 0, inside.stderr
    assert "version" in inside.stdout
    assert served(server) == (before or 0) + 1


def _server_with_code_of_its_own(tmp_path: Path, **extra: str) -> tuple[dict[str, str], Path]:
    """A running server that imported a module of this test's own (a `sitecustomize` on
    PYTHONPATH, which every Python imports as it starts): changing that file is changing
    code the server imported, without touching wfx's files under other tests' servers."""
    code = tmp_path / "code"
    code.mkdir()
    module = code / "sitecustomize.py"
    module.write_text("# imported by every Python of this test\n")
    env = _env(f"test-{uuid.uuid4().hex[:12]}", PYTHONPATH=str(code), **extra)
    start(env)
    return env, module


def _change(module: Path) -> None:
    info = module.stat()
    os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _gone(env: Mapping[str, str], pid: int, why: str) -> None:
    """Wait until the server `pid` no longer answers for `env` (with WFX_SERVER=1 the
    command that found it stale starts a fresh one, which may answer instead)."""
    deadline = time.monotonic() + 20
    while (found := status(env)) is not None and found[0] == pid:
        assert time.monotonic() < deadline, why
        time.sleep(0.1)


def test_changed_code_is_never_run_by_a_server_that_imported_it_before(tmp_path: Path) -> None:
    """A file the server imported changed since: the server refuses, stops, and the
    command runs in its own process (the new code)."""
    env, module = _server_with_code_of_its_own(tmp_path)
    _serves_then_stops_after(env, lambda: _change(module))


def _serves_then_stops_after(env: Mapping[str, str], change: Callable[[], object]) -> None:
    """The server of `env` serves a command; after `change`, the next command finds it
    stale, and it stops (it is stopped in any case)."""
    try:
        before = status(env)
        assert before is not None
        assert run("--version", env=env).returncode == 0
        assert served(env) == before[1] + 1
        change()
        assert run("--version", env=env).returncode == 0
        _gone(env, before[0], "a stale server kept running")
    finally:
        run("server", "stop", env=env)


def test_the_command_after_a_change_runs_in_wfx_itself_not_in_a_copy_of_the_server(
    tmp_path: Path,
) -> None:
    """After a file the server imported changed, the command runs in the `wfx` process
    with the new code: the step's parent is that process, not a copy of the server."""
    env, module = _server_with_code_of_its_own(tmp_path)
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - id: parent\n    run: tr '\\0' ' ' < /proc/$PPID/cmdline\n"
    )
    try:
        found = wait_for_spare(env)
        fresh = run("run", "wf.yaml", env=env, cwd=tmp_path)
        assert fresh.returncode == 0, fresh.stderr
        assert "wfx.server" in fresh.stdout  # a copy of the server ran it
        found = wait_for_spare(env)
        _change(module)
        stale = run("run", "wf.yaml", env={**env, "WFX_SERVER": "on"}, cwd=tmp_path)
        assert stale.returncode == 0, stale.stderr
        assert "wfx.server" not in stale.stdout
        assert f"{WFX} run wf.yaml" in stale.stdout  # the `wfx` command itself
        _gone(env, found[0], "a stale server kept running")
    finally:
        run("server", "stop", env=env)


def test_a_status_query_between_a_change_and_a_command_does_not_hide_the_change(
    tmp_path: Path,
) -> None:
    """inotify tells of a change once, to whatever connects next. Here that is `wfx server
    status`, which says the server stops; the command after it still runs in the `wfx`
    process with the new code, never in a copy of the stale server (it did, before)."""
    env, module = _server_with_code_of_its_own(tmp_path)
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - id: parent\n    run: tr '\\0' ' ' < /proc/$PPID/cmdline\n"
    )
    try:
        found = wait_for_spare(env)
        assert "wfx.server" in run("run", "wf.yaml", env=env, cwd=tmp_path).stdout
        found = wait_for_spare(env)
        _change(module)
        shown = run("server", "status", env=env)
        assert "its code changed since it started" in shown.stdout, shown.stdout
        after = run("run", "wf.yaml", env={**env, "WFX_SERVER": "on"}, cwd=tmp_path)
        assert after.returncode == 0, after.stderr
        assert "wfx.server" not in after.stdout
        assert f"{WFX} run wf.yaml" in after.stdout
        _gone(env, found[0], "a stale server kept running")
    finally:
        run("server", "stop", env=env)


def test_server_start_replaces_a_server_whose_code_changed(tmp_path: Path) -> None:
    """`wfx server start` finds a server that knows its code changed: it waits for it to
    go and starts a new one, rather than taking the old one for running."""
    env, module = _server_with_code_of_its_own(tmp_path)
    try:
        old = wait_for_spare(env)
        _change(module)
        assert "its code changed" in run("server", "status", env=env).stdout
        started = run("server", "start", env=env)
        assert started.returncode == 0, started.stderr
        assert f"wfx server {old[0]} " not in started.stdout, started.stdout
        assert "its code watched by inotify" in started.stdout, started.stdout
    finally:
        run("server", "stop", env=env)


def test_a_server_watches_its_code_with_inotify_and_serves_through_unrelated_changes(
    tmp_path: Path,
) -> None:
    """On a local file system the server's code is watched (docs/server.md, "Changed
    code"): a file written beside the code it imported is no change, and it serves on.
    Written once it has prepared: while it imports, any entry added to a folder on
    `sys.path` stops it (a package may be half installed)."""
    env, module = _server_with_code_of_its_own(tmp_path)
    try:
        wait_for_spare(env)
        shown = run("server", "status", env=env).stdout
        assert "its code watched by inotify" in shown, shown
        before = served(env)
        assert before is not None
        (module.parent / ".sitecustomize.py.swp").write_text("an editor's swap file")
        (module.parent / "__pycache__").mkdir(exist_ok=True)
        assert run("--version", env=env).returncode == 0
        assert served(env) == before + 1
    finally:
        run("server", "stop", env=env)


@pytest.mark.parametrize("how", ["saved by rename", "a symbolic link swapped above it"])
def test_code_changed_by_rename_is_never_run_by_the_server(tmp_path: Path, how: str) -> None:
    """An editor's save (a new file renamed over the old one), or a release swapped by
    renaming a symbolic link above the code: the old files are untouched, the path names
    new ones, and the server stops."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "sitecustomize.py").write_text(f"# {version}\n")
    (tmp_path / "current").symlink_to("v1")
    env = _env(f"test-{uuid.uuid4().hex[:12]}", PYTHONPATH=str(tmp_path / "current"))
    start(env)

    def change() -> None:
        if how == "saved by rename":
            (tmp_path / "v1" / "new.py").write_text("# v1, edited\n")
            os.replace(tmp_path / "v1" / "new.py", tmp_path / "v1" / "sitecustomize.py")
        else:
            (tmp_path / "next").symlink_to("v2")
            os.replace(tmp_path / "next", tmp_path / "current")

    _serves_then_stops_after(env, change)


def test_an_idle_server_whose_code_changed_exits_before_its_idle_limit(tmp_path: Path) -> None:
    env, module = _server_with_code_of_its_own(tmp_path, WFX_SERVER_CHECK="0.3")
    try:
        found = status(env)
        assert found is not None
        _change(module)
        _gone(env, found[0], "the server kept running on changed code")
    finally:
        run("server", "stop", env=env)


def socket_name(env: Mapping[str, str]) -> str:
    """The abstract socket name `wfx` looks for with `env` (from `wfx server status`)."""
    status = run("server", "status", env=env).stdout
    found = re.search(r"@(wfx-server-[0-9]+-[0-9a-f]+)", status)
    assert found, status
    return found.group(1)


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(ANY_USERS_PYTHON, os.X_OK),
    reason="needs root (to act as another user) and a system Python",
)
def test_a_server_under_the_name_held_by_another_user_is_told_nothing(tmp_path: Path) -> None:
    """Another user binds the name first: `wfx` checks who answers before it sends a
    byte (its arguments, environment, streams), and runs the command itself."""
    env = _env(f"test-{uuid.uuid4().hex[:12]}")
    squatter = subprocess.Popen(
        [ANY_USERS_PYTHON, "-c", _SQUATTER, socket_name(env)],
        stdout=subprocess.PIPE,
        text=True,
        user=65534,
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().strip() == "listening"
        done = run("--version", env={**env, "SECRET_TOKEN": "hunter2"})
        assert done.returncode == 0
        assert "version" in done.stdout
        time.sleep(0.5)
    finally:
        squatter.kill()
        heard, _ = squatter.communicate()
    assert heard.split() == ["received", "0"]  # it connected, then said nothing


_SQUATTER = """
import socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind("\\0" + sys.argv[1])
listener.listen(8)
print("listening", flush=True)
while True:
    conn, _ = listener.accept()
    conn.settimeout(1)
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    print("received", len(data), flush=True)
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(ANY_USERS_PYTHON, os.X_OK),
    reason="needs root (to act as another user) and a system Python",
)
def test_a_server_runs_nothing_for_another_user(server: dict[str, str]) -> None:
    """A process of another user that reaches the server's name is closed on, unheard."""
    before = served(server)
    probe = subprocess.run(
        [ANY_USERS_PYTHON, "-c", _PROBE, socket_name(server)],
        capture_output=True,
        text=True,
        user=65534,
        check=False,
        timeout=30,
    )
    assert probe.stdout.strip() == "closed", probe.stdout + probe.stderr
    assert served(server) == before


_PROBE = """
import marshal, socket, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect("\\0" + sys.argv[1])
header = marshal.dumps(("status", 0, []))
try:
    conn.sendall(len(header).to_bytes(4, "big") + header)
    data = conn.recv(100)
except OSError:
    data = b""
print("closed" if not data else "answered")
"""


# -- what the server holds --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_plan_through_the_server_keeps_plans_promises(server: dict[str, str]) -> None:
    """`wfx plan` handed to the server: the server and the copy that plans (its spare, or a
    fork) start no process, open no file for writing and no socket (docs/plan.md), seen
    by strace attached to both."""
    found = wait_for_spare(server)
    log = Path(tempfile.mkdtemp()) / "trace.log"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(log), "-e", "trace=execve,openat,connect,socket",
         "-p", str(found[0]), "-p", str(found[3])],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # attached
        if tracer.poll() is not None:
            pytest.skip("strace cannot attach here")
        done = run(
            "plan", "examples/production-deployment.yaml", "--format", "json", env=server, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        time.sleep(0.3)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.communicate(timeout=30)
    calls = log.read_text().splitlines()
    assert any("production-deployment.yaml" in c for c in calls), "the trace saw no plan"
    assert [c for c in calls if "execve(" in c] == []
    writes = [
        c
        for c in calls
        if "openat(" in c and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", c)
    ]
    assert writes == []
    assert [c for c in calls if re.search(r"\b(connect|socket)\(", c)] == []


_NEW_IMPORTS = """
import os, sys
sys.path.insert(0, sys.argv[1])
from wfx import server
server.preload()
import wfx.cli
before = set(sys.modules)
pid = os.fork()
if pid == 0:
    sys.argv = ["wfx", *sys.argv[2:]]
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        wfx.cli.main()
    except SystemExit:
        pass
    os.write(2, ("NEW " + " ".join(sorted(set(sys.modules) - before)) + "\\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "examples/production-deployment.yaml", "-i", "environment=prd"),
        ("plan", "examples/matrix-build.yaml", "--format", "json"),
        ("validate", "examples/production-deployment.yaml"),
        ("run", "--no-journal", "-i", "environment=prd", "examples/production-deployment.yaml"),
    ],
)
def test_the_server_has_imported_what_a_command_needs(args: tuple[str, ...]) -> None:
    """A fork of a prepared server imports nothing more for these commands: their whole
    start-up was done once, in the server."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", _NEW_IMPORTS, str(Path(sys.executable).parent), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
        env={**os.environ, "WFX_SERVER": "0"},
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("NEW"))
    assert line.split()[1:] == []


def test_wfx_ends_well_when_its_command_ended_before_it_heard_that_it_started() -> None:
    """A quick command can end, and be reaped by the server, before `wfx` reads "started":
    `wfx` then has no process to pass signals to, and says nothing of it (it printed
    "No such process" and exited 1, about one run of the test file in ten)."""
    from wfx import launch

    gone = subprocess.Popen(["true"])
    gone.wait()
    forwarder = launch._Forwarder()
    try:
        forwarder.attach(gone.pid)  # reaped: no such process
        assert forwarder.pidfd == -1
    finally:
        forwarder.give_back()


_LAUNCHER_IMPORTS = """
import sys
sys.path[0] = sys.argv[1]
before = set(sys.modules)
sys.argv = ["wfx", "run", "x.yaml"]
from wfx import launch
material = launch.key_material()
launch._request(material)
launch.address(material)
fds, _numbers = launch._descriptors()
launch.native_ints(fds)
launch.frame(("run", 0, []))
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_the_wfx_command_imports_almost_nothing_before_it_hands_over() -> None:
    """What `wfx` does before the server takes its command imports no module of Python's
    own but `resource` (`typing` cost 15 ms, `array` 2.5 ms through `collections`)."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER_IMPORTS, str(Path(WFX).parent)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert set(done.stdout.split()) <= {"wfx", "wfx.launch", "resource"}


def test_the_socket_name_is_the_same_for_the_same_setup_and_differs_for_another() -> None:
    """Client and server compute the name apart, in two processes: it depends on the key
    material alone (no per-process hash seed), and a setup that differs by one byte of
    it gets another name."""
    from wfx import launch

    material = launch.key_material()
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from wfx import launch;"
            " print(repr(launch.address(sys.stdin.buffer.read())))",
        ],
        input=material,
        capture_output=True,
        check=True,
        timeout=60,
    )
    name = launch.address(material)
    assert other.stdout.decode().strip() == repr(name)
    assert re.fullmatch(r"\0wfx-server-[0-9]+-[0-9a-f]{8}", name)
    changed = {
        launch.address(material[:i] + bytes([material[i] ^ 1]) + material[i + 1 :])
        for i in range(0, len(material), max(1, len(material) // 50))
    }
    assert name not in changed


def test_a_failpoint_set_for_a_command_arms_it_in_the_servers_copy(
    server: dict[str, str], tmp_path: Path
) -> None:
    """WFX_FAILPOINT is read as wfx's modules are imported, which the server did under
    its own environment: the copy reads it again from the command's."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    through, alone = both(
        "run", "--no-journal", "wf.yaml", env={**server, "WFX_FAILPOINT": "step-fail:a"},
        cwd=tmp_path,
    )  # fmt: skip
    assert through.returncode == alone.returncode == 1


def _module_level_environment_reads() -> list[str]:
    """Every statement outside a function of a wfx module that reads the environment."""
    found = []
    for path in sorted((ROOT / "src" / "wfx").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for inner in ast.walk(node):
                if (isinstance(inner, ast.Attribute) and inner.attr in ("environ", "environb")) or (
                    isinstance(inner, ast.Attribute) and inner.attr == "getenv"
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_module_reads_the_environment_as_it_is_imported_unknown_to_the_server() -> None:
    """A module that reads the environment when imported would keep the server's values in
    every copy; the one that does (failpoints) is read again (wfx.server.read_again)."""
    readers = [place.split(":")[0] for place in _module_level_environment_reads()]
    assert readers == ["src/wfx/runtime/failpoints.py"]


def test_the_rehearsed_parses_run_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server parses `run`, `plan` and `validate` ahead to have click's code
    specialized for its copies: not one command's callback runs, nothing is printed and
    the process goes on (no `--version` or `--help` exit)."""
    from wfx import server as warm_server
    from wfx.cli import cli

    called: list[str] = []
    for name in ("run", "plan", "validate"):
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None
        monkeypatch.setattr(command, "callback", lambda *_a, name=name, **_k: called.append(name))
    warm_server._rehearse_parsing()
    assert called == []
    assert capsys.readouterr() == ("", "")
