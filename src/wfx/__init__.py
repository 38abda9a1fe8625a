"""wfx: a declarative workflow language and its interpreter.

The public API is re-exported here lazily, so importing `wfx` stays cheap:
``wfx.evaluate``, ``wfx.ExpressionError``, ``wfx.load``, ``wfx.check``,
``wfx.compile_file``, ``wfx.WfxError`` and ``wfx.DiagnosticsError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wfx.api import check, compile_file, evaluate, load
    from wfx.diagnostics import Diagnostic, DiagnosticsError, WfxError
    from wfx.expr import ExpressionError

_EXPORTS = {
    "evaluate": "wfx.api",
    "load": "wfx.api",
    "check": "wfx.api",
    "compile_file": "wfx.api",
    "ExpressionError": "wfx.expr",
    "WfxError": "wfx.diagnostics",
    "DiagnosticsError": "wfx.diagnostics",
    "Diagnostic": "wfx.diagnostics",
}

__all__ = [
    "Diagnostic",
    "DiagnosticsError",
    "ExpressionError",
    "WfxError",
    "__version__",
    "check",
    "compile_file",
    "evaluate",
    "load",
]


def __getattr__(name: str) -> Any:
    """Import public names on first use (PEP 562)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wfx' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
