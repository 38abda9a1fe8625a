"""Run one simple command without the shell, exactly as bash would have run it.

For a script that is one simple command (wfx.shell.simple_command), `bash -c` only looks
the command up on PATH and execs it in place of itself: the process, its arguments, its
exit status and its signals are the same without bash, and starting bash costs more than
the command itself for quick steps. What bash does add is in the environment; this
module reproduces it (`PWD`, `OLDPWD`, `SHLVL`, `_`, and what bash does to its own
variables found in the environment: `PS1` dropped, `IFS` reset...), and declines, so the step
runs through bash after all, wherever bash would do something else: a PATH without the
command (bash reports "command not found"), bash start-up files or options passed in the
environment, exported functions.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from wfx.codewatch import CodeWatch
from wfx.shell import SAME_AS_PROGRAM, SYSTEM_PATH

if TYPE_CHECKING:
    from wfx.runtime.spawn import Environment

#: environment variables that make bash do more than exec the command; that bash
#: replaces with what only it knows (its path, version and script, the time it started);
#: or that bash treats as its own only from 5.0 or 5.1 on (an older bash passes them on)
_BASH_SETTINGS = frozenset(
    {
        *("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "EXECIGNORE"),
        *("BASH", "BASH_VERSION", "BASH_EXECUTION_STRING", "EPOCHSECONDS", "EPOCHREALTIME"),
        *("SRANDOM", "BASH_ARGV0"),
    }
)

#: what bash does to these variables when it finds them in its environment (measured on
#: 5.2; none of them is newer than bash 4), before it execs the command: drops them (None:
#: its prompts, as it is not interactive, and its dynamic variables) or sets them to its
#: own start-up values
_BASH_REWRITES: dict[str, str | None] = {
    **dict.fromkeys(
        (
            *("PS1", "PS2", "BASHPID", "BASH_COMMAND", "BASH_SUBSHELL", "BASH_VERSINFO"),
            *("COMP_WORDBREAKS", "HISTCMD", "PPID", "RANDOM"),
        )
    ),
    "IFS": " \t\n",
    "PS4": "+ ",
    "OPTIND": "1",
    "OPTERR": "1",
    "LINENO": "1",
}

#: what bash accepts as a number in SHLVL: blanks, an optional sign, decimal digits
_LEVEL = re.compile(r"[ \t\n]*([-+]?[0-9]+)[ \t\n]*")

#: bash warns and resets SHLVL from this level on: leave that to bash
_MAX_LEVEL = 999


def direct_exec(
    words: Sequence[str],
    env: Environment,
    overlay: Mapping[str, str | None],
    cwd: str | None,
) -> tuple[str, dict[str, str | None]] | None:
    """The program to exec for `words`, and what bash would have changed in the
    environment it got (`env` with `overlay` laid over it; None: removed), or None when
    only bash itself can reproduce what it would do."""
    return look_up_direct(words, env, overlay, cwd)[0]


def look_up_direct(
    words: Sequence[str],
    env: Environment,
    overlay: Mapping[str, str | None],
    cwd: str | None,
) -> tuple[tuple[str, dict[str, str | None]] | None, int | None]:
    """:func:`direct_exec`'s answer, and a mark for :func:`unchanged_since` when that
    answer is remembered (answered from memory, or looked up and kept there) for a
    command started in `cwd`: until something on its way changes, it is the answer again."""
    if _sets_bash_up(env.names) or _sets_bash_up(n for n, v in overlay.items() if v is not None):
        return None, None

    def get(name: str) -> str | None:
        return overlay[name] if name in overlay else env.get(name)

    level = _shell_level(get("SHLVL"))
    if level is None:
        return None, None
    if ("LC_ALL" in env.names or "LC_ALL" in overlay) and _bash_warns_of_locale(
        get("LC_ALL"), get("LOCPATH")
    ):
        return None, None
    here = cwd if cwd is not None else os.getcwd()
    oldpwd, path = get("OLDPWD"), get("PATH")
    if path is not None and _expands_tilde(path):
        return None, None
    # `true` and `false` are builtins, whatever the step's PATH holds: the system's own
    # programs of those names do as they do (a `true` first on PATH would not)
    search = SYSTEM_PATH if words[0] in SAME_AS_PROGRAM and path is not None else path
    key = (words[0], search, here, get("PWD"), oldpwd)
    program, pwd, oldpwd_gone = _answer(key)
    mark = None if cwd is None else _remembered(key)
    if path != os.environ.get("PATH"):  # wfx found bash on its own PATH, not on this one
        shell = ("bash", path, *key[2:])
        if _answer(shell)[0] is None:
            return None, None  # bash cannot start there: neither can its command
        if mark is not None and _remembered(shell) is None:
            mark = None
    if program is None:
        return None, mark
    changes: dict[str, str | None] = {"SHLVL": str(level), "_": program, "PWD": pwd}
    if oldpwd_gone:
        changes["OLDPWD"] = None
    rewritten = _rewritten(env.names)
    for name, value in overlay.items():
        if value is not None and name in _BASH_REWRITES:
            rewritten = {**rewritten, name: _BASH_REWRITES[name]}
    return (program, {**rewritten, **changes}), mark


@functools.lru_cache(maxsize=16)
def _expands_tilde(path: str) -> bool:
    """Whether bash would expand `~` in this PATH: it does at the start of an entry when
    it searches (`~/bin`, `~user/bin`), which no exec does; the step goes through bash."""
    return any(entry.startswith("~") for entry in path.split(":"))


def _answer(question: _Question) -> _Found:
    """`_look_around`'s answer, shared inside `looked_up_together`."""
    found = None if _SHARED is None else _SHARED.get(question)
    if found is None:
        found = _look_around(*question)
        if _SHARED is not None:
            _SHARED[question] = found
    return found


