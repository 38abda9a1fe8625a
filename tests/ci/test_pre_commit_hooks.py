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
from ci_harness import git, write

ROOT = Path(__file__).resolve().parents[2]

FILES = {
    "good.wfx.yaml": "wfx: 1\nsteps:\n  - id: hello\n    run: echo hello\n",
    "bad.wfx.yaml": "wfx: 1\nsteps:\n  - id: hello\n    run: echo hello\n    timout: 5m\n",
    # a workflow file by where it is (directly in `.wfx/`), bad too
    ".wfx/nightly.yaml": "wfx: 1\nsteps:\n  - id: clean\n    run: rm -rf cache\n    onError: no\n",
    # valid, but it runs a value as code: wfx-lint fails it, wfx-validate passes it
    "risky.wfx.yaml": "wfx: 1\ninputs:\n  branch: {type: string, default: main}\nsteps:\n"
    '  - id: checkout\n    run: eval "git checkout ${{ inputs.branch }}"\n',
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
def test_try_repo_fails_bad_workflows_saying_why_not_the_good_one(
    tmp_path: Path,
) -> None:
    """One run (try-repo installs its environment afresh every time: ~10 s of CPU): both
    hooks fail on the bad files with their diagnostics and say nothing of the good one;
    the YAML file that is not a workflow is given to neither; the risky file fails lint
    alone."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    git(workdir, "init", "-q")
    write(workdir, FILES)
    git(workdir, "add", "-A")

    completed = try_repo(workdir, tmp_path / "pre-commit-home", "--all-files")
    hooks = by_hook(completed.stdout)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert set(hooks) == {"wfx validate", "wfx lint"}
    for verdict, said in hooks.values():
        assert verdict == "Failed"
        assert said.count(": error: ") == 2
        assert "bad.wfx.yaml:5:5: error: unknown key `timout` in step" in said
        assert ".wfx/nightly.yaml:5:14: error: `onError` must be one of" in said

        assert "hint: did you mean `timeout`?" in said
        assert "good.wfx.yaml" not in said
    risky = "risky.wfx.yaml:6:32: warning: `${{ inputs.branch }}` comes from outside"
    assert risky in hooks["wfx lint"][1]
    assert "risky.wfx.yaml" not in hooks["wfx validate"][1]
    assert "settings.yaml" not in completed.stdout
