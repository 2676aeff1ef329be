#!/usr/bin/env bash
# Create (or update) the work pools prefect.yaml deploys to. Run against your Prefect API.
#   transcribe-control, transcribe-cpu: process pools (workers run the code of their checkout)
#   transcribe-h100: a process pool for your GPU hosts (one worker per GPU, --limit 1); with
#                    H100_POOL=ecs an ECS pool (one task per shard on p5 instances), with
#                    H100_POOL=kubernetes a Kubernetes pool (one job per shard, nvidia.com/gpu: 1)
#   transcribe-g6:   an ECS pool: one task with one L4 GPU per shard (deployments/gpu_pool_template.py)
# The ECS pools take the gpu image from GPU_IMAGE (the ECR URI you pushed it to) and the cluster from
# ECS_CLUSTER (default transcribe-all-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT="${PREFECT:-prefect}"
PYTHON="${PYTHON:-$(dirname "$(command -v "$PREFECT")")/python}"  # the environment prefect-aws is in
template=$(mktemp)
trap 'rm -f "$template"' EXIT

gpu_pool() {  # POOL TEMPLATE TYPE
  "$PYTHON" deployments/gpu_pool_template.py "$2" --image "${GPU_IMAGE:-localhost/transcribe-all-worker:gpu}" \
    --cluster "${ECS_CLUSTER:-transcribe-all-gpu}" > "$template"
  "$PREFECT" work-pool create "transcribe-$1" --type "$3" --overwrite --base-job-template "$template"
}

"$PREFECT" work-pool create transcribe-control --type process --overwrite
"$PREFECT" work-pool create transcribe-cpu --type process --overwrite
case ${H100_POOL:-process} in
  process) "$PREFECT" work-pool create transcribe-h100 --type process --overwrite ;;
  ecs) gpu_pool h100 h100 ecs ;;
  kubernetes) gpu_pool h100 kubernetes kubernetes ;;
  *) echo "H100_POOL: process, ecs or kubernetes" >&2; exit 2 ;;
esac
gpu_pool g6 g6 ecs
