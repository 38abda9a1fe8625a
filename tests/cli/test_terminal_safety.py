"""Text from a workflow or a run cannot act on the terminal it is printed to.

A hostile file (a pull request's, say) puts escape sequences, a bell, a carriage return
or a bidirectional override in a name, a path or a value; wfx's own lines (diagnostics,
the run view, the summary, `wfx runs` and `wfx show`) write each as `<U+XXXX>`. A step's
own output is the step's to write and passes as it is."""

from __future__ import annotations

from pathlib import Path

from cli_process import wfx

from wfx.render.run_view import _line, _shown

#: an OSC that retitles the window, a CSI that colours, a bell, a carriage return that
#: lets the rest overwrite the line, and a right-to-left override ("Trojan source")
HOSTILE = r"\e]0;pwned\a\e[31m\r\u202e"
RAW = ("\x1b", "\x07", "\r", "\u202e")


def _clean(text: str) -> None:
    for character in RAW:
        assert character not in text, (character, text)


def test_a_diagnostic_writes_out_what_it_quotes(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(f'wfx: 1\nenvFile: "env{HOSTILE}"\nsteps:\n  - run: "true"\n')
    result = wfx("validate", str(path))
    assert result.returncode == 2
    _clean(result.stdout + result.stderr)
    assert "env<U+001B>]0;pwned<U+0007><U+001B>[31m<U+000D><U+202E>" in result.stderr
    annotations = wfx("validate", "--format", "github", str(path))
    _clean(annotations.stdout + annotations.stderr)
    assert "env<U+001B>]0;pwned" in annotations.stdout + annotations.stderr


def test_the_run_view_summary_and_history_write_out_names_and_reasons(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        f'wfx: 1\nname: "demo{HOSTILE}"\nsteps:\n'
        f'  - {{id: a, run: "true", workingDirectory: "/nowhere{HOSTILE}"}}\n'
    )
    ran = wfx("run", str(path), cwd=tmp_path)
    assert ran.returncode == 1
    _clean(ran.stdout + ran.stderr)
    assert "started: demo<U+001B>]0;pwned<U+0007>" in ran.stdout
    assert "working directory does not exist: /nowhere<U+001B>]0;pwned" in ran.stdout
    runs = wfx("runs", cwd=tmp_path)
    run_id = ran.stdout.split()[1]
    shown = wfx("show", run_id, cwd=tmp_path)
    for result in (runs, shown):
        assert result.returncode == 0, result.stderr
        _clean(result.stdout + result.stderr)
    assert "<U+001B>" in shown.stdout


def test_a_steps_own_output_passes_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("wfx: 1\nsteps:\n  - id: a\n    run: printf '\\033[31mred\\033[0m\\n'\n")
    ran = wfx("run", "--no-journal", str(path))
    assert ran.returncode == 0, ran.stderr
    assert "[a] \x1b[31mred\x1b[0m" in ran.stdout


def test_a_reasons_later_lines_are_indented_under_it() -> None:
    """No line of a reason can pass for one of wfx's own, or for a CI runner's command."""
    shown = _shown("[a] failed: bad\n::error::forged\x1b[2K")
    assert shown == "[a] failed: bad\n  ::error::forged<U+001B>[2K"
    assert not any(line.startswith("::") for line in shown.splitlines())


def test_the_live_view_writes_out_a_steps_detail() -> None:
    label = _line("✗", "a", "working directory does not exist: /x\x1b]0;t\x07")
    assert label.plain == "✗ a  working directory does not exist: /x<U+001B>]0;t<U+0007>"
