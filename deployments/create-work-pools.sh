#!/usr/bin/env bash
# Create (or update) the work pools prefect.yaml deploys to. Run against your Prefect API.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT="${PREFECT:-prefect}"
"$PREFECT" work-pool create transcribe-control --type process --overwrite
"$PREFECT" work-pool create transcribe-cpu --type process --overwrite
"$PREFECT" work-pool create transcribe-h100 --type process --overwrite
"$PREFECT" work-pool create transcribe-g6 --type ecs --overwrite \
  --base-job-template deployments/ecs-g6-base-job-template.json
