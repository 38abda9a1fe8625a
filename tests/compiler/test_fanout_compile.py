"""Fan-out at compile time: GitHub's matrix semantics, instance ids, the `matrix`/`item`/
`index` checks with positions, the instance limit, and what the plan shows."""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wfx import api
from wfx.diagnostics import Severity
from wfx.fanout import TooManyInstancesError, expand_matrix
from wfx.render.plan_json import plan_to_dict

Write = Callable[[str], Path]


def errors(write: Write, text: str, inputs: dict[str, str] | None = None) -> list[str]:
    report = api.check([write(text)], inputs)
    return [
        f"{d.span.line}:{d.span.column} {d.message}"
        for d in report.diagnostics
        if d.severity is Severity.ERROR and d.span
    ]


def plan_dict(write: Write, text: str, inputs: dict[str, str] | None = None) -> dict[str, Any]:
    _, plan = api.plan_file(write(text), inputs)
    return plan_to_dict(plan)


# -- GitHub's matrix semantics -----------------------------------------------------------------


def test_github_documented_include_example() -> None:
    """The example of GitHub's docs ("Expanding or adding matrix configurations")."""
    found = expand_matrix(
        [("fruit", ["apple", "pear"]), ("animal", ["cat", "dog"])],
        include=[
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    )
    assert found == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_exclude_matches_partial_combinations_and_runs_before_include() -> None:
    found = expand_matrix(
        [("os", ["linux", "mac"]), ("py", [3.11, 3.12])],
        exclude=[{"os": "mac"}],
        include=[{"os": "mac", "py": 3.12}],
    )
    assert found == [
        {"os": "linux", "py": 3.11},
        {"os": "linux", "py": 3.12},
        {"os": "mac", "py": 3.12},
    ]


def _github(
    axes: list[tuple[str, list[int]]], include: list[dict[str, int]], exclude: list[dict[str, int]]
) -> list[dict[str, int]]:
    """GitHub's rules, written out independently: cross product, minus excludes, then each
    include added to every original combination it does not contradict (an axis value), else
    appended as a combination of its own."""
    names = [n for n, _ in axes]
    base = [dict(zip(names, values, strict=True)) for values in product(*(v for _, v in axes))]
    if not axes:
        base = []
    kept = [c for c in base if not any(all(c.get(k) == v for k, v in e.items()) for e in exclude)]
    merged = [dict(c) for c in kept]
    extra = []
    for entry in include:
        hits = [
            i
            for i, original in enumerate(kept)
            if all(original[k] == v for k, v in entry.items() if k in original)
        ]
        for i in hits:
            merged[i].update(entry)
        if not hits:
            extra.append(dict(entry))
    return merged + extra


_names = st.sampled_from(["a", "b", "c", "d"])
_values = st.integers(0, 2)


@settings(max_examples=200, deadline=None)
@given(
    axes=st.dictionaries(
        _names, st.lists(_values, min_size=1, max_size=3, unique=True), max_size=3
    ),
    include=st.lists(st.dictionaries(_names, _values, min_size=1, max_size=3), max_size=3),
    exclude=st.lists(st.dictionaries(_names, _values, min_size=1, max_size=2), max_size=3),
)
def test_a_random_matrix_is_the_cross_product_minus_excludes_plus_includes(
    axes: dict[str, list[int]], include: list[dict[str, int]], exclude: list[dict[str, int]]
) -> None:
    ordered = list(axes.items())
    assert expand_matrix(ordered, include, exclude) == _github(ordered, include, exclude)


def test_the_limit_is_checked_before_the_product_is_built() -> None:
    axes = [(name, list(range(100))) for name in "abcd"]  # 10^8 combinations
    try:
        expand_matrix(axes, limit=10_000)
    except TooManyInstancesError as exc:
        assert "100000000" in str(exc)
    else:
        raise AssertionError("expected TooManyInstancesError")


# -- ids, checks, limits -------------------------------------------------------------------------

MATRIX = """
wfx: 1
type: parallel
steps:
  - id: build
    matrix:
      service: [api, web, worker]
      python: ["3.11", "3.12"]
      exclude: [{service: worker, python: "3.11"}]
    maxParallel: 2
    run: echo "${{ matrix.service }}"
  - id: report
    needs: [build]
    run: echo "${{ steps.build.status }} ${{ steps['build[api,3.12]'].outputs.x }}"
"""


def test_matrix_instances_are_real_steps_named_by_their_values(workflow_file: Write) -> None:
    plan = plan_dict(workflow_file, MATRIX)
    ids = ["build[api,3.11]", "build[api,3.12]", "build[web,3.11]", "build[web,3.12]"]
    assert plan["stages"] == [[*ids, "build[worker,3.12]"], ["report"]]
    assert plan["steps"]["report"]["needs"] == [*ids, "build[worker,3.12]"]
    assert plan["steps"]["build[web,3.11]"]["action"]["run"] == 'echo "web"'
    fan_out = plan["fanOuts"]["build"]
    assert (fan_out["kind"], fan_out["dynamic"], fan_out["maxParallel"]) == ("matrix", False, 2)
    assert len(fan_out["instances"]) == 5


def test_an_unknown_axis_is_an_error_at_its_position(workflow_file: Write) -> None:
    text = MATRIX.replace("${{ matrix.service }}", "${{ matrix.servce }}")
    assert errors(workflow_file, text) == ["10:20 unknown matrix axis `servce` in `matrix.servce`"]


def test_item_outside_a_for_each_is_an_error(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: a
        run: echo "${{ item }}"
      - id: b
        matrix: {x: [1]}
        run: echo "${{ index }}"
      - id: c
        forEach: [1, 2]
        run: echo "${{ matrix.x }}"
    """
    found = errors(workflow_file, text)
    assert [f.split(" ")[0] for f in found] == ["4:20", "7:20", "10:20"]
    assert all("exists only inside" in f for f in found)


def test_steps_inside_a_fanned_out_group_see_its_matrix(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: svc
        matrix: {name: [api, web]}
        steps:
          - id: test
            run: echo "${{ matrix.name }}"
          - id: ship
            needs: [test]
            run: echo "${{ steps.test.outputs.x }}"
    """
    plan = plan_dict(workflow_file, text)
    assert plan["stages"] == [["test[api]", "test[web]"], ["ship[api]", "ship[web]"]]
    assert plan["steps"]["ship[web]"]["needs"] == ["test[web]"]
    assert plan["steps"]["ship[web]"]["groups"] == ["svc", "svc[web]"]


def test_for_each_over_an_input_expands_at_compile_time(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      regions: {type: string, default: '["eu","us"]'}
    steps:
      - id: deploy
        forEach: ${{ fromJSON(inputs.regions) }}
        run: echo "${{ item }} ${{ index }}"
    """
    plan = plan_dict(workflow_file, text)
    assert plan["stages"] == [["deploy[0]", "deploy[1]"]]
    assert plan["steps"]["deploy[1]"]["action"]["run"] == 'echo "us 1"'


def test_a_static_for_each_that_is_no_list_is_an_error_at_its_position(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    inputs:
      regions: {type: string, default: 'eu'}
    steps:
      - id: deploy
        forEach: ${{ inputs.regions }}
        run: echo "${{ item }}"
    """
    assert errors(workflow_file, text) == [
        "6:14 `forEach` must give a list; `${{ inputs.regions }}` gives a str"
    ]


def test_too_many_instances_is_an_error_and_max_instances_raises_the_limit(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    maxInstances: 5
    steps:
      - id: build
        matrix: {a: [1, 2, 3], b: [1, 2]}
        run: echo
    """
    [found] = errors(workflow_file, text)
    assert found.startswith("5:13 fan-out `build` would create too many instances")
    assert "the limit is 5" in found
    assert errors(workflow_file, text.replace("maxInstances: 5", "maxInstances: 6")) == []


def test_a_dynamic_for_each_is_planned_as_its_template(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: list
        run: echo 'items=[1,2]' >> "$WFX_OUTPUT"
      - id: fetch
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        maxParallel: 4
        timeout: 10s
        retries: 1
        run: echo "${{ item }}"
        rollback:
          run: echo undo
      - id: after
        run: echo "${{ toJSON(steps.fetch.outputs) }}"
    """
    plan = plan_dict(workflow_file, text)
    assert plan["stages"] == [["list"], ["fetch[*]"], ["after"]]
    template = plan["steps"]["fetch[*]"]
    assert (template["needs"], template["retry"]["attempts"]) == (["list"], 2)
    assert plan["compensation"] == ["fetch[*]"]
    assert plan["criticalPath"][-1] == "fetch[*]"  # the only step with a timeout
    fan_out = plan["fanOuts"]["fetch"]
    assert fan_out["dynamic"] and fan_out["source"] == "fromJSON(steps.list.outputs.items)"
    assert "at most 4 items" in fan_out["assumption"]
    assert plan["worstCaseSeconds"] is None  # `list` and `after` have no timeout


def test_what_a_dynamic_group_may_not_hold_is_refused_at_its_position(
    workflow_file: Write,
) -> None:
    workflow_file("wfx: 1\nsteps: [{id: a, run: echo}]\n", "x.yaml")
    text = """
    wfx: 1
    steps:
      - id: list
        run: echo
      - id: each
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        groupRetries: {max: 1}
        steps:
          - id: inner
            forEach: ${{ fromJSON(steps.list.outputs.items) }}
            run: echo
          - {id: call, uses: ./x.yaml}
    """
    found = errors(workflow_file, text)
    assert [f.split(" a group fanned out")[0] for f in found] == [
        "7:19 `groupRetries` on",
        "10:18 a `forEach` known only at run time inside",
        "12:26 a sub-workflow call inside",
    ]


def test_fan_out_keys_are_checked_by_the_schema(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: a
        run: echo
        failFast: false
      - id: b
        matrix: {x: [1]}
        forEach: [1]
        run: echo
      - id: c
        matrix: {x: []}
        run: echo
    """
    found = errors(workflow_file, text)
    assert any(f.startswith("5:5 `failFast` is only allowed together with") for f in found)
    assert "7:5 `matrix` cannot be used together with `forEach`" in found
    assert any(f.startswith("11:17 `x` must be a non-empty list") for f in found), found


def test_hostile_matrix_values_make_readable_distinct_ids(workflow_file: Write) -> None:
    text = """
    wfx: 1
    steps:
      - id: build
        matrix:
          name: ["a\\u001b[2Jb", "x\\ny", "LONG", "LONGER"]
        run: echo "${{ matrix.name }}"
    """.replace("LONGER", "z" * 50 + "2").replace("LONG", "z" * 50 + "1")
    plan = plan_dict(workflow_file, text)
    ids = plan["stages"][0]
    assert ids[:2] == ["build[a<U+001B>[2Jb]", "build[x<U+000A>y]"]
    assert ids[2] == "build[" + "z" * 39 + "…]"
    assert ids[3] == "build[" + "z" * 39 + "…~2]"


def test_a_dynamic_for_each_reading_a_step_it_does_not_wait_for_is_warned(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    type: parallel
    steps:
      - id: list
        run: echo 'items=[1]' >> "$WFX_OUTPUT"
      - id: fetch
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        run: echo "${{ item }}"
    """
    report = api.check([workflow_file(text)], None)
    [warned] = [d for d in report.diagnostics if d.code == "compile.not-upstream"]
    assert warned.message == "`fetch` reads `steps.list` but does not wait for `list`"
    assert (warned.span.line, warned.span.column) == (7, 27)
    fixed = text.replace("        forEach:", "        needs: [list]\n        forEach:")
    assert not [d for d in api.check([workflow_file(fixed)], None).diagnostics]
