"""A property over the injection corpus: however its fragments are combined and nested, a
script with a `${{ }}` in an evaluating context is refused at compile time, and any other
script runs (for real, in bash) without running a hostile value."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness import run_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_injection import EVALUATING, NOT_EVALUATING, PAYLOADS, SCRIPTS

from wfx.api import compile_file
from wfx.diagnostics import DiagnosticsError

#: ways to nest a piece of script that keep running it
WRAPPERS = [
    "{}",
    "(\n{}\n)",
    "f() {{\n{}\n}}\nf",
    "if true; then\n{}\nfi",
    'x="$(\n{}\n)"; echo "$x"',
    "for _ in 1; do\n{}\ndone",
    "{{ true &&\n{}\n}}",
    "echo before # a comment ends its command with its line\n{}",
    "cat <<EOF >/dev/null # a heredoc starts after the comment\nbody\nEOF\n{}",
    "echo a \\\n  b >/dev/null\n{}",
    "echo $(echo a)#not-a-comment <(:)#nor-this >/dev/null\n{}",
    "x=\"$(cat <<'E O F'\n(a) `b` ${{c}}\nE O F\n)\"\n{}",
]

EVALUATING_LINES = [script for script, _ in EVALUATING.values()]
INERT_LINES = [
    *NOT_EVALUATING.values(),
    *(script.replace("${{ inputs.x }}", "X") for script, _ in SCRIPTS.values()),
]


def workflow(lines: list[str]) -> str:
    script = "\n".join(lines).replace("X", "${{ inputs.x }}")
    return (
        "wfx: 1\ninputs:\n  x: {type: string}\nsteps:\n  - id: s\n    onError: continue\n"
        f"    run: |\n{textwrap.indent(script, ' ' * 6)}\n"
    )


@st.composite
def scripts(draw: st.DrawFn) -> tuple[list[str], bool]:
    """Lines, each a corpus fragment in a wrapper, and whether one evaluates its value."""
    pieces = draw(
        st.lists(
            st.tuples(
                st.sampled_from(WRAPPERS),
                st.one_of(st.sampled_from(INERT_LINES), st.sampled_from(EVALUATING_LINES)),
            ),
            min_size=1,
            max_size=4,
        )
    )
    lines = [wrapper.format(line) for wrapper, line in pieces]
    return lines, any(line in EVALUATING_LINES for _, line in pieces)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts(), payload=st.sampled_from([p for p in PAYLOADS if "[" in p]))
def test_combined_fragments_are_refused_or_keep_the_value_data(
    script: tuple[list[str], bool], payload: str, tmp_path_factory: object
) -> None:
    lines, evaluates = script
    directory = Path(tmp_path_factory.mktemp("combined"))  # type: ignore[attr-defined]
    canary = directory / "CANARY"
    text = workflow(lines)
    (directory / "wf.yaml").write_text(text)
    try:
        compile_file(directory / "wf.yaml", {"x": payload})
    except DiagnosticsError as exc:
        assert evaluates, f"refused a script that evaluates nothing:\n{text}\n{exc}"
        assert {d.code for d in exc.diagnostics} == {"compile.evaluated-value"}
        return
    assert not evaluates, f"accepted a script that evaluates its value:\n{text}"
    run_text(
        directory,
        text,
        inputs={"x": payload},
        environ={"PATH": "/usr/bin:/bin", "CANARY": str(canary)},
    )
    assert not canary.exists(), text
