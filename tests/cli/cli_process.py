"""Run `python -m wfx` as a user does, for the command-line tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def wfx(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`wfx ARGS` in a subprocess with plain (colourless) output; never raises on exit codes.
    `WFX_STATE_DIR` is dropped so each test's journal sits beside its own workflow."""
    inherited = {k: v for k, v in os.environ.items() if k != "WFX_STATE_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**inherited, "NO_COLOR": "1", **(env or {})},
        timeout=120,
    )
