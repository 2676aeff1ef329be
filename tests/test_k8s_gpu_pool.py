"""The Kubernetes GPU pool (`H100_POOL=kubernetes`), rendered by prefect-kubernetes' own worker code.

The pool's template goes through `KubernetesWorkerJobConfiguration.from_template_and_values`
(what the worker does with a pool's template and a deployment's job variables) and
`prepare_for_flow_run` (what it does before it creates the Job); the Job manifest it would
send asks for one GPU, tolerates the GPU nodes' taint, and runs the shard with its env.
Needs the `k8s` extra (not in `all`: see pyproject.toml).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from deployments.gpu_pool_template import kubernetes_template

pytest.importorskip("prefect_kubernetes", reason="the k8s extra: pip install -e '.[k8s]'")

IMAGE = "registry.example.com/transcribe-all-worker:gpu"


def rendered_job(job_variables: dict[str, Any]) -> dict[str, Any]:
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    configuration = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(
        kubernetes_template(IMAGE), job_variables))
    flow_run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="a-shard")
    configuration.prepare_for_flow_run(flow_run)
    manifest: dict[str, Any] = configuration.job_manifest
    return manifest


def test_a_shards_job_asks_for_one_gpu_and_runs_the_shard(prefect_api: str) -> None:
    job = rendered_job({"env": {"TRANSCRIBE_ALL_S3_ENDPOINT_URL": "http://minio:9000"}})
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"] == {"cpu": "3", "memory": "14Gi"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert container["image"] == IMAGE and container["args"] == ["prefect", "flow-run", "execute"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["PROJECT_DIR"] == "/app" and env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert env["TRANSCRIBE_ALL_S3_ENDPOINT_URL"] == "http://minio:9000"  # a deployment's env adds to the pool's
    assert env["PREFECT_API_URL"] == prefect_api and env["PREFECT__FLOW_RUN_ID"]


def test_a_job_variable_changes_the_gpu_count(prefect_api: str) -> None:
    job = rendered_job({"gpus": "2"})
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
