"""T13: `${{ }}` values can never become shell code, in any quoting context, and never
reach a context the shell itself evaluates as code (arithmetic, subscripts, `let`…)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from harness import Recorded, run_text

from wfx import compiler
from wfx.api import compile_file
from wfx.diagnostics import DiagnosticsError
from wfx.expr import parse_template
from wfx.runtime.actions import unpassable
from wfx.shell import EvaluatedValueError, prepare_script

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
    "a[$(touch $CANARY)]",
    "a[`touch $CANARY`]+1",
    "x[$(touch $CANARY)]",
    "0 + a[$(touch $CANARY)]",
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


# -- contexts bash evaluates as code -----------------------------------------------------------

#: context -> (script, what it prints when the value is 2); `X` stands for the value
EVALUATING = {
    "arithmetic": ("echo $(( X + 1 ))", "3"),
    "arithmetic-in-double-quotes": ('echo "$(( X + 1 ))"', "3"),
    "arithmetic-in-parameter-default": ('echo "${unset:-$(( X ))}"', "2"),
    "old-arithmetic": ("echo $[ X + 1 ]", "3"),
    "old-arithmetic-in-double-quotes": ('echo "$[X]"', "2"),
    "arithmetic-command": ("(( c = X + 1 )); echo $c", "3"),
    "arithmetic-command-after-and": ("true &&((c=X));echo $c", "2"),
    "arithmetic-command-after-tabs": ("c=0;\t((\tc = X\t));echo $c", "2"),
    "arithmetic-command-on-its-own-line": ("c=0\n(( c += X ))\necho $c", "2"),
    "arithmetic-command-in-if": ("if (( X > 1 )); then echo big; fi", "big"),
    "arithmetic-for": ("for (( i = X; i < 3; i++ )); do echo $i; done", "2"),
    "arithmetic-in-substitution": ('echo "$(echo $(( X * 2 )))"', "4"),
    "substitution-in-arithmetic": ("echo $(( $(echo X) + 1 ))", "3"),
    "arithmetic-command-in-substitution": ("echo $( (( c = X )); echo $c )", "2"),
    "arithmetic-in-heredoc": ("cat <<EOF\n$(( X + 1 ))\nEOF", "3"),
    "arithmetic-in-dash-heredoc": ("cat <<-EOF\n\t$(( X + 1 ))\n\tEOF", "3"),
    "conditional-eq": ('[[ "X" -eq 2 ]] && echo yes', "yes"),
    "conditional-lt-right-operand": ("[[ 1 -lt X ]] && echo yes", "yes"),
    "conditional-ge-after-and": ('[[ a == a && "X" -ge 2 ]] && echo yes', "yes"),
    "conditional-ne-in-parentheses": ("[[ ( X -ne 1 ) ]] && echo yes", "yes"),
    "conditional-v": ('set -- p q; [[ -v "X" ]] && echo yes', "yes"),
    "test-v": ('a=(p q r); [ -v "a[X]" ] && echo yes', "yes"),
    "test-command-v": ('a=(p q r); test -v "a[X]" && echo yes', "yes"),
    "let": ('let "c = X + 1"; echo $c', "3"),
    "let-after-a-comment": (": a # a note\nlet c=X; echo $c", "2"),
    # a builtin's name spelled through quotes or escapes is still its name to bash
    "let-spelled-with-a-backslash": ("l\\et c=X; echo $c", "2"),
    "let-spelled-with-empty-quotes": ('l""et c=X; echo $c', "2"),
    "let-after-a-substitution-then-a-bracket": (
        "$(echo a)let[ 2>/dev/null ||\n(( c = X )); echo $c",
        "2",
    ),
    "let-spelled-in-ansi-c-quotes": ("$'l\\x65t' c=X; echo $c", "2"),
    "declare-spelled-in-parts": ("d$'ec'l\\a\"\"re -i n=X; echo $n", "2"),
    "let-made-by-brace-expansion": ("l{e,}t c=X; echo $c", "2"),
    # inside `"$( )"` the quoting starts again: `\e` there is `e`
    "let-spelled-with-a-backslash-in-a-quoted-substitution": ('echo "$(l\\et c=X; echo $c)"', "2"),
    "let-in-ansi-c-quotes-in-a-quoted-substitution": ("echo \"$($'l\\x65t' c=X; echo $c)\"", "2"),
    "let-in-quoted-backquotes": ('echo "`l\\et c=X; echo $c`"', "2"),
    "let-spelled-across-a-line-continuation": ("l\\\n\\et c=X; echo $c", "2"),
    "declare-with-its-option-quoted": ('declare "-i" n=X; echo $n', "2"),
    "declare-with-its-option-escaped": ("declare \\-i n=X; echo $n", "2"),
    "declare-with-its-option-in-ansi-c-quotes": ("declare $'-i' n=X; echo $n", "2"),
    "let-after-a-prefix-made-by-brace-expansion": ("{builtin,let} c=X; echo $c", "2"),
    "let-after-command-with-an-option": ("command -p let c=X; echo $c", "2"),
    "let-after-builtin-and-double-dash": ("builtin -- let c=X; echo $c", "2"),
    # a `#` just after the `)` of `$( )`, `$(( ))`, `<( )` or `a=( )` is in the word
    "let-after-a-substitution-and-a-hash": ("echo $(echo a)# >/dev/null; let c=X; echo $c", "2"),
    "let-after-an-arithmetic-and-a-hash": ("echo $((1))# >/dev/null; let c=X; echo $c", "2"),
    "let-after-a-process-substitution-and-a-hash": (
        "echo <(:)# >/dev/null; let c=X; echo $c",
        "2",
    ),
    "let-after-a-compound-value-and-a-hash": ("a=(1)#; let c=X; echo $c", "2"),
    # where bash ends a heredoc: at its delimiter after quote removal, and inside `$( )` or
    # backquotes also at the `)` or backquote that closes them
    "let-after-a-heredoc-with-a-quoted-delimiter-of-spaces": (
        'cat <<"E O F" >/dev/null\nhello\nE O F\nlet c=X; echo $c',
        "2",
    ),
    "let-after-a-heredoc-with-an-escaped-delimiter": (
        "cat <<E\\ O\\ F >/dev/null\nhello\nE O F\nlet c=X; echo $c",
        "2",
    ),
    "let-after-a-heredoc-with-an-ansi-c-delimiter": (
        "cat <<$'E\\x4fF' >/dev/null\nhello\nEOF\nlet c=X; echo $c",
        "2",
    ),
    "let-after-a-heredoc-ended-by-its-substitution": (
        "exec 2>/dev/null\nx=$(cat <<EOF\na\nEOF)\nlet c=X; echo $c",
        "2",
    ),
    "let-after-a-heredoc-ended-by-its-backquote": (
        "x=`cat <<'EOF'\na\nEOF`\nlet c=X; echo $c",
        "2",
    ),
    # found by a differential fuzzer: the scanner read these otherwise than bash
    "let-after-a-heredoc-whose-body-opens-a-quote": (
        "set +e; exec 2>/dev/null\ncat <<E >/dev/null\n$(echo 'a\nE\nlet c=X; echo $c",
        "2",
    ),
    "let-after-a-continued-line-in-a-heredoc": (
        "cat <<E >/dev/null\na\\\nE\n'\nE\nlet c=X; echo $c",
        "2",
    ),
    "let-after-an-element-assignment": ("exec 2>/dev/null; a[0]=1 let c=X; echo $c", "2"),
    "let-after-a-word-with-a-bracket": ("echo a[ >/dev/null;let c=X; echo $c", "2"),
    "declare-after-a-duplicated-descriptor": ("2>&1 declare -i n=X; echo $n", "2"),
    "let-after-a-heredoc-on-its-line": ("<<E let c=X; echo $c\nE", "2"),
    "let-after-an-escaped-space-and-a-hash": ("echo a\\ #x >/dev/null; let c=X; echo $c", "2"),
    "let-after-a-continued-word": ("echo =\\\na[ >/dev/null;let c=X; echo $c", "2"),
    "arithmetic-in-a-heredoc-whose-delimiter-is-continued": (
        "cat <<E\\\nOF\n$(( X + 1 ))\nEOF",
        "3",
    ),
    "duplicated-output": ("{ echo a >&X; } 2>&1", "a"),
    "duplicated-standard-output": ("{ echo a 1>&X; } 2>&1", "a"),
    "let-after-an-expansion-that-may-be-empty": ("$empty let c=X; echo $c", "2"),
    "let-spelled-around-a-substitution-that-prints-nothing": ("l$(:)et c=X; echo $c", "2"),
    "let-spelled-around-an-empty-parameter": ("l${empty}et c=X; echo $c", "2"),
    "let-spelled-around-a-parameter-in-a-substitution": ('echo "$(l${e}et c=X; echo $c)"', "2"),
    "let-spelled-around-a-substitution-in-a-substitution": ('echo "$(l$(:)et c=X; echo $c)"', "2"),
    "let-after-empty-parameters-and-a-brace-expansion": ("$@{builtin,let} c=X; echo $c", "2"),
    "let-spelled-around-an-empty-variable-and-quotes": ('l$empty""et c=X; echo $c', "2"),
    "read-after-an-empty-expansion-in-its-word": ('${x//a/b}read "a[X]" <<< v; echo ${a[2]}', "v"),
    "declare-after-a-parameter-and-a-redirection": ("$2>&1 declare -i n=X; echo $n", "2"),
    "arithmetic-in-a-heredoc-after-a-parameter-delimiter": (
        "exec 2>/dev/null\ncat <<-${a[f() { :; }\n$(( X + 1 ))",
        "3",
    ),
    "arithmetic-after-the-process-id": ("echo $${ >/dev/null\n(( c = X + 1 )); echo $c", "3"),
    "let-after-a-comment-in-backquotes": ("echo `echo a #c` >/dev/null;let c=X; echo $c", "2"),
    "let-after-a-conditional-and-a-redirection": ("[[ a ]]>/dev/null\nlet c=X; echo $c", "2"),
    "let-after-a-hash-in-a-parameter-default": ("echo ${x:- #} >/dev/null; let c=X; echo $c", "2"),
    "let-after-a-heredoc-opened-before-a-comment": (
        "cat <<EOF >/dev/null # a note\nhello\nEOF\nlet c=X; echo $c",
        "2",
    ),
    "declare-i-after-a-comment": ("# a note\n: a # a note\ndeclare -i n=X; echo $n", "2"),
    "let-after-if": ("if let c=X; then echo $c; fi", "2"),
    "let-through-builtin": ("builtin let c=X; echo $c", "2"),
    "declare-i": ("declare -i n=X; echo $n", "2"),
    "declare-i-among-options": ("declare -r -i n=X; echo $n", "2"),
    "declare-i-array": ("declare -ai a=(X); echo ${a[0]}", "2"),
    "typeset-i": ('typeset -i n="X"; echo $n', "2"),
    "local-i": ("f() { local -i n=X; echo $n; }; f", "2"),
    "declare-name": ('declare "a[X]=v"; echo ${a[2]}', "v"),
    "local-name": ('f() { local "a[X]=v"; echo ${a[2]}; }; f', "v"),
    "declare-nameref": ("a=(p q r); declare -n r=a[X]; echo $r", "r"),
    "integer-variable": ("declare -i n; n=X; echo $n", "2"),
    "integer-variable-append": ("declare -i n=1; n+=X; echo $n", "3"),
    "subscript": ("a=(p q r); echo ${a[X]}", "r"),
    "subscript-in-double-quotes": ('a=(p q r); echo "${a[X]}"', "r"),
    "subscript-of-length": ("a=(p q rr); echo ${#a[X]}", "2"),
    "subscript-in-heredoc": ("a=(p q r)\ncat <<EOF\n${a[X]}\nEOF", "r"),
    "assigned-element": ("a[X]=v; echo ${a[2]}", "v"),
    "appended-element": ("a[X]+=v; echo ${a[2]}", "v"),
    "compound-element": ("a=([X]=v); echo ${a[2]}", "v"),
    "substring-offset": ("v=hello; echo ${v:X:1}", "l"),
    "substring-length": ('v=hello; echo "${v:0:X}"', "he"),
    "substring-negative-offset": ("v=hello; echo ${v: -X}", "lo"),
    "substring-after-subscript": ("a=(hello); echo ${a[0]:X}", "llo"),
    "substring-of-positionals": ("set -- p q r; echo ${@:X}", "q r"),
    "substring-in-heredoc": ("v=hello\ncat <<EOF\n${v:X}\nEOF", "llo"),
    "read-name": ('read "a[X]" <<< v; echo ${a[2]}', "v"),
    "read-name-after-options": ('read -r -p "" "a[X]" <<< v; echo ${a[2]}', "v"),
    "printf-v": ('printf -v "a[X]" %s v; echo ${a[2]}', "v"),
    # what a scanner that loses its place would miss
    "after-a-here-string": ('cat <<< "x" >/dev/null\necho $(( X + 1 ))', "3"),
    "after-an-arithmetic-shift": ("echo $(( 1 << 2 )) >/dev/null\necho $(( X + 1 ))", "3"),
    "after-a-shift-assignment": ("(( y = 1, y <<= 1 ))\necho $(( X + y ))", "4"),
    "in-backquotes": ("echo `echo $(( X + 1 ))`", "3"),
    "arithmetic-command-in-backquotes": ("echo `(( c = X )); echo $c`", "2"),
    "let-in-backquotes-in-double-quotes": ('echo "`let c=X; echo $c`"', "2"),
    "let-in-backquotes-in-heredoc": ("cat <<EOF\n`let c=X; echo $c`\nEOF", "2"),
    "let-in-substitution": ("echo $(let c=X; echo $c)", "2"),
    "let-after-a-substitution": ("let c=$(echo 1)+X; echo $c", "3"),
    "case-pattern-in-substitution": ('echo "$(case a in a) (( c = X )); echo $c;; esac)"', "2"),
    "parentheses-in-old-arithmetic": ("echo $[ (1 + 1) * X ]", "4"),
    "parentheses-in-subscript": ("a=(p q r); echo ${a[(0 + 1) * X]}", "r"),
    # variables bash expands as code: `PS4` at each traced command, `BASH_ENV` in each bash
    # started, `OPTIND`, `RANDOM`… as arithmetic when assigned
    "ps4-assignment": ('PS4=X; echo "$PS4"', "2"),
    "ps4-exported": ('export PS4="X"; echo "$PS4"', "2"),
    "ps4-declared-in-quotes": ('declare "PS4=X"; echo "$PS4"', "2"),
    "optind-assignment": ("OPTIND=X; echo $OPTIND", "2"),
    "random-seed": ("RANDOM=X; echo seeded", "seeded"),
    "bash-env-before-a-command": ("BASH_ENV=X printenv BASH_ENV", "2"),
    "bash-env-through-env": ("env BASH_ENV=X printenv BASH_ENV", "2"),
    # `unset` evaluates an array element's subscript
    "unset-element": ('a=(p q r); unset "a[X]"; echo "${a[@]}"', "p q"),
    "unset-v-element": ('a=(p q r); unset -v a[X]; echo "${a[@]}"', "p q"),
    # a quoted `( … )` is parsed again by `declare`, its words expanded a second time
    "declare-quoted-compound": ('declare -a "b=(X)"; echo "${b[0]}"', "2"),
    "local-quoted-compound": ('f() { local -a b="(1 X)"; echo "${b[1]}"; }; f', "2"),
}


def evaluating_workflow(script: str, expression: str) -> str:
    body = textwrap.indent(script.replace("X", "${{ " + expression + " }}"), " " * 6)
    return (
        "wfx: 1\ninputs:\n  x: {type: string, default: '1'}\n  k: {type: number, default: 2}\n"
        f"steps:\n  - id: s\n    run: |\n{body}\n"
    )


def run_with_canary(tmp_path: Path, script: str, value: str) -> tuple[Recorded, bool]:
    """Run `script` (`X` standing for `${{ inputs.x }}`) with `value`, `$CANARY` naming a
    file a payload would create: the run, and whether the file was created."""
    canary = tmp_path / "CANARY"
    run = run_text(
        tmp_path,
        evaluating_workflow(script, "inputs.x"),
        inputs={"x": value},
        environ={"PATH": "/usr/bin:/bin", "CANARY": str(canary)},
    )
    return run, canary.exists()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("context", sorted(EVALUATING))
def test_a_value_in_an_evaluating_context_is_refused_with_its_position(
    context: str, tmp_path: Path
) -> None:
    script, _ = EVALUATING[context]
    text = evaluating_workflow(script, "inputs.x")
    positions = [
        (number, line.index("${{") + 4)
        for number, line in enumerate(text.splitlines(), start=1)
        if "${{ inputs.x }}" in line
    ]
    path = write(tmp_path, text)
    for payload in PAYLOADS:
        with pytest.raises(DiagnosticsError) as caught:
            compile_file(path, {"x": payload})
        refused = caught.value.diagnostics
        assert [(d.code, d.span.line, d.span.column) for d in refused if d.span] == [
            ("compile.evaluated-value", line, column) for line, column in positions
        ]
        assert all("evaluates text there as code" in d.message and d.hint for d in refused)


@pytest.mark.parametrize("context", sorted(EVALUATING))
def test_the_runtime_passes_only_integers_to_an_evaluating_context(context: str) -> None:
    template = parse_template(EVALUATING[context][0].replace("X", "${{ inputs.x }}"))
    for payload in [*PAYLOADS, "1.5", "0x10", "1e3", " 2", "2 ", "", "-", "9" * 19]:
        with pytest.raises(EvaluatedValueError, match="is not an integer"):
            prepare_script(template, lambda expression: payload)  # noqa: B023


#: the payloads aimed at evaluating contexts (every payload meets the runtime check above)
EVALUATED_PAYLOADS = [p for p in PAYLOADS if "[" in p]


@pytest.mark.parametrize("payload", EVALUATED_PAYLOADS)
@pytest.mark.parametrize("context", sorted(EVALUATING))
def test_no_payload_runs_even_past_the_compiler(
    context: str, payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiler check switched off, a real run: the runtime still refuses the value."""
    monkeypatch.setattr(compiler, "check_scripts", lambda steps, workflow: [])
    run, ran = run_with_canary(tmp_path, EVALUATING[context][0], payload)
    assert not ran, f"payload executed in {context}"
    assert run.status("s") == "failed"
    assert "which bash evaluates as code" in (run.result.steps["s"].reason or "")


