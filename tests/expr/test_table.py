"""The prebuilt LALR table is derived from the grammar and must never be stale."""

from __future__ import annotations

import json
from pathlib import Path

import lark

from wfx import resources
from wfx.expr import table

CASES = Path(__file__).resolve().parent / "conformance" / "cases.json"


def test_the_shipped_table_matches_the_grammar() -> None:
    text = resources.read_text("grammar", table.GRAMMAR)
    assert table.is_fresh(text), "grammar/expressions.lalr.json is stale: run `make grammar`"


def _outcome(parser: lark.Lark, expression: str) -> object:
    """The tree, or the kind of error and where (what a caller can observe)."""
    try:
        return parser.parse(expression)
    except lark.exceptions.UnexpectedInput as exc:
        return (type(exc).__name__, exc.line, exc.column)


def test_the_table_parses_exactly_like_a_freshly_built_parser() -> None:
    # every expression of the conformance corpus, valid or not, plus a few of our own
    text = resources.read_text("grammar", table.GRAMMAR)
    loaded, built = table.load(text), table.build(text)
    corpus = [case["expr"] for case in json.loads(CASES.read_text(encoding="utf-8"))]
    corpus += ["a && (b || !c)", "format('{0}', x.y[1].*, -1.5e3)", "a[*].b != null", "a ||"]
    differ = [e for e in corpus if _outcome(loaded, e) != _outcome(built, e)]
    assert differ == []
    assert sum(isinstance(_outcome(loaded, e), lark.Tree) for e in corpus) > 900


def test_a_changed_grammar_is_built_not_loaded() -> None:
    # the shipped table names a negation `not_`; a parser that used it for this grammar
    # would still say `not_`
    shipped = resources.read_text("grammar", table.GRAMMAR)
    changed = shipped.replace("-> not_", "-> negation")
    assert changed != shipped and not table.is_fresh(changed)
    tree = table.load(changed).parse("!a")
    assert [t.data for t in tree.iter_subtrees_topdown()][:2] == ["start", "negation"]
    assert table.load(shipped).parse("!a") != tree
