"""Fan-out: how a step with `matrix:` or `forEach:` becomes instances. Pure data, no I/O.

A matrix expands exactly as GitHub Actions' `strategy.matrix`: the cross product of the
axes (the first axis varies slowest), minus every combination an `exclude` entry matches
(all of the entry's keys equal), then each `include` entry is merged into every original
combination it does not contradict on an axis value (values it added earlier may be
overwritten), and becomes a combination of its own when it fits none.

Each instance has a key, readable and stable: a matrix instance's axis values joined by
`,` in axis order (`build[api,3.12]`), a `forEach` instance's index (`fetch[0]`). A
fan-out nested in a fanned-out group's instance appends its key to the outer-owned id
(`test[api][3.12]`, see `Instance.place`); a dynamic group's body is compiled once for a
placeholder key (`PLACEHOLDER`) that the run replaces with each item's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wfx.expr import to_string
from wfx.model import FanOut, FanOutKind

#: the most instances one fan-out may create unless the workflow's `maxInstances` says
DEFAULT_MAX_INSTANCES = 10_000
#: a matrix value longer than this is cut in its instance's id
KEY_PART_CHARS = 40


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a fan-out: its key, its position, and what its expressions read
    (`bindings`: `matrix`, or `item` and `index`). `members` are the ids of the steps of a
    fanned-out group, which inside the instance mean the instance's own copies."""

    fan_out: str
    key: str
    position: int
    bindings: Mapping[str, Any]
    members: frozenset[str] = field(default_factory=frozenset)
    outer: Instance | None = None
    """The instance of the fanned-out group around this fan-out (nested fan-out)."""

    def own(self, step_id: str) -> str:
        """The instance's id for `step_id` (a member of its group, or the fan-out itself)."""
        return f"{step_id}[{self.key}]"

    def place(self, step_id: str) -> str:
        """The id of `step_id` written inside this instance: the key of each instance
        around it appended, outermost first (`test[api][3.12]`)."""
        return self.own(step_id if self.outer is None else self.outer.place(step_id))

    def resolve(self, name: str) -> str:
        """What `name` (in `needs`, `steps.<name>`) means inside this instance: a step of
        its group, or of a group around it, is that instance's copy; others as written."""
        if name in self.members:
            return self.place(name)
        return name if self.outer is None else self.outer.resolve(name)

    def visible(self) -> dict[str, Any]:
        """The `matrix`/`item`/`index` expressions read here: an inner `matrix`'s axes
        over the outer's (same names shadowed), the innermost `item` and `index`."""
        found = {} if self.outer is None else self.outer.visible()
        for name, value in self.bindings.items():
            around = found.get(name) if name == "matrix" else None
            found[name] = {**around, **value} if isinstance(around, Mapping) else value
        return found

    def around(self, group: str, scope: str = "") -> Instance | None:
        """The innermost instance (this one or one around it) whose fanned-out group is
        `group` (an id as written, in the sub-workflow `scope`) or holds it; None when
        `group` is outside them all. A group's `env` is rendered with its values."""
        level: Instance | None = self
        while level is not None:
            base = level.fan_out[len(scope) :].split("[", 1)[0]
            if scope + group in level.members or scope + base == scope + group:
                return level
            level = level.outer
        return None

    def under(self, prefix: str) -> Instance:
        """The instance seen from the workflow that calls its own (ids under `prefix`)."""
        members = frozenset(prefix + m for m in self.members)
        outer = None if self.outer is None else self.outer.under(prefix)
        return replace(self, fan_out=prefix + self.fan_out, members=members, outer=outer)


#: the key of the one instance a dynamic group's body is compiled for: its ids hold
#: `[\x00]` where each instance's key goes (a key never holds a NUL: see `_key_part`)
PLACEHOLDER = "\x00"


def template_name(node_id: str) -> str:
    """How plans show a template node's id: `test[*]` (inner keys stay as they are)."""
    return node_id.replace(f"[{PLACEHOLDER}]", "[*]")


def instance_name(node_id: str, key: str) -> str:
    """A template node's id in the instance `key`: `test[3]` for `test[\x00]`."""
    return node_id.replace(f"[{PLACEHOLDER}]", f"[{key}]")


class TooManyInstancesError(ValueError):
    """A fan-out would create more instances than allowed."""


