"""The executor contract, run against every executor: LocalExecutor and DaskExecutor.

For Dask, a module-scoped LocalCluster of 2 worker processes (real processes, real TCP);
what is left running is looked for ON the workers (`client.run`), by the attempt's
`WFX_IDEMPOTENCY_KEY` in /proc/*/environ.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from wfx.runtime.actions import Attempt
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, Executor, ExecutorError, open_executor

KEY_VARIABLE = "WFX_IDEMPOTENCY_KEY"


def processes_with_key(key: str) -> int:
    """How many live processes of this host carry `key` as their idempotency key (runs on
    a Dask worker through `client.run`, or here for the local executor)."""
    marker = f"{KEY_VARIABLE}={key}".encode()
    found = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state not in (b"Z", b"X"):
            found += 1
    return found


@dataclass
class Backend:
    """One executor under test and how to look at the machines it runs on."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    client: Any = None
    """For Dask: a synchronous client of the test's cluster."""

    @property
    def remote(self) -> bool:
        return self.client is not None

    def leftovers(self, key: str) -> int:
        """Processes of attempt `key` still alive, wherever they ran."""
        if self.client is None:
            return processes_with_key(key)
        return sum(self.client.run(processes_with_key, key).values())

    def run(self, body: Callable[[Executor], Awaitable[Any]]) -> Any:
        """Start the executor, run `body` with it, close it."""

        async def main() -> Any:
            executor = open_executor(self.name, **self.options)
            await executor.start()
            try:
                return await body(executor)
            finally:
                await executor.close()

        return anyio.run(main)


def _local() -> Iterator[Backend]:
    if importlib.util.find_spec("wfx.runtime.local") is None:
        pytest.skip("LocalExecutor not in this branch")
    yield Backend("local")


def _dask() -> Iterator[Backend]:
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        dashboard_address=":0",
        resources={"slot": 4},
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield Backend(f"dask://{cluster.scheduler_address.removeprefix('tcp://')}", client=client)
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", params=["local", "dask"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from (_local() if request.param == "local" else _dask())


def new_key() -> str:
    return f"{uuid.uuid4().hex[:12]}:step:1"


def request_for(argv: tuple[str, ...], key: str | None = None, **fields: Any) -> AttemptRequest:
    key = key or new_key()
    env = {KEY_VARIABLE: key, **fields.pop("env", {})}
    defaults: dict[str, Any] = {"cwd": None, "timeout": 30.0, "kill_grace": 1.0}
    return AttemptRequest(key=key, argv=argv, env=env, **{**defaults, **fields})


def bash(script: str, **fields: Any) -> AttemptRequest:
    return request_for(("bash", "-c", script), **fields)


