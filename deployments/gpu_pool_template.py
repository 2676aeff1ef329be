"""Print the base job template of a GPU work pool: ECS (`g6`, `h100`) or Kubernetes (`kubernetes`).

    python deployments/gpu_pool_template.py g6 [--image URI] [--cluster NAME] > template.json
    prefect work-pool create transcribe-g6 --type ecs --base-job-template template.json

(deployments/create-work-pools.sh does this: g6 always, h100 with H100_POOL=ecs or kubernetes.)

It starts from the installed prefect-aws ECS worker's own default template, so every field
that worker reads stays in it, and changes only what a GPU shard needs. prefect-aws defaults
to Fargate, which has no GPUs; here:

- the task definition `requiresCompatibilities: [EC2]` and its container asks for
  `resourceRequirements: [{type: GPU, value: "1"}]` (job variable `gpus`): ECS places one
  shard per GPU, on instances that have one free;
- the task runs through a capacity provider strategy (an EC2 Auto Scaling group of g6 or p5
  instances, on-demand or spot), `transcribe-all-g6` / `transcribe-all-h100` in the cluster
  `transcribe-all-gpu` unless you name yours (job variables `capacity_provider_strategy`,
  `cluster`); with no strategy the launch type is EC2;
- the image is the `gpu` worker image (deployments/images/build.sh gpu): pass the ECR URI you
  pushed it to with `--image`; the default, `localhost/transcribe-all-worker:gpu`, is the name
  the build gives it locally and cannot be pulled by ECS;
- the env a shard needs besides what the worker adds (PREFECT_API_URL, the flow run's id):
  PROJECT_DIR=/app (where the image holds the code, for prefect.yaml's pull step) and the
  heartbeat that lets the zombie automation crash a run whose instance was reclaimed;
- the command stays the worker's default, `prefect flow-run execute`, which runs the one shard
  and exits; a GPU image is large, so a task may take minutes to start (`task_start_timeout_seconds`).

The Kubernetes template (prefect-kubernetes' own default, the `k8s` extra) asks for
`nvidia.com/gpu: 1` in the job container's limits, tolerates the `nvidia.com/gpu` taint GPU
node pools carry, and has the same image, env and command.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

LOCAL_IMAGE = "localhost/transcribe-all-worker:gpu"
CLUSTER = "transcribe-all-gpu"

# cpu units and MiB for one task: what an instance with one GPU offers (g6.xlarge: 4 vCPU, 16 GiB, one
# L4), or one GPU's share of a p5.48xlarge (192 vCPU, 2 TiB, eight H100), less what the ECS agent keeps.
POOLS: dict[str, dict[str, Any]] = {
    "g6": {"cpu": 3072, "memory": 14336},
    "h100": {"cpu": 23552, "memory": 237568},
}


def gpu_template(pool: str, image: str = LOCAL_IMAGE, cluster: str = CLUSTER) -> dict[str, Any]:
    """The ECS base job template of the GPU pool `pool` (g6 or h100)."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    template = copy.deepcopy(ECSWorker.get_default_base_job_template())
    task_definition = template["job_configuration"]["task_definition"]
    task_definition["requiresCompatibilities"] = ["EC2"]
    container = task_definition["containerDefinitions"][0]
    container["resourceRequirements"] = [{"type": "GPU", "value": "{{ gpus }}"}]
    variables = template["variables"]["properties"]
    defaults = {
        "image": image,
        "cluster": cluster,
        "launch_type": "EC2",
        "capacity_provider_strategy": [{"capacityProvider": f"transcribe-all-{pool}", "weight": 1, "base": 0}],
        "family": f"transcribe-all-{pool}",
        "container_name": "transcribe-all",
        "env": {"PROJECT_DIR": "/app", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"},
        "task_start_timeout_seconds": 900,
        **POOLS[pool],
    }
    for name, value in defaults.items():
        variables[name]["default"] = value
    variables["gpus"] = {"title": "GPUs", "type": "string", "default": "1",
                         "description": "GPUs for the task's container (ECS resourceRequirements); one per shard."}
    return template


def kubernetes_template(image: str = LOCAL_IMAGE) -> dict[str, Any]:
    """The Kubernetes base job template of a GPU pool: one GPU per shard's job."""
    from prefect_kubernetes.worker import KubernetesWorker

    template = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "{{ gpus }}"
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    variables = template["variables"]["properties"]
    defaults = {"image": image, "env": {"PROJECT_DIR": "/app", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"},
                "cpu_request": "3", "memory_request": "14Gi", "pod_watch_timeout_seconds": 900}
    for name, value in defaults.items():
        variables[name]["default"] = value
    variables["gpus"] = {"title": "GPUs", "type": "string", "default": "1",
                         "description": "GPUs for the job's container (nvidia.com/gpu limit); one per shard."}
    return template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pool", choices=[*sorted(POOLS), "kubernetes"])
    parser.add_argument("--image", default=LOCAL_IMAGE, help="the gpu worker image's URI (ECR)")
    parser.add_argument("--cluster", default=CLUSTER, help="the ECS cluster with the GPU capacity providers")
    args = parser.parse_args(argv)
    if args.pool == "kubernetes":
        template = kubernetes_template(args.image)
    else:
        template = gpu_template(args.pool, args.image, args.cluster)
    json.dump(template, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
