"""Env files: the dotenv files a workflow (`envFile:` on the workflow, a group or a step) and
the command line (`--env-file`) name, read once before compiling.

Files are parsed with python-dotenv, values taken as written: no `${VAR}` expansion (which
would read wfx's own environment into text the plan shows) and no `${{ }}` (a value is
data, never an expression). Every problem is a Diagnostic: a missing or unreadable file at
the position of its `envFile` entry, a line that is not `NAME=value` at its own line in the
env file; all of them at once, before anything runs. A diagnostic never quotes an env
file's text (a mistyped line may hold a secret): it names the line, and the variable when
the line starts with a valid name. A step's file may not set a name
listed in `secrets` (a secret has one value per run: the workflow's files and
`--env-file` give it).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wfx.confine import confine, project_root
from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, error
from wfx.model import COMMAND_LINE_ENV_FILE, Located, Step, Workflow
from wfx.walk import all_steps

if TYPE_CHECKING:
    from wfx.source import Path_

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LEADING_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)(?![^\s=:])")

#: an env file larger than this is refused (a dotenv file is a few kilobytes)
MAX_BYTES = 1024 * 1024


def load(
    workflow: Workflow, command_line: Sequence[str | Path] = (), root: str | Path | None = None
) -> Workflow:
    """`workflow` with the values of every env file it names and of `command_line`
    (`--env-file`, relative to the current directory) read, and those of every workflow it
    calls (each relative to its own file, as when it runs on its own); DiagnosticsError
    with every problem when one cannot be. A file a workflow names must be under the
    project root (`root`, else the workflow's directory) and outside `.git`
    (:mod:`wfx.confine`); `--env-file` may name any file."""
    reader = _Reader(Path(workflow.file).parent, project_root(workflow.file, root))
    loaded = _Loader(reader).workflow(workflow, command_line)
    if reader.problems:
        raise DiagnosticsError(reader.problems)
    return loaded


class _Loader:
    """Reads the env files of a workflow and of the workflows it calls (each file once)."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.children: dict[int, Workflow] = {}

    def workflow(self, workflow: Workflow, command_line: Sequence[str | Path] = ()) -> Workflow:
        """`workflow` with its env files' values, and its calls' children loaded."""
        reader = self.reader
        base = Path(workflow.file).parent
        values: dict[Path_, Mapping[str, str]] = {}
        if command_line:
            given = [(str(p), None) for p in command_line]
            values[COMMAND_LINE_ENV_FILE] = reader.read_all(
                given, relative_to=Path.cwd(), confined=False
            )
        if workflow.env_file:
            values[()] = reader.read_all(_written(workflow.env_file), relative_to=base)
        secrets = {str(s.value) for s in workflow.secrets}
        for step in all_steps(workflow):
            if step.env_file:
                files = _written(step.env_file)
                values[step.path] = reader.read_all(files, relative_to=base, secrets=secrets)
        steps = self.steps(workflow.steps)
        finally_ = self.steps(workflow.finally_)
        if not values and steps == workflow.steps and finally_ == workflow.finally_:
            return workflow
        return dataclasses.replace(
            workflow,
            steps=steps,
            finally_=finally_,
            env_file_values=values or workflow.env_file_values,
        )

    def steps(self, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        """`steps` with the workflows they call loaded (the same tuple when none changed)."""
        loaded = tuple(self.step(step) for step in steps)
        return steps if all(a is b for a, b in zip(loaded, steps, strict=True)) else loaded

    def step(self, step: Step) -> Step:
        if step.steps:
            inner = self.steps(step.steps)
            return step if inner is step.steps else dataclasses.replace(step, steps=inner)
        call = step.call
        if call is None or call.workflow is None:
            return step
        child = self.children.get(id(call.workflow))
        if child is None:
            child = self.workflow(call.workflow)
            self.children[id(call.workflow)] = child
        if child is call.workflow:
            return step
        return dataclasses.replace(step, call=dataclasses.replace(call, workflow=child))


def secrets_environment(workflow: Workflow, environ: Mapping[str, str]) -> dict[str, str]:
    """Where the run reads its `secrets` from: `environ`, then `--env-file`, then the
    workflow's `envFile` (a later one wins)."""
    values = workflow.env_file_values
    return {**environ, **values.get(COMMAND_LINE_ENV_FILE, {}), **values.get((), {})}


class _Reader:
    """Reads env files, collecting the problems of all of them."""

    def __init__(self, base: Path, root: str) -> None:
        self.base = base
        self.root = root
        self.problems: list[Diagnostic] = []

    def read_all(
        self,
        files: Sequence[tuple[str, Span | None]],
        *,
        relative_to: Path | None = None,
        secrets: frozenset[str] | set[str] = frozenset(),
        confined: bool = True,
    ) -> dict[str, str]:
        """The files' variables merged in order (a later file wins); a file a workflow
        names (`confined`) only from under the project root."""
        merged: dict[str, str] = {}
        for written, span in files:
            path = (relative_to or self.base) / written
            if confined:
                here = os.path.realpath(relative_to or self.base)
                where = confine(written, here, self.root, "env file")
                if where.real is None:
                    self.problems.append(
                        error(f"envfile.{where.kind}", where.message, span, _PATH_HINT)
                    )
                    continue
            found = self.read(path, written, span)
            for name in sorted(secrets.intersection(found)):
                self.problems.append(_secret_in_step_file(name, written, span))
            merged.update(found)
        return merged

    def read(self, path: Path, written: str, span: Span | None) -> dict[str, str]:
        """One file's variables; {} (and a problem noted) when it cannot be read."""
        text = self.text(path, written, span)
        if text is None:
            return {}
        values: dict[str, str] = {}
        from dotenv.parser import parse_stream  # noqa: PLC0415 - only when a file is read

        for binding in parse_stream(io.StringIO(text)):
            line = Span(str(path), binding.original.line, 1)
            if binding.error:
                self.problems.append(_bad_line(written, binding.original.string, line))
            elif binding.key is None:
                continue
            elif not _NAME.fullmatch(binding.key):
                self.problems.append(_bad_name(written, line))
            elif binding.value is None:
                self.problems.append(_no_value(written, binding.key, line))
            else:
                values[binding.key] = binding.value
        return values

    def text(self, path: Path, written: str, span: Span | None) -> str | None:
        """The file's text, or None when it cannot be read (the problem noted)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            self.problems.append(_missing(written, path, span))
            return None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
            problem = _why_unreadable(exc)
            self.problems.append(
                error("envfile.unreadable", f"env file `{written}` ({path}): {problem}", span)
            )
            return None
        if len(data) > MAX_BYTES:
            message = f"env file `{written}` is larger than {MAX_BYTES // 1024} KiB"
            self.problems.append(error("envfile.size", message, span))
            return None
        return data.decode("utf-8", errors="replace")


_PATH_HINT = (
    "an env file a workflow names is a file under the project root (the top workflow's"
    " directory, or --root), named relative to that workflow; pass any other with --env-file"
)


def _why_unreadable(exc: OSError | ValueError) -> str:
    if isinstance(exc, ValueError):
        return "the name contains a NUL character, which no file name can hold"
    return exc.strerror or str(exc)


def _written(files: Sequence[Located]) -> list[tuple[str, Span | None]]:
    return [(str(f.value), f.span) for f in files]


def _missing(written: str, path: Path, span: Span | None) -> Diagnostic:
    return error(
        "envfile.missing",
        f"env file `{written}` does not exist (looked for {path})",
        span,
        "paths in `envFile` are relative to the workflow file, `--env-file` ones to the"
        " current directory",
    )


def _bad_line(written: str, line: str, span: Span) -> Diagnostic:
    leading = _LEADING_NAME.match(line)
    what = f"the line of `{leading.group(1)}`" if leading else f"line {span.line}"
    return error(
        "envfile.syntax",
        f"env file `{written}`: cannot read {what} as NAME=value (its text is not shown:"
        " it may hold a secret)",
        span,
        "write one `NAME=value` per line (values with spaces in quotes, `#` for comments)",
    )


def _bad_name(written: str, span: Span) -> Diagnostic:
    return error(
        "envfile.name",
        f"env file `{written}`: the name on line {span.line} is not an environment variable"
        " name (it is not shown: it may hold a secret)",
        span,
        "use only letters, digits and `_`, not starting with a digit",
    )


def _no_value(written: str, name: str, span: Span) -> Diagnostic:
    return error(
        "envfile.no-value",
        f"env file `{written}`: `{name}` has no `=value`",
        span,
        f"write `{name}=` for an empty value",
    )


def _secret_in_step_file(name: str, written: str, span: Span | None) -> Diagnostic:
    return error(
        "envfile.secret",
        f"env file `{written}` of a step sets `{name}`, which is listed in `secrets`",
        span,
        "a secret has one value per run: put it in the workflow's `envFile` or pass `--env-file`",
    )
