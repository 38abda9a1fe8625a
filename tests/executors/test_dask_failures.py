"""DaskExecutor when things go wrong: the per-host sweep of a dead worker's processes, bad
names, and a scheduler that goes away in the middle of a step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

import anyio
import pytest

from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, ExecutorError, open_executor
from wfx.runtime.process import TOKEN_VARIABLE

#: distributed is imported by the tests that use it, not as pytest collects them: it is
#: the heaviest import of the suite, and every worker would pay it
pytestmark = pytest.mark.skipif(find_spec("distributed") is None, reason="needs wfx[dask]")


def _dask_worker() -> ModuleType:
    from wfx.runtime import dask_worker  # imports distributed

    return dask_worker


DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture
def orphan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A step process as a dead worker leaves it: its own session, the attempt's marker.

    The records live in this test's own temporary directory: the host's shared one is
    swept by every Dask worker other tests start meanwhile, which would take this test's
    record (and its process) first."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    instance = uuid.uuid4().hex
    token = f"wfxdask-{instance}/{uuid.uuid4().hex}"
    process = subprocess.Popen(
        ["sleep", "30"], env={**os.environ, TOKEN_VARIABLE: token}, start_new_session=True
    )
    try:
        _wait_until_exec_is_done(process.pid, token)
        yield instance, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        (_dask_worker().state_directory() / f"{instance}.json").unlink(missing_ok=True)


def _wait_until_exec_is_done(pid: int, token: str) -> None:
    """Wait until the process's environment can be read, as a dead worker's leftovers'
    always can: Popen returns once exec has begun, and for a moment under load after that
    /proc/PID/environ is still empty (the sweep would rightly not see the process yet)."""
    deadline = time.monotonic() + 10
    while token.encode() not in Path(f"/proc/{pid}/environ").read_bytes():
        assert time.monotonic() < deadline, "the orphan's environment never became readable"
        time.sleep(0.005)


def record(instance: str, owner_pid: int, owner_start: int | None, key: str) -> None:
    data = {"owner": {"pid": owner_pid, "start": owner_start}, "key": key, "grace": 0.2}
    (_dask_worker().state_directory() / f"{instance}.json").write_text(json.dumps(data))


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def test_the_sweep_stops_what_a_dead_worker_left(
    orphan: tuple[str, subprocess.Popen[bytes]],
) -> None:
    instance, process = orphan
    record(instance, dead_pid(), 12345, "run:step:1")
    assert "run:step:1" in _dask_worker().sweep_orphans()
    assert process.wait(timeout=10) == -signal.SIGTERM
    assert not (_dask_worker().state_directory() / f"{instance}.json").exists()


def test_the_sweep_spares_a_live_workers_attempts_until_it_closes(
    orphan: tuple[str, subprocess.Popen[bytes]],
) -> None:
    instance, process = orphan
    me = os.getpid()
    record(instance, me, _dask_worker()._start_time(me), "run:step:2")
    assert "run:step:2" not in _dask_worker().sweep_orphans()
    assert process.poll() is None
    assert _dask_worker().sweep_orphans(owner_pid=me) == ["run:step:2"]  # the worker closes
    assert process.wait(timeout=10) == -signal.SIGTERM


def test_a_reused_pid_is_not_the_owner(orphan: tuple[str, subprocess.Popen[bytes]]) -> None:
    instance, process = orphan
    me = os.getpid()
    start = _dask_worker()._start_time(me)
    assert start is not None
    record(instance, me, start - 1, "run:step:3")  # same pid, another process
    assert "run:step:3" in _dask_worker().sweep_orphans()
    assert process.wait(timeout=10) == -signal.SIGTERM


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("dask:", "expected `dask://HOST:PORT`"),
        ("dask://", "expected `dask://HOST:PORT`"),
        ("dask://ucx://host:1", "the protocol must be tcp or tls"),
        ("dask:remote", "expected `dask://HOST:PORT`"),
    ],
)
def test_bad_dask_names(name: str, message: str) -> None:
    with pytest.raises(ExecutorError, match=message):
        open_executor(name)


def test_a_run_attempt_before_start_is_an_executor_error() -> None:
    executor = open_executor("dask://127.0.0.1:1")
    request = AttemptRequest("r:s:1", ("true",), {}, None, None, 1.0)
    with pytest.raises(ExecutorError, match="not started"):
        anyio.run(executor.run_attempt, request, lambda s, t: None)


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _processes_with(marker: bytes) -> int:
    found = 0
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and marker in Path(f"/proc/{name}/environ").read_bytes():
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                found += state not in (b"Z", b"X")
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_scheduler_that_goes_away_fails_the_step_and_stops_it(tmp_path: Path) -> None:
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = _start(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
         "--scheduler-file", str(scheduler_file)]
    )  # fmt: skip
    worker = None
    try:
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert scheduler.poll() is None, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = _start([DASK, "worker", address, "--nthreads", "1", "--no-dashboard"])
        key = f"{uuid.uuid4().hex}:step:1"
        request = AttemptRequest(
            key, ("bash", "-c", "echo started; sleep 30"), {"WFX_IDEMPOTENCY_KEY": key}, None,
            None, 0.5,
        )  # fmt: skip

        async def main() -> object:
            executor = open_executor("dask://" + address.removeprefix("tcp://"))
            await executor.start()
            try:
                return await executor.run_attempt(
                    request, lambda _, text: _kill(scheduler) if text == "started" else None
                )
            finally:
                await executor.close()

        attempt = anyio.run(main)
        assert getattr(attempt, "status", None) is StepStatus.FAILED
        assert getattr(attempt, "reason", None) == (
            f"lost the connection to the Dask scheduler dask://{address.removeprefix('tcp://')}"
        )
        marker = f"WFX_IDEMPOTENCY_KEY={key}".encode()
        deadline = time.monotonic() + 30
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with(marker) == 0  # the worker stopped the step itself
    finally:
        if worker is not None:
            _kill(worker)
        _kill(scheduler)


def test_a_state_directory_others_can_write_is_refused() -> None:
    directory = _dask_worker().state_directory()
    try:
        directory.chmod(0o777)
        with pytest.raises(PermissionError, match="this user's only"):
            _dask_worker().state_directory()
    finally:
        directory.chmod(0o700)


def test_a_worker_lost_too_often_is_a_clear_failure() -> None:
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        key = f"{uuid.uuid4().hex}:step:1"
        request = AttemptRequest(
            key, ("bash", "-c", "echo started; sleep 30"), {"WFX_IDEMPOTENCY_KEY": key}, None,
            None, 0.5,
        )  # fmt: skip

        def kill_the_worker(_: str, text: str) -> None:
            if text == "started":
                for pid in client.run(os.getpid).values():
                    os.kill(pid, signal.SIGKILL)

        async def main() -> object:
            executor = open_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
            await executor.start()
            try:
                return await executor.run_attempt(request, kill_the_worker)
            finally:
                await executor.close()

        attempt = anyio.run(main)
        assert getattr(attempt, "status", None) is StepStatus.FAILED
        reason = str(getattr(attempt, "reason", ""))
        assert reason.startswith("worker lost: the worker running it died (tcp://"), reason
        # its process survived the worker; the worker the nanny starts again sweeps it
        marker = f"WFX_IDEMPOTENCY_KEY={key}".encode()
        deadline = time.monotonic() + 30
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with(marker) == 0
