"""A cache of the code `dataclasses` compiles for each class, as `__pycache__` is for modules.

For every dataclass, Python 3.11 writes the source of `__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__` and `__delattr__` and compiles each: about 0.5 ms a class,
and a `wfx run` makes over a hundred of them before it starts a step, a third of what
its imports cost. The command line (only it: a program that imports wfx as a library
keeps Python's own behaviour) has `dataclasses` look each source text up here first; a
text seen before gets its code object back instead of being compiled again. The text is
the key, so the code is exactly what compiling it would give, whichever wfx or class
asks, and the file holds only what this Python's `marshal` wrote (its version is part
of the file name).

The file is signed with this user's key (:mod:`wfx.runtime.userkey`) like the model cache: code
is never loaded from a file anyone else wrote. Any failure to read or write it is a
miss; `WFX_NO_CACHE=1` turns it off with the model cache, and nothing is written where
Python writes no bytecode either (`PYTHONDONTWRITEBYTECODE`).

The file keeps what the processes that write it use: a text none of them used for
:data:`KEEP_FOR` writes (the classes of an older wfx, of an older checkout) is dropped,
since every start reads and verifies the whole file.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import importlib
import marshal
import os
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: the most source texts kept; past it the file starts again from this process's texts
MAX_ENTRIES = 4096
#: a text that no process writing the file has used for this many of its writes is
#: dropped: the classes of an older wfx (or an older checkout) would otherwise stay, and
#: every start reads and verifies the whole file (2.4 MB of 1,665 texts on a developer's
#: machine, for some 700 a run uses: 12 ms of each cold start)
KEEP_FOR = 16
#: bump when the file's layout changes
_FORMAT = "wfx-class-cache-2"
#: source text -> (the write of the file that last kept it used, marshalled code), as read
#: from the file (the code unmarshalled when asked for)
_known: dict[str, tuple[int, bytes]] = {}


class _File:
    """How many times the file this process read was written (each write counts one)."""

    writes = 0


#: source texts this process took from the file or compiled (for as long as it lives)
_used: set[str] = set()
#: source texts compiled by this process (written at exit)
_compiled: dict[str, bytes] = {}
#: modules imported before the cache is written (see install)
_warm: list[str] = []


def install(warm: Sequence[str] = ()) -> None:
    """Have `dataclasses` take the code of the methods it generates from the cache (once
    per process; nothing when the cache is turned off or this Python is not CPython).

    `warm`: modules whose classes are made by commands that write nothing (`wfx plan`
    promises no file changes, so it never writes this cache either); a process that
    writes the cache imports them first, so their code is in it too."""
    _warm[:] = warm
    if getattr(dataclasses, "exec", None) is _exec:
        return
    if os.environ.get("WFX_NO_CACHE") or sys.implementation.name != "cpython":
        return
    with contextlib.suppress(Exception):
        _File.writes, entries = _read(cache_file())
        _known.update(entries)
    # `dataclasses` calls exec() on each method's source text: its own global `exec`,
    # when it has one, comes before the builtin one
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    atexit.register(save)  # at exit; a warm server also saves before it forks


def cache_file() -> Path:
    """Where the cache is: beside the signing key, named for this Python."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "wfx" / f"classes-{sys.implementation.cache_tag}.bin"


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """exec(), with the code of a source text seen before taken from the cache."""
    if not isinstance(source, str):
        builtins.exec(source, globals, locals)
        return
    code = _cached_code(source)
    if code is None:
        # dont_inherit: compiled as `dataclasses` itself compiles it, without this
        # module's `from __future__` flags
        code = compile(source, "<string>", "exec", dont_inherit=True)
        _compiled[source] = marshal.dumps(code)
    builtins.exec(code, globals, locals)


def _cached_code(source: str) -> Any:
    """The code the file holds for `source`, or None: not there, or not code (a miss)."""
    stored = _known.get(source)
    if stored is None:
        return None
    try:
        code = marshal.loads(stored[1])
    except (EOFError, ValueError, TypeError, IndexError):
        return None
    if not isinstance(code, types.CodeType):
        return None
    _used.add(source)
    return code


