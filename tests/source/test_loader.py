"""The YAML source stage: positions, YAML 1.2 scalars, duplicate keys and hostile files (T15)."""

from __future__ import annotations

import resource

import pytest

from wfx.diagnostics import DiagnosticsError
from wfx.source import MAX_BYTES, loads


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(DiagnosticsError) as caught:
        loads(text, "t.yaml")
    return [
        f"{d.span.line}:{d.span.column} {d.message}" for d in caught.value.diagnostics if d.span
    ]


def test_positions_of_keys_and_values_are_one_based() -> None:
    doc = loads("wfx: 1\nsteps:\n  - id: a\n    run: echo hi\n", "t.yaml")
    run = doc.positions.value(("steps", 0, "run"))
    key = doc.positions.key(("steps", 0, "run"))
    assert (run.line, run.column) == (4, 10)
    assert (key.line, key.column) == (4, 5)


def test_missing_path_falls_back_to_nearest_ancestor() -> None:
    doc = loads("wfx: 1\nsteps:\n  - id: a\n", "t.yaml")
    span = doc.positions.value(("steps", 0, "nope", 3))
    assert (span.line, span.column) == (3, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on", "on"),
        ("no", "no"),
        ("yes", "yes"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("12", 12),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5e3", 1500.0),
        ("'1'", "1"),
        ("1_000", "1_000"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, expected: object) -> None:
    assert loads(f"v: {text}\n", "t.yaml").data["v"] == expected


def test_keys_stay_text_even_when_they_look_like_booleans() -> None:
    assert loads("on: 1\ntrue: 2\n", "t.yaml").data == {"on": 1, "true": 2}


def test_duplicate_keys_are_errors_pointing_at_the_second() -> None:
    assert problems("a: 1\nb: 2\na: 3\n") == ["3:1 duplicate key `a` (first defined at line 1)"]


def test_all_duplicate_keys_are_reported_at_once() -> None:
    assert len(problems("a: 1\na: 2\nb: 1\nb: 2\n")) == 2


def test_merge_keys_fill_in_without_overriding() -> None:
    doc = loads("base: &b {x: 1, y: 2}\nthis:\n  <<: *b\n  y: 3\n", "t.yaml")
    assert doc.data["this"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/new:os.system [echo pwned]",
        "!!python/name:os.system",
        "x: !!python/object/apply:os.system ['echo pwned']",
        "x: !custom 1",
        "!!binary aGVsbG8=",
        "x: !!set {a, b}",
    ],
)
def test_tags_other_than_core_scalars_are_refused(payload: str) -> None:
    found = problems(payload)
    assert len(found) == 1
    assert "is not allowed" in found[0]


def _billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghij"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def test_alias_bomb_is_refused_small() -> None:
    # how fast, against loading a plain file of its size: `python bench/run.py alias_bomb`
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = problems(_billion_laughs())
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    [message] = found
    assert message.startswith("7:8 the document expands to more than 1,000,000 values")
    assert grown_kib < 100 * 1024, f"alias bomb grew RSS by {grown_kib} KiB"


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_is_a_clean_error(opener: str) -> None:
    found = problems(opener * 100_000)
    assert len(found) == 1
    assert "depth" in found[0] or "nesting" in found[0]


def test_block_nesting_past_the_limit_is_refused() -> None:
    text = "".join("  " * depth + f"k{depth}:\n" for depth in range(150)) + "  " * 150 + "v\n"
    assert "nesting deeper than" in problems(text)[0]


def test_huge_file_is_refused_before_parsing() -> None:
    found = problems(b"a: " + b"x" * (MAX_BYTES + 10))
    assert "larger than" in found[0]


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01\x02\xff\xfe", b"\x89PNG\r\n\x1a\n\x00\x00", b"a: \x00", b"\xc3\x28"],
)
def test_binary_garbage_is_a_diagnostic(garbage: bytes) -> None:
    assert len(problems(garbage)) == 1


def test_syntax_errors_carry_a_position() -> None:
    assert problems("a: [1, 2\nb: 3\n")[0].startswith("2:")


def test_two_documents_are_an_error() -> None:
    assert "exactly one YAML document" in problems("a: 1\n---\nb: 2\n")[0]


def test_empty_file_is_none() -> None:
    assert loads("", "t.yaml").data is None
    assert loads("# only a comment\n", "t.yaml").data is None


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("wfx: 1\nsteps:\n  - run: echo a\x00b\n", "3:16"),
        ("a: 1\r\nb: '\x01'\r\n", "2:5"),
        ("\x00", "1:1"),
        ("a: [x,\n\n     \x7f]\n", "3:6"),
    ],
)
def test_a_control_character_is_reported_where_it_is(text: str, position: str) -> None:
    [found] = problems(text)
    assert found.startswith(f"{position} "), found
    assert "unacceptable character" in found
