"""A cache of checked workflows in the state directory, as `__pycache__` is for Python.

Reading a workflow (YAML with positions), checking it against the JSON Schema and
building its model cost more than half of a short command's start-up, most of it in
importing PyYAML and jsonschema. A workflow that passed those stages is stored here,
and the next command that reads the same file takes the model from the cache and goes
straight to the compiler, where the inputs come in.

The compiled graph is kept too, in an entry of its own for each set of inputs (the values
and where each was given: see `compilation_variant`), so that a run repeated with the
same inputs imports no compiler at all. Only the graph of a workflow that reads no env
file and calls no sub-workflow is kept: env files may hold secrets, which never reach
the disk, and a sub-workflow's file would need checking too.

An entry is found by a key covering everything the model depends on: the bytes of the
file, the path it was named by and the directory it was named from (the model's
positions carry that path), the project root for sub-workflows, wfx itself (the size
and modification time of every file of its code and data: its version, the schema, the
grammar), and the Python version. The entry lists the other files the model was built
from (the sub-workflows it calls) with a hash of each; a changed one is a miss. Any
change is a miss, never a stale hit.

Entries are pickles, so each is signed (HMAC-SHA256) with a key only this user can
read (`$XDG_CACHE_HOME/wfx/cache.key`, made on first use): an entry written by anyone
else, a state directory restored from a CI cache or copied from another machine, is
not unpickled, just missed. Every failure to read or write the cache is a miss, never
an error. `WFX_NO_CACHE=1` turns the cache off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfx.diagnostics import Diagnostic
from wfx.model import Workflow
from wfx.resources import data_dir
from wfx.runtime.userkey import DIGEST, key_at, key_path
from wfx.runtime.userkey import sign as _sign
from wfx.runtime.userkey import verified as _verified

if TYPE_CHECKING:
    from wfx.graph import ExecutionGraph

#: turn the cache off (any non-empty value)
DISABLE_VARIABLE = "WFX_NO_CACHE"
#: the folder under the state directory
FOLDER = "cache"
#: the most entries kept: the oldest go when a new one would exceed it
MAX_ENTRIES = 256
#: the files whose size and modification time stand for wfx's code and data
_CODE_SUFFIXES = (".py", ".json", ".lark", ".pickle")
#: bump when the entry layout changes
_FORMAT = b"wfx-model-cache-2"
#: the entries this process was served: storing them again would only rewrite them
_SERVED: set[Path] = set()
#: the most entries, and the most bytes of their files, a warm server keeps unpickled in
#: memory (unpickled, an entry takes about 11 times its file's size: 2 MB, some 22 MB)
KEEP_ENTRIES = 16
KEEP_BYTES = 2 * 1024 * 1024
#: entries kept unpickled, by their signature, oldest first: the warm server's, which its
#: copies inherit (see `keep`)
_KEPT: dict[bytes, tuple[int, dict[str, Any]]] = {}
#: the entries this process unpickled from their files, for a warm server's copy to name
_UNPICKLED: list[str] = []


@dataclass(frozen=True)
class CachedModel:
    """A workflow's model as the stages before the compiler left it."""

    workflow: Workflow
    problems: list[Diagnostic]
    """What those stages reported that did not stop them (warnings only)."""


@dataclass(frozen=True)
class CachedCompilation:
    """A workflow compiled with given inputs: the graph and the compiler's warnings."""

    graph: ExecutionGraph
    warnings: list[Diagnostic]