@pytest.mark.parametrize("context", sorted(EVALUATING))
def test_proven_numbers_are_admitted_and_evaluated(context: str, tmp_path: Path) -> None:
    script, printed = EVALUATING[context]
    for expression in ("inputs.k", "2"):
        run = run_text(tmp_path, evaluating_workflow(script, expression))
        assert run.result.exit_code == 0, run.result.reason
        assert run.output("s") == [printed], expression


def test_a_number_input_that_is_not_an_integer_is_refused_at_run_time(tmp_path: Path) -> None:
    run = run_text(tmp_path, evaluating_workflow("echo $(( X ))", "inputs.k"), inputs={"k": 1.5})
    assert run.status("s") == "failed"
    assert "its value '1.5' is not an integer" in (run.result.steps["s"].reason or "")


def test_attempt_is_a_proven_number(tmp_path: Path) -> None:
    run = run_text(tmp_path, evaluating_workflow("echo $(( X * 10 ))", "attempt"))
    assert run.output("s") == ["10"]


#: lookalikes bash does not evaluate: accepted, and the value stays data
NOT_EVALUATING = {
    "conditional-pattern": '[[ "X" == "X" ]] || true; echo same',
    "conditional-string-order": '[[ "X" < "~" ]] || true; echo same',
    "conditional-regex": '[[ "X" =~ ^ ]] || true; echo same',
    "test-eq-in-bash": '[ "X" -eq 1 ] 2>/dev/null || true; echo same',
    "test-command-eq-in-bash": 'test "X" -gt 1 2>/dev/null || true; echo same',
    "parameter-default": 'echo "${unset:-X}"; echo same',
    "parameter-pattern": 'v=abc; echo "${v/b/X}"; echo same',
    "declare-value": 'declare v="X"; echo same',
    "brace-expansion-in-arguments": "echo {a,b}-X >/dev/null; echo same",
    "associative-subscript-after-a-comment": (
        'echo a # a note\ndeclare -A m; m[X]=1; echo "${m[X]}" >/dev/null; echo same'
    ),
    "export-value": 'export V="X"; echo same',
    "read-prompt": 'read -r -p "X" v <<< data; echo same',
    "printf-argument": 'printf "%s\\n" "X" >/dev/null; echo same',
    "bracket-glob": "echo file[X] >/dev/null; echo same",
    "array-element": 'a=("X"); echo same',
    "arithmetic-in-single-quotes": "echo '$(( X ))' >/dev/null; echo same",
    "arithmetic-in-quoted-heredoc": "cat <<'EOF' >/dev/null\n$(( X ))\nEOF\necho same",
    "arithmetic-in-comment": "echo same # $(( X ))",
    "read-from-a-here-string": 'read -r v <<< "X"; echo same',
    "read-from-a-file-named-by-the-value": 'read -r v 2>/dev/null < "X" || true; echo same',
    "associative-array": 'declare -A m; m[X]=1; echo "${m[X]}" >/dev/null; echo same',
    "echo-in-backquotes": 'echo "`echo X`" >/dev/null; echo same',
    "case-pattern": 'case "X" in *) echo same;; esac',
    "comment-after-a-subshell": "(echo same)# let c=X",
}


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("context", sorted(NOT_EVALUATING))
def test_lookalikes_are_accepted_and_keep_the_value_data(
    context: str, payload: str, tmp_path: Path
) -> None:
    run, ran = run_with_canary(tmp_path, NOT_EVALUATING[context], payload)
    assert not ran, f"payload executed in {context}"
    assert run.output("s")[-1:] == ["same"], run.result.steps["s"].reason


