#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a lent H100/H200: python3.12, torch 2.11, transformers 5.17, no
# pydantic (the engines' options need it), no prefect, faster-whisper or ctranslate2 (that row says so).
#
#   here, once:  bash bench/gpu_check.sh --fetch-wheels   # pydantic and its 3 needs into .whl/ (~2.5 MB)
#   there:       BENCH_COMMIT=<sha> bash bench/gpu_check.sh [gpu_check.py options]
#                (device tool: carry [".whl"], timeout_s 540; it stops itself at 480 s)
#
# Writes $OUT/gpu_check.md (the table, rewritten after every row: a run cut short keeps its rows) and
# $OUT/gpu_check.log (nvidia-smi, per-row JSON, errors); without $OUT, bench/results/gpu_check_gpu.md.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 typing-inspection==0.4.5 annotated-types==0.8.0)
if [ "${1:-}" = "--fetch-wheels" ]; then
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
fi
if [ -n "${OUT:-}" ]; then table="$OUT/gpu_check.md"; log="$OUT/gpu_check.log"
else table=bench/results/gpu_check_gpu.md; log=/tmp/gpu_check.log; fi
if ! python3 -c "import pydantic" 2>/dev/null; then
    if ! ls .whl/pydantic-*.whl >/dev/null 2>&1; then
        echo "pydantic is missing and .whl/ holds no wheels: run 'bash bench/gpu_check.sh --fetch-wheels' here, carry .whl"
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 2
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ date -u; nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv 2>&1; } | tee "$log"
timeout -s INT 480 python3 bench/gpu_check.py --out "$table" "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || echo "gpu_check.py exited $status (124/130: stopped at 480 s; the table keeps the rows done)" | tee -a "$log"
exit "$status"
