"""End to end: a Dask scheduler and two workers started as docs/distributed.md says, and
`wfx run examples/distributed-build.yaml --executor dask://127.0.0.1:PORT`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

#: distributed is imported by the tests that use it, not as pytest collects them: it is
#: the heaviest import of the suite, and every worker would pay it
pytestmark = pytest.mark.skipif(find_spec("distributed") is None, reason="needs wfx[dask]")

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).parent / "dask")


def wfx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WFX_STATE_DIR", "WFX_EXECUTOR")}
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**env, "NO_COLOR": "1"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def executor_option() -> None:
    help_text = wfx("run", "--help", cwd=ROOT).stdout
    if "--executor" not in help_text:
        pytest.skip("`wfx run` has no --executor option in this branch")


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_file(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or not path.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"dask scheduler did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and two `dask worker` processes; yields the scheduler's address."""
    where = tmp_path_factory.mktemp("dask")
    scheduler_file = where / "scheduler.json"
    processes = [
        start(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
            where / "scheduler.log",
        )
    ]  # fmt: skip
    try:
        wait_for_file(scheduler_file, processes[0], where / "scheduler.log")
        address = json.loads(scheduler_file.read_text())["address"]
        for n in (1, 2):
            processes.append(
                start(
                    [DASK, "worker", address, "--nthreads", "2", "--name", f"worker-{n}",
                     "--no-dashboard"],
                    where / f"worker-{n}.log",
                )
            )  # fmt: skip
        with _client(address, set_as_default=False, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def test_an_example_runs_on_two_dask_workers(
    executor_option: None, cluster: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "shared"
    workspace.mkdir()
    executor = "dask://" + cluster.removeprefix("tcp://")
    result = wfx(
        "run", str(ROOT / "examples" / "distributed-build.yaml"), "-i", "version=3.1",
        "--executor", executor, "--workspace", str(workspace),
        "--state-dir", str(tmp_path / "state"),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    release = (workspace / "release-3.1.txt").read_text().splitlines()
    assert [line.split()[0] for line in release] == ["api", "web", "worker", "cli"]
    assert "building api on" in result.stdout  # streamed back from the worker
    said = " ".join((result.stdout + result.stderr).split())
    assert f"each sees $WFX_WORKSPACE={workspace} on its own machine" in said
    with _client(cluster, set_as_default=False) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(executed.values()) >= 5  # every step ran as a Dask task


def test_an_unreachable_scheduler_is_a_clear_error(executor_option: None, tmp_path: Path) -> None:
    result = wfx(
        "run", str(ROOT / "examples" / "distributed-build.yaml"), "--no-journal",
        "--executor", "dask://127.0.0.1:9", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


RESUMABLE = """\
wfx: 1
steps:
  - id: first
    run: echo once >> "$WFX_WORKSPACE/first.log"
  - id: second
    run: |
      if [ -f "$WFX_WORKSPACE/go" ]; then echo finished; exit 0; fi
      touch "$WFX_WORKSPACE/second-started"
      sleep 60
"""


def _sleepers(client: object, workspace: Path) -> int:
    """Processes of this test's runs on the workers: they carry its workspace."""
    marker = f"WFX_WORKSPACE={workspace}".encode()

    def count(dask_worker: object = None) -> int:
        found = 0
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    found += marker in handle.read().split(b"\0")
            except OSError:
                continue
        return found

    return sum(client.run(count).values())  # type: ignore[attr-defined]


def test_a_killed_client_is_resumed_on_the_cluster(
    executor_option: None, cluster: str, tmp_path: Path
) -> None:
    """wfx itself is SIGKILLed while a step runs on a worker: `wfx run --resume` with the
    same executor finishes the run, the finished step is not run again, and the dead
    client's copy of the running step does not go on running on its worker."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(RESUMABLE)
    workspace = tmp_path / "shared"
    workspace.mkdir()
    executor = "dask://" + cluster.removeprefix("tcp://")
    common = ["--executor", executor, "--workspace", str(workspace)]
    common += ["--state-dir", str(tmp_path / "state")]
    env = {k: v for k, v in os.environ.items() if k not in ("WFX_STATE_DIR", "WFX_EXECUTOR")}
    client = subprocess.Popen(
        [sys.executable, "-m", "wfx", "run", "-q", str(flow), *common],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (workspace / "second-started").exists():
        assert client.poll() is None and time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    client.kill()
    client.wait()
    (workspace / "go").touch()
    result = wfx("run", str(flow), "--resume", *common, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workspace / "first.log").read_text() == "once\n"
    with _client(cluster, set_as_default=False) as dask_client:
        deadline = time.monotonic() + 20  # the scheduler notices the lost client
        while _sleepers(dask_client, workspace) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _sleepers(dask_client, workspace) == 0


def _client(*args: Any, **kwargs: Any) -> Any:
    from distributed import Client  # see pytestmark

    return Client(*args, **kwargs)
