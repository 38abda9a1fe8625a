"""The local executor on its own (the executor contract, as the engine uses it), and the
engine handing every `run`/`cmd` attempt to the run's executor as plain data."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.actions import Attempt
from wfx.runtime.engine import RunOptions, run
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, Executor, OutputSink, open_executor
from wfx.runtime.local import LocalExecutor
from wfx.runtime.process import ProcessTracker

#: the run the attempts here belong to: one per test process, since the processes of every
#: run on the machine are looked at (the other pytest worker's attempts are not this one's)
RUN = f"run-{os.getpid()}"


def request(argv: list[str], **fields: Any) -> AttemptRequest:
    values: dict[str, Any] = {
        "key": f"{RUN}:step:1",
        "env": {},
        "cwd": None,
        "timeout": None,
        "kill_grace": 1.0,
    }
    values.update(fields)
    return AttemptRequest(argv=tuple(argv), **values)


def attempt_on(
    executor: LocalExecutor, req: AttemptRequest
) -> tuple[Attempt, list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []

    async def main() -> Attempt:
        await executor.start()
        try:
            return await executor.run_attempt(req, lambda s, t: lines.append((s, t)))
        finally:
            await executor.close()

    return anyio.run(main), lines


def test_local_is_opened_by_name_and_is_an_executor() -> None:
    executor = open_executor("local")
    assert isinstance(executor, LocalExecutor)
    assert isinstance(executor, Executor)
    assert executor.name == "local"
    assert executor.capacity is None
    assert executor.where("any:key:1") == "local"


def test_outputs_env_cwd_and_streamed_lines(tmp_path: Path) -> None:
    script = 'echo "out $GREETING"; echo err >&2; pwd; echo "answer=42" >> "$WFX_OUTPUT"'
    req = request(["sh", "-c", script], env={"GREETING": "hello"}, cwd=str(tmp_path))
    result, lines = attempt_on(LocalExecutor(environ={"PATH": os.environ["PATH"]}), req)
    assert result.status is StepStatus.SUCCESS
    assert result.outputs == {"answer": "42"}
    assert result.where == "local"
    assert ("stdout", "out hello") in lines
    assert ("stderr", "err") in lines
    assert ("stdout", str(tmp_path)) in lines


def test_the_base_environment_is_under_the_steps_own(tmp_path: Path) -> None:
    req = request(["sh", "-c", 'echo "$A $B"'], env={"B": "own"})
    base = {"PATH": os.environ["PATH"], "A": "base", "B": "base"}
    _, lines = attempt_on(LocalExecutor(environ=base), req)
    assert lines == [("stdout", "base own")]


def test_wfxs_own_environment_is_read_again_when_it_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a base of its own, each attempt gets wfx's environment as it is when the
    attempt starts: kept encoded between attempts, but never stale."""
    executor = LocalExecutor()
    req = request(["sh", "-c", 'echo "${LATER-unset} ${GONE-unset}"'])
    monkeypatch.setenv("GONE", "here")

    async def main() -> list[str]:
        seen: list[str] = []
        await executor.start()
        try:
            for change in (None, ("LATER", "set"), ("LATER", "changed"), ("GONE", None)):
                if change is not None:
                    name, value = change
                    if value is None:
                        monkeypatch.delenv(name)
                    else:
                        monkeypatch.setenv(name, value)
                await executor.run_attempt(req, lambda _s, text: seen.append(text))
        finally:
            await executor.close()
        return seen

    assert anyio.run(main) == [
        "unset here",
        "set here",
        "changed here",
        "changed unset",
    ]


def test_wfxs_own_environment_is_encoded_once_while_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from wfx.runtime.process import own_environment

    monkeypatch.setenv("WFX_TEST_OWN", "1")
    first = own_environment()
    assert own_environment() is first
    assert first.get("WFX_TEST_OWN") == "1"
    monkeypatch.setenv("WFX_TEST_OWN", "2")
    second = own_environment()
    assert second is not first
    assert second.get("WFX_TEST_OWN") == "2"


