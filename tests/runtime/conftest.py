"""Fixtures for the runtime tests: the anyio backend and a /proc census of marked processes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run `@pytest.mark.anyio` tests on asyncio, the backend wfx ships with."""
    return "asyncio"


@dataclass
class Census:
    """Every process a test spawns carries `WFX_TEST_TOKEN`; `alive()` finds the survivors."""

    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def env(self) -> dict[str, str]:
        """The complete child environment: ours plus the test marker."""
        return {**os.environ, "WFX_TEST_TOKEN": self.token}

    def alive(self) -> list[int]:
        """Pids of live (not zombie) processes carrying this test's marker."""
        needle = f"WFX_TEST_TOKEN={self.token}".encode()
        return [pid for pid in _pids() if _running(pid) and needle in _environ(pid)]


def _pids() -> Iterator[int]:
    return (int(name) for name in os.listdir("/proc") if name.isdigit())


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return file.read()
    except OSError:
        return b""


@pytest.fixture
def census() -> Iterator[Census]:
    """A fresh marker for this test; whatever still carries it afterwards is killed."""
    marker = Census()
    yield marker
    for pid in marker.alive():
        with contextlib.suppress(OSError):
            os.kill(pid, 9)
