"""`--format sarif` for `wfx validate` and `wfx lint`: SARIF 2.1.0 logs that the official
schema accepts, one rule per diagnostic code, positions as wfx reports them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from wfx import __version__
from wfx.cli import cli
from wfx.diagnostics import Span, error, warning
from wfx.render.sarif import as_sarif

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "examples" / "invalid"
SCHEMA = json.loads((Path(__file__).with_name("sarif-schema-2.1.0.json")).read_text("utf-8"))

RISKY = """wfx: 1
inputs:
  branch: {type: string, default: main}
secrets: [TOKEN]
steps:
  - id: evaluates
    run: eval "git checkout ${{ inputs.branch }}"
  - id: argument
    cmd: [curl, -H, "Authorization: ${{ secrets.TOKEN }}", https://example.com]
"""


def valid_sarif(text: str) -> dict[str, Any]:
    """The log, after checking it against the official SARIF 2.1.0 schema."""
    log: dict[str, Any] = json.loads(text)
    validator = jsonschema.Draft4Validator(
        SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert problems == []
    return log


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_the_schema_is_the_official_one() -> None:
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    assert SCHEMA["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")


def test_the_schema_rejects_what_wfx_must_not_write() -> None:
    """The check has teeth: a result with a 0-based column fails it."""
    log = json.loads(as_sarif([error("x.y", "m", Span("a.yaml", 1, 1))], "1.0"))
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startColumn"] = 0
    with pytest.raises(AssertionError):
        valid_sarif(json.dumps(log))


def test_validate_sarif_has_every_diagnostic_with_its_rule_and_position() -> None:
    files = [str(INVALID / "unknown-names.yaml"), str(INVALID / "bad-values.yaml")]
    code, out = invoke("validate", "--format", "sarif", *files)
    assert code == 2
    log = valid_sarif(out)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("wfx", __version__)
    assert driver["informationUri"].startswith("https://")

    _, as_json = invoke("validate", "--format", "json", *files)
    expected = json.loads(as_json)
    results = run["results"]
    assert len(results) == len(expected) == 7
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for result, diagnostic in zip(results, expected, strict=True):
        assert result["ruleId"] == diagnostic["code"]
        assert rule_ids[result["ruleIndex"]] == diagnostic["code"]
        assert result["level"] == "error"
        assert result["message"]["text"].startswith(diagnostic["message"])
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == Path(diagnostic["file"]).as_uri()
        region = location["region"]
        assert (region["startLine"], region["startColumn"]) == (
            diagnostic["line"],
            diagnostic["column"],
        )


def test_a_hint_is_part_of_the_message() -> None:
    code, out = invoke("validate", "--format", "sarif", str(INVALID / "typo-key.yaml"))
    assert code == 2
    (result,) = valid_sarif(out)["runs"][0]["results"]
    assert result["message"]["text"] == (
        "unknown key `timout` in step (hint: did you mean `timeout`?)"
    )
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 6


def test_lint_sarif_findings_are_warnings_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "risky.yaml").write_text(RISKY, encoding="utf-8")
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        code, out = invoke("lint", "--format", "sarif", "risky.yaml")
    finally:
        os.chdir(previous)
    assert code == 1
    log = valid_sarif(out)
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("lint.value-as-code", "warning"),
        ("lint.secret-argument", "warning"),
    ]
    rules = {rule["id"]: rule for rule in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["lint.secret-argument"]["defaultConfiguration"] == {"level": "warning"}
    location = results[0]["locations"][0]["physicalLocation"]
    # a relative path stays relative to the checkout, which code scanning resolves
    assert location["artifactLocation"] == {"uri": "risky.yaml", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 7


def test_a_valid_file_gives_an_empty_log_and_exit_0() -> None:
    code, out = invoke("validate", "--format", "sarif", str(ROOT / "examples" / "blue-green.yaml"))
    assert code == 0
    assert valid_sarif(out)["runs"][0]["results"] == []
    code, out = invoke("lint", "--format", "sarif", str(ROOT / "examples" / "blue-green.yaml"))
    assert code == 0
    assert valid_sarif(out)["runs"][0]["results"] == []


def test_an_invalid_file_given_to_lint_gives_its_errors_as_sarif() -> None:
    code, out = invoke("lint", "--format", "sarif", str(INVALID / "typo-key.yaml"))
    assert code == 2
    (result,) = valid_sarif(out)["runs"][0]["results"]
    assert (result["ruleId"], result["level"]) == ("schema.unknown-key", "error")


def test_lint_reports_the_findings_of_valid_files_beside_an_invalid_files_errors(
    tmp_path: Path,
) -> None:
    """As pre-commit calls it, with every staged file at once: one invalid file does not
    hide the findings in the others."""
    risky = tmp_path / "risky.yaml"
    risky.write_text(RISKY, encoding="utf-8")
    code, out = invoke("lint", "--format", "sarif", str(INVALID / "typo-key.yaml"), str(risky))
    assert code == 2
    results = valid_sarif(out)["runs"][0]["results"]
    assert sorted((r["ruleId"], r["level"]) for r in results) == [
        ("lint.secret-argument", "warning"),
        ("lint.value-as-code", "warning"),
        ("schema.unknown-key", "error"),
    ]


def test_ranges_names_without_spans_and_odd_file_names() -> None:
    log = valid_sarif(
        as_sarif(
            [
                error("compile.unknown-need", "m1", Span("dir/my flow#1.yaml", 3, 5, 3, 12)),
                warning("lint.quoted-heredoc", "m2", Span("a.yaml", 2, 4, 4, 1)),
                error("inputs.syntax", "`x` is not NAME=VALUE"),
                error("compile.unknown-need", "m3", Span("a.yaml", 9, 1)),
            ],
            "1.2.3",
        )
    )
    results = log["runs"][0]["results"]
    first = results[0]["locations"][0]["physicalLocation"]
    assert first["artifactLocation"]["uri"] == "dir/my%20flow%231.yaml"
    assert first["region"] == {"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 12}
    second = results[1]["locations"][0]["physicalLocation"]["region"]
    assert second == {"startLine": 2, "startColumn": 4, "endLine": 4, "endColumn": 1}
    assert "locations" not in results[2]
    assert results[3]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 9,
        "startColumn": 1,
    }
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "compile.unknown-need",
        "lint.quoted-heredoc",
        "inputs.syntax",
    ]
    assert [r["ruleIndex"] for r in results] == [0, 1, 2, 0]
    assert rules[0]["name"] == "CompileUnknownNeed"
    assert log["runs"][0]["tool"]["driver"]["version"] == "1.2.3"