def _remembered(question: _Question) -> int | None:
    """The answers' generation when `question`'s answer is among them, else None."""
    lookups = _LOOKUPS
    if lookups is None or not lookups.armed or question not in lookups.answers:
        return None
    return lookups.generation


def unchanged_since(mark: int) -> bool:
    """Whether every answer remembered when :func:`look_up_direct` gave `mark` would be
    given again now: the watch saw no change on the way to any of them since (one `poll`
    of its descriptor), so a lookup made then need not be made again."""
    lookups = _LOOKUPS
    if lookups is None or not lookups.armed:
        return False
    lookups.check_watch()
    return lookups.generation == mark


#: what bash finds in the file system for a command: the program, PWD, whether OLDPWD
#: names no directory (`_look_around`'s answer)
_Found = tuple[str | None, str, bool]

#: inside `looked_up_together`: each lookup's answer, by its question
_SHARED: dict[tuple[str, str | None, str, str | None, str | None], _Found] | None = None


@contextlib.contextmanager
def looked_up_together() -> Iterator[None]:
    """Inside, commands started at one instant share their lookups: the same name on the
    same PATH from the same directory is looked up once (about 60 µs of system calls
    each on a long PATH). Each bash would have looked at the same file system at that
    instant; a program installed while they start is a race either way."""
    global _SHARED  # noqa: PLW0603 - one burst at a time, synchronous, on the loop's thread
    outer, _SHARED = _SHARED, {}
    try:
        yield
    finally:
        _SHARED = outer


#: what `_look_around` is asked: the command's name, PATH, the directory it starts in,
#: PWD and OLDPWD
_Question = tuple[str, str | None, str, str | None, str | None]


def _look_around(
    name: str, path: str | None, here: str, pwd: str | None, oldpwd: str | None
) -> _Found:
    """The program bash would exec for `name` (None: bash must be asked), the PWD it
    would export, and whether it would drop OLDPWD (naming no directory): from memory
    while nothing it depends on changed (:class:`_WatchedLookups`)."""
    return _watched_lookups().answer((name, path, here, pwd, oldpwd))


def _look_now(
    name: str, path: str | None, here: str, pwd: str | None, oldpwd: str | None
) -> _Found:
    """`_look_around`'s answer, from the file system."""
    program = _find_program(name, path, here)
    if program is None:
        return None, "", False
    gone = oldpwd is not None and not os.path.isdir(os.path.join(here, oldpwd))
    return program, _logical_directory(pwd, here), gone