def expand_matrix(
    axes: Sequence[tuple[str, Sequence[Any]]],
    include: Sequence[Mapping[str, Any]] = (),
    exclude: Sequence[Mapping[str, Any]] = (),
    limit: int = DEFAULT_MAX_INSTANCES,
) -> list[dict[str, Any]]:
    """The combinations of a matrix, in GitHub's order (see the module docstring).

    Raises TooManyInstancesError when the cross product (before excludes) or the result is
    larger than `limit`, before building it."""
    size = 1
    for _, values in axes:
        size *= len(values)
    if axes and size > limit:
        raise TooManyInstancesError(f"the matrix has {size} combinations before `exclude`")
    combinations = [dict(c) for c in _cross(axes)] if axes else []
    combinations = [c for c in combinations if not any(_matches(c, e) for e in exclude)]
    originals = [frozenset(c) for c in combinations]
    extra: list[dict[str, Any]] = []
    for entry in include:
        fitted = False
        for combination, own_keys in zip(combinations, originals, strict=True):
            if all(combination[k] == v for k, v in entry.items() if k in own_keys):
                combination.update(entry)
                fitted = True
        if not fitted:
            extra.append(dict(entry))
    result = combinations + extra
    if len(result) > limit:
        raise TooManyInstancesError(f"the matrix has {len(result)} combinations")
    return result


def _cross(axes: Sequence[tuple[str, Sequence[Any]]]) -> Iterator[dict[str, Any]]:
    if not axes:
        yield {}
        return
    (name, values), rest = axes[0], axes[1:]
    for value in values:
        for tail in _cross(rest):
            yield {name: value, **tail}


def _matches(combination: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in combination and combination[k] == v for k, v in entry.items())


def matrix_instances(
    fan_out_id: str,
    fan_out: FanOut,
    limit: int,
    members: frozenset[str] = frozenset(),
    outer: Instance | None = None,
) -> list[Instance]:
    """The instances of a static matrix, keyed by their axis values."""
    combinations = expand_matrix(fan_out.axes, fan_out.include, fan_out.exclude, limit)
    axis_names = [name for name, _ in fan_out.axes]
    keys = _unique([_matrix_key(c, axis_names) for c in combinations])
    return [
        Instance(fan_out_id, key, position, {"matrix": combination}, members, outer)
        for position, (key, combination) in enumerate(zip(keys, combinations, strict=True))
    ]


def item_instances(
    fan_out_id: str,
    items: Sequence[Any],
    members: frozenset[str] = frozenset(),
    outer: Instance | None = None,
) -> list[Instance]:
    """The instances of a `forEach` list, keyed by index."""
    return [
        Instance(fan_out_id, str(index), index, {"item": item, "index": index}, members, outer)
        for index, item in enumerate(items)
    ]


def static_instances(
    fan_out_id: str,
    fan_out: FanOut,
    limit: int,
    items: Sequence[Any] | None = None,
    members: frozenset[str] = frozenset(),
    outer: Instance | None = None,
) -> list[Instance]:
    """The instances of a fan-out known before running (`items`: a `forEach` list)."""
    if fan_out.kind is FanOutKind.MATRIX:
        return matrix_instances(fan_out_id, fan_out, limit, members, outer)
    listed = fan_out.items if items is None else items
    assert listed is not None
    if len(listed) > limit:
        raise TooManyInstancesError(f"the list has {len(listed)} items")
    return item_instances(fan_out_id, listed, members, outer)


def _matrix_key(combination: Mapping[str, Any], axis_names: Sequence[str]) -> str:
    names = [n for n in axis_names if n in combination] or list(combination)
    return ",".join(_key_part(combination[n]) for n in names)


def _key_part(value: Any) -> str:
    """A value as part of an id: as text, characters that would not show (or would move a
    terminal's cursor) as `<U+XXXX>`, cut at KEY_PART_CHARS (distinct ids stay distinct:
    see `_unique`)."""
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        text = to_string(value)
    shown = "".join(c if c.isprintable() else f"<U+{ord(c):04X}>" for c in text)
    return shown if len(shown) <= KEY_PART_CHARS else shown[: KEY_PART_CHARS - 1] + "…"


def _unique(keys: list[str]) -> list[str]:
    """Keys made distinct: a repeated one gets `~2`, `~3`... (two includes alike)."""
    seen: dict[str, int] = {}
    result = []
    for key in keys:
        count = seen.get(key, 0) + 1
        seen[key] = count
        result.append(key if count == 1 else f"{key}~{count}")
    return result


def max_instances(value: Any) -> int:
    """The workflow's `maxInstances`, or the default."""
    return DEFAULT_MAX_INSTANCES if value is None else int(value)


def base_id(step_id: str) -> str:
    """`build` for `build[api,3.12]` (and for `build`; `deploy[eu]/fetch` for
    `deploy[eu]/fetch[0]`)."""
    cut = step_id.rfind("[")
    return step_id if cut < 0 else step_id[:cut]


def aggregate_status(statuses: Sequence[str]) -> str:
    """`steps.<fan-out>.status`: failed when an instance failed (or timed out, or was
    cancelled), success when one succeeded, else skipped (also for no instances at all)."""
    if any(s in ("failed", "timeout", "cancelled") for s in statuses):
        return "failed"
    if any(s in ("success", "rolledBack") for s in statuses):
        return "success"
    return "skipped"
