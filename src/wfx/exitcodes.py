"""The exit codes of every `wfx` command, in one place (documented in docs/cli.md)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_PARTIAL = 3
EXIT_INTERNAL = 70
EXIT_JOURNAL_CORRUPT = 74
EXIT_RUN_LOCKED = 75
EXIT_INTERRUPTED = 130
