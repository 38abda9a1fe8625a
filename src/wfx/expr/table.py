"""A prebuilt LALR table for the expression grammar, so a cold `wfx` start does not pay
lark's ~30 ms grammar analysis.

`grammar/expressions.lalr.json` is *derived* from `grammar/expressions.lark` (which
stays the single source of the syntax): it records the SHA-256 of the grammar text
and the lark version it was built with, and is used only when both still match;
otherwise the parser is built from the grammar as usual. Regenerate it with
``make grammar`` (``python -m wfx.expr.table``); a test fails while it is stale.
The table is plain JSON, never pickle.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

from lark import Lark
from lark import __version__ as lark_version
from lark.grammar import Rule
from lark.lexer import TerminalDef

from wfx import resources

GRAMMAR = "expressions.lark"
TABLE = "expressions.lalr.json"

#: the options the parser is built with; the table is valid only for these
OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "basic",
    "propagate_positions": True,
    "maybe_placeholders": False,
}


def grammar_digest(text: str) -> str:
    """The SHA-256 of the grammar text a table was built from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build(text: str) -> Lark:
    """Build the parser from the grammar text (the slow, always-correct way)."""
    return Lark(text, **OPTIONS)


def load(text: str) -> Lark:
    """The parser for `text`: from the prebuilt table when it matches, else built."""
    table = _read_table()
    if _matches(table, text):
        assert table is not None
        # lark's own loader for saved parsers (what Lark.load uses, minus pickle)
        loaded: Lark = Lark._load_from_dict(  # type: ignore[no-untyped-call]
            table["data"], table["memo"]
        )
        return loaded
    return build(text)


def _read_table() -> dict[str, Any] | None:
    try:
        raw = resources.read_text("grammar", TABLE)
    except OSError:
        return None
    table: dict[str, Any] = json.loads(raw, object_pairs_hook=_int_keys)
    return table


def _int_keys(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    """JSON turned lark's integer keys (parser states, memo ids) into text: undo that."""
    return {int(key) if key.isdigit() else key: value for key, value in pairs}


def serialize(text: str) -> str:
    """The table for grammar `text`, as JSON text."""
    data, memo = build(text).memo_serialize([TerminalDef, Rule])
    table = {"grammar": grammar_digest(text), "lark": lark_version, "data": data, "memo": memo}
    return json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n"


def main() -> int:
    """Write (or with --check, verify) the table next to the grammar."""
    text = resources.read_text("grammar", GRAMMAR)
    if "--check" in sys.argv:
        return 0 if is_fresh(text) else 1
    (resources.data_dir("grammar") / TABLE).write_text(serialize(text), encoding="utf-8")
    return 0


def is_fresh(text: str) -> bool:
    """True when the shipped table was built from `text` by this lark version."""
    return _matches(_read_table(), text)


def _matches(table: dict[str, Any] | None, text: str) -> bool:
    return (
        table is not None
        and table.get("grammar") == grammar_digest(text)
        and table.get("lark") == lark_version
    )


if __name__ == "__main__":
    sys.exit(main())
