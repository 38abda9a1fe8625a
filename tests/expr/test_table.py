"""The prebuilt LALR table is derived from the grammar and must never be stale."""

from __future__ import annotations

import lark

from wfx import resources
from wfx.expr import table


def test_the_shipped_table_matches_the_grammar() -> None:
    text = resources.read_text("grammar", table.GRAMMAR)
    assert table.is_fresh(text), "grammar/expressions.lalr.json is stale: run `make grammar`"


def test_the_table_parses_exactly_like_a_freshly_built_parser() -> None:
    text = resources.read_text("grammar", table.GRAMMAR)
    loaded, built = table.load(text), table.build(text)
    for expression in ("a && (b || !c)", "format('{0}', x.y[1].*, -1.5e3)", "a[*].b != null"):
        assert loaded.parse(expression) == built.parse(expression)


def test_a_changed_grammar_is_built_not_loaded() -> None:
    text = resources.read_text("grammar", table.GRAMMAR) + "\n// changed\n"
    assert not table.is_fresh(text)
    assert isinstance(table.load(text), lark.Lark)
