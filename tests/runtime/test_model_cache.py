"""The model cache: a hit spares reading and checking an unchanged workflow; every change
that could make the model differ is a miss; an entry nobody but this user signed is
never unpickled; plan reads it but never writes it."""

from __future__ import annotations

import gc
import hashlib
import hmac
import os
import pickle
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wfx import api
from wfx.runtime import modelcache, userkey
from wfx.runtime.modelcache import CachedModel, ModelCache

WORKFLOW = """\
wfx: 1
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    run: echo "hello ${{ inputs.who }}"
"""


@pytest.fixture(autouse=True)
def private_key_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(modelcache.DISABLE_VARIABLE, raising=False)
    userkey.secret.cache_clear()
    yield
    userkey.secret.cache_clear()
    modelcache._code_stamp.cache_clear()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    return tmp_path


class Counting:
    """Counts how often the file is really read and checked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        real = api.load_document

        def load_document(path: Any) -> Any:
            self.reads += 1
            return real(path)

        monkeypatch.setattr(api, "load_document", load_document)


def entries(project: Path) -> list[Path]:
    folder = project / ".wfx" / modelcache.FOLDER
    return (
        sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    )


def model(project: Path, update: bool = True, path: str = "wf.yaml") -> Any:
    """The model through the cache; with `update`, stored as `wfx run` stores it."""
    workflow, problems = api.checked_model(path, project / ".wfx")
    if update and not problems:
        api.remember_model(path, project / ".wfx", workflow)
    return workflow, problems


def test_an_unchanged_file_is_read_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    first, _ = model(project)
    second, _ = model(project)
    assert counting.reads == 1
    assert second == first
    assert len(entries(project)) == 1


def test_a_changed_file_misses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    model(project)
    (project / "wf.yaml").write_text(WORKFLOW.replace("hello", "goodbye"))
    changed, _ = model(project)
    assert counting.reads == 2
    assert "goodbye" in str(changed.steps[0].action.run)


def test_the_same_file_named_another_way_misses(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions in the model name the file as the command line did."""
    counting = Counting(monkeypatch)
    model(project)
    by_path, _ = model(project, path="./wf.yaml")
    assert counting.reads == 2
    assert by_path.file == "./wf.yaml"
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    model(project, path="../wf.yaml")
    assert counting.reads == 3


