"""Every example runs for real, with its effects checked, and never contradicts its plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from wfx import api
from wfx.plan import make_plan
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def run_example(
    name: str, workspace: Path, inputs: dict[str, str] | None = None
) -> tuple[RunResult, list[ev.Event], Any]:
    compilation = api.compile_file(ROOT / "examples" / name, inputs)
    plan = make_plan(compilation.graph)
    events: list[ev.Event] = []

    async def main() -> RunResult:
        options = RunOptions(
            events=events.append, workspace=workspace, environ={"PATH": "/usr/bin:/bin"}
        )
        return await run(compilation.graph, options=options)

    return anyio.run(main), events, plan


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_run_order_never_contradicts_the_plan(example: Path, tmp_path: Path) -> None:
    result, events, plan = run_example(example.name, tmp_path)
    started: dict[str, int] = {}
    finished: dict[str, int] = {}
    for position, event in enumerate(events):
        if isinstance(event, ev.StepStarted):
            started.setdefault(event.step, position)
        elif isinstance(event, ev.StepFinished):  # a group retry finishes its steps again
            finished.setdefault(event.step, position)
    for step_id, step in plan.steps.items():
        if step_id not in started:
            continue
        for need in step.needs:
            # a dynamic fan-out's template `x[*]` stands for every instance `x[...]`
            instances = [s for s in finished if s.startswith(need[:-2] + "[")]
            for done in instances if need.endswith("[*]") else [need]:
                assert finished[done] < started[step_id], f"{step_id} started before {done}"
    assert result.exit_code == 0, result.reason


def test_production_deployment_effects(tmp_path: Path) -> None:
    result, _, _ = run_example("production-deployment.yaml", tmp_path, {"environment": "prd"})
    assert result.exit_code == 0
    assert result.steps["login"].status.value == "skipped"  # no REGISTRY_TOKEN set
    backup_id = result.steps["backup"].outputs["backup_id"]
    assert (tmp_path / "backup.txt").read_text().strip() == backup_id
    assert (tmp_path / "db.log").read_text() == "schema migrated for v1.4.2\n"
    assert (tmp_path / "report.txt").read_text().startswith(f"run {result.run_id} ended success")


def test_etl_pipeline_effects(tmp_path: Path) -> None:
    result, events, _ = run_example("etl-pipeline.yaml", tmp_path)
    assert result.exit_code == 0
    assert result.steps["load"].attempts == 2
    assert [e.step for e in events if isinstance(e, ev.StepRetrying)] == ["load"]
    transformed = json.loads(Path(result.steps["transform"].outputs["file"]).read_text())
    assert len(transformed) == 3
    assert result.outputs["rows"] == 3


def test_microservice_release_effects(tmp_path: Path) -> None:
    result, _, _ = run_example("microservice-release.yaml", tmp_path)
    assert result.exit_code == 0
    for service in ("cart", "catalog", "checkout"):
        assert result.steps[service].outputs["image"].endswith(f"/{service}:2.3.0")


def test_blue_green_switches_and_skips_the_alert(tmp_path: Path) -> None:
    result, _, _ = run_example("blue-green.yaml", tmp_path)
    assert result.exit_code == 0
    assert result.steps["switch"].status.value == "success"
    assert result.steps["alert"].status.value == "skipped"
    off, _, _ = run_example("blue-green.yaml", tmp_path / "off", {"switch": "false"})
    assert off.steps["switch"].status.value == "skipped"


def test_dependency_pipeline_per_environment(tmp_path: Path) -> None:
    result, events, _ = run_example("dependency-pipeline.yaml", tmp_path, {"environment": "prd"})
    assert result.exit_code == 0
    order = [e.step for e in events if isinstance(e, ev.StepStarted)]
    assert order.index("python") < order.index("docker") < order.index("terraform")
    assert order.index("terraform") < order.index("kubernetes")
    [line] = [e.text for e in events if isinstance(e, ev.StepOutput) and e.step == "kubernetes"]
    assert "prd" in line


def test_distributed_build_packages_every_component(tmp_path: Path) -> None:
    result, _, _ = run_example("distributed-build.yaml", tmp_path, {"version": "2.0"})
    assert result.exit_code == 0, result.reason
    assert result.steps["package"].outputs["components"] == "4"
    release = (tmp_path / "release-2.0.txt").read_text().splitlines()
    assert [line.split()[0] for line in release] == ["api", "web", "worker", "cli"]
    assert not list(tmp_path.glob("*.partial"))


def test_matrix_build_builds_five_combinations_and_publishes_them(tmp_path: Path) -> None:
    result, _, plan = run_example("matrix-build.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    wheels = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert wheels == [
        "api-py3.11.whl",
        "api-py3.12.whl",
        "web-py3.11.whl",
        "web-py3.12.whl",
        "worker-py3.12.whl",
    ]  # worker on 3.11 excluded
    assert (tmp_path / "api-py3.12.whl").read_text() == "api built for Python 3.12 (port 8080)\n"
    assert (tmp_path / "web-py3.12.whl").read_text() == "web built for Python 3.12\n"
    assert result.outputs == {"published": "5"}
    assert sorted(plan.fan_outs["build"].instances) == sorted(
        s for s in result.steps if s.startswith("build[")
    )


def test_dynamic_fan_out_processes_every_shard_a_step_found(tmp_path: Path) -> None:
    result, events, plan = run_example("dynamic-fan-out.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    assert [s for s in result.steps if s.startswith("process")] == [
        f"process[{i}]" for i in range(4)
    ]
    assert result.steps["process[2]"].outputs == {"rows": "1", "shard": "us-1"}
    merged = (tmp_path / "merged.txt").read_text().splitlines()
    assert merged == ["ROWS OF EU-1", "ROWS OF EU-2", "ROWS OF US-1", "ROWS OF AP-1"]
    assert result.outputs == {"merged": "success"}
    assert plan.fan_outs["process"].dynamic
    [expanded] = [e for e in events if isinstance(e, ev.FanOutExpanded)]
    assert expanded.items == ("eu-1", "eu-2", "us-1", "ap-1")


def test_release_calls_the_reusable_deploy_twice_with_different_inputs(tmp_path: Path) -> None:
    result, _, plan = run_example("release-with-reusable-deploy.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    assert (tmp_path / "staging.replicas").read_text().count("up") == 1
    assert (tmp_path / "production.replicas").read_text().count("up") == 3
    assert (tmp_path / "staging.deployed").read_text() == "shop 1.4.0\n"
    assert (tmp_path / "deploy-log.txt").read_text().splitlines() == [
        "staging success",
        "production success",
    ]
    assert (tmp_path / "announcement.txt").read_text().strip() == (
        "released 1.4.0 to https://staging.shop.example.com (1)"
        " and https://production.shop.example.com (3)"
    )
    assert result.steps["production/rollout"].outputs == {"replicas": "3"}
    assert result.outputs == {"production_url": "https://production.shop.example.com"}
    assert plan.groups["production"].uses == "./workflows/deploy.yaml"


def test_multi_region_release_fans_out_inside_each_call(tmp_path: Path) -> None:
    result, events, plan = run_example("multi-region-release.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    units = ["eu-west-web", "eu-west-worker", "us-east-web"]
    for environment in ("staging", "production"):
        for unit in units:
            assert (tmp_path / f"{environment}-{unit}").read_text() == "2.0.0\n"
    assert not (tmp_path / "production-us-east-worker").exists()  # excluded
    verified = (tmp_path / "production-verified.txt").read_text().splitlines()
    assert sorted(verified) == [f"prod-{i} serves 2.0.0" for i in (1, 2, 3)]
    assert (tmp_path / "staging-verified.txt").read_text() == "stage-1 serves 2.0.0\n"
    assert result.outputs == {"production_hosts": "prod-1 prod-2 prod-3"}
    assert (tmp_path / "announcement.txt").read_text() == (
        "2.0.0: staging eu-west/web eu-west/worker us-east/web;"
        " production eu-west/web eu-west/worker us-east/web on prod-1 prod-2 prod-3\n"
    )
    expanded = {e.step: e.items for e in events if isinstance(e, ev.FanOutExpanded)}
    assert expanded == {
        "staging/verify": ("stage-1",),
        "production/verify": ("prod-1", "prod-2", "prod-3"),
    }
    assert plan.fan_outs["production/rollout"].instances == (
        "production/rollout[eu-west,web]",
        "production/rollout[eu-west,worker]",
        "production/rollout[us-east,web]",
    )


def test_per_service_pipeline_runs_the_group_once_per_changed_service(tmp_path: Path) -> None:
    result, events, plan = run_example("per-service-pipeline.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    for service in ("api", "web", "worker"):
        assert (tmp_path / f"{service}.bin").read_text() == f"SOURCE OF {service.upper()}\n"
    images = (tmp_path / "images.txt").read_text().splitlines()
    assert sorted(images) == [
        "registry.example.com/shop/api:0",
        "registry.example.com/shop/web:1",
        "registry.example.com/shop/worker:2",
    ]
    assert result.steps["package[2]"].outputs == {"image": "registry.example.com/shop/worker"}
    assert (tmp_path / "release.txt").read_text() == "released success\n"
    assert plan.fan_outs["service"].template == ("build[*]", "test[*]", "package[*]")
    [expanded] = [e for e in events if isinstance(e, ev.FanOutExpanded)]
    assert expanded.items == ("api", "web", "worker")


def test_nested_test_matrix_tests_each_service_on_each_python(tmp_path: Path) -> None:
    result, _, plan = run_example("nested-test-matrix.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    for service in ("api", "web"):
        log = (tmp_path / f"{service}.log").read_text().splitlines()
        assert log == [f"{service} linted", f"{service} on 3.11", f"{service} on 3.12"]
        report = (tmp_path / f"{service}.report").read_text()
        assert report == f"{service}-py3.11 {service}-py3.12\n"
    assert plan.fan_outs["test[web]"].instances == ("test[web][3.11]", "test[web][3.12]")


def test_flaky_checks_retry_what_is_worth_it_and_go_on_after_warnings(tmp_path: Path) -> None:
    result, events, plan = run_example("flaky-checks.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    assert result.steps["fetch"].attempts == 3  # exit 75 twice (`retries.on`), then data
    assert (tmp_path / "report.txt").read_text() == "42 rows after 3 attempts; lint exit code 0\n"
    assert (tmp_path / "canary.log").read_text().splitlines() == ["up", "down", "up"]
    assert [e.group for e in events if isinstance(e, ev.GroupRetrying)] == ["canary"]
    assert result.outputs == {"rows": "42", "lint": 0}
    fetch = plan.steps["fetch"].retry
    assert (fetch.on, fetch.except_, fetch.deadline) == ((75, "timeout"), (2,), 60.0)
    warned, _, _ = run_example("flaky-checks.yaml", tmp_path / "warned", {"warnings": "true"})
    assert warned.exit_code == 3  # completed with failures: lint's exit 3 is in continueOn
    assert warned.steps["report"].status.value == "success"
    assert (tmp_path / "warned" / "report.txt").read_text().endswith("lint exit code 3\n")
    assert warned.outputs == {"rows": "42", "lint": 3}


def test_guarded_deploy_reads_its_env_file_and_masks_the_token(tmp_path: Path) -> None:
    result, events, plan = run_example("guarded-deploy.yaml", tmp_path)
    assert result.exit_code == 0, result.reason
    assert result.outputs == {
        "image": "registry.example.com/shop:3.1.0",
        "url": "https://staging.shop.example.com",
    }
    said = [e.text for e in events if isinstance(e, ev.StepOutput) and e.step == "upload"]
    assert said == ["pushing shop-3.1.0.tar to registry.example.com with token ***"]
    assert "stand-in-token" not in repr(events)
    assert (tmp_path / "rollouts.log").read_text() == (
        "staging runs registry.example.com/shop:3.1.0\n"
    )
    assert plan.concurrency == {"group": "deploy-staging", "mode": "queue"}
