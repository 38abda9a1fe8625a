"""What compiling a workflow gives (its own module: a compiled graph taken from the model
cache is handed out without importing the compiler)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfx.diagnostics import Diagnostic
    from wfx.graph import ExecutionGraph


@dataclass(frozen=True)
class Compilation:
    """A compiled graph together with the warnings found on the way."""

    graph: ExecutionGraph
    warnings: list[Diagnostic] = field(default_factory=list)