def test_a_change_to_wfx_or_its_schema_misses(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counting = Counting(monkeypatch)
    model(project)
    schema_copy = tmp_path / "schema"
    schema_copy.mkdir()
    original = modelcache.data_dir("schema")
    for file in original.iterdir():
        (schema_copy / file.name).write_bytes(file.read_bytes())
    monkeypatch.setattr(
        modelcache,
        "data_dir",
        lambda kind: schema_copy if kind == "schema" else original.parent / kind,
    )
    modelcache._code_stamp.cache_clear()
    model(project)  # the stamp now covers the copy: other modification times, a miss
    assert counting.reads == 2
    model(project)
    assert counting.reads == 2
    (schema_copy / "workflow.schema.json").write_text(
        (schema_copy / "workflow.schema.json").read_text() + " "
    )
    modelcache._code_stamp.cache_clear()
    model(project)
    assert counting.reads == 3


def test_another_python_misses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    model(project)
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    model(project)
    assert counting.reads == 2


def test_a_changed_included_file_misses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = project / "child.yaml"
    other.write_text("wfx: 1\nsteps: [{id: a, run: 'true'}]\n")
    store = ModelCache.at(project / ".wfx")
    assert store is not None
    workflow, problems = model(project, update=False)
    store.store("wf.yaml", None, CachedModel(workflow, problems), [other])
    assert store.load("wf.yaml", None) is not None
    other.write_text("wfx: 1\nsteps: [{id: b, run: 'true'}]\n")
    assert store.load("wf.yaml", None) is None
    other.unlink()
    assert store.load("wf.yaml", None) is None


def test_inputs_are_not_in_the_key_but_reach_the_plan(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(monkeypatch)
    model(project)
    _, plan_bob = api.plan_file("wf.yaml", {"who": "bob"}, cache=project / ".wfx")
    _, plan_cy = api.plan_file("wf.yaml", {"who": "cy"}, cache=project / ".wfx")
    assert counting.reads == 1
    assert "bob" in repr(plan_bob)
    assert "cy" in repr(plan_cy)
    assert "bob" not in repr(plan_cy)


class Trap:
    """Unpickling this creates the file named: proof that an entry was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (self.path,))


def test_an_entry_not_signed_with_this_users_key_is_never_unpickled(project: Path) -> None:
    model(project)
    [entry] = entries(project)
    proof = project / "unpickled"
    payload = pickle.dumps({"workflow": Trap(proof), "problems": [], "files": []})
    entry.write_bytes(b"\0" * 32 + payload)
    assert api.checked_model("wf.yaml", project / ".wfx")[0].file == "wf.yaml"
    assert not proof.exists()
    # signed with another user's key: the same
    userkey.secret.cache_clear()
    os.environ["XDG_CACHE_HOME"] = str(project / "elsewhere")
    forged = modelcache._sign(payload) + payload
    userkey.secret.cache_clear()
    os.environ["XDG_CACHE_HOME"] = str(project.parent / "xdg")
    entry.write_bytes(forged)
    api.checked_model("wf.yaml", project / ".wfx")
    assert not proof.exists()


def test_a_damaged_entry_is_a_miss(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting(monkeypatch)
    model(project)
    [entry] = entries(project)
    entry.write_bytes(entry.read_bytes()[:-10])
    model(project)
    entry.write_bytes(b"")
    model(project)
    assert counting.reads == 3


def test_a_key_others_can_read_turns_the_cache_off(project: Path, tmp_path: Path) -> None:
    model(project)
    key = tmp_path / "xdg" / "wfx" / "cache.key"
    assert key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)
    userkey.secret.cache_clear()
    for entry in entries(project):
        entry.unlink()
    model(project)
    assert entries(project) == []


def test_no_cache_when_turned_off(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(modelcache.DISABLE_VARIABLE, "1")
    model(project)
    assert entries(project) == []


def test_a_model_with_errors_is_not_stored(project: Path) -> None:
    (project / "wf.yaml").write_text(WORKFLOW.replace("inputs.who", "inputs.who +"))
    _, problems = model(project)
    assert problems
    assert entries(project) == []


def wfx(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(project.parent / "xdg")}
    env.pop("WFX_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )


def test_run_writes_the_cache_and_plan_only_reads_it(project: Path) -> None:
    assert wfx(project, "plan", "wf.yaml").returncode == 0
    assert entries(project) == []
    assert wfx(project, "run", "--no-journal", "wf.yaml").returncode == 0
    assert entries(project) == []
    first = wfx(project, "run", "wf.yaml", "-i", "who=ada")
    assert first.returncode == 0, first.stderr
    assert "hello ada" in first.stdout
    assert len(entries(project)) == 2  # the model, and the graph compiled with who=ada
    again = wfx(project, "run", "wf.yaml", "-i", "who=bob")
    assert "hello bob" in again.stdout
    assert len(entries(project)) == 3
    plan = wfx(project, "plan", "wf.yaml", "-i", "who=cy")
    assert "hello cy" in plan.stdout
    plan = wfx(project, "plan", "wf.yaml", "-i", "who=ada")
    assert "hello ada" in plan.stdout
    assert len(entries(project)) == 3


def test_env_files_are_read_afresh_and_never_cached(project: Path) -> None:
    """The cache holds the model before the env files are read into it: a changed env file
    is seen at once, and no value from one (a secret least of all) is ever stored."""
    (project / "wf.yaml").write_text(
        "wfx: 1\nsecrets: [TOKEN]\nenvFile: vars.env\n"
        'steps:\n  - id: show\n    run: echo "plain=$PLAIN token=${#TOKEN}"\n'
    )
    (project / "vars.env").write_text("PLAIN=first-plain-value\nTOKEN=s3cr3t-token-value\n")
    first = wfx(project, "run", "wf.yaml")
    assert first.returncode == 0, first.stderr
    assert "plain=first-plain-value token=18" in first.stdout
    (project / "vars.env").write_text("PLAIN=second-plain-value\nTOKEN=another-token\n")
    second = wfx(project, "run", "wf.yaml")
    assert "plain=second-plain-value token=13" in second.stdout
    [entry] = entries(project)
    stored = entry.read_bytes()
    for value in (b"first-plain-value", b"second-plain-value", b"s3cr3t-token", b"another-token"):
        assert value not in stored


class CountingCompiler:
    """Counts how often a workflow is really compiled."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from wfx import compiler

        self.compiled = 0
        real = compiler.compile_workflow

        def compile_workflow(*args: Any, **kwargs: Any) -> Any:
            self.compiled += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(compiler, "compile_workflow", compile_workflow)


def compiled(project: Path, inputs: dict[str, Any] | None = None, path: str = "wf.yaml") -> Any:
    """A compilation through the cache, stored as `wfx run` stores it."""
    fresh: list[Any] = []
    compilation = api.compile_file(
        path, inputs, cache=project / ".wfx", on_fresh_compilation=fresh.append
    )
    for made in fresh:
        api.remember_compilation(path, project / ".wfx", made, inputs)
    return compilation


def test_the_graph_compiled_with_the_same_inputs_is_taken_from_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingCompiler(monkeypatch)
    first = compiled(project, {"who": "ada"})
    second = compiled(project, {"who": "ada"})
    assert counting.compiled == 1
    assert second.graph == first.graph
    assert second.graph.inputs == {"who": "ada"}


def test_other_inputs_compile_again_and_reach_the_graph(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingCompiler(monkeypatch)
    compiled(project, {"who": "ada"})
    other = compiled(project, {"who": "bob"})
    default = compiled(project)
    assert counting.compiled == 3
    assert other.graph.inputs == {"who": "bob"}
    assert default.graph.inputs == {"who": "world"}
    assert compiled(project, {"who": "bob"}).graph.inputs == {"who": "bob"}
    assert counting.compiled == 3


def test_a_changed_file_compiles_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingCompiler(monkeypatch)
    compiled(project)
    (project / "wf.yaml").write_text(WORKFLOW.replace("hello", "goodbye"))
    assert "goodbye" in repr(compiled(project).graph)
    assert counting.compiled == 2


def test_a_graph_is_kept_only_without_env_files_and_sub_workflows(project: Path) -> None:
    """Env files may hold secrets, which never reach the disk; a sub-workflow's file would
    need checking too. Such graphs are compiled every time (their models are cached)."""
    (project / "vars.env").write_text("A=1\n")
    (project / "child.yaml").write_text("wfx: 1\nsteps: [{id: c, run: 'true'}]\n")
    variants = {
        "env.yaml": "wfx: 1\nenvFile: vars.env\nsteps: [{id: a, run: 'true'}]\n",
        "step-env.yaml": "wfx: 1\nsteps: [{id: a, run: 'true', envFile: vars.env}]\n",
        "calls.yaml": "wfx: 1\nsteps: [{id: a, uses: ./child.yaml}]\n",
    }
    for name, text in variants.items():
        (project / name).write_text(text)
        compiled(project, path=name)
    assert entries(project) == []
    compiled(project)
    assert len(entries(project)) == 1


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (Path(__file__).parents[2] / "examples").glob("*.yaml"))
)
def test_a_stored_graph_loads_equal_to_the_compiled_one(example: str) -> None:
    """The cache stores slotted dataclasses as calls of their constructors: every graph of
    the examples comes back equal, field for field, classes with a __post_init__ too."""
    path = Path(__file__).parents[2] / "examples" / example
    graph = api.compile_file(path, require_inputs=False).graph
    entry = {"graph": graph, "warnings": [], "files": []}
    assert pickle.loads(modelcache._dumps(entry))["graph"] == graph


@pytest.mark.parametrize(
    "example", sorted(p.name for p in (Path(__file__).parents[2] / "examples").glob("*.yaml"))
)
def test_a_loaded_graph_holds_no_reference_cycle(example: str) -> None:
    """The warm server keeps entries set aside from the garbage collector (gc.freeze); one
    it lets go of is freed by reference counting alone only while entries hold no cycle
    (docs/server.md, "Workflows kept in memory")."""
    path = Path(__file__).parents[2] / "examples" / example
    graph = api.compile_file(path, require_inputs=False).graph
    payload = modelcache._dumps({"graph": graph, "warnings": [], "files": []})
    # Every object made before the load is set aside, so the collection below looks at
    # the loaded graph's objects alone, not at the whole heap of the test process.
    gc.freeze()
    try:
        loaded = pickle.loads(payload)
        held = _tracked_ids_reachable_from(loaded)
        del loaded
        # Other threads of the test process may leave garbage of their own: only the
        # loaded graph's objects count, so the collector saves what it finds for us.
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            cyclic = [obj for obj in gc.garbage if id(obj) in held]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    finally:
        gc.unfreeze()
    assert cyclic == []


_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)