def test_zsh_and_ksh_test_operands_are_evaluating_contexts() -> None:
    template = parse_template('[ "${{ inputs.x }}" -eq 1 ]')
    for shell, refused in (("bash -e", False), ("sh", False), ("zsh", True), ("ksh -e", True)):
        render = prepare_script
        if refused:
            with pytest.raises(EvaluatedValueError):
                render(template, lambda expression: "a[$(id)]", shell)
        else:
            assert render(template, lambda expression: "a[$(id)]", shell).env


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("é" * 65_536, True),  # 65,536 characters, 131,072 bytes: one byte too many
        ("é" * 65_535, False),
        ("\U0001f600" * 32_767, False),  # four bytes each: 131,068
        ("\U0001f600" * 32_768, True),
        ("a" * 131_071, False),
        ("a" * 131_072, True),
    ],
)
def test_the_size_limit_counts_bytes_not_characters(value: str, refused: bool) -> None:
    """Linux's limit is in bytes of the encoded string: a value of fewer characters than
    the limit can still be too long, and one just under it in bytes passes."""
    problem = unpassable(["true"], {"V": value})
    assert (problem is not None) is refused


def test_a_brace_expansion_of_many_words_is_followed_only_so_far(tmp_path: Path) -> None:
    """`{,}` thirty times then `let` is `let` 2**30 times to bash: the check follows the
    first few words, finds `let` and answers at once, never hanging the compiler."""
    import time

    name = "{,}" * 30 + "let"
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\ninputs:\n  x: {type: string}\nsteps:\n  - id: s\n"
        f"    run: '{name} c=${{{{ inputs.x }}}}'\n"
    )
    started = time.monotonic()
    with pytest.raises(DiagnosticsError, match="let"):
        compile_file(tmp_path / "wf.yaml", {"x": "1"})
    assert time.monotonic() - started < 5


