"""`wfx validate`: every example is valid; every broken example gives exactly its diagnostics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wfx.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = ROOT / "examples" / "invalid"

#: file -> every expected diagnostic as (line, column, message substring)
EXPECTED: dict[str, list[tuple[int, int, str]]] = {
    "typo-key.yaml": [(6, 5, "unknown key `timout` in step")],
    "duplicate-ids.yaml": [(7, 9, "duplicate step id `build` (first used at line 3)")],
    "unknown-needs.yaml": [(7, 13, "`needs` names unknown step `compiel`")],
    "cycle.yaml": [
        (
            5,
            13,
            "cycle.yaml:11), which waits for `docker` (",
        )
    ],
    "unknown-names.yaml": [
        (6, 20, "unknown input `enviroment` in `inputs.enviroment`"),
        (8, 20, "unknown step `biuld` in `steps.biuld.outputs.image`"),
        (9, 20, "unrecognized named-value: 'github'"),
    ],
    "two-kinds.yaml": [(5, 5, "a step has exactly one kind; this one has both `run` and `cmd`")],
    "retry-without-retries.yaml": [(5, 14, "`onError: retry` with `retries: 0` can never retry")],
    "bad-input-default.yaml": [
        (3, 3, "the default of input `environment` is invalid: 'staging' is not one of"),
        (4, 3, "the default of input `version` is invalid: '1.0' does not match the pattern"),
        (5, 3, "the default of input `replicas` is invalid: expected a number"),
    ],
    "bad-values.yaml": [
        (2, 10, "`timeout` must be a duration like `30s`, `5m` or `1h30m`, got `5 minutes`"),
        (6, 14, "`onError` must be one of fail, continue, retry, got `abort`"),
        (
            7,
            20,
            "`max` must be an integer from 0 to 10000"
            " (for retries that go on until a time, set `deadline`), got `-1`",
        ),
        (7, 33, "`backoff` must be one of exponential, linear, constant, got `quadratic`"),
    ],
    "yaml-syntax.yaml": [(5, 3, "invalid YAML: did not find expected ',' or ']'")],
    "duplicate-key.yaml": [(5, 5, "duplicate key `run` (first defined at line 4)")],
    "python-tag.yaml": [(4, 10, "YAML tag `!!python/object/apply:os.system` is not allowed")],
    "bad-expression.yaml": [
        (4, 36, "unexpected end of expression"),
        (6, 19, "too few parameters supplied: 'contains'"),
        (8, 19, "unrecognized function: 'nosuchfunction'"),
    ],
    "alias-bomb.yaml": [(8, 8, "the document expands to more than 1,000,000 values")],
    "value-as-code.yaml": [
        (11, 20, "is in the value of `BASH_ENV`: each non-interactive bash expands it"),
        (13, 17, "stands in an assignment to a variable bash expands as code"),
        (15, 19, "stands in an arithmetic expression"),
        (17, 24, "stands in a variable name (`read NAME`, `printf -v NAME`, `unset NAME`"),
    ],
}


def run_validate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(example: Path) -> None:
    code, out, err = run_validate(str(example))
    assert (code, err) == (0, ""), err
    assert out == f"ok: {example}\n"


def test_every_invalid_example_has_expectations() -> None:
    assert sorted(p.name for p in INVALID.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_example_gives_exactly_its_diagnostics(name: str) -> None:
    code, out, _ = run_validate("--format", "json", str(INVALID / name))
    assert code == 2
    found = [d for d in json.loads(out) if d["severity"] == "error"]
    assert len(found) == len(EXPECTED[name]), found
    for diagnostic, (line, column, text) in zip(found, EXPECTED[name], strict=True):
        assert (diagnostic["line"], diagnostic["column"]) == (line, column), diagnostic
        assert text in diagnostic["message"], diagnostic


def test_text_format_quotes_the_line_with_a_caret_and_hint() -> None:
    code, _, err = run_validate(str(INVALID / "typo-key.yaml"))
    assert code == 2
    assert err.splitlines() == [
        f"{INVALID / 'typo-key.yaml'}:6:5: error: unknown key `timout` in step",
        "   6 |     timout: 5m",
        "     |     ^^^^^^",
        "  = hint: did you mean `timeout`?",
    ]


def test_github_format_prints_workflow_commands() -> None:
    code, out, _ = run_validate("--format", "github", str(INVALID / "typo-key.yaml"))
    assert code == 2
    assert out.startswith(f"::error file={INVALID / 'typo-key.yaml'},line=6,col=5,")
    assert out.rstrip().endswith("::unknown key `timout` in step (hint: did you mean `timeout`?)")


def test_several_files_report_all_problems_and_exit_2() -> None:
    code, out, _ = run_validate(
        "--format",
        "json",
        str(EXAMPLES[0]),
        *(str(INVALID / n) for n in ("cycle.yaml", "typo-key.yaml")),
    )
    assert code == 2
    assert {Path(d["file"]).name for d in json.loads(out)} == {"cycle.yaml", "typo-key.yaml"}


def test_inputs_are_checked_on_validate(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\ninputs:\n  n: {type: number}\nsteps:\n  - run: echo\n")
    assert run_validate(str(path), "-i", "n=3")[0] == 0
    code, _, err = run_validate(str(path), "-i", "n=three", "-i", "x=1")
    assert code == 2
    assert "input `n`: expected a number" in err
    assert "unknown input `x`" in err


def test_missing_file_is_a_diagnostic(tmp_path: Path) -> None:
    code, _, err = run_validate(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "cannot read" in err


HOSTILE: dict[str, bytes] = {
    "binary": bytes(range(256)) * 4,
    "yaml-bomb": (INVALID / "alias-bomb.yaml").read_bytes(),
    "long-line": b"wfx: 1\nname: " + b"x" * (10 * 1024 * 1024) + b"\nsteps: []\n",
    "deep-nesting": b"wfx: 1\nsteps: " + b"[" * 100_000,
    "deep-block": b"".join(b"  " * d + b"- \n" for d in range(2000)),
    "wrong-types": (
        b"wfx: true\nname: [1]\ninputs: 3\nsecrets: {a: 1}\nenv: [x]\ndefaults: 1\n"
        b"timeout: {}\nmaxParallel: -1\nsteps: {a: 1}\nfinally: 7\noutputs: []\n"
    ),
    "wrong-step-types": (
        b"wfx: 1\nsteps:\n  - 1\n  - [a]\n  - {run: [1], needs: {a: 1}, retries: x, timeout: []}\n"
        b"  - {steps: 3, type: diagonal}\n  - {uses: 'python:', with: 3}\n  - {cmd: []}\n"
    ),
    "empty": b"",
    "null-document": b"~\n",
    "list-document": b"- a\n- b\n",
    "scalar-document": b"just text\n",
    "nul-bytes": b"wfx: 1\x00\nsteps: []\n",
    "utf16": "wfx: 1\nsteps: []\n".encode("utf-16"),
    "tabs": b"wfx: 1\nsteps:\n\t- run: x\n",
    "huge-expression": b"wfx: 1\nsteps:\n  - run: echo ${{ "
    + b"(" * 5000
    + b"1"
    + b")" * 5000
    + b" }}\n",
    "unterminated-expression": b"wfx: 1\nsteps:\n  - run: echo ${{ inputs.x\n",
    "many-errors": b"wfx: 1\nsteps:\n" + b"".join(b"  - {id: a, rnu: x}\n" for _ in range(500)),
    # found by a fuzzer: each crashed `wfx validate` with OverflowError, MemoryError,
    # TypeError or ValueError before it was refused
    "huge-retries": b"wfx: 1\nsteps:\n  - {run: x, retries: 9223372036854775808}\n",
    "huge-max": b"wfx: 1\nsteps:\n  - {run: x, retries: {max: 100000000}}\n",
    "nan-numbers": (
        b"wfx: 1\ntimeout: .nan\nsteps:\n  - {run: x, timeout: .NaN, killGrace: .nan,"
        b" resources: {gpu: .nan}, retries: {max: 2, factor: .nan, jitter: .nan, delay: .nan}}\n"
    ),
    "nul-in-env-file": b'wfx: 1\nenvFile: "a\\0b"\nsteps:\n  - {run: x, envFile: ["c\\0"]}\n',
}


def test_a_dense_graph_from_a_small_file_is_checked_in_linear_time(tmp_path: Path) -> None:
    """201 steps each needing 3,000 others through one YAML alias (a 120 KB file, 600,000
    needs): comparing each `needs` list pairwise, and each need against a list of those
    already found, made `wfx validate` run for minutes; now a few seconds (the timeout
    only stops a hang)."""
    names = [f"s{i}" for i in range(3000)]
    lines = ["wfx: 1", f"x-all: &all [{','.join(names)}]", "steps:", "  - id: g"]
    lines += ["    type: parallel", "    steps:"]
    lines += [f"      - {{id: {name}, run: 'true'}}" for name in names]
    lines += [f"  - {{id: t{j}, run: 'true', needs: *all}}" for j in range(201)]
    path = tmp_path / "dense.yaml"
    path.write_text("\n".join(lines) + "\n")
    completed = subprocess.run(
        [sys.executable, "-m", "wfx", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_give_diagnostics_never_tracebacks(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name])
    completed = subprocess.run(
        [sys.executable, "-m", "wfx", "validate", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = completed.stderr.decode("utf-8", errors="replace")
    assert completed.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    assert f"{path}:" in stderr