def _read(path: Path) -> tuple[int, dict[str, tuple[int, bytes]]]:
    """How many times the file was written, and its entries (none when this user's key
    did not sign it, or another layout or Python wrote it)."""
    from wfx.runtime.userkey import verified  # noqa: PLC0415 - only when there is a file

    payload = verified(path.read_bytes())
    if payload is None:
        return 0, {}
    # unmarshalled only after the signature says this user wrote it
    fmt, version, writes, entries = marshal.loads(payload)
    if fmt != _FORMAT or version != sys.version or not isinstance(entries, dict):
        return 0, {}
    return int(writes), entries


def kept(
    known: dict[str, tuple[int, bytes]],
    used: set[str],
    compiled: dict[str, bytes],
    write: int,
) -> dict[str, tuple[int, bytes]]:
    """The entries the file's `write`-th write holds: those this process used or compiled
    (marked as used by this write), and those another process used within the last
    KEEP_FOR writes (the classes of commands this one does not run); only this process's
    own when that would be more than MAX_ENTRIES."""
    mine = {text: (write, known[text][1]) for text in used if text in known}
    mine |= {text: (write, code) for text, code in compiled.items()}
    others = {
        text: entry
        for text, entry in known.items()
        if text not in mine and write - entry[0] < KEEP_FOR
    }
    if len(mine) + len(others) > MAX_ENTRIES:
        return mine
    return {**others, **mine}


def save(*, asked: bool = False) -> None:
    """Keep the texts this process compiled (with those read), when there are new ones and
    Python may write its own cache (PYTHONDONTWRITEBYTECODE, -B: nothing is written, so a
    command that promises to write nothing, such as `wfx plan`, keeps that promise), or
    when `asked` to (:func:`fill`, as `compileall` writes bytecode whatever the variable)."""
    if not _compiled or (sys.dont_write_bytecode and not asked):
        return
    for name in _warm:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from wfx.runtime.userkey import sign  # noqa: PLC0415 - only when there is something new

        write = _File.writes + 1
        entries = kept(_known, _used, _compiled, write)
        payload = marshal.dumps((_FORMAT, sys.version, write, entries))
        path = cache_file()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(sign(payload) + payload)
        os.replace(partial, path)
        _known.clear()
        _known.update(entries)
        _File.writes = write
        # still used by this process, and by the copies a warm server forks after it
        # wrote the file: their own writes must not age what they run on
        _used.update(_compiled)
        _compiled.clear()


#: the modules :func:`fill` leaves out: the optional integrations (their libraries may
#: be missing, and they make few classes) and the entry points that run at import
_NOT_FILLED = ("wfx.__main__", "wfx.lsp", "wfx.cli_lsp", "wfx.runtime.dask", "wfx.export")


def wfx_modules(leaving_out: tuple[str, ...]) -> Iterator[str]:
    """The name of every module of wfx but those `leaving_out` names (or is inside): what
    the class cache is filled from, and what a warm server imports ahead."""
    import pkgutil  # noqa: PLC0415

    package = str(Path(__file__).resolve().parents[1])  # wfx's own folder
    for module in pkgutil.walk_packages([package], "wfx."):
        if not module.name.startswith(leaving_out):
            yield module.name


def fill() -> int:
    """Compile the classes of every module of wfx's commands and write the cache, even
    where Python writes no bytecode: what `python -m compileall` is to Python's own cache
    (`make test` runs both first: a CI machine with PYTHONDONTWRITEBYTECODE set would
    otherwise compile them again in each of the suite's `wfx` processes, about 40 ms
    each). The number of texts the cache then holds."""
    install()
    for name in wfx_modules(_NOT_FILLED):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    save(asked=True)
    return len(_known) + len(_compiled)


if __name__ == "__main__":  # `python -m wfx.runtime.classcache`
    # this file runs as `__main__`; wfx's modules install and fill `wfx.runtime.classcache`
    from wfx.runtime import classcache  # noqa: PLW0406 - the module, not this `__main__`

    print(f"wfx class cache: {classcache.fill()} texts in {classcache.cache_file()}")