# -- a declaration's value: code only when it starts with `(` ----------------------------------

#: a value that runs a command when `declare` parses it as an array assignment
ARRAY_PAYLOAD = "(x $(touch $CANARY))"

#: declarations whose value bash parses as `( … )` when the variable is (or becomes) an array
ARRAY_VALUES = {
    "declare-a": 'declare -a b=X; echo "${b[0]}"',
    "declare-a-in-quotes": 'declare -a "b=X"; echo "${b[0]}"',
    "declare-of-an-array": 'b=(1); declare b=X; echo "${b[0]}"',
    "declare-append": 'declare -a b+=X; echo "${b[0]}"',
    "local-of-an-array": 'f() { local -a b; local b=X; echo "${b[0]}"; }; f',
    "typeset-associative": 'typeset -A b="X"; echo "${b[0]}"',
    "readonly-a": 'readonly -a b=X; echo "${b[0]}"',
    "export-a": 'export -a b=X 2>/dev/null; echo "${b[0]}"',
    "after-other-values": 'declare -a b=""X; echo "${b[0]}"',
}


@pytest.mark.parametrize("context", sorted(ARRAY_VALUES))
def test_a_declaration_value_that_starts_with_a_parenthesis_is_refused_at_run_time(
    context: str, tmp_path: Path
) -> None:
    """Compiled (an ordinary value is data there), a value starting with `(` fails the
    step before its process starts; without the check the payload runs (shown below)."""
    run, ran = run_with_canary(tmp_path, ARRAY_VALUES[context], ARRAY_PAYLOAD)
    assert not ran, f"payload executed in {context}"
    assert run.status("s") == "failed"
    assert "starts with `(`" in (run.result.steps["s"].reason or "")


