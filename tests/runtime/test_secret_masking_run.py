"""T17 end to end: a secret printed by a step in many forms never leaves the engine raw."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

from harness import run_text

from wfx.runtime import events as ev

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c2v3b4n5m6\n"
    "-----END PRIVATE KEY-----"
)
SECRETS = {
    "TOKEN": "s3cr3t-t0ken.*+?[]$^|\\",
    "JSON_CREDS": '{"user": "svc", "password": "hunter2-hunter2"}',
    "PEM_KEY": PEM,
    "TINY": "x",
}


def everything_emitted(run_events: list[ev.Event]) -> str:
    return "\n".join(
        json.dumps(e.__dict__ if hasattr(e, "__dict__") else repr(e), default=str)
        for e in run_events
    ) + "\n".join(repr(e) for e in run_events)


def test_no_form_of_a_secret_reaches_any_event(tmp_path: Path) -> None:
    token = SECRETS["TOKEN"]
    text = """
    wfx: 1
    secrets: [TOKEN, JSON_CREDS, PEM_KEY, TINY]
    steps:
      - id: leak
        run: |
          echo "raw: $T"
          printf '%s' "$T" | base64 -w0; echo
          printf 'split: %s' "${T:0:6}"; sleep 0.2; printf '%s\\n' "${T:6}"
          echo "url: $U"
          echo "json: $J"
          echo "$P"
          echo "xylophone box"
        env:
          T: ${{ secrets.TOKEN }}
          U: URLFORM
          J: ${{ secrets.JSON_CREDS }}
          P: ${{ secrets.PEM_KEY }}
      - id: boom
        uses: python:t:boom
        onError: continue
      - id: fail
        run: echo "failing with ${{ secrets.TOKEN }}" >&2; exit 3
        onError: continue
    outputs:
      echoed: ${{ secrets.TOKEN }}
    """.replace("URLFORM", quote(token, safe=""))

    def boom() -> None:
        raise ValueError(f"could not log in with {token}")

    environ = {"PATH": "/usr/bin:/bin", **SECRETS}
    run = run_text(tmp_path, text, actions={"python:t:boom": boom}, environ=environ)
    dumped = everything_emitted(run.events) + repr(run.result)
    forbidden = [
        token,
        base64.b64encode(token.encode()).decode(),
        quote(token, safe=""),
        "hunter2-hunter2",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    ]
    for form in forbidden:
        assert form not in dumped, form
    output = run.output("leak")
    assert output[0] == "raw: ***"
    assert output[2] == "split: ***"
    assert "xylophone box" in output  # a 1-character secret does not over-mask
    assert run.result.outputs == {"echoed": "***"}
    assert "***" in (run.result.steps["boom"].reason or "")
    assert [n.message for n in run.of(ev.Notice) if "TINY" in n.message]
