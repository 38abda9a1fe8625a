"""A property over the injection corpus: however its fragments are combined and nested, a
script with a `${{ }}` in an evaluating context is refused at compile time, and any other
script runs (for real, in bash) without running a hostile value."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import textwrap
from pathlib import Path

from harness import run_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_injection import EVALUATING, NOT_EVALUATING, PAYLOADS, SCRIPTS

from wfx.api import compile_file
from wfx.diagnostics import DiagnosticsError
from wfx.expr import parse_template
from wfx.expr.errors import ExpressionError
from wfx.shell import ARRAY_VALUE, EvaluatedValueError, prepare_script, scan_sites

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


# -- a differential fuzzer: the scanner against bash itself -----------------------------------

#: pieces of shell syntax, balanced or not, that a scanner must follow as bash does
TOKENS = [
    *("#c", "echo a #c", "$(echo a)", "`echo a`", '"$(echo a)"', "'a b'", '"a b"', "$'a\\'b'"),
    *('$"a"', "a\\", "\\\n", "cat <<EOF\nbody\nEOF", "cat <<'EOF'\nbody\nEOF", "<<-E\n\tE"),
    *('cat <<<"a"', "${x:-a}", "${x#a}", "${#x}", "${x:- #}", "$((1+2))", "((1))", "[[ a ]]"),
    *("a=(1 2)", "a[0]=1", "{ echo; }", "(echo)", "case a in a) echo;; esac", "f() { :; }"),
    *("echo {a,b}", "echo <(echo)", "x=$(", ")", '"', "'", "`", "{", "}", "(", "$(", "${"),
    *("[", "]", "echo", ":", "&&", "||", "|", ";", "&", "\n", " ", "\t", "#", "\\", "$", "<<"),
    *("<<E", "E", "EOF", "<<-", "<<<", "$(( ", "))", "$[", "let", "declare", "local", "export"),
    *("read", "printf", "test", "unset", "builtin", "command", "=", "+=", "-i", "-a", "-n", "-v"),
    *("c", "c=", "a[", "x=", '"${', '}"', "$'", '\\"', "\\'", "\\`", "esac", "in", ";;", "do"),
    *("done", "then", "fi", "time", "!", "function", ">", "<", "2>&1", ">(", "<(", "|&", ">|"),
    *("${a[", "${a:", "${@:", "PS4=", "BASH_ENV=", "env", "{l,}", "l{e,}t", "\\ "),
    *("while", "until", "elif", "else", "select", "coproc", "]]", "-eq", "*)", "$'\\n'"),
    *("<<'E'", '"$(', ')"', "${x//a/b}", "${x@Q}", "mapfile", "typeset", "readonly", "$$"),
    *("1>&", ">&", "&>", "$?", "$#", "$@", "${#a[@]}", "a+=(", "[0]=", "x[1]", "\\\n#"),
]

#: what follows the noise: every evaluating fragment, and a few more
TAILS = [*EVALUATING_LINES, "let c=X", "(( X ))", "declare -a b=X", "PS4=X; set -x; :"]

#: payloads that run `touch $CANARY` wherever bash evaluates them
FUZZ_PAYLOADS = [
    *("a[$(touch $CANARY)]", "$(touch $CANARY)", "(x $(touch $CANARY))"),
    *("x[`touch $CANARY`]", "a[$(touch${IFS}$CANARY)]"),
]


@st.composite
def noisy_scripts(draw: st.DrawFn) -> str:
    """A tail fragment before, after or inside a run of random shell syntax."""
    noise = "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8)))
    tail = draw(st.sampled_from(TAILS))
    cut = draw(st.integers(0, len(noise)))
    return draw(
        st.sampled_from(
            [noise + "\n" + tail, noise + ";" + tail, tail + "\n" + noise, noise[:cut] + tail]
        )
    )


# derandomized: the same 1,500 scripts on every run, so a case found but not yet followed
# cannot fail CI at random; explore with `derandomize=False` and `--hypothesis-seed`
@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(script=noisy_scripts(), payload=st.sampled_from(FUZZ_PAYLOADS))
def test_whatever_the_scanner_admits_runs_no_payload_in_bash(script: str, payload: str) -> None:
    """Any script the check admits, given a hostile value, runs in bash (as wfx's default
    shell, which stops at a syntax error) without running it; the scanner never crashes."""
    try:
        template = parse_template(script.replace("X", "${{ inputs.x }}"))
    except ExpressionError:
        return  # noise that is no template (`${` `{a`…): the compiler says so
    if any(site.evaluating not in (None, ARRAY_VALUE) for site in scan_sites(template)):
        return
    try:
        prepared = prepare_script(template, lambda expression: payload)
    except EvaluatedValueError:
        return
    with tempfile.TemporaryDirectory() as directory:
        canary = Path(directory) / "CANARY"
        environ = {"PATH": "/usr/bin:/bin", "CANARY": str(canary), **prepared.env}
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                ["bash", "-eo", "pipefail", "-c", prepared.text],  # wfx's default shell
                env=environ,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
        assert not canary.exists(), f"bash ran the value of an admitted script:\n{script}"