def test_a_script_file_replaces_the_placeholder_and_is_removed(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    req = request(["sh", "{0}"], script='echo "$0"\necho second line\n', script_suffix=".sh")
    result, lines = attempt_on(LocalExecutor(scratch=scratch), req)
    assert result.status is StepStatus.SUCCESS
    assert lines[0][1].startswith(str(scratch)) and lines[0][1].endswith(".script.sh")
    assert lines[1] == ("stdout", "second line")
    assert not scratch.exists()  # closed: the scratch directory is gone


def test_exit_codes_and_values_no_process_can_receive() -> None:
    failed, _ = attempt_on(LocalExecutor(), request(["sh", "-c", "exit 3"]))
    assert (failed.status, failed.exit_code, failed.reason) == (
        StepStatus.FAILED,
        3,
        "exit code 3",
    )
    refused, _ = attempt_on(LocalExecutor(), request(["echo", "a\x00b"]))
    assert refused.status is StepStatus.FAILED
    assert refused.reason == "argument 1 contains a NUL character, which no process can receive"
    missing, _ = attempt_on(LocalExecutor(), request(["/no/such/program"]))
    assert missing.status is StepStatus.FAILED and missing.reason


def test_a_timeout_kills_the_whole_tree() -> None:
    req = request(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=0.3, kill_grace=0.2)
    result, _ = attempt_on(LocalExecutor(), req)
    assert result.status is StepStatus.TIMEOUT
    assert result.reason == "timed out after 300ms"
    assert ProcessTracker(RUN).live() == 0
    assert not _marked_processes(f"{RUN}/")


def test_cancel_stops_a_running_attempt() -> None:
    executor = LocalExecutor()
    req = request(["sh", "-c", "sleep 30 & sleep 30; wait"], kill_grace=0.2)
    results: list[Attempt] = []

    async def main() -> None:
        await executor.start()
        try:
            async with anyio.create_task_group() as group:

                async def attempt() -> None:
                    results.append(await executor.run_attempt(req, lambda s, t: None))

                group.start_soon(attempt)
                await anyio.sleep(0.2)
                await executor.cancel(req.key, 0.2)
        finally:
            await executor.close()

    anyio.run(main)
    assert [r.status for r in results] == [StepStatus.CANCELLED]
    assert not _marked_processes(f"{RUN}/")


def test_an_attempt_begun_then_cancelled_before_it_is_awaited_is_stopped() -> None:
    """`begin` starts the process at once; a cancel that comes before anyone waits for it
    (a burst step whose task has not run yet) still stops the whole tree when `finish`
    runs, and reports the attempt cancelled."""
    executor = LocalExecutor()
    req = request(["sh", "-c", "sleep 30 & sleep 30; wait"], kill_grace=0.2)

    async def main() -> Attempt:
        await executor.start()
        try:
            begun = executor.begin(req, lambda s, t: None)
            assert not isinstance(begun, Attempt)
            await anyio.sleep(0.2)  # the tree is running, unsupervised
            assert _marked_processes(f"{RUN}/")
            await executor.cancel(req.key, 0.2)  # its scope is cancelled before it is entered
            return await begun.finish()
        finally:
            await executor.close()

    assert anyio.run(main).status is StepStatus.CANCELLED
    assert not _marked_processes(f"{RUN}/")


def test_an_attempt_begun_counts_its_timeout_from_its_start() -> None:
    """The wait for a begun attempt's task takes from its timeout, not adds to it."""
    executor = LocalExecutor()
    req = request(["sleep", "30"], timeout=0.5, kill_grace=0.2)

    async def main() -> tuple[Attempt, float]:
        await executor.start()
        try:
            began = anyio.current_time()
            begun = executor.begin(req, lambda s, t: None)
            assert not isinstance(begun, Attempt)
            await anyio.sleep(0.4)
            result = await begun.finish()
            return result, anyio.current_time() - began
        finally:
            await executor.close()

    result, took = anyio.run(main)
    assert result.status is StepStatus.TIMEOUT
    assert took < 0.8  # 0.5 and a moment to stop it; counted from `finish`: 0.9
    assert not _marked_processes(f"{RUN}/")


def test_an_attempt_that_cannot_begin_is_a_failed_attempt_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    executor = LocalExecutor(scratch=tmp_path / "scratch")
    req = request(["sh", "{0}"], cwd=str(tmp_path / "missing"), script="echo hi")

    async def main() -> Attempt | object:
        await executor.start()
        try:
            return executor.begin(req, lambda s, t: None)
        finally:
            assert list((tmp_path / "scratch").iterdir()) == []  # the script file is gone
            await executor.close()

    result = anyio.run(main)
    assert isinstance(result, Attempt)
    assert result.status is StepStatus.FAILED
    assert "missing" in (result.reason or "")


def _marked_processes(prefix: str) -> list[int]:
    """Live processes whose environment carries a marker of this run (process.py's token)."""
    from wfx.runtime.process import TOKEN_VARIABLE

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"{TOKEN_VARIABLE}={prefix}".encode() in environ:
            found.append(int(entry.name))
    return found


# -- the engine and its executor ---------------------------------------------------------------


class Recording:
    """The local executor, keeping every request it got and saying it ran elsewhere; it
    also writes a secret to the output, which the engine (the client) must mask."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = LocalExecutor()
        self.requests: list[AttemptRequest] = []

    @property
    def capacity(self) -> int | None:
        return None

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        self.requests.append(request)
        on_output("stdout", "leaked: s3cret-value")
        result = await self.inner.run_attempt(request, on_output)
        return Attempt(
            result.status,
            result.outputs,
            result.exit_code,
            result.signal,
            result.reason,
            where="worker-7",
        )

    async def cancel(self, key: str, grace: float) -> None:
        await self.inner.cancel(key, grace)

    def kill_all(self) -> None:
        self.inner.kill_all()

    def where(self, key: str) -> str | None:
        return "worker-7"


WORKFLOW = """\
wfx: 1
secrets: [TOKEN]
steps:
  - id: shell
    env: {GREETING: "hi ${{ inputs.who }}"}
    run: echo "$GREETING" && echo "n=1" >> "$WFX_OUTPUT"
  - id: argv
    cmd: [echo, "${{ steps.shell.outputs.n }}"]
  - id: py
    uses: python:fake:step
"""


def run_on(
    tmp_path: Path, executor: Executor, environ: dict[str, str]
) -> tuple[Any, list[ev.Event]]:
    path = tmp_path / "wf.yaml"
    path.write_text(
        WORKFLOW.replace("steps:\n", "inputs: {who: {default: ada}}\nsteps:\n", 1),
        encoding="utf-8",
    )
    graph = compile_file(path).graph
    events: list[ev.Event] = []
    options = RunOptions(
        actions={"python:fake:step": lambda: {"done": True}},
        events=events.append,
        environ=environ,
        workspace=tmp_path / "ws",
        executor=executor,
    )

    async def main() -> Any:
        await executor.start()
        try:
            return await run(graph, options=options)
        finally:
            await executor.close()

    return anyio.run(main), events


def test_the_engine_sends_process_attempts_to_the_runs_executor(tmp_path: Path) -> None:
    executor = Recording()
    environ = {"PATH": os.environ["PATH"], "TOKEN": "s3cret-value"}
    result, events = run_on(tmp_path, executor, environ)
    assert result.status is ev.RunStatus.SUCCESS
    shell, argv = executor.requests  # the Python step stayed in-process
    assert shell.key == f"{result.run_id}:shell:1"
    assert shell.env["GREETING"] == "hi ada"  # rendered on the client
    assert shell.env["WFX_IDEMPOTENCY_KEY"] == shell.key
    assert "WFX_OUTPUT" not in shell.env  # the executor's own file
    assert "TOKEN" not in shell.env  # only the step's own variables travel
    assert shell.argv[-1].startswith("echo")
    assert argv.argv == ("echo", "1")
    assert argv.cwd == str(tmp_path)
    lines = [e.text for e in events if isinstance(e, ev.StepOutput)]
    assert "leaked: ***" in lines and not any("s3cret" in line for line in lines)
    finished = {e.step: e.where for e in events if isinstance(e, ev.StepFinished)}
    assert finished == {"shell": "worker-7", "argv": "worker-7", "py": "local"}


def test_a_run_without_an_executor_runs_locally(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n"))
    events: list[ev.Event] = []
    graph = compile_file(path).graph

    async def run_local() -> Any:
        return await run(graph, options=RunOptions(events=events.append, workspace=tmp_path))

    assert anyio.run(run_local).status is ev.RunStatus.SUCCESS
    assert [e.where for e in events if isinstance(e, ev.StepFinished)] == ["local"]


def test_unknown_names_are_refused() -> None:
    from wfx.runtime.executor import ExecutorError

    with pytest.raises(ExecutorError, match="unknown executor `nope`"):
        open_executor("nope")


@pytest.mark.parametrize("left", ["nothing", "files and folders"])
def test_closing_removes_the_scratch_directory_whatever_is_left_in_it(
    tmp_path: Path, left: str
) -> None:
    """Usually nothing is left (a `rmdir` does); a step's leftovers are removed too."""
    scratch = tmp_path / "scratch"
    executor = LocalExecutor(scratch=scratch)

    async def main() -> None:
        await executor.start()
        if left != "nothing":
            (scratch / "deep" / "er").mkdir(parents=True)
            (scratch / "deep" / "er" / "file").write_text("x")
            (scratch / "1.out").write_text("v=1\n")
        await executor.close()

    anyio.run(main)
    assert not scratch.exists()
