"""Export still refuses every fan-out shape composition allows (a dynamic group, a nested
fan-out, a fan-out inside a called sub-workflow), each at its line in its own file,
even with --allow-lossy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from wfx.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["github-actions", "argo"])
def test_new_fan_out_shapes_are_refused_at_their_lines(target: str) -> None:
    expected = {
        "per-service-pipeline.yaml": {"per-service-pipeline.yaml:30 `service`"},
        "nested-test-matrix.yaml": {
            "nested-test-matrix.yaml:18 `service`",
            "nested-test-matrix.yaml:20 `test[api]`",
            "nested-test-matrix.yaml:20 `test[web]`",
        },
        "multi-region-release.yaml": {
            "regional-deploy.yaml:21 `staging/rollout`",
            "regional-deploy.yaml:42 `staging/verify`",
            "regional-deploy.yaml:21 `production/rollout`",
            "regional-deploy.yaml:42 `production/verify`",
        },
    }
    for name, refusals in expected.items():
        result = CliRunner().invoke(
            cli, ["export", str(ROOT / "examples" / name), "--to", target, "--allow-lossy"]
        )
        assert result.exit_code == 2, result.output
        found = {
            f"{Path(m[0]).name}:{m[1]} {m[2]}"
            for m in re.findall(r"(\S+):(\d+):\d+: error: (`[^`]+`) fans out", result.output)
        }
        assert found == refusals, result.output
