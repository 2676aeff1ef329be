#!/usr/bin/env bash
# Create (or update) the work pools prefect.yaml deploys to. Run against your Prefect API.
#   transcribe-control, transcribe-cpu: process pools (workers run the code of their checkout)
#   transcribe-h100: a process pool for your GPU hosts (one worker per GPU, --limit 1), or, with
#                    H100_POOL=ecs, an ECS pool that starts one task per shard on p5 (H100) instances
#   transcribe-g6:   an ECS pool: one task with one L4 GPU per shard (deployments/gpu_pool_template.py)
# The ECS pools take the gpu image from GPU_IMAGE (the ECR URI you pushed it to) and the cluster from
# ECS_CLUSTER (default transcribe-all-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT="${PREFECT:-prefect}"
PYTHON="${PYTHON:-$(dirname "$(command -v "$PREFECT")")/python}"  # the environment prefect-aws is in
template=$(mktemp)
trap 'rm -f "$template"' EXIT

gpu_pool() {
  "$PYTHON" deployments/gpu_pool_template.py "$1" --image "${GPU_IMAGE:-localhost/transcribe-all-worker:gpu}" \
    --cluster "${ECS_CLUSTER:-transcribe-all-gpu}" > "$template"
  "$PREFECT" work-pool create "transcribe-$1" --type ecs --overwrite --base-job-template "$template"
}

"$PREFECT" work-pool create transcribe-control --type process --overwrite
"$PREFECT" work-pool create transcribe-cpu --type process --overwrite
if [[ ${H100_POOL:-process} == ecs ]]; then
  gpu_pool h100
else
  "$PREFECT" work-pool create transcribe-h100 --type process --overwrite
fi
gpu_pool g6
