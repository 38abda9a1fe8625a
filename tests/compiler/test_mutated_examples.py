"""Every example, mutated at random (a value replaced by a hostile one, a key dropped or
added, a step copied, a character inserted), gets diagnostics or a plan: never an
exception. This is how retries of `3.0`, of 2**63 and of `factor: 1e300`, `.nan`
numbers and a NUL in a file name were found crashing `wfx validate`."""

from __future__ import annotations

import copy
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx import api
from wfx.diagnostics import DiagnosticsError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    yaml.safe_load(path.read_text())
    for path in sorted((ROOT / "examples").glob("*.yaml"))
    if path.parent.name != "invalid"
]
KEYS = [
    "id",
    "run",
    "cmd",
    "uses",
    "with",
    "needs",
    "retries",
    "timeout",
    "condition",
    "onError",
    "rollback",
    "type",
    "steps",
    "env",
    "outputs",
    "inputs",
    "forEach",
    "matrix",
    "maxParallel",
    "shell",
    "workingDirectory",
    "defaults",
    "concurrency",
    "continueOn",
    "killGrace",
    "backoff",
    "delay",
    "jitter",
    "factor",
    "max",
    "maxDelay",
    "deadline",
    "on",
    "except",
    "default",
    "required",
    "enum",
    "pattern",
    "name",
    "envFile",
    "executor",
    "resources",
    "groupRetries",
]
HOSTILE: list[Any] = [
    None, 0, -1, 3.0, 2**63, 1e308, float("inf"), float("nan"), True, "", "x" * 3000,
    "\x00", "a\x00b", "\x1b]0;t\x07", "\u202e", "1s", "-1s", ".inf", "fail", "continue",
    "parallel", "sequential", "python:os:system", "../x", "{0}", "python3 {0}", "bash {0}",
    "${{", "}}", "${{ }}", "${{ inputs }}", "${{ steps.x.outputs.y }}", "${{ 1/0 }}",
    "${{ fromJSON('[') }}", "${{ format('{0}{1}', 1) }}", "${{ matrix }}", "${{ item }}",
    "${{ toJSON(steps) }}", "${{ a.b.c.d }}", "${{ secrets.T }}", "${{ fromJSON('1e999') }}",
    "${{ (((((((((((1))))))))))) }}", "${{ hashFiles('**') }}", "${{ always() }}",
    [], {}, [1, "a"], {"a": 1},
]  # fmt: skip


def _places(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _places(value, (*path, index))


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def mutated(document: Any, rng: random.Random) -> Any:
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 4)):
        places = [place for place in _places(document) if place[0]]
        path, node = rng.choice(places)
        parent, key = _at(document, path[:-1]), path[-1]
        move = rng.random()
        if move < 0.4:
            parent[key] = copy.deepcopy(rng.choice(HOSTILE))
        elif move < 0.55:
            del parent[key]
        elif move < 0.7 and isinstance(node, dict):
            node[rng.choice(KEYS)] = copy.deepcopy(rng.choice(HOSTILE))
        elif move < 0.8 and isinstance(parent, list):
            parent.insert(rng.randint(0, len(parent)), copy.deepcopy(node))
        elif move < 0.9:
            parent[key] = copy.deepcopy(rng.choice(places)[1])
        elif isinstance(node, str) and node:
            cut = rng.randrange(len(node))
            parent[key] = (
                node[:cut] + rng.choice(["${{", "}}", "'", '"', "$(", "\n", "#"]) + node[cut:]
            )
    return document


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(example=st.sampled_from(EXAMPLES), seed=st.integers(0, 2**32 - 1))
def test_a_mutated_example_gets_diagnostics_or_a_plan(example: Any, seed: int) -> None:
    text = yaml.safe_dump(mutated(example, random.Random(seed)), sort_keys=False)
    checked = api.check_text(text, "mutated.yaml")
    if checked.compilation is None:
        assert checked.diagnostics
        return
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "mutated.yaml")
        path.write_text(text)
        try:
            api.plan(path)
        except DiagnosticsError as problem:  # inputs a plan needs and the check did not
            assert problem.diagnostics


#: where a setting can stand: on a step, on a group, in `defaults`, on the workflow
PLACES = {
    "step": lambda key, value: {"wfx": 1, "steps": [{"id": "a", "run": "true", key: value}]},
    "group": lambda key, value: {
        "wfx": 1,
        "steps": [{"id": "g", "type": "parallel", key: value, "steps": [{"run": "true"}]}],
    },
    "defaults": lambda key, value: {
        "wfx": 1,
        "defaults": {key: value},
        "steps": [{"id": "a", "run": "true"}],
    },
    "workflow": lambda key, value: {"wfx": 1, key: value, "steps": [{"run": "true"}]},
    "retry policy": lambda key, value: {
        "wfx": 1,
        "steps": [{"id": "a", "run": "true", "retries": {"max": 2, key: value}}],
    },
}


def test_every_hostile_value_of_every_key_in_every_place_gets_diagnostics_or_a_plan() -> None:
    """The grid the random mutations sample: each key, each hostile value, each place."""
    crashes = []
    for place, build in PLACES.items():
        for key in KEYS:
            for value in HOSTILE:
                text = yaml.safe_dump(build(key, value), sort_keys=False)
                try:
                    api.check_text(text, "grid.yaml")
                except Exception as problem:
                    crashes.append(f"{place} {key}: {value!r}: {type(problem).__name__}")
    assert not crashes, "\n".join(crashes)
