"""The crash tests' warm server: a server of this test worker's own (docs/server.md)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from crash_harness import WFX


@pytest.fixture(scope="session")
def warm_server() -> Iterator[dict[str, str]]:
    """The variables that send the `wfx` command through a warm server of this worker's
    own, which stops at the end of the session. The failpoint matrices crash wfx and
    resume it hundreds of times: started cold, each `wfx` spends a third of a second of
    CPU importing Python and wfx; through the server each is a fork of one that did, as
    on a user's machine. The crash is the copy's, and the `wfx` command ends as it does."""
    overlay = {
        "WFX_SERVER": "1",
        "WFX_SERVER_TAG": f"crash-{uuid.uuid4().hex[:12]}",
        "WFX_SERVER_IDLE": "600",
    }
    env = {**os.environ, **overlay}
    started = subprocess.run(
        [WFX, "server", "start"], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stdout + started.stderr
    yield overlay
    subprocess.run([WFX, "server", "stop"], check=False, env=env, capture_output=True, timeout=120)