def _tracked_ids_reachable_from(root: object) -> set[int]:
    """The ids of every object the collector tracks that `root` reaches, itself included,
    short of classes, modules and functions (through them, the whole heap is reachable)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        obj = pending.pop()
        if id(obj) in seen or not gc.is_tracked(obj) or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        pending.extend(gc.get_referents(obj))
    return seen


def test_only_plain_constructors_rebuild_objects() -> None:
    """A class whose constructor does more than set its fields keeps pickle's default."""
    from wfx.diagnostics import Span
    from wfx.expr.ast import Literal, NamedValue
    from wfx.graph import Setting

    assert modelcache._constructor_fields(Span) is not None
    assert modelcache._constructor_fields(Setting) is not None
    assert modelcache._constructor_fields(Literal) is None  # __post_init__ converts ints
    assert modelcache._constructor_fields(NamedValue) is None  # keyword-only position fields
    assert modelcache._constructor_fields(CachedModel) is None  # not slotted


# -- entries the warm server keeps in memory (docs/server.md, "Workflows kept in memory") --


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's memory of entries, empty, and emptied again after the test."""
    monkeypatch.setattr(modelcache, "_KEPT", {})
    monkeypatch.setattr(modelcache, "_UNPICKLED", [])


def _unpickling_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_payload: bytes) -> Any:
        raise AssertionError("unpickled")

    monkeypatch.setattr(modelcache.pickle, "loads", refuse)


