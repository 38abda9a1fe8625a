"""Lint: uses of `${{ }}` that are valid but unsafe or surprising.

wfx passes interpolated values to `run` scripts as environment variables, so a value
can never become script text by itself. A script can still *turn* a value into code
(`eval "$X"`, `bash -c "…"`) or hide it (a quoted heredoc expands nothing), and a
secret in `cmd` is visible to every user of the machine through `ps`. These are the
findings, each a warning diagnostic with its position.

A `${{ }}` where the shell itself evaluates text as code (`$(( ))`, `[[ … -eq … ]]`,
`let`, `declare -i`, array subscripts…) or in a script for a shell wfx cannot quote for
is not a finding but a compile error (:func:`wfx.shell.check_scripts`), which
`wfx lint` reports like `wfx validate` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from wfx.diagnostics import Diagnostic, warning
from wfx.expr import Expression, Template
from wfx.model import Action, Located, Step, Workflow
from wfx.shell import SCRIPT_PLACEHOLDER, quotes_for, scan_contexts
from wfx.walk import StepVisitor

#: commands that run their argument as code (`trap`'s first argument runs at its signal)
_EVALUATORS = re.compile(
    r"(?:^|[;&|(`]|\$\()\s*(?:eval|trap|source|\.|(?:ba|z|k|da)?sh\s+-c|python3?\s+-c|node\s+-e|"
    r"perl\s+-e|ruby\s+-e|xargs\s+(?:-\S+\s+)*(?:ba)?sh\s+-c)\b"
)
_SHELLS = {"sh", "bash", "zsh", "ksh", "dash", "python", "python3", "node", "perl", "ruby"}
_CODE_FLAGS = {"-c", "-e"}

#: contexts whose values come from outside the workflow file
UNTRUSTED = ("inputs", "steps")


def lint(workflow: Workflow) -> list[Diagnostic]:
    """Every finding in `workflow`, in file order."""
    linter = _Linter()
    linter.shells.append(workflow.defaults.shell)
    linter.visit_workflow(workflow)
    shells = [s for s in linter.shells if s is not None and _needs_file(s)]
    return [*linter.findings, *(_check_shell(s) for s in shells)]


class _Linter(StepVisitor):
    """Collects the findings of every action and every `shell` written, walking the steps."""

    def __init__(self) -> None:
        self.findings: list[Diagnostic] = []
        self.shells: list[Located | None] = []

    def visit(self, step: Step) -> None:
        self.shells.append(step.shell)
        super().visit(step)

    def visit_action(self, action: Action, step: Step, *, rollback: bool) -> None:
        self.findings.extend(_check_action(action))
        if rollback:
            self.shells.append(action.shell)


def _needs_file(shell: Located) -> bool:
    text = str(shell.value)
    return not quotes_for(text) and SCRIPT_PLACEHOLDER not in text


def _check_shell(shell: Located) -> Diagnostic:
    return warning(
        "lint.shell-without-file",
        f"`shell: {shell.value}` gets the script as `{shell.value} -c SCRIPT`, which not every"
        f" interpreter runs (`node -c`, `perl -c` and `ruby -c` only check the syntax)",
        shell.span,
        f"write `shell: {shell.value} {{0}}`: wfx puts the script in a file and passes its"
        " path where `{0}` stands",
    )


def _check_action(action: Action) -> Iterator[Diagnostic]:
    if action.run is not None:
        yield from _check_script(action.run)
    if action.cmd:
        yield from _check_argv(action.cmd)


def _check_script(template: Template) -> Iterator[Diagnostic]:
    for expression, context, line in scan_contexts(template):
        if context == "quoted-heredoc":
            yield warning(
                "lint.quoted-heredoc",
                f"`${{{{ {expression.text.strip()} }}}}` is inside a heredoc with a quoted"
                " delimiter: the shell expands nothing there, so the value never appears",
                expression.span,
                "use an unquoted delimiter (<<EOF) to expand the value",
            )
        elif _EVALUATORS.search(line) and _untrusted(expression):
            yield _code_warning(expression, "the script runs it as code")


def _check_argv(items: tuple[Template, ...]) -> Iterator[Diagnostic]:
    program = "".join(p for p in items[0].parts if isinstance(p, str)).rsplit("/", 1)[-1]
    code_position = next(
        (i for i, item in enumerate(items) if item.is_literal() and _text(item) in _CODE_FLAGS),
        None,
    )
    for position, item in enumerate(items):
        for expression in item.expressions():
            if _uses(expression, "secrets"):
                yield warning(
                    "lint.secret-argument",
                    "a secret in `cmd` is an argument: every user of the machine can read it"
                    " with `ps`",
                    expression.span,
                    "pass it through `env` and read the variable in the program",
                )
            if code_position is None or position != code_position + 1:
                continue
            if program in _SHELLS and _untrusted(expression):
                flag = _text(items[code_position])
                yield _code_warning(expression, f"`{program} {flag}` runs it as code")


def _code_warning(expression: Expression, how: str) -> Diagnostic:
    return warning(
        "lint.value-as-code",
        f"`${{{{ {expression.text.strip()} }}}}` comes from outside the workflow and {how}",
        expression.span,
        "pass the value as data (an argument or a variable), never as code to evaluate",
    )


def _untrusted(expression: Expression) -> bool:
    return any(_uses(expression, name) for name in UNTRUSTED)


def _uses(expression: Expression, context: str) -> bool:
    return any(r.path[0].lower() == context for r in expression.references())


def _text(template: Template) -> str:
    return "".join(p for p in template.parts if isinstance(p, str))