def run_one(backend: Backend, request: AttemptRequest) -> tuple[Attempt, list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []

    async def body(executor: Executor) -> Attempt:
        return await executor.run_attempt(request, lambda s, t: lines.append((s, t)))

    return backend.run(body), lines


# -- what a step sees and reports ----------------------------------------------------------


def test_outputs_come_back(backend: Backend) -> None:
    attempt, lines = run_one(
        backend, bash('echo hello; echo "answer=42" >> "$WFX_OUTPUT"; echo oops >&2')
    )
    assert attempt.status is StepStatus.SUCCESS, attempt.reason
    assert attempt.outputs == {"answer": "42"}
    assert lines == [("stdout", "hello"), ("stderr", "oops")]


def test_the_env_reaches_the_process(backend: Backend) -> None:
    attempt, _ = run_one(
        backend, bash('echo "seen=$GREETING/$WFX_IDEMPOTENCY_KEY" >> "$WFX_OUTPUT"', key="r:s:3",
                      env={"GREETING": "hi there"})
    )  # fmt: skip
    assert attempt.outputs == {"seen": "hi there/r:s:3"}


def test_the_working_directory(backend: Backend, tmp_path: Path) -> None:
    attempt, _ = run_one(backend, bash('echo "cwd=$PWD" >> "$WFX_OUTPUT"', cwd=str(tmp_path)))
    assert attempt.outputs == {"cwd": str(tmp_path)}


def test_exit_codes_and_signals(backend: Backend) -> None:
    failed, _ = run_one(backend, bash("exit 3"))
    assert (failed.status, failed.exit_code, failed.reason) == (StepStatus.FAILED, 3, "exit code 3")
    killed, _ = run_one(backend, bash("kill -9 $$"))
    assert (killed.status, killed.signal) == (StepStatus.FAILED, 9)


def test_a_missing_program_is_a_clear_failure(backend: Backend) -> None:
    attempt, _ = run_one(backend, request_for(("no-such-program-wfx",)))
    assert attempt.status is StepStatus.FAILED
    assert attempt.reason == "command not found: no-such-program-wfx"


def test_a_script_file_replaces_the_placeholder(backend: Backend) -> None:
    script = 'echo "from $0"\necho "ran=yes" >> "$WFX_OUTPUT"\n'
    attempt, lines = run_one(
        backend, request_for(("bash", "{0}"), script=script, script_suffix=".sh")
    )
    assert attempt.status is StepStatus.SUCCESS, attempt.reason
    assert attempt.outputs == {"ran": "yes"}
    assert lines[0][1].startswith("from /") and lines[0][1].endswith(".sh")


def test_output_arrives_while_the_step_runs_and_in_order(backend: Backend, tmp_path: Path) -> None:
    # The step only goes on once the client has seen its first line: were output handed
    # over only at the end, it would give up and exit 9.
    seen = tmp_path / "seen"
    script = (
        f"echo ready; for i in $(seq 100); do [ -e {seen} ] && break; sleep 0.05; done;"
        f" [ -e {seen} ] || exit 9; seq 1 300"
    )
    lines: list[str] = []

    def on_output(stream: str, text: str) -> None:
        lines.append(text)
        if text == "ready":
            seen.touch()

    async def body(executor: Executor) -> Attempt:
        return await executor.run_attempt(bash(script), on_output)

    attempt = backend.run(body)
    assert attempt.status is StepStatus.SUCCESS, attempt.reason
    assert lines == ["ready", *(str(i) for i in range(1, 301))]


def test_too_much_output_is_a_failure(backend: Backend) -> None:
    attempt, _ = run_one(
        backend, bash('printf "big=%0200d\\n" 0 >> "$WFX_OUTPUT"', output_limit=100)
    )
    assert attempt.status is StepStatus.FAILED
    assert "$WFX_OUTPUT" in (attempt.reason or "")


# -- stopping leaves nothing behind ----------------------------------------------------------

#: a tree that ignores TERM, with a descendant that left the process group
STUBBORN = "trap '' TERM; setsid sleep 300 & sleep 300 & echo started; wait"


def test_a_timeout_leaves_no_process(backend: Backend) -> None:
    request = bash(STUBBORN, timeout=1.0, kill_grace=0.3)
    attempt, _ = run_one(backend, request)
    assert attempt.status is StepStatus.TIMEOUT
    assert backend.leftovers(request.key) == 0


async def _when_started(
    executor: Executor,
    request: AttemptRequest,
    then: Callable[[], Awaitable[None]],
    lines: list[tuple[str, str]] | None = None,
) -> Attempt | None:
    """Run `request`; once it printed `started`, run `then` next to it."""
    started = anyio.Event()
    result: list[Attempt] = []
    seen = [] if lines is None else lines

    def on_output(stream: str, text: str) -> None:
        seen.append((stream, text))
        if text == "started":
            started.set()

    async def attempt() -> None:
        result.append(await executor.run_attempt(request, on_output))

    async with anyio.create_task_group() as group:
        group.start_soon(attempt)
        await started.wait()
        await then()
    return result[0] if result else None


def test_cancelling_the_calling_task_leaves_no_process(backend: Backend) -> None:
    request = bash(STUBBORN, kill_grace=0.3)

    async def body(executor: Executor) -> Attempt | None:
        scope = anyio.CancelScope()

        async def cancel() -> None:
            scope.cancel()

        with scope:
            return await _when_started(executor, request, cancel)
        return None

    assert backend.run(body) is None
    assert backend.leftovers(request.key) == 0


def test_cancel_by_key_leaves_no_process(backend: Backend) -> None:
    request = bash(STUBBORN, kill_grace=0.3)

    async def body(executor: Executor) -> Attempt | None:
        async def cancel() -> None:
            await executor.cancel(request.key, 0.3)

        return await _when_started(executor, request, cancel)

    attempt = backend.run(body)
    assert attempt is not None and attempt.status is not StepStatus.SUCCESS
    assert backend.leftovers(request.key) == 0


def test_where_names_the_place(backend: Backend) -> None:
    request = bash("true")

    async def body(executor: Executor) -> tuple[Attempt, str | None]:
        attempt = await executor.run_attempt(request, lambda s, t: None)
        return attempt, executor.where(request.key)

    attempt, where = backend.run(body)
    assert where == "local" if not backend.remote else (where or "").startswith("tcp://")
    if hasattr(attempt, "where"):  # Attempts that record where they ran (the journal's)
        assert attempt.where == where


# -- Dask only: lost workers, resources, TLS, a scheduler that is not there ----------------


def dask_only(backend: Backend) -> None:
    if not backend.remote:
        pytest.skip("a remote executor's matter")


def test_a_killed_worker_reruns_the_attempt_elsewhere(backend: Backend, tmp_path: Path) -> None:
    dask_only(backend)
    log = tmp_path / "copies"
    script = (
        f'echo "start $$ $WFX_IDEMPOTENCY_KEY" >> {log}; echo started; sleep 1.5;'
        f' echo "end $$" >> {log}; echo "copy=$$" >> "$WFX_OUTPUT"'
    )
    request = bash(script, kill_grace=0.3)

    lost: list[str] = []
    lines: list[tuple[str, str]] = []
    now: list[str | None] = []

    async def body(executor: Executor) -> Attempt | None:
        async def kill_its_worker() -> None:
            where = executor.where(request.key)
            assert where is not None
            lost.append(where)
            pids = backend.client.run(os.getpid, workers=[where])
            os.kill(pids[where], signal.SIGKILL)

        attempt = await _when_started(executor, request, kill_its_worker, lines)
        now.append(executor.where(request.key))
        return attempt

    attempt = backend.run(body)
    assert attempt is not None and attempt.status is StepStatus.SUCCESS, attempt
    [where] = now
    assert where is not None and where != lost[0]
    notice = f"wfx: lost the Dask worker {lost[0]}; the attempt runs again on {where}"
    assert lines == [("stdout", "started"), ("stderr", notice), ("stdout", "started")]
    events = log.read_text().split("\n")[:-1]
    assert len(events) == 3, events  # start (killed), start, end: the first copy never ends
    (_, first, key1), (_, second, key2), (_, ended) = (e.split() for e in events)
    assert (key1, key2) == (request.key, request.key)
    assert first != second and ended == second == attempt.outputs["copy"]
    assert backend.leftovers(request.key) == 0


def test_resources_no_worker_has_are_a_clear_failure(backend: Backend) -> None:
    dask_only(backend)
    attempt, _ = run_one(backend, bash("true", resources={"gpu": 1}))
    assert attempt.status is StepStatus.FAILED
    assert (
        attempt.reason == "no Dask worker has the resources {gpu: 1} (start one with --resources)"
    )
    fits, _ = run_one(backend, bash("true", resources={"slot": 1}))
    assert fits.status is StepStatus.SUCCESS


def test_an_unreachable_scheduler_is_an_executor_error(backend: Backend) -> None:
    dask_only(backend)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = Backend(f"dask://127.0.0.1:{port}", {"connect_timeout": 0.5})
    with pytest.raises(
        ExecutorError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ):
        unreachable.run(lambda executor: anyio.sleep(0))


def test_a_bad_dask_address_is_an_executor_error(backend: Backend) -> None:
    dask_only(backend)
    with pytest.raises(ExecutorError, match="protocol must be tcp or tls"):
        open_executor("dask://ucx://host:1")


def test_tls(backend: Backend) -> None:
    dask_only(backend)
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    with LocalCluster(
        n_workers=1, processes=True, security=security, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        secure = Backend(f"dask://{address}", {"security": security})
        attempt, lines = run_one(secure, bash('echo over tls; echo "ok=1" >> "$WFX_OUTPUT"'))
        assert attempt.status is StepStatus.SUCCESS and lines == [("stdout", "over tls")]
        plain = Backend(f"dask://{address}", {"connect_timeout": 1.0})
        with pytest.raises(ExecutorError, match="TLS configuration"):
            plain.run(lambda executor: anyio.sleep(0))


#: far longer than any test may take: an attempt that waits for it never ends in time
LONG_GRACE = 120.0


def test_cancel_with_a_short_grace_kills_a_tree_that_ignores_term(backend: Backend) -> None:
    request = bash(STUBBORN, kill_grace=LONG_GRACE)

    async def body(executor: Executor) -> Attempt | None:
        async def cancel() -> None:
            await executor.cancel(request.key, 0.2)

        with anyio.fail_after(LONG_GRACE / 4):  # a hang guard, not a time limit
            return await _when_started(executor, request, cancel)

    attempt = backend.run(body)
    assert attempt is not None and attempt.status is not StepStatus.SUCCESS
    assert backend.leftovers(request.key) == 0


def test_kill_all_kills_at_once(backend: Backend) -> None:
    request = bash(STUBBORN, kill_grace=LONG_GRACE)

    async def body(executor: Executor) -> Attempt | None:
        async def kill_all() -> None:
            executor.kill_all()

        with anyio.fail_after(LONG_GRACE / 4):  # a hang guard, not a time limit
            return await _when_started(executor, request, kill_all)

    attempt = backend.run(body)
    assert attempt is not None and attempt.status is not StepStatus.SUCCESS
    assert backend.leftovers(request.key) == 0


def test_no_step_output_stays_on_the_scheduler(backend: Backend) -> None:
    dask_only(backend)
    _, lines = run_one(backend, bash("echo s3cr3t-looking output"))
    assert lines == [("stdout", "s3cr3t-looking output")]
    left = [topic for topic in backend.client.get_events() if topic.startswith("wfx-output-")]
    assert left == []


def test_another_wfx_on_the_workers_is_an_executor_error(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    dask_only(backend)
    from wfx.runtime import dask

    monkeypatch.setattr(dask, "_wfx_version", lambda: "0.0.0-other")
    with pytest.raises(ExecutorError, match=r"Dask worker .* has wfx .*; this client runs wfx"):
        backend.run(lambda executor: anyio.sleep(0))


def test_a_steps_resources_reach_its_executor(backend: Backend, tmp_path: Path) -> None:
    """`resources:` on a step (or inherited from a group) travels with each attempt: Dask
    runs it only where a worker has them and fails at once where none has; the local
    executor does not count them."""
    from wfx.api import compile_file
    from wfx.runtime.engine import RunOptions
    from wfx.runtime.engine import run as run_graph

    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "wfx: 1\n"
        "steps:\n"
        "  - id: group\n"
        "    type: parallel\n"
        "    resources: {slot: 1}\n"
        "    steps:\n"
        "      - {id: fits, run: 'true'}\n"
        "      - {id: gpu, run: 'true', resources: {gpu: 1}, onError: continue}\n"
    )
    graph = compile_file(flow).graph

    async def body(executor: Executor) -> Any:
        options = RunOptions(executor=executor, workspace=tmp_path / "ws")
        return await run_graph(graph, options=options)

    result = backend.run(body)
    assert result.steps["fits"].status is StepStatus.SUCCESS
    if backend.remote:
        assert result.steps["gpu"].status is StepStatus.FAILED
        assert "no Dask worker has the resources {gpu: 1}" in (result.steps["gpu"].reason or "")
    else:
        assert result.steps["gpu"].status is StepStatus.SUCCESS