def test_a_kept_entry_is_served_from_memory_without_unpickling(
    project: Path, memory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingCompiler(monkeypatch)
    first = compiled(project)
    compiled(project)  # from the file: unpickled, and named for the server
    named, key = modelcache.unpickled()
    assert named == [str(entries(project)[0])]
    assert key == str(project / "xdg" / "wfx" / "cache.key")
    assert modelcache.keep(named[0], key)
    assert not modelcache.keep(named[0], key)  # kept once
    assert modelcache.kept() == 1
    _unpickling_fails(monkeypatch)
    again = compiled(project)
    assert again.graph == first.graph
    assert counting.compiled == 1
    assert modelcache.unpickled()[0] == named  # nothing unpickled since


def test_memory_serves_only_the_same_bytes_signed_with_the_readers_own_key(
    project: Path, memory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled(project)
    [entry] = entries(project)
    assert modelcache.keep(str(entry), modelcache.unpickled()[1])
    counting = CountingCompiler(monkeypatch)
    signed = entry.read_bytes()
    # the kept payload under a signature that does not check: a miss, compiled afresh
    entry.write_bytes(bytes(32) + signed[32:])
    compiled(project)
    assert counting.compiled == 1
    # the same bytes, read by a process with another key: a miss too
    entry.write_bytes(signed)
    monkeypatch.setenv("XDG_CACHE_HOME", str(project / "other-key"))
    userkey.secret.cache_clear()
    compiled(project)
    assert counting.compiled == 2


def test_keep_unpickles_only_what_the_named_key_signed(
    project: Path, memory: None, tmp_path: Path
) -> None:
    model(project)
    [entry] = entries(project)
    key = modelcache.unpickled()[1]
    proof = project / "unpickled"
    payload = pickle.dumps({"workflow": Trap(proof), "problems": [], "files": []})
    signature = entry.read_bytes()[:32]
    entry.write_bytes(signature + payload)  # a payload swapped under a real signature
    assert not modelcache.keep(str(entry), key)
    entry.write_bytes(modelcache._sign(payload) + payload)  # signed, but not with `key`
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    assert not modelcache.keep(str(entry), str(other))
    signature = hmac.new(other.read_bytes(), payload, hashlib.sha256).digest()
    entry.write_bytes(signature + payload)  # signed with `other`, which others can read
    other.chmod(0o644)
    assert not modelcache.keep(str(entry), str(other))
    assert not modelcache.keep(str(entry), key.replace("cache.key", "nope.key"))
    assert not modelcache.keep(str(project / "no-such-entry"), key)
    assert not proof.exists()
    assert modelcache.kept() == 0


def test_memory_keeps_the_newest_entries_within_its_bounds(
    project: Path, memory: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for who in ("ada", "bob", "cy"):
        compiled(project, {"who": who})
        compiled(project, {"who": who})
    named, key = modelcache.unpickled()
    assert len(named) == 3
    monkeypatch.setattr(modelcache, "KEEP_ENTRIES", 2)
    assert all(modelcache.keep(entry, key) for entry in named)
    assert modelcache.kept() == 2
    _unpickling_fails(monkeypatch)
    assert compiled(project, {"who": "cy"}).graph.inputs == {"who": "cy"}
    cache = modelcache.ModelCache(project / ".wfx" / modelcache.FOLDER)
    assert cache._read(lambda: Path(named[0]).name) is None  # the oldest went: unpickling
    assert cache._read(lambda: Path(named[1]).name) is not None
    monkeypatch.setattr(modelcache, "KEEP_ENTRIES", 16)
    monkeypatch.setattr(modelcache, "KEEP_BYTES", 10)
    modelcache._KEPT.clear()
    assert not modelcache.keep(named[0], key)  # bigger than all the memory may hold