@pytest.mark.parametrize("context", sorted(ARRAY_VALUES))
@pytest.mark.parametrize("value", ["hello (x)", " (x)", "x)", "a[$(touch $CANARY)]"])
def test_any_other_declaration_value_is_data(context: str, value: str, tmp_path: Path) -> None:
    run, ran = run_with_canary(tmp_path, ARRAY_VALUES[context], value)
    assert not ran
    assert run.output("s") == [value], run.result.steps["s"].reason


def test_bash_does_run_a_declaration_value_that_starts_with_a_parenthesis(
    tmp_path: Path,
) -> None:
    """Why the check exists: the same script in bash, the value in a variable."""
    import subprocess

    canary = tmp_path / "CANARY"
    for template in ARRAY_VALUES.values():
        canary.unlink(missing_ok=True)
        quoted = template.count('"', 0, template.index("X")) % 2  # X inside double quotes
        script = template.replace("X", "$V" if quoted else '"$V"')
        subprocess.run(
            ["bash", "-c", script],
            env={"PATH": "/usr/bin:/bin", "V": ARRAY_PAYLOAD, "CANARY": str(canary)},
            capture_output=True,
            check=False,
        )
        assert canary.exists(), script


@pytest.mark.parametrize(
    "script",
    [
        'export V=X; echo "$V"',  # `export`/`readonly` without `-a` never parse it
        'b=(1); readonly b=X; echo "${b[0]}"',
        'declare -a b=("X"); echo "${b[0]}"',  # the parser's own `( … )`: words expand once
        'declare -a b=(X); echo "${b[0]}"',
        'declare b=x"X"; echo "$b"',  # a value that starts with other text
        "ENV=X printenv ENV",  # only an interactive `sh` reads `ENV`
    ],
)
def test_values_bash_never_parses_again_are_not_refused(script: str, tmp_path: Path) -> None:
    run, ran = run_with_canary(tmp_path, script, ARRAY_PAYLOAD)
    assert not ran
    printed = ARRAY_PAYLOAD if not script.startswith("declare b=x") else "x" + ARRAY_PAYLOAD
    assert run.output("s") == [printed], run.result.steps["s"].reason


