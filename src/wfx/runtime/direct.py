"""Run one simple command without the shell, exactly as bash would have run it.

For a script that is one simple command (wfx.shell.simple_command), `bash -c` only looks
the command up on PATH and execs it in place of itself: the process, its arguments, its
exit status and its signals are the same without bash, and starting bash costs more than
the command itself for quick steps. What bash does add is in the environment; this
module reproduces it (bash 5: `PWD`, `OLDPWD`, `SHLVL`, `_`), and declines, so the step
runs through bash after all, wherever bash would do something else: a PATH without the
command (bash reports "command not found"), bash start-up files or options passed in the
environment, exported functions.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Mapping, Sequence
from itertools import repeat

#: environment variables that make bash do more than exec the command
_BASH_SETTINGS = frozenset({"BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "EXECIGNORE"})

#: what bash accepts as a number in SHLVL: blanks, an optional sign, decimal digits
_LEVEL = re.compile(r"[ \t\n]*([-+]?[0-9]+)[ \t\n]*")

#: bash warns and resets SHLVL from this level on: leave that to bash
_MAX_LEVEL = 999


def direct_exec(
    words: Sequence[str], env: Mapping[str, str], cwd: str | None
) -> tuple[str, dict[str, str]] | None:
    """The program to exec for `words` and the environment bash would have given it, or
    None when only bash itself can reproduce what it would do."""
    if not _BASH_SETTINGS.isdisjoint(env) or any(map(str.startswith, env, repeat("BASH_FUNC_"))):
        return None
    level = _shell_level(env.get("SHLVL"))
    if level is None:
        return None
    here = cwd if cwd is not None else os.getcwd()
    program = _find_program(words[0], env, here)
    if program is None:
        return None
    child = dict(env)
    child["SHLVL"] = str(level)
    child["_"] = program
    child["PWD"] = _logical_directory(env.get("PWD"), here)
    oldpwd = env.get("OLDPWD")
    if oldpwd is not None and not os.path.isdir(os.path.join(here, oldpwd)):
        del child["OLDPWD"]
    return program, child


def _shell_level(value: str | None) -> int | None:
    """SHLVL as the exec'd command sees it: bash adds one at start and takes it back
    when it execs in place of itself; anything but a number counts as 0."""
    if value is None:
        return 0
    match = _LEVEL.fullmatch(value)
    level = max(int(match.group(1)), 0) if match else 0
    return None if level + 1 > _MAX_LEVEL else level


def _find_program(name: str, env: Mapping[str, str], here: str) -> str | None:
    """The path bash would exec for `name`: as written when it has a slash, else the
    first executable regular file along PATH (an empty entry is the current directory)."""
    if "/" in name:
        return name if _is_executable(os.path.join(here, name)) else None
    path = env.get("PATH")
    if path is None:  # bash would search its own built-in default PATH
        return None
    for entry in path.split(":"):
        candidate = f"{entry or '.'}/{name}" if not entry.endswith("/") else entry + name
        where = candidate if candidate[0] == "/" else os.path.join(here, candidate)
        if _is_executable(where):
            return candidate
    return None


def _is_executable(path: str) -> bool:
    try:  # access() first: one system call rules out each PATH entry without the name
        return os.access(path, os.X_OK) and stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _logical_directory(pwd: str | None, here: str) -> str:
    """bash keeps an inherited PWD that names the directory it starts in, else the
    physical path of that directory."""
    if pwd is not None and pwd.startswith("/"):
        if pwd == here:  # the usual case: one path names one directory, no stat needed
            return pwd
        try:
            if os.path.samestat(os.stat(pwd), os.stat(here)):
                return pwd
        except (OSError, ValueError):
            pass
    return _physical(here)


@functools.lru_cache(maxsize=64)
def _physical(directory: str) -> str:
    """The directory's path without symbolic links (what getcwd() returns in it); cached,
    since every step of a run usually starts in the same few directories."""
    return os.path.realpath(directory)
