"""The built wheel carries the grammar and schemas and works outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("wfx-*.whl")
    return built


def test_wheel_carries_grammar_and_schemas(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "wfx/_data/grammar/expressions.lark" in names
    assert "wfx/_data/schema/workflow.schema.json" in names
    assert "wfx/_data/schema/plan.schema.json" in names
    assert "wfx/py.typed" in names


def test_installed_wheel_validates_and_evaluates_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies come from the test venv; wfx itself only from the wheel
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            site,
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    example = workdir / "wf.yaml"
    example.write_text((ROOT / "examples" / "etl-pipeline.yaml").read_text())
    located = subprocess.run(
        [
            str(python),
            "-c",
            "import wfx, wfx.resources as r; print(wfx.__file__, r.data_dir('grammar'))",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(ROOT) not in located and site in located
    validated = subprocess.run(
        [str(python), "-m", "wfx", "validate", str(example)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stderr
    evaluated = subprocess.run(
        [str(python), "-m", "wfx", "eval", "format('{0}-{1}', 'a', 1 == 1)"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (evaluated.returncode, evaluated.stdout) == (0, '"a-true"\n')
