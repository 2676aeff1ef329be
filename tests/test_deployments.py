"""Every deployment in prefect.yaml loads, and `prefect deploy --all` registers it offline."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def deployments() -> list[dict[str, object]]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: str(d["name"]))
def test_entrypoint_imports_a_flow(deployment: dict[str, object]) -> None:
    path, name = str(deployment["entrypoint"]).split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert flow.name == name.replace("_", "-")
    # `prefect deployment run --params` merges the user's keys over a deployment's saved parameters, so a saved
    # default (shard_minutes, say) would silently win over a user's contradicting key (shards): none is saved.
    assert not deployment.get("parameters"), deployment.get("parameters")
    if name == "transcribe_library":  # the UI form and --params speak every RunConfig field
        from tasks.run_config import RunConfig

        assert set(flow.parameters.properties) == set(RunConfig.model_fields)
        assert set(flow.parameters.required or ()) == {"source", "out"}


def test_nightly_schedule_is_a_cron() -> None:
    nightly = next(d for d in deployments() if d["name"] == "nightly")
    assert nightly["schedules"][0]["cron"] == "0 2 * * *"  # type: ignore[index]


@pytest.mark.slow
def test_prefect_deploy_all_registers_every_deployment(prefect_api: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PROJECT_DIR": str(ROOT)}

    def prefect(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "prefect"), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180, check=False)

    pools = subprocess.run(["bash", "deployments/create-work-pools.sh"], cwd=ROOT, capture_output=True, text=True,
                           env={**env, "PREFECT": str(Path(sys.executable).parent / "prefect")}, timeout=180,
                           check=False)
    assert pools.returncode == 0, pools.stdout[-3000:] + pools.stderr[-3000:]
    assert "ecs" in prefect("work-pool", "inspect", "transcribe-g6").stdout
    done = prefect("--no-prompt", "deploy", "--all")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    listed = prefect("deployment", "ls")
    for d in deployments():
        assert str(d["name"]) in listed.stdout
