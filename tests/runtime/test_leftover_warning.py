"""The orphan-kill warning names the step and its leftover processes briefly: never a
step's whole multi-line script, never a secret (not even part of one)."""

from __future__ import annotations

from pathlib import Path

from harness import run_text

from wfx.runtime import events as ev

SECRET = "tok-5ecret-value-do-not-show"


def _warning(tmp_path: Path, script: str) -> str:
    indented = "\n".join(f"      {line}" for line in script.splitlines())
    run = run_text(
        tmp_path,
        f"wfx: 1\nsecrets: [TOKEN]\nsteps:\n  - id: spawner\n    killGrace: 1s\n    run: |\n"
        f"{indented}\n",
        environ={"PATH": "/usr/bin:/bin", "TOKEN": SECRET},
    )
    assert run.result.exit_code == 0
    [notice] = [n for n in run.of(ev.Notice) if n.step == "spawner"]
    message: str = notice.message
    return message


def test_a_subshell_left_running_is_named_without_the_whole_script(tmp_path: Path) -> None:
    script = "\n".join(
        [
            "echo 'a rather long first line that goes on and on and on and on and on'",
            "( sleep 600; true ) &",
            *(f"echo 'line {i} of a long script that must not be repeated'" for i in range(30)),
        ]
    )
    message = _warning(tmp_path, script)
    assert message.startswith("killed processes `spawner` left running: ")
    assert "line 7 of a long script" not in message
    assert "\n" not in message
    listed = message.removeprefix("killed processes `spawner` left running: ").split(", ")
    commands = dict(item.split(" ", 1) for item in listed)
    assert all(pid.isdigit() for pid in commands)
    [subshell] = [c for c in commands.values() if c.startswith("bash")]
    assert len(subshell) <= 60
    assert subshell.endswith("…")
    assert "sleep 600" in commands.values()


def test_a_secret_in_a_leftover_command_line_is_masked_before_it_is_cut(
    tmp_path: Path,
) -> None:
    padding = "x" * 30
    message = _warning(tmp_path, f'sh -c "sleep 600; : {padding} $TOKEN" &\n')
    assert SECRET[:6] not in message
    assert "sleep 600" in message


def test_many_leftovers_are_counted_not_listed(tmp_path: Path) -> None:
    message = _warning(tmp_path, "for i in 1 2 3 4 5 6 7 8; do sleep 600 & done\n")
    assert message.count("sleep 600") == 5
    assert message.endswith(" and 3 more")
