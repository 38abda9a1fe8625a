"""Allow ``python -m wfx``."""

from wfx.cli import main

main()
