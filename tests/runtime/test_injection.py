"""T13: `${{ }}` values can never become shell code, in any quoting context."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import run_text

PAYLOADS = [
    '"; touch $CANARY; "',
    "$(touch $CANARY)",
    "`touch $CANARY`",
    "x\ntouch $CANARY",
    "'",
    "'; touch $CANARY; '",
    "${IFS}touch${IFS}$CANARY",
    "“smart quotes”; touch $CANARY",
    "${{ inputs.other }}",
    "$CANARY",
    '\\"; touch $CANARY; #',
    "EOF\ntouch $CANARY\nEOF",
]

#: (script, whether the value must come out verbatim on one line)
SCRIPTS = {
    "unquoted": ("echo ${{ inputs.x }}", True),
    "double-quoted": ('echo "${{ inputs.x }}"', True),
    "single-quoted": ("echo '${{ inputs.x }}'", True),
    "ansi-c": ("echo $'${{ inputs.x }}'", True),
    "heredoc": ("cat <<EOF\n${{ inputs.x }}\nEOF", True),
    "quoted-heredoc": ("cat <<'EOF'\n${{ inputs.x }}\nEOF", False),
    "in-command-substitution": ('echo "$(echo "${{ inputs.x }}")"', True),
    "assignment": ('v=${{ inputs.x }}; echo "$v"', True),
    "comment": ("echo safe # ${{ inputs.x }}", False),
}


def workflow(script: str) -> str:
    indented = "\n".join("      " + line for line in script.splitlines())
    return (
        "wfx: 1\ninputs:\n  x: {type: string}\n  other: {type: string, default: inner}\n"
        f"steps:\n  - id: s\n    run: |\n{indented}\n"
        "  - id: c\n    cmd: [printf, '%s', '${{ inputs.x }}']\n"
    )


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("context", sorted(SCRIPTS))
def test_no_payload_executes(context: str, payload: str, tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    script, verbatim = SCRIPTS[context]
    run = run_text(
        tmp_path,
        workflow(script),
        inputs={"x": payload},
        environ={"PATH": "/usr/bin:/bin", "CANARY": str(canary)},
    )
    assert not canary.exists(), f"payload executed in {context}"
    assert run.result.exit_code == 0, run.result.reason
    if verbatim:
        assert "\n".join(run.output("s")) == payload
    assert "\n".join(run.output("c")) == payload


def test_values_too_large_for_a_process_fail_clearly(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    run = run_text(
        tmp_path,
        workflow('echo "${{ inputs.x }}"'),
        inputs={"x": "$(touch $CANARY)" * 70_000},
        environ={"PATH": "/usr/bin:/bin", "CANARY": str(canary)},
    )
    assert not canary.exists()
    assert run.status("s") == "failed"
    assert "longer than 128 KiB" in (run.result.steps["s"].reason or "")


def test_nul_in_a_value_fails_clearly(tmp_path: Path) -> None:
    run = run_text(tmp_path, workflow('echo "${{ inputs.x }}"'), inputs={"x": "a\x00b"})
    assert run.status("s") == "failed"
    assert "NUL" in (run.result.steps["s"].reason or "")


def test_python_steps_receive_values_as_data(tmp_path: Path) -> None:
    seen: list[str] = []

    def record(value: str) -> None:
        seen.append(value)

    text = (
        "wfx: 1\ninputs:\n  x: {type: string}\n"
        "steps:\n  - {uses: 'python:t:f', with: {value: '${{ inputs.x }}'}}\n"
    )
    payload = "__import__('os').system('touch CANARY') ${{ inputs.x }}"
    run_text(tmp_path, text, inputs={"x": payload}, actions={"python:t:f": record})
    assert seen == [payload]
