"""Allow ``python -m wfx``."""

from wfx.cli import entry

entry()
