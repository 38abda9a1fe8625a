"""Which executor runs each step of a run: the step's own `executor:` setting (from the
step, its groups or the workflow's `defaults`), else the run's executor (`--executor`),
else the local one."""

from __future__ import annotations

from collections.abc import Mapping

from wfx.graph import Node
from wfx.runtime.executor import Executor


class Executors:
    """The executors of one run, by the names steps give them."""

    def __init__(
        self,
        local: Executor,
        default: Executor | None = None,
        named: Mapping[str, Executor] | None = None,
    ) -> None:
        self.local = local
        self.default = default or local
        self.named = {"local": local, **(named or {})}

    def of(self, node: Node) -> Executor:
        """The executor of `node`'s process attempts."""
        return self.default

    def all(self) -> list[Executor]:
        """Every executor of the run, each once."""
        unique: dict[int, Executor] = {}
        for executor in (self.local, self.default, *self.named.values()):
            unique.setdefault(id(executor), executor)
        return list(unique.values())

    def kill_all(self) -> None:
        """Kill every process of every running attempt, on every executor (a second Ctrl-C)."""
        for executor in self.all():
            executor.kill_all()
