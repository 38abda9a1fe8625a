"""Allow ``python -m wfx``."""

from wfx.cli import main

# Guarded: `--executor dask:local` starts worker processes by spawning, which imports the
# main module again (as `__mp_main__`); it must not run the command a second time.
if __name__ == "__main__":
    main()