def compilation_variant(
    inputs: Mapping[str, Any] | None, spans: Mapping[str, Any] | None, require_inputs: bool
) -> str:
    """What a compiled graph depends on besides the files: the input values as given, where
    each was given (a warning may point there) and whether required inputs were required."""
    given = pickle.dumps(
        (sorted((inputs or {}).items()), sorted((spans or {}).items()), require_inputs),
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    return "compiled:" + hashlib.sha256(given).hexdigest()


def cacheable_graph(graph: ExecutionGraph) -> bool:
    """Whether a compiled graph may be kept: its workflow calls no sub-workflow (their files
    would need checking too) and reads no env file (which may hold secrets)."""
    from wfx.walk import all_steps  # noqa: PLC0415 - only when a graph is stored

    workflow = graph.workflow
    if workflow.env_file or workflow.env_file_values:
        return False
    return all(not step.env_file and step.call is None for step in all_steps(workflow))


@dataclass(frozen=True)
class ModelCache:
    """The cache in one state directory."""

    directory: Path

    @classmethod
    def at(cls, state_directory: str | Path) -> ModelCache | None:
        """The cache in `state_directory`, or None when it is turned off."""
        if os.environ.get(DISABLE_VARIABLE):
            return None
        return cls(Path(state_directory) / FOLDER)

    def load(self, path: str | Path, root: str | Path | None) -> CachedModel | None:
        """The model stored for the file at `path` as it is now, or None (a miss)."""
        entry = self._read(lambda: _entry_key(path, root))
        if entry is None:
            return None
        return CachedModel(entry["workflow"], list(entry["problems"]))

    def store(
        self,
        path: str | Path,
        root: str | Path | None,
        model: CachedModel,
        other_files: Sequence[str | Path] = (),
    ) -> None:
        """Keep `model` for the file at `path`; `other_files` are the further files it was
        built from. Never fails: a cache that cannot be written is no cache."""
        with contextlib.suppress(Exception):
            files = [(str(Path(f).resolve()), _file_hash(f)) for f in other_files]
            entry = {"workflow": model.workflow, "problems": model.problems, "files": files}
            self._write(_entry_key(path, root), entry)

    def load_compiled(
        self, path: str | Path, root: str | Path | None, variant: str
    ) -> CachedCompilation | None:
        """The compiled graph stored for the file at `path` as it is now and the compiler's
        other inputs `variant` stands for (see :func:`compilation_variant`), or None."""
        entry = self._read(lambda: _entry_key(path, root, variant))
        if entry is None:
            return None
        return CachedCompilation(entry["graph"], list(entry["warnings"]))

    def store_compiled(
        self, path: str | Path, root: str | Path | None, variant: str, compiled: CachedCompilation
    ) -> None:
        """Keep the compiled graph of the file at `path` for `variant`. Only a workflow that
        calls no sub-workflow and reads no env file is kept: env files may hold secrets,
        which never reach the disk. Never fails."""
        with contextlib.suppress(Exception):
            if not cacheable_graph(compiled.graph):
                return
            entry = {"graph": compiled.graph, "warnings": compiled.warnings, "files": []}
            self._write(_entry_key(path, root, variant), entry)

    def _read(self, entry_key: Callable[[], str]) -> dict[str, Any] | None:
        """The entry, verified and with its other files unchanged, or None (a miss)."""
        try:
            key = entry_key()
            _SERVED.discard(self.directory / key)
            signed = (self.directory / key).read_bytes()
            payload = _verified(signed)
            if payload is None:
                return None
            held = _KEPT.get(signed[:DIGEST])  # the same bytes, signed with this key
            entry: dict[str, Any]
            if held is not None:
                entry = held[1]
            else:
                entry = pickle.loads(payload)  # only after the signature checks
                _UNPICKLED.append(os.path.abspath(self.directory / key))
            if not _unchanged(entry["files"]):
                return None
            _SERVED.add(self.directory / key)
            return entry
        except Exception:
            return None

    def _write(self, key: str, entry: dict[str, Any]) -> None:
        if self.directory / key in _SERVED:
            return
        payload = _dumps(entry)
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{key}.{os.getpid()}.tmp"
        partial.write_bytes(_sign(payload) + payload)
        os.replace(partial, self.directory / key)
        self._prune()

    def _prune(self) -> None:
        entries = [p for p in self.directory.iterdir() if not p.name.startswith(".")]
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort(key=lambda p: p.stat().st_mtime)
        for old in entries[: len(entries) - MAX_ENTRIES]:
            old.unlink(missing_ok=True)


def unpickled() -> tuple[list[str], str]:
    """The entries this process unpickled from their files, and the file of the key they
    were signed with: what a warm server's copy tells the server, which keeps them
    (`keep`) for the copies after it."""
    return list(_UNPICKLED), os.path.abspath(key_path())


def keep(entry: str, key: str) -> bool:
    """Keep the entry in the file `entry` unpickled in this process's memory, when the key
    in the file `key` signed it: the warm server does, so that the copies it forks for
    later commands take the workflow from memory instead of unpickling the same bytes
    again (43 ms for a 1,000-step graph). A copy still reads the entry's file and checks
    its signature with its own key: only the same bytes, signed by that key, are served
    from memory. False when nothing new was kept (already kept, unreadable, not signed
    with that key, too big)."""
    try:
        signed = Path(entry).read_bytes()
        if len(signed) > KEEP_BYTES or signed[:DIGEST] in _KEPT:
            return False
        payload = _verified(signed, key_at(key))
        if payload is None:
            return False
        value = pickle.loads(payload)
    except Exception:
        return False
    if not isinstance(value, dict):
        return False
    _KEPT[signed[:DIGEST]] = (len(signed), value)
    while len(_KEPT) > KEEP_ENTRIES or sum(size for size, _ in _KEPT.values()) > KEEP_BYTES:
        del _KEPT[next(iter(_KEPT))]
    return True


def kept() -> int:
    """How many entries this process keeps in memory."""
    return len(_KEPT)


class _Pickler(pickle.Pickler):
    """Stores a frozen slotted dataclass as a call of its own `__init__` with its field
    values: loading then runs the class's generated constructor, half the time of the
    `__setstate__` dataclasses gives such classes (it looks the fields up again for every
    object, and a 1,000-step graph holds some 16,000 of them). Classes whose constructor
    does more than set its fields in order (`__post_init__`, fields left out of `__init__`
    or keyword-only) keep the default."""

    def reducer_override(self, obj: object) -> Any:
        cls = type(obj)
        names = _CONSTRUCTOR_FIELDS.get(cls, _MISSING)
        if names is _MISSING:
            names = _CONSTRUCTOR_FIELDS[cls] = _constructor_fields(cls)
        if names is None:
            return NotImplemented
        return cls, tuple(getattr(obj, name) for name in names)


#: per class, what _constructor_fields said
_CONSTRUCTOR_FIELDS: dict[type, tuple[str, ...] | None] = {}
_MISSING: Any = object()


def _constructor_fields(cls: type) -> tuple[str, ...] | None:
    """The fields `cls(*values)` takes, in order, when that call rebuilds an instance
    exactly; else None."""
    if not (dataclasses.is_dataclass(cls) and "__slots__" in cls.__dict__):
        return None
    if hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    if not all(field.init and field.kw_only is not True for field in fields):
        return None
    return tuple(field.name for field in fields)


def _dumps(entry: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(entry)
    return buffer.getvalue()


def _entry_key(path: str | Path, root: str | Path | None, variant: str = "") -> str:
    """The entry's file name: a hash of everything the model depends on (and, for a compiled
    graph, of the compiler's other inputs, `variant`)."""
    digest = hashlib.sha256(_FORMAT)
    for part in (
        _code_stamp(),
        sys.version,
        os.getcwd(),
        str(path),
        "" if root is None else str(Path(root).resolve()),
        variant,
    ):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(Path(path).read_bytes())
    return digest.hexdigest()


@cache
def _code_stamp() -> str:
    """Size and modification time of every file of wfx's code and data, as one hash: a
    checkout that changes any of them (without a new version number) misses."""
    digest = hashlib.sha256()
    for path, size, modified in code_files():
        digest.update(f"{path}\0{size}\0{modified}\n".encode())
    return digest.hexdigest()


def code_files() -> list[tuple[str, int, int]]:
    """(path, size, modification time) of every file of wfx's code and data, in order."""
    package = Path(__file__).resolve().parent.parent
    found: list[tuple[str, int, int]] = []
    for folder in (package, data_dir("schema"), data_dir("grammar")):
        found.extend(sorted(_code_files(str(folder))))
    return found


def _code_files(folder: str) -> Iterator[tuple[str, int, int]]:
    """(path, size, modification time) of each file of code or data under `folder`, without
    descending into `__pycache__` (os.scandir: a pathlib walk costs several milliseconds
    of every start)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir() and entry.name != "__pycache__":
                yield from _code_files(entry.path)
            elif entry.name.endswith(_CODE_SUFFIXES) and entry.is_file():
                info = entry.stat()
                yield entry.path, info.st_size, info.st_mtime_ns


def _file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _unchanged(files: list[tuple[str, str]]) -> bool:
    try:
        return all(_file_hash(name) == digest for name, digest in files)
    except OSError:
        return False
