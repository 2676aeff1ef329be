#!/usr/bin/env bash
# Regenerate deployments/images/lock-FLAVOR.txt, the exact set of Python packages the image installs:
#   deployments/images/lock.sh cpu|gpu        (after build.sh has made the base image once)
# pip resolves the project's dependencies (pyproject.toml: the base package and prefect-aws; for gpu also
# the whisper and nemo extras, CUDA torch and the CUDA 12 libraries CTranslate2 loads) inside the base image,
# so the lock is for its Python (3.11) and platform; every line is pinned with its sha256, and the
# Containerfile installs it with --require-hashes --no-deps: the same files on every rebuild.
set -euo pipefail
cd "$(dirname "$0")/../.."
flavor=${1:-}
case $flavor in
  cpu) extras=(aws); more=() ;;
  # torch from PyPI is the CUDA (13) build. CTranslate2 4.8 loads libcublas.so.12 (and no cuDNN): the
  # CUDA 12 cuBLAS wheel. flash-attn is left out: PyPI has only its source archive (it needs nvcc to
  # build), and the transformers engine falls back to sdpa without it.
  gpu) extras=(aws whisper nemo); more=("torch==2.13.0" "nvidia-cublas-cu12>=12,<13") ;;
  *) echo "usage: deployments/images/lock.sh cpu|gpu" >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "${extras[@]}" > "$work/requirements.txt" <<'EOF'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = list(project["dependencies"]) + ["setuptools>=69", "wheel"]  # the project installs with no isolation
for extra in sys.argv[1:]:
    wanted += project["optional-dependencies"][extra]
print("\n".join(dict.fromkeys(wanted)))
EOF
printf '%s\n' "${more[@]}" >> "$work/requirements.txt"

container=$(buildah from localhost/transcribe-all-base:bookworm)
trap 'buildah rm "$container" >/dev/null; rm -rf "$work"' EXIT
buildah run --isolation chroot --network host -v "$work:/lock" \
  -v "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}:/etc/ssl/certs/build-ca.crt:ro" "$container" -- sh -ec '
  export PIP_CERT=/etc/ssl/certs/build-ca.crt && python3 -m venv /tmp/venv
  /tmp/venv/bin/pip install -q --disable-pip-version-check pip==26.0.1  # reads wheel metadata without the wheels
  /tmp/venv/bin/pip install -q \
    --disable-pip-version-check --dry-run --ignore-installed --report /lock/report.json -r /lock/requirements.txt'
python3 - "$work/report.json" "$flavor" > "deployments/images/lock-$flavor.txt" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"# The {sys.argv[2]} image's Python packages, resolved by deployments/images/lock.sh (do not edit by hand).")
for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
    hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
    print(f'{item["metadata"]["name"]}=={item["metadata"]["version"]} --hash=sha256:{hashes["sha256"]}')
EOF
wc -l "deployments/images/lock-$flavor.txt"
