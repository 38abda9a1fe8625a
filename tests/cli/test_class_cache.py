"""The cache of the code `dataclasses` compiles (wfx.runtime.classcache): a second `wfx` process
compiles none of it again, the classes it makes behave exactly as compiled ones, and a
file this user's key did not sign is never loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest import MonkeyPatch

from wfx.runtime import classcache

#: makes wfx's classes through the command line's start-up, then reports what the cache did
_PROBE = """
import json, sys
import wfx.cli
import wfx.runtime.engine, wfx.runtime.journal, wfx.compiler, wfx.runtime.modelcache
from wfx.runtime import classcache
print(json.dumps({"compiled": len(classcache._compiled), "known": len(classcache._known)}))
"""

#: the behaviour of a dataclass's generated methods, as data that can be compared
_BEHAVIOUR = """
import dataclasses, inspect, json, sys
import wfx.cli
from dataclasses import dataclass, field

@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: "list[int]" = field(default_factory=list)
    label: str = "p"

p, q = Point(1, [2]), Point(1, [2])
try:
    p.x = 3
    frozen = "no"
except dataclasses.FrozenInstanceError as exc:
    frozen = type(exc).__name__
try:
    hash(p)
    hashable = "yes"
except TypeError as exc:
    hashable = str(exc)
print(json.dumps({
    "repr": repr(p), "eq": p == q, "ne": p != Point(2), "hash": hashable, "frozen": frozen,
    "signature": str(inspect.signature(Point)),
    "annotations": {k: str(v) for k, v in Point.__init__.__annotations__.items()},
    "default": Point(0).y, "replace": repr(dataclasses.replace(p, x=5)),
    "installed": getattr(dataclasses, "exec", None) is not None,
}))
"""


def _python(code: str, home: Path, **env: str) -> dict[str, object]:
    dropped = ("WFX_NO_CACHE", "PYTHONDONTWRITEBYTECODE")
    environ = {k: v for k, v in os.environ.items() if k not in dropped}
    environ |= {"XDG_CACHE_HOME": str(home), **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_second_process_compiles_none_of_the_code_again(tmp_path: Path) -> None:
    first = _python(_PROBE, tmp_path)
    assert first["known"] == 0
    assert isinstance(first["compiled"], int) and first["compiled"] > 300
    second = _python(_PROBE, tmp_path)
    assert second["compiled"] == 0
    assert isinstance(second["known"], int) and second["known"] >= first["compiled"]


def test_classes_made_from_the_cache_behave_as_compiled_ones(tmp_path: Path) -> None:
    compiled = _python(_BEHAVIOUR, tmp_path, WFX_NO_CACHE="1")
    assert compiled["installed"] is False
    _python(_BEHAVIOUR, tmp_path)  # fills the cache
    cached = _python(_BEHAVIOUR, tmp_path)
    assert cached["installed"] is True
    assert {**cached, "installed": False} == compiled


def test_a_file_this_users_key_did_not_sign_is_never_loaded(tmp_path: Path) -> None:
    first = _python(_PROBE, tmp_path)
    (cache,) = (tmp_path / "wfx").glob("classes-*.bin")
    signed = cache.read_bytes()
    cache.write_bytes(bytes(32) + signed[32:])  # the same code, someone else's signature
    assert _python(_PROBE, tmp_path) == {"compiled": first["compiled"], "known": 0}  # all again


def test_turned_off_it_reads_and_writes_nothing(tmp_path: Path) -> None:
    assert _python(_PROBE, tmp_path, WFX_NO_CACHE="1") == {"compiled": 0, "known": 0}
    assert not list((tmp_path / "wfx").glob("classes-*.bin"))


def test_nothing_is_written_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    """`wfx plan` writes nothing: its side-effect test runs with PYTHONDONTWRITEBYTECODE."""
    assert _python(_PROBE, tmp_path, PYTHONDONTWRITEBYTECODE="1")["known"] == 0
    assert not list((tmp_path / "wfx").glob("classes-*.bin"))


def test_a_process_that_writes_the_cache_adds_the_classes_plan_needs(tmp_path: Path) -> None:
    """`wfx plan` writes nothing, so the code of its classes comes from the processes that
    may write (a `wfx run`): they import the plan's modules first."""
    _python(_PROBE, tmp_path)
    planning = (
        "import json, wfx.cli, wfx.plan, wfx.render.plan_text, wfx.render.plan_diff\n"
        "from wfx.runtime import classcache\n"
        "print(json.dumps({'compiled': len(classcache._compiled)}))"
    )
    assert _python(planning, tmp_path, PYTHONDONTWRITEBYTECODE="1") == {"compiled": 0}


