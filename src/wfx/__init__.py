"""wfx: a declarative workflow language and its interpreter.

The public API is re-exported here lazily, so importing `wfx` stays cheap:
``wfx.validate``, ``wfx.compile``, ``wfx.plan``, ``wfx.run``, ``wfx.evaluate`` and
``wfx.load`` (all from :mod:`wfx.api`), and the errors they raise.
"""

import sys

#: `typing` costs a `wfx` command 15 ms to import; mypy takes this name as true all the same
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wfx.api import InputValues, JSONValue, Report, check, evaluate, load, plan, run, validate
    from wfx.api import compile_file as compile
    from wfx.api import compile_file as compile_file
    from wfx.diagnostics import Diagnostic, DiagnosticsError, WfxError
    from wfx.expr import ExpressionError

#: each public name: the module it lives in and its name there
_EXPORTS = {
    "validate": ("wfx.api", "validate"),
    "compile": ("wfx.api", "compile_file"),
    "plan": ("wfx.api", "plan"),
    "run": ("wfx.api", "run"),
    "evaluate": ("wfx.api", "evaluate"),
    "load": ("wfx.api", "load"),
    "check": ("wfx.api", "check"),
    "compile_file": ("wfx.api", "compile_file"),
    "Report": ("wfx.api", "Report"),
    "JSONValue": ("wfx.api", "JSONValue"),
    "InputValues": ("wfx.api", "InputValues"),
    "ExpressionError": ("wfx.expr", "ExpressionError"),
    "WfxError": ("wfx.diagnostics", "WfxError"),
    "DiagnosticsError": ("wfx.diagnostics", "DiagnosticsError"),
    "Diagnostic": ("wfx.diagnostics", "Diagnostic"),
}

__all__ = [
    "Diagnostic",
    "DiagnosticsError",
    "ExpressionError",
    "InputValues",
    "JSONValue",
    "Report",
    "WfxError",
    "__version__",
    "check",
    "compile",
    "compile_file",
    "evaluate",
    "load",
    "plan",
    "run",
    "validate",
]


def __getattr__(name: str) -> object:
    """Import public names on first use (PEP 562)."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'wfx' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(where[0]), where[1])


if TYPE_CHECKING:
    from types import ModuleType as _ModuleType
else:  # the same class, without importing `types` (every `wfx` command imports this package)
    _ModuleType = type(sys)


class _Package(_ModuleType):
    """The `wfx` package, whose public functions keep their names: importing the submodule
    `wfx.plan` would otherwise bind `wfx.plan` to that module instead of the function
    (the submodule stays importable as usual: `from wfx.plan import make_plan`)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _EXPORTS and isinstance(value, _ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
