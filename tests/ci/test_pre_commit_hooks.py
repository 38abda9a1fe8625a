"""The pre-commit hooks (.pre-commit-hooks.yaml), run by the real `pre-commit try-repo`
on this repository against a temporary git repository of workflow files: pre-commit
installs wfx from this checkout into its own environment (its dependencies come from
the package index), once for both hooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import git, write

pytest.importorskip("pre_commit", reason="pre-commit is in the test extra")

ROOT = Path(__file__).resolve().parents[2]

FILES = {
    "good.wfx.yaml": "wfx: 1\nsteps:\n  - id: hello\n    run: echo hello\n",
    "bad.wfx.yaml": "wfx: 1\nsteps:\n  - id: hello\n    run: echo hello\n    timout: 5m\n",
    # valid, but a value from the inputs runs as code: a lint finding only
    ".wfx/risky.yaml": (
        "wfx: 1\ninputs:\n  ref: {type: string, default: main}\n"
        'steps:\n  - id: checkout\n    run: eval "git checkout ${{ inputs.ref }}"\n'
    ),
    # not a workflow file: no hook looks at it
    "config/settings.yaml": "colour: blue\n",
}


def try_repo(workdir: Path, home: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`pre-commit try-repo` of this repository's HEAD commit (named, so that every run
    reuses the environment the first one installed, uncommitted changes or not)."""
    environment = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    head = git(ROOT, "rev-parse", "HEAD")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "--ref", head, *arguments],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_hooks_are_declared_for_workflow_files() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text("utf-8"))
    assert [(h["id"], h["entry"], h["language"]) for h in hooks] == [
        ("wfx-validate", "wfx validate", "python"),
        ("wfx-lint", "wfx lint", "python"),
    ]


def by_hook(output: str) -> dict[str, tuple[str, str]]:
    """Each hook's verdict (`Passed`, `Failed`) and what it printed, by its name."""
    found: dict[str, tuple[str, str]] = {}
    name = None
    for line in output.splitlines():
        match = re.fullmatch(r"(wfx \w+)\.+(Passed|Failed)", line)
        if match:
            name = match[1]
            found[name] = (match[2], "")
        elif name is not None:
            found[name] = (found[name][0], found[name][1] + line + "\n")
    return found


@pytest.mark.slow
def test_try_repo_passes_good_workflows_and_fails_bad_ones_saying_why(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    git(workdir, "init", "-q")
    write(workdir, FILES)
    git(workdir, "add", "-A")
    home = tmp_path / "pre-commit-home"

    everything = try_repo(workdir, home, "--all-files")
    hooks = by_hook(everything.stdout)
    assert everything.returncode == 1, everything.stdout + everything.stderr
    for name in ("wfx validate", "wfx lint"):
        verdict, said = hooks[name]
        assert verdict == "Failed"
        assert "bad.wfx.yaml:5:5: error: unknown key `timout` in step" in said
        assert "hint: did you mean `timeout`?" in said
    assert "settings.yaml" not in everything.stdout  # never given to wfx

    valid = try_repo(workdir, home, "--files", "good.wfx.yaml", ".wfx/risky.yaml")
    hooks = by_hook(valid.stdout)
    assert valid.returncode == 1
    assert hooks["wfx validate"] == ("Passed", "")
    verdict, said = hooks["wfx lint"]
    assert verdict == "Failed"
    assert ".wfx/risky.yaml:6:" in said
    assert "the script runs it as code" in said

    good = try_repo(workdir, home, "--files", "good.wfx.yaml")
    assert good.returncode == 0, good.stdout
    assert by_hook(good.stdout) == {"wfx lint": ("Passed", ""), "wfx validate": ("Passed", "")}