def test_filled_on_request_where_python_writes_no_bytecode(tmp_path: Path) -> None:
    """`python -m wfx.runtime.classcache` (which `make test` runs, as it runs `compileall`)
    writes the cache even with PYTHONDONTWRITEBYTECODE, as `compileall` writes bytecode:
    then a process of wfx's commands, which writes nothing there, compiles nothing."""
    environ = {k: v for k, v in os.environ.items() if k != "WFX_NO_CACHE"}
    environ |= {"XDG_CACHE_HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "wfx.runtime.classcache"],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    assert "texts in" in done.stdout and str(tmp_path) in done.stdout
    assert list((tmp_path / "wfx").glob("classes-*.bin"))
    probe = _python(_PROBE, tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert probe["compiled"] == 0
    assert isinstance(probe["known"], int) and probe["known"] > 300


def test_a_text_unused_for_keep_for_writes_is_dropped_and_one_in_use_is_kept() -> None:
    known = {
        "stale": (4, b"s"),  # last used by write 4: write 20 is the 16th since
        "recent": (5, b"r"),  # another command's, used by write 5: kept
        "mine": (1, b"m"),  # old, but this process used it: kept, as used by write 20
    }
    entries = classcache.kept(known, {"mine"}, {"new": b"n"}, 4 + classcache.KEEP_FOR)
    assert entries == {"recent": (5, b"r"), "mine": (20, b"m"), "new": (20, b"n")}


def test_past_max_entries_only_this_processs_own_are_kept(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(classcache, "MAX_ENTRIES", 2)
    known = {"other": (9, b"o"), "mine": (9, b"m")}
    assert classcache.kept(known, {"mine"}, {"new": b"n"}, 10) == {
        "mine": (10, b"m"),
        "new": (10, b"n"),
    }


#: writes the cache file as a process that used none of its texts for KEEP_FOR writes
#: would leave it: every entry last used `AGE` writes ago, plus one text nobody makes
_AGE_THE_FILE = """
import json, marshal, sys
from wfx.runtime import classcache, userkey
path = classcache.cache_file()
writes, entries = classcache._read(path)
aged = {text: (0, code) for text, (_, code) in entries.items()}
aged["# a class of an older wfx"] = (0, marshal.dumps(compile("pass", "<s>", "exec")))
payload = marshal.dumps((classcache._FORMAT, sys.version, AGE, aged))
path.write_bytes(userkey.sign(payload) + payload)
print(json.dumps({"entries": len(aged)}))
"""

_FILE_NOW = """
import json
from wfx.runtime import classcache
writes, entries = classcache._read(classcache.cache_file())
print(json.dumps({"writes": writes, "texts": sorted(entries)}))
"""


def test_a_process_writing_the_cache_drops_what_nobody_used_for_keep_for_writes(
    tmp_path: Path,
) -> None:
    """The file does not grow with every version of wfx's classes: a text no writing
    process used for KEEP_FOR writes is gone after the next write, and what the writing
    process used stays."""
    _python(_PROBE, tmp_path)
    _python(_AGE_THE_FILE.replace("AGE", str(classcache.KEEP_FOR - 1)), tmp_path)
    new_class = "from dataclasses import dataclass\n@dataclass\nclass Fresh:\n    x: int\n"
    _python(_PROBE.replace("import wfx.cli\n", "import wfx.cli\n" + new_class), tmp_path)
    now = _python(_FILE_NOW, tmp_path)
    assert now["writes"] == classcache.KEEP_FOR
    texts = now["texts"]
    assert isinstance(texts, list)
    assert "# a class of an older wfx" not in texts
    assert len(texts) > 300  # the run's own classes, which it used
    assert _python(_PROBE, tmp_path)["compiled"] == 0  # and nothing is compiled again


#: signs a file of this layout whose every entry is something other than code
_SPOIL_THE_FILE = """
import json, marshal, sys
from wfx.runtime import classcache, userkey
path = classcache.cache_file()
writes, entries = classcache._read(path)
spoilt = {}
for number, text in enumerate(entries):
    spoilt[text] = [(writes, b"not marshal"), (writes, marshal.dumps(42)), b"x"][number % 3]
payload = marshal.dumps((classcache._FORMAT, sys.version, writes, spoilt))
path.write_bytes(userkey.sign(payload) + payload)
print(json.dumps({"entries": len(spoilt)}))
"""


def test_entries_that_are_not_code_are_misses_not_a_crash(tmp_path: Path) -> None:
    """Even in a file this user's key signed, an entry that does not unmarshal to code is
    compiled again, as if it were not there."""
    first = _python(_PROBE, tmp_path)
    spoilt = _python(_SPOIL_THE_FILE, tmp_path)["entries"]
    assert isinstance(spoilt, int) and spoilt >= first["compiled"]
    again = _python(_PROBE, tmp_path)
    assert again["compiled"] == first["compiled"]
    assert _python(_BEHAVIOUR, tmp_path)["installed"] is True


#: writes the cache, then, like each copy a warm server forks once it wrote it, makes a
#: new class and writes again, KEEP_FOR + 1 times; reports whether the first texts stay
_WRITES_AGAIN_AND_AGAIN = """
import json
import wfx.cli
from dataclasses import make_dataclass
from wfx.runtime import classcache
classcache.save()
first = set(classcache._read(classcache.cache_file())[1])
for number in range(classcache.KEEP_FOR + 1):
    make_dataclass(f"Fresh{number}", [(f"field{number}", int)])
    classcache.save()
writes, entries = classcache._read(classcache.cache_file())
print(json.dumps({"writes": writes, "lost": len(first - set(entries)), "first": len(first)}))
"""


def test_what_a_process_used_before_it_wrote_is_never_aged_by_its_later_writes(
    tmp_path: Path,
) -> None:
    """A warm server writes the cache, then forks a copy per command: a copy that writes it
    again (it made a class of its own) still runs on every class the server made."""
    found = _python(_WRITES_AGAIN_AND_AGAIN, tmp_path)
    assert found["writes"] == classcache.KEEP_FOR + 2
    assert isinstance(found["first"], int) and found["first"] > 300
    assert found["lost"] == 0