def _sets_bash_up(names: Iterable[str]) -> bool:
    """Whether any of these variables makes bash do more than exec the command."""
    if isinstance(names, frozenset):
        return _sets_bash_up_cached(names)
    return any(name in _BASH_SETTINGS or name.startswith("BASH_FUNC_") for name in names)


@functools.lru_cache(maxsize=16)
def _sets_bash_up_cached(names: frozenset[str]) -> bool:
    """The same, once per inherited environment (a frozenset hashes once)."""
    return not _BASH_SETTINGS.isdisjoint(names) or any(
        map(str.startswith, names, repeat("BASH_FUNC_"))
    )


#: LC_ALL values every C library has built in
_BUILT_IN_LOCALES = frozenset({"C", "POSIX"})

#: the categories of glibc's LC_ALL_MASK (every one but LC_ALL's own number, 6)
_GLIBC_ALL_MASK = 0x1FBF


def _bash_warns_of_locale(lc_all: str | None, locpath: str | None) -> bool:
    """Whether bash, given this LC_ALL, starts with `bash: warning: setlocale: LC_ALL:
    cannot change locale` on its stderr (a locale the system lacks, common in container
    images that set LC_ALL=en_US.UTF-8): the step then goes through bash, which says so.
    Told by asking the C library to load that locale without using it (newlocale);
    where that cannot be asked as bash's would answer (no glibc, another LOCPATH), the
    step goes through bash too."""
    if not lc_all or lc_all in _BUILT_IN_LOCALES:
        return False
    if locpath != os.environ.get("LOCPATH"):
        return True
    return not _glibc_loads(lc_all)


