"""Shared test helpers: write a workflow to a temporary file and load or compile it."""

from __future__ import annotations

import os
import signal
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `slow` (seconds each) first, the rest in their order: xdist's
    workers then end with short tests, not one worker on a 20-second test while the
    other has nothing left (the suite has five minutes on two cores)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_stay_in_pytests_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Runs without --workspace keep a temporary workspace (as documented) and killed
    runs leave their scratch directory: during tests both go under pytest's own
    temporary directory (this process and every wfx it starts), which pytest prunes."""
    directory = str(tmp_path_factory.mktemp("tmp"))
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = directory
    tempfile.tempdir = directory
    yield
    tempfile.tempdir = None
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous


#: the signals tests send to the processes they start, expecting them to act
_SENT_BY_TESTS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


@pytest.fixture(scope="session", autouse=True)
def _signals_tests_send_are_not_ignored() -> Iterator[None]:
    """A process keeps the signals it was started with ignored, and so do wfx and every
    process it starts (as documented): a pytest started as a background job of a script
    (`pytest &`: SIGINT and SIGQUIT ignored) or under `nohup` (SIGHUP) would hand them
    down ignored, and the tests that send them would fail for that alone. Their default
    dispositions are restored here, for the tests and every process they start."""
    previous = {number: signal.getsignal(number) for number in _SENT_BY_TESTS}
    for number, handler in previous.items():
        if handler == signal.SIG_IGN:
            default = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
            signal.signal(number, default)
    yield
    for number, handler in previous.items():
        if handler is not None:
            signal.signal(number, handler)


@pytest.fixture(scope="session", autouse=True)
def _no_warm_server_unless_a_test_asks() -> Iterator[None]:
    """The `wfx` command hands its work to a warm server when one runs, and `wfx run`
    starts one (docs/server.md): the tests that run the `wfx` command itself would leave
    servers behind. They run each command in its own process, as before;
    tests/cli/test_server.py starts and stops servers of its own, and so does the
    `warm_server` fixture of tests/durability, which the failpoint matrix runs through."""
    previous = os.environ.get("WFX_SERVER")
    os.environ["WFX_SERVER"] = "0"
    yield
    if previous is None:
        os.environ.pop("WFX_SERVER", None)
    else:
        os.environ["WFX_SERVER"] = previous


@pytest.fixture
def workflow_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented YAML to `wf.yaml` in a temporary directory and return its path."""

    def write(text: str, name: str = "wf.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