# -- `env:` values a shell expands as code ----------------------------------------------------

#: where an `env:` map stands in a workflow -> the workflow with `NAME: VALUE` there
ENV_PLACES = {
    "workflow": "env: {{{entry}}}\nsteps:\n  - id: s\n    run: 'true'\n",
    "defaults": "defaults:\n  env: {{{entry}}}\nsteps:\n  - id: s\n    run: 'true'\n",
    "group": (
        "steps:\n  - id: g\n    env: {{{entry}}}\n    steps:\n      - id: s\n        run: 'true'\n"
    ),
    "step": "steps:\n  - id: s\n    run: 'true'\n    env: {{{entry}}}\n",
    "cmd-step": "steps:\n  - id: s\n    cmd: ['true']\n    env: {{{entry}}}\n",
    "rollback": (
        "steps:\n  - id: s\n    run: 'true'\n    rollback:\n      run: 'true'\n"
        "      env: {{{entry}}}\n"
    ),
}


def env_workflow(place: str, entry: str) -> str:
    head = "wfx: 1\ninputs:\n  x: {type: string, default: a}\n  k: {type: number, default: 2}\n"
    return head + ENV_PLACES[place].format(entry=entry)


@pytest.mark.parametrize("place", sorted(ENV_PLACES))
@pytest.mark.parametrize("name", ["BASH_ENV", "PS4", "PS1", "PROMPT_COMMAND"])
def test_an_expression_in_an_env_value_a_shell_expands_is_refused(
    place: str, name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, env_workflow(place, f"{name}: 'x${{{{ inputs.x }}}}'"))
    with pytest.raises(DiagnosticsError) as caught:
        compile_file(path)
    [problem] = caught.value.diagnostics
    assert problem.code == "compile.evaluated-value"
    assert f"the value of `{name}`" in problem.message and problem.hint
    assert problem.span is not None
    line = path.read_text().splitlines()[problem.span.line - 1]
    assert problem.span.column == line.index("${{") + 4


@pytest.mark.parametrize("place", sorted(ENV_PLACES))
@pytest.mark.parametrize(
    "entry",
    ["BASH_ENV: /etc/wfx-none", "BASH_ENV: '${{ inputs.k }}'", "ENV: '${{ inputs.x }}'"],
)
def test_literal_number_and_ordinary_env_values_are_accepted(
    place: str, entry: str, tmp_path: Path
) -> None:
    compile_file(write(tmp_path, env_workflow(place, entry)))


def test_bash_runs_a_command_in_bash_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why: with the check switched off, a value in `BASH_ENV` runs before the script."""
    monkeypatch.setattr(compiler, "check_environments", lambda workflow: [])
    canary = tmp_path / "CANARY"
    run = run_text(
        tmp_path,
        env_workflow("step", "BASH_ENV: '${{ inputs.x }}'").replace("'true'", "echo ran"),
        inputs={"x": "$(touch $CANARY)"},
        environ={"PATH": "/usr/bin:/bin", "CANARY": str(canary)},
    )
    assert run.output("s") == ["ran"]
    assert canary.exists()
