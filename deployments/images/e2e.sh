#!/usr/bin/env bash
# The container end-to-end check, outside CI (a cold build of the cpu image costs more than CI's budget):
#   deployments/images/e2e.sh
# builds (or reuses) localhost/transcribe-all-worker:cpu, then runs tests/test_container_worker.py: the
# README's `podman run ... transcribe-all run` in the image, and a worker in the image completing a
# `prefect deployment run` on a loopback server. Run it from the project's venv (pip install -e '.[all]').
set -euo pipefail
cd "$(dirname "$0")/../.."
EXPORT=0 deployments/images/build.sh cpu
export CONTAINERS_CONF=$PWD/deployments/images/containers.conf
export TRANSCRIBE_ALL_IMAGE_E2E=1  # the image was just built from this checkout (the tests skip without it)
python -m pytest tests/test_container_worker.py -q -p no:cacheprovider -rs
