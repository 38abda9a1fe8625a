"""Diagnostics as a SARIF 2.1.0 log, the format code-scanning services read.

One run of the `wfx` tool; one rule per diagnostic code (its id is the code), one
result per diagnostic with its position (lines and columns 1-based, counted in
characters, end column exclusive, as wfx counts them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from wfx.diagnostics import Diagnostic, Severity, Span

#: the schema a log names, as SARIF 2.1.0 (errata 01) publishes it
SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: where people read about the tool that produced the log
INFORMATION_URI = "https://github.com/wfx-dev/wfx"
#: relative file names are relative to the root of the sources analysed
SOURCE_ROOT = "%SRCROOT%"

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning"}


def as_sarif(diagnostics: Iterable[Diagnostic], version: str) -> str:
    """A SARIF 2.1.0 log (JSON) with one run of wfx `version` holding every diagnostic."""
    found = list(diagnostics)
    rule_index = _rule_indexes(found)
    run = {
        "tool": {"driver": _driver(found, rule_index, version)},
        "columnKind": "unicodeCodePoints",
        "results": [_result(d, rule_index[d.code]) for d in found],
    }
    log = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False)


def _rule_indexes(diagnostics: list[Diagnostic]) -> dict[str, int]:
    """Each code's place in the rule list, in order of first appearance."""
    indexes: dict[str, int] = {}
    for diagnostic in diagnostics:
        indexes.setdefault(diagnostic.code, len(indexes))
    return indexes


def _driver(
    diagnostics: list[Diagnostic], rule_index: dict[str, int], version: str
) -> dict[str, object]:
    first: dict[str, Diagnostic] = {}
    for diagnostic in diagnostics:
        first.setdefault(diagnostic.code, diagnostic)
    return {
        "name": "wfx",
        "version": version,
        "semanticVersion": version,
        "informationUri": INFORMATION_URI,
        "rules": [_rule(first[code]) for code in rule_index],
    }


def _rule(example: Diagnostic) -> dict[str, object]:
    """A rule for the code of `example`: its id is the code itself."""
    return {
        "id": example.code,
        "name": _rule_name(example.code),
        "shortDescription": {"text": _rule_words(example.code)},
        "defaultConfiguration": {"level": _LEVELS[example.severity]},
    }


def _rule_name(code: str) -> str:
    """`lint.secret-argument` -> `LintSecretArgument` (SARIF names are identifiers)."""
    words = code.replace(".", "-").replace("_", "-").split("-")
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def _rule_words(code: str) -> str:
    """`lint.secret-argument` -> `wfx lint: secret argument`."""
    stage, _, rest = code.partition(".")
    return f"wfx {stage}: {rest.replace('-', ' ')}" if rest else f"wfx: {stage}"


def _result(diagnostic: Diagnostic, rule_index: int) -> dict[str, object]:
    text = diagnostic.message
    if diagnostic.hint:
        text += f" (hint: {diagnostic.hint})"
    result: dict[str, object] = {
        "ruleId": diagnostic.code,
        "ruleIndex": rule_index,
        "level": _LEVELS[diagnostic.severity],
        "message": {"text": text},
    }
    if diagnostic.span is not None:
        result["locations"] = [{"physicalLocation": _physical_location(diagnostic.span)}]
    return result


def _physical_location(span: Span) -> dict[str, object]:
    region: dict[str, int] = {"startLine": max(1, span.line), "startColumn": max(1, span.column)}
    if span.end_line >= span.line and span.end_line > 0:
        region["endLine"] = span.end_line
        if span.end_column >= 1 and (span.end_line > span.line or span.end_column > span.column):
            region["endColumn"] = span.end_column
    return {"artifactLocation": artifact_location(span.file), "region": region}


def artifact_location(file: str) -> dict[str, str]:
    """Where `file` is: a `file:` URI when it is absolute, else a relative URI below the
    root of the sources (so a code-scanning service finds it in its checkout)."""
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    relative = PurePosixPath(*path.parts).as_posix()
    return {"uri": quote(relative, safe="/"), "uriBaseId": SOURCE_ROOT}
