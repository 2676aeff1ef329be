"""End to end on loopback: a real Prefect server, `prefect deploy --all`, process workers.

The library (the example clips) sits in a real S3 API (moto's server) on loopback.
The parent runs on the control pool; its shards fan out to two workers on the CPU
pool as `transcribe-shard/cpu` deployment runs. The fault test SIGKILLs a worker
with the shard it holds: Prefect's zombie automation crashes the silent run, the
parent resubmits the shard, and every file still ends up in the manifest once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.prefect_loopback import LoopbackPrefect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEARTBEAT_S = 30
ZOMBIE_AFTER_S = 45


@pytest.fixture(scope="module")
def loopback(moto_url: str) -> Iterator[LoopbackPrefect]:
    prefect = LoopbackPrefect(heartbeat_s=HEARTBEAT_S)
    prefect.env.update({"TRANSCRIBE_ALL_S3_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    prefect.start()
    try:
        prefect.deploy_all(zombie_within_s=ZOMBIE_AFTER_S)
        prefect.start_worker("control", "transcribe-control", limit=4)
        prefect.start_worker("cpu-1", "transcribe-cpu")
        prefect.start_worker("cpu-2", "transcribe-cpu")
        yield prefect
    finally:
        prefect.stop()


@pytest.fixture
def s3_library(s3: object, bucket: str, example_library: Path) -> str:
    for path in sorted(p for p in example_library.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"library/{path.relative_to(example_library).as_posix()}")  # type: ignore[attr-defined]
    return f"s3://{bucket}/library"


def params(source: str, out: Path, shards: int, seconds_per_audio_second: float) -> dict[str, object]:
    return {"source": source, "out": str(out), "pool": "cpu", "shards": shards, "shard_minutes": None,
            "engine": "fake", "hardware": "cpu",
            "engine_options": {"seconds_per_audio_second": str(seconds_per_audio_second)}}


def assert_every_file_once(out: Path, library: Path) -> None:
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()
    expected = sorted(p.relative_to(library).as_posix() for p in library.rglob("*.*"))
    assert sorted(r["source"] for r in rows) == expected
    assert {r["status"] for r in rows} == {"ok"}


def test_nightly_deployment_fans_shards_out_over_workers(
    loopback: LoopbackPrefect, tmp_path: Path, example_library: Path, s3_library: str
) -> None:
    out = tmp_path / "out"
    done = loopback.run_deployment("transcribe-library/nightly", params(s3_library, out, 3, 0.0))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_every_file_once(out, example_library)
    assert loopback.flow_run_states("transcribe-shard").count("COMPLETED") == 3
    runs = ds.dataset(out / "runs").to_table().to_pylist()
    assert len(runs) == 1 and runs[0]["files_ok"] == 6 and runs[0]["workers"] == 3


def test_a_worker_killed_mid_shard_loses_and_duplicates_nothing(
    loopback: LoopbackPrefect, tmp_path: Path, example_library: Path, s3_library: str
) -> None:
    out = tmp_path / "out"
    # ~4 s clips at 1.5 s per audio second: each 3-file shard keeps a worker busy ~18 s
    command = [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "transcribe-library/nightly",
               "--params", json.dumps(params(s3_library, out, 2, 1.5)), "--watch", "--watch-timeout", "400"]
    parent = subprocess.Popen(command, cwd=loopback.home, env=loopback.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300  # a loaded CI machine can be slow to hand out the first shard
    while not loopback.worker_is_busy("cpu-1"):
        assert time.monotonic() < deadline, "worker cpu-1 never picked up a shard"
        time.sleep(0.5)
    time.sleep(3)  # let it stage part of the shard... or nothing: both must work
    loopback.kill_worker("cpu-1")
    loopback.start_worker("cpu-3", "transcribe-cpu")  # the replacement machine
    output, _ = parent.communicate(timeout=460)
    assert parent.returncode == 0, output[-4000:]
    assert_every_file_once(out, example_library)
    # the killed shard was detected and crashed by the automation, then done again elsewhere
    assert "CRASHED" in loopback.flow_run_states("transcribe-shard")
