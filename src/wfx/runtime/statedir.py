"""Where wfx keeps its state (the journal, the model cache): one rule for every command.

A module of its own, free of sqlite3 and the journal, so that `wfx plan` can find the
model cache without importing them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: the environment variable naming the state directory
STATE_DIR_VARIABLE = "WFX_STATE_DIR"
#: the journal's database file in the state directory
DATABASE = "state.db"


@dataclass(frozen=True)
class StateDir:
    """Where the journal lives, and which setting chose it (for messages about it)."""

    path: Path
    chosen_by: str
    """`--state-dir`, `$WFX_STATE_DIR`, or `the default`."""

    @property
    def database(self) -> Path:
        """The journal's database file."""
        return self.path / DATABASE


def state_dir(explicit: str | Path | None = None) -> StateDir:
    """THE rule for where the journal lives, for every command (`run`, `resume`, `runs`,
    `show`, `logs`): `--state-dir`, else `$WFX_STATE_DIR`, else `.wfx/` in the current
    directory. Never beside the workflow file: `wfx run sub/x.yaml` and `wfx runs` started
    from the same directory must find the same journal."""
    if explicit is not None and str(explicit):
        return StateDir(Path(explicit), "--state-dir")
    from_env = os.environ.get(STATE_DIR_VARIABLE)
    if from_env:
        return StateDir(Path(from_env), f"${STATE_DIR_VARIABLE}")
    return StateDir(Path(".wfx"), "the default")