@functools.lru_cache(maxsize=8)
def _glibc_loads(name: str) -> bool:
    """Whether glibc loads the locale `name` (False when that cannot be asked)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # another C library: its own names
            return False
        import ctypes  # noqa: PLC0415 - only for an LC_ALL other than C

        libc = ctypes.CDLL(None)
        newlocale, freelocale = libc.newlocale, libc.freelocale
    except (ImportError, OSError, ValueError, AttributeError):
        return False
    newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    newlocale.restype = ctypes.c_void_p
    freelocale.argtypes = [ctypes.c_void_p]
    try:
        loaded = newlocale(_GLIBC_ALL_MASK, os.fsencode(name), None)
    except (ValueError, UnicodeError):  # a NUL in the name: no exec would take it anyway
        return False
    if not loaded:
        return False
    freelocale(loaded)
    return True


@functools.lru_cache(maxsize=16)
def _rewritten(names: frozenset[str]) -> dict[str, str | None]:
    """What bash does to those of `names` it rewrites (once per inherited environment).
    Callers copy it before changing it."""
    return {name: _BASH_REWRITES[name] for name in names & _BASH_REWRITES.keys()}


def _shell_level(value: str | None) -> int | None:
    """SHLVL as the exec'd command sees it: bash adds one at start and takes it back
    when it execs in place of itself; anything but a number counts as 0."""
    if value is None:
        return 0
    match = _LEVEL.fullmatch(value)
    level = max(int(match.group(1)), 0) if match else 0
    return None if level + 1 > _MAX_LEVEL else level


def _find_program(name: str, path: str | None, here: str) -> str | None:
    """The path bash would exec for `name`: as written when it has a slash, else the
    first executable file along `path` that is no directory (an empty entry is the
    current directory); None when bash must be asked, that file being no regular one."""
    if "/" in name:
        return name if _bash_picks(os.path.join(here, name)) else None
    if path is None:  # bash would search its own built-in default PATH
        return None
    for candidate, where in _candidates(name, path, here):
        picked = _bash_picks(where)
        if picked:
            return candidate
        if picked is None:
            return None
    return None


def _places(question: _Question) -> set[str]:
    """Every path whose resolution decides `_look_now`'s answer to `question`: each
    place the name is looked for, the directory the command starts in, PWD, OLDPWD."""
    name, path, here, pwd, oldpwd = question
    if "/" in name:
        places = {os.path.join(here, name)}
    elif path is not None:
        places = {where for _, where in _candidates(name, path, here)}
    else:
        places = set()
    places.add(here)
    if pwd is not None and pwd.startswith("/"):
        places.add(pwd)
    if oldpwd is not None:
        places.add(os.path.join(here, oldpwd))
    return places


class _WatchedLookups:
    """Answers of `_look_now` given again without the file system while inotify says that
    no directory entry they depend on changed (wfx.codewatch): each place looked at along
    PATH, the directories PWD and OLDPWD name and the one the command starts in, every
    directory and symbolic link on the way to each. A program installed, removed, made
    executable or not, renamed, a directory or link on the way swapped: each is an event,
    and the next lookup looks again. A step of a chain then costs one `poll` of the inotify
    descriptor instead of a system call per PATH entry (docs/performance.md, fourteenth
    pass). Where inotify cannot vouch for a place (a network file system, no instance or
    watch left), every lookup looks, as before.

    Arming the watch costs a few milliseconds (a `readlink` of every name on the way, a
    watch per directory), so it waits until the process has looked up enough to gain
    from it, and for a moment it would spend waiting anyway (:func:`watch_when_due`, once
    a step's process has started): a run of a few steps never pays for it, and a chain
    pays while its step runs, not on the way to the next one."""

    def __init__(self) -> None:
        self.watch = CodeWatch()
        self.places: set[str] = set()
        self.answers: dict[_Question, _Found] = {}
        self.recent: dict[_Question, None] = {}
        """The last questions looked up (oldest first): the next arming watches theirs."""
        self.uncovered = False
        """Whether a question of `recent` has places the watch does not cover."""
        self.looked = 0
        self.looked_when_armed = 0
        self.armed = False
        self.usable = True
        self.generation = 0
        """Counts the times the answers from memory were dropped (:func:`unchanged_since`)."""

    def check_watch(self) -> None:
        """Drop the answers from memory if anything on the way to them changed."""
        if not self.watch.unchanged():  # something changed: every answer looks again
            self.forget_answers()

    def forget_answers(self) -> None:
        """Drop every answer from memory (each looks again)."""
        self.answers.clear()
        self.generation += 1

    def answer(self, question: _Question) -> _Found:
        """What :func:`_look_now` would answer to `question`, now."""
        covered = False
        if self.armed:
            self.check_watch()
            found = self.answers.get(question)
            if found is not None:
                return found
            covered = _places(question) <= self.places
        found = _look_now(*question)
        self.looked += 1
        recent = self.recent
        recent.pop(question, None)
        recent[question] = None
        if len(recent) > _RECENT:
            del recent[next(iter(recent))]
        if covered:  # watched before it looked: any change after it is an event
            self.answers[question] = found
        else:
            self.uncovered = True
        return found

    def arm_if_due(self) -> None:
        """Watch the places of the questions asked last, once the process has looked up
        enough that answering from memory pays for the arming."""
        if not self.uncovered or not self.usable:
            return
        due = _DUE if "inotify_simple" in sys.modules else _DUE_COLD
        if self.looked - self.looked_when_armed < due:
            return  # first after `due` lookups, then again after as many more
        wanted = set().union(*map(_places, self.recent))  # the recent ones only: bounded
        self.uncovered = False
        self.looked_when_armed = self.looked
        if len(wanted) > _MOST_PLACES:
            self.close()
            return
        self.places = wanted
        self.watch.watch(wanted)
        self.watch.unchanged()  # its first answer after arming: every lookup looks once more
        self.forget_answers()
        self.armed = self.watch.watching
        if not self.armed:
            self.close()

    def close(self) -> None:
        """Look every time from now on (and let go of the inotify instance)."""
        self.usable = False
        self.armed = False
        self.watch.close()
        self.forget_answers()
        self.recent.clear()


#: lookups a process makes from the file system before it watches, and between two
#: armings (arming costs what about 50 lookups cost). In a process that has not loaded
#: inotify's library, a `wfx` without the warm server, as under CI, the import costs 7 ms
#: more, and closing the watch at its exit waits 1-19 ms for the kernel to free it (a
#: warm server's copy leaves that to after `wfx` was told): some 300 lookups of 50 µs
#: (a 200-step chain ran 5-40 ms slower for arming after 128; eighteenth pass)
_DUE = 32
_DUE_COLD = 384

#: the questions whose places an arming watches: the last ones asked (a process asking
#: thousands of different ones, a test suite's, a long-lived program's, watches only the
#: latest, so each arming costs the same; a run alternating between more commands than
#: this arms again whenever it comes back to one)
_RECENT = 32

#: the most places watched at once (32 questions along a very long PATH: looks each time)
_MOST_PLACES = 4096

#: this process's watched lookups, dropped in a forked child
_LOOKUPS: _WatchedLookups | None = None


def _watched_lookups() -> _WatchedLookups:
    global _LOOKUPS  # noqa: PLW0603 - one per process, on the event loop's thread
    if _LOOKUPS is None:
        _LOOKUPS = _WatchedLookups()
        atexit.register(_LOOKUPS.close)  # its inotify descriptor, closed, not left to GC
    return _LOOKUPS


def answered_from_memory() -> bool:
    """Whether a lookup is answered from memory now (the watch is armed): one made ahead
    of a start then costs a `poll`, not a system call per PATH entry."""
    return _LOOKUPS is not None and _LOOKUPS.armed


def leave_watch_to_teardown() -> None:
    """The process ends next with `os._exit` (wfx.cli): its lookups' inotify instance is
    not closed at exit but left to the kernel's teardown of the process. Closing one that
    holds watches waits until the kernel has freed them, a grace period of 1-19 ms (13 ms
    median at the end of a 200-step chain, docs/performance.md, eighteenth pass), and a
    copy of the warm server tells `wfx` that its command has ended only after the
    process's `atexit` handlers, but before that teardown."""
    if _LOOKUPS is not None:
        atexit.unregister(_LOOKUPS.close)


def watch_when_due() -> None:
    """A moment the process would spend waiting (a step's process has just started): arm
    the watch on the lookups made so far, if they are enough to gain from it."""
    if _LOOKUPS is not None:
        _LOOKUPS.arm_if_due()


def _forget_lookups() -> None:
    """In a forked child: the parent's inotify instance is not this process's to read."""
    global _LOOKUPS  # noqa: PLW0603
    if _LOOKUPS is not None:
        _LOOKUPS.watch.close()
        _LOOKUPS = None


os.register_at_fork(after_in_child=_forget_lookups)


@functools.lru_cache(maxsize=256)
def _candidates(name: str, path: str, here: str) -> tuple[tuple[str, str], ...]:
    """Each place along `path` where bash looks for `name`: the path it would exec, and
    that path from `here` (cached: a run starts the same few commands many times; only
    the names are cached, every lookup still asks the file system)."""
    found = []
    for entry in path.split(":"):
        candidate = f"{entry or '.'}/{name}" if not entry.endswith("/") else entry + name
        found.append(
            (candidate, candidate if candidate[0] == "/" else os.path.join(here, candidate))
        )
    return tuple(found)


def _bash_picks(path: str) -> bool | None:
    """Whether bash's search of PATH stops at `path`: True for an executable regular
    file, which wfx execs as bash would; False where bash passes over it (missing, not
    executable, a directory); None for anything else executable (a FIFO, a device):
    bash stops there too and its exec fails or blocks, which only bash itself does as
    bash does (its 126 "Permission denied"; a FIFO never opened, which a timeout ends)."""
    try:  # access() first: one system call rules out each PATH entry without the name
        if not os.access(path, os.X_OK):
            return False
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    if stat.S_ISREG(mode):
        return True
    return False if stat.S_ISDIR(mode) else None


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


def _physical(directory: str) -> str:
    """The directory's path without symbolic links (what getcwd() returns in it)."""
    return os.path.realpath(directory)
