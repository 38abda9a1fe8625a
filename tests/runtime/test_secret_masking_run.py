"""T17 end to end: a secret printed by a step in many forms never leaves the engine raw."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

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


# -- URL-encoded forms, on every channel -------------------------------------------------------

URL_SECRET = "p@ss w/rd+~*'(x)!é:key-42"

OD = "printf %s \"$S\" | od -An -tx1 -v | tr -d ' \\n' | sed 's/../%&/g'"


def _python(call: str) -> str:
    """A `cmd` that prints `v=` and `call` (of `u`, urllib.parse) applied to the secret `S`."""
    code = f'import os, urllib.parse as u; S = os.environ["S"]; print("v=" + {call})'
    return f"cmd: [python3, -c, '{code}']"


#: step id -> (how the step prints `v=ENCODED`, the encoded form computed here)
URL_ENCODERS = {
    "py-quote": (_python("u.quote(S)"), quote(URL_SECRET)),
    "py-quote-safe-empty": (_python('u.quote(S, safe="")'), quote(URL_SECRET, safe="")),
    "py-quote-plus": (_python("u.quote_plus(S)"), quote_plus(URL_SECRET)),
    "js-encode-uri-component": (
        "cmd: [node, -e, 'console.log(\"v=\" + encodeURIComponent(process.env.S))']",
        quote(URL_SECRET, safe="!~*'()"),
    ),
    "js-encode-uri": (
        "cmd: [node, -e, 'console.log(\"v=\" + encodeURI(process.env.S))']",
        quote(URL_SECRET, safe="!~*'();/?:@&=+$,#"),
    ),
    "js-url-search-params": (
        "cmd: [node, -e, 'console.log(new URLSearchParams({v: process.env.S}).toString())']",
        quote_plus(URL_SECRET, safe="*").replace("~", "%7E"),
    ),
    "jq-uri": (
        'run: printf \'v=%s\\n\' "$(printf %s "$S" | jq -sRr @uri)"',
        None,  # jq 1.6 keeps !*'() like encodeURIComponent, jq 1.7 does not
    ),
    "od-lower-case": (
        f"run: printf 'v=%s\\n' \"$({OD})\"",
        "".join(f"%{byte:02x}" for byte in URL_SECRET.encode()),
    ),
    "od-upper-case": (
        f"run: printf 'v=%s\\n' \"$({OD} | tr a-f A-F)\"",
        "".join(f"%{byte:02X}" for byte in URL_SECRET.encode()),
    ),
    "shell-loop-lower-case": (
        "run: |\n"
        "      urlencode() { local LC_ALL=C s=$1 i c; for (( i = 0; i < ${#s}; i++ )); do\n"
        '        c=${s:i:1}; case $c in [a-zA-Z0-9.~_-]) printf %s "$c" ;;'
        " *) printf '%%%02x' \"'$c\" ;; esac; done; }\n"
        '      echo "v=$(urlencode "$S")"',
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(URL_SECRET, safe="")),
    ),
}


def test_every_url_encoding_is_masked_on_every_channel(tmp_path: Path) -> None:
    steps = "".join(
        f"  - id: {step}\n    {how}\n    onError: continue\n"
        for step, (how, _) in URL_ENCODERS.items()
    )
    forms = [URL_SECRET, *(form for _, form in URL_ENCODERS.values() if form)]
    (tmp_path / "leaky.py").write_text(f"def fail():\n    raise ValueError({' '.join(forms)!r})\n")
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsecrets: [URL_TOKEN]\nenv: {S: '${{ secrets.URL_TOKEN }}'}\nsteps:\n"
        + steps
        + "  - {id: raises, uses: 'python:leaky:fail', onError: continue}\n"
        + '  - id: out\n    run: echo "v=$S" >> "$WFX_OUTPUT"\n'
        "outputs:\n  encoded: ${{ steps.out.outputs.v }}\n"
    )
    environ = {**os.environ, "URL_TOKEN": URL_SECRET, "NO_COLOR": "1"}
    environ.pop("WFX_STATE_DIR", None)
    ran = _wfx(
        tmp_path,
        environ,
        "run",
        "wf.yaml",
        "--events",
        "events.jsonl",
        "--summary-md",
        "summary.md",
    )
    assert ran.returncode == 3, ran.stderr  # completed, with the failure of `raises`
    [run_id] = [line.split()[1] for line in ran.stdout.splitlines() if line.startswith("run ")][-1:]
    logs = _wfx(tmp_path, environ, "logs", run_id)
    channels = {
        "live output": ran.stdout + ran.stderr,
        "events": (tmp_path / "events.jsonl").read_text(),
        "summary": (tmp_path / "summary.md").read_text(),
        "wfx logs": logs.stdout,
        **{
            f"journal {f.name}": f.read_bytes().decode("utf-8", "replace")
            for f in (tmp_path / ".wfx").iterdir()
            if f.is_file()
        },
    }
    for channel, text in channels.items():
        for form in forms:
            assert form not in text, f"{form} in {channel}"
    for step in URL_ENCODERS:
        assert f"[{step}] v=***" in logs.stdout, step  # the whole encoded form was masked
    assert "ValueError: ***" in channels["summary"]  # the reason, every form in it masked


def _wfx(cwd: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=environ,
        timeout=120,
    )
