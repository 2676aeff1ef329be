"""The GPU ECS pools, proven by prefect-aws's own ECS worker against moto's ECS API on loopback.

`deployments/create-work-pools.sh` creates `transcribe-g6` (and, with H100_POOL=ecs,
`transcribe-h100`) on a real Prefect server; `prefect deploy --all` deploys the shard
deployments to them; a real `prefect worker start` for each pool (its AWS endpoint is moto's
server) picks up a `transcribe-shard/<pool>` run and makes its real API calls. The test reads
back from moto, with boto3, the task definition the worker registered and the task it ran:
EC2 only, one GPU, the image given as GPU_IMAGE, the pool's capacity provider, and the command
and env that start the shard. (moto does not run the container: the flow run stays Pending.)
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.prefect_loopback import LoopbackPrefect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/transcribe-all-worker:gpu"
CLUSTER = "transcribe-all-gpu"
POOLS = ("g6", "h100")
# moto's container instances offer 4096 cpu units and 7482 MiB whatever their type: both pools' tasks fit
# on the one instance with these (job variables, as a user would override the pool's defaults)
MOTO_SIZE = {"cpu": 1024, "memory": 3072}


@pytest.fixture(scope="module")
def ecs(moto_url: str) -> Any:
    """moto's ECS: the cluster with a capacity provider per GPU pool and one container instance."""
    import boto3

    # moto moves a task on from RUNNING at each describe_tasks call; a shard's task runs a while
    transition = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 100_000}}
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/state-manager/set-transition",
                                                  data=json.dumps(transition).encode()), timeout=10).close()
    client = boto3.client("ecs", endpoint_url=moto_url, region_name="us-east-1")
    for pool in POOLS:
        client.create_capacity_provider(name=f"transcribe-all-{pool}", autoScalingGroupProvider={
            "autoScalingGroupArn": f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:"
                                   f"autoScalingGroupName/{pool}"})
    client.create_cluster(clusterName=CLUSTER, capacityProviders=[f"transcribe-all-{pool}" for pool in POOLS])
    ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [instance] = ec2.run_instances(ImageId=image, InstanceType="g6.xlarge", MinCount=1, MaxCount=1)["Instances"]
    client.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=json.dumps(
        {"instanceId": instance["InstanceId"], "region": "us-east-1"}))
    return client


@pytest.fixture(scope="module")
def loopback(moto_url: str, ecs: Any) -> Iterator[LoopbackPrefect]:
    prefect = LoopbackPrefect()
    prefect.env.update({"GPU_IMAGE": IMAGE, "H100_POOL": "ecs", "AWS_ENDPOINT_URL": moto_url,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"})
    prefect.start()
    try:
        prefect.deploy_all()
        for pool in POOLS:
            prefect.start_worker(f"ecs-{pool}", f"transcribe-{pool}")
        yield prefect
    finally:
        prefect.stop()


def shard_parameters() -> dict[str, object]:
    return {"shard": {"shard_id": 0, "files": 2, "audio_s": 8.0, "plan": "_plans/r1/shard-00000.parquet"},
            "config": {"source": "s3://media/library", "out": "s3://media/out", "pool": "g6"},
            "run": {"run_id": "r1", "config_hash": "0123abcd", "source": "s3://media/library"}}


def started_task(ecs: Any, flow_run_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The ECS task whose environment names the flow run, once the worker has run it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arns = ecs.list_tasks(cluster=CLUSTER)["taskArns"]
        for task in ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []:
            [container] = task["overrides"]["containerOverrides"]
            if {"name": "PREFECT__FLOW_RUN_ID", "value": flow_run_id} in container.get("environment", []):
                return dict(task)
        time.sleep(1)
    raise AssertionError(f"no ECS task for flow run {flow_run_id} in {timeout_s} s")


@pytest.mark.parametrize("pool", POOLS)
def test_the_ecs_worker_runs_a_shard_as_an_ec2_task_with_one_gpu(
    loopback: LoopbackPrefect, ecs: Any, pool: str
) -> None:
    sizes = [f"--job-variable={name}={value}" for name, value in MOTO_SIZE.items()]
    created = loopback.prefect("deployment", "run", f"transcribe-shard/{pool}", "--params",
                               json.dumps(shard_parameters()), *sizes)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    [flow_run] = [run for run in loopback.api("flow_runs/filter", {"limit": 50})
                  if run["deployment_id"] and run["job_variables"] == MOTO_SIZE
                  and loopback.api(f"deployments/{run['deployment_id']}")["name"] == pool]

    task = started_task(ecs, flow_run["id"])
    assert task["capacityProviderName"] == f"transcribe-all-{pool}"  # the GPU instances' Auto Scaling group
    assert "launchType" not in task or task["launchType"] in ("", "EC2")
    [container] = task["overrides"]["containerOverrides"]
    assert container["name"] == "transcribe-all"
    assert container["command"] == ["prefect", "flow-run", "execute"]  # runs this one shard, then exits
    env = {item["name"]: item["value"] for item in container["environment"]}
    assert env["PREFECT_API_URL"] == loopback.url and env["PROJECT_DIR"] == "/app"
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"

    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert definition["family"] == f"transcribe-all-{pool}"
    assert definition["requiresCompatibilities"] == ["EC2"]
    [shard_container] = definition["containerDefinitions"]
    assert shard_container["image"] == IMAGE
    assert shard_container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    assert (shard_container["cpu"], shard_container["memory"]) == (MOTO_SIZE["cpu"], MOTO_SIZE["memory"])

    deadline = time.monotonic() + 60  # the worker records the task as the run's infrastructure
    while task["taskArn"] not in str(loopback.api(f"flow_runs/{flow_run['id']}").get("infrastructure_pid")):
        assert time.monotonic() < deadline, loopback.api(f"flow_runs/{flow_run['id']}")
        time.sleep(1)
