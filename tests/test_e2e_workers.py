"""End to end on loopback: a real Prefect server, `prefect deploy --all`, process workers.

The library (the example clips) sits in a real S3 API (moto's server) on loopback.
The parent runs on the control pool; its shards fan out to two workers on the CPU
pool as `transcribe-shard/cpu` deployment runs. The fault test SIGKILLs a worker
with the shard it holds: Prefect's zombie automation crashes the silent run, the
parent resubmits the shard, and every file still ends up in the manifest once. A corrupt
file's decode error, logged through the standard library, is in its shard run's logs.
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

from tests.prefect_loopback import ROOT, LoopbackPrefect
from tests.test_run_logs import GARBLED_ERROR, corrupt_library

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEARTBEAT_S = 30
ZOMBIE_AFTER_S = 120  # generous: under load a live run's heartbeat events can arrive late, and a false crash fails it


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
    # workers counts the workers that really ran shards (two on the pool), not the shards
    assert len(runs) == 1 and runs[0]["files_ok"] == 6 and runs[0]["workers"] in (1, 2) and runs[0]["worker_s"] > 0


def test_two_parent_runs_into_one_dir_at_once_transcribe_each_file_once(
    loopback: LoopbackPrefect, tmp_path: Path, example_library: Path
) -> None:
    """The nightly deployment run and a manual parent started beside it, both fanning out to the pool.

    (The nightly deployment's own concurrency limit queues a second nightly run; a manual run, another
    deployment or a retried parent is not queued by it, so the run lease must hold DIR.)
    """
    out = tmp_path / "out"
    settings = params(str(example_library), out, 2, 0.3)  # 0.3 s per audio second: the runs overlap
    nightly = [str(Path(sys.executable).parent / "prefect"), "deployment", "run", "transcribe-library/nightly",
               "--params", json.dumps(settings), "--watch", "--watch-timeout", "400"]
    script = ("import json, sys; from flows.transcribe_library import transcribe_library as run; "
              "run(**json.loads(sys.argv[1]))")
    manual = [sys.executable, "-c", script, json.dumps(settings)]
    parents = []
    for command, cwd in ((nightly, loopback.home), (manual, ROOT)):
        parents.append(subprocess.Popen(command, cwd=cwd, env=loopback.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
        time.sleep(1)
    outputs = [parent.communicate(timeout=460)[0] for parent in parents]
    assert [parent.returncode for parent in parents] == [0, 0], [output[-3000:] for output in outputs]
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    expected = sorted(p.relative_to(example_library).as_posix() for p in example_library.rglob("*.*"))
    assert sorted(r["source"] for r in ok) == expected  # exactly one ok row per file, over both runs
    assert len({(r["content_sha256"], r["config_hash"]) for r in ok}) == len(ok)
    assert len({r["run_id"] for r in rows}) == 2 and sorted({r["status"] for r in rows}) == ["ok", "skipped"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert sorted(r["source"] for r in skipped) == expected and len({r["done_in_run"] for r in skipped}) == 1
    # Whichever parent took the lease second waited, saying so in its run's log (the manual one also prints it).
    said = outputs[1] + "\n".join(loopback.log_messages())
    assert "is in use by run" in said, "the second parent waited for the first, saying so"
    assert not (out / "_lease.json").exists()


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
    while not (killed := loopback.running_flow_run_on("cpu-1", "transcribe-shard")):
        assert time.monotonic() < deadline, "worker cpu-1 never ran a shard of this run"
        time.sleep(0.5)
    time.sleep(3)  # let it stage part of the shard... or nothing: both must work
    loopback.kill_worker("cpu-1")
    loopback.start_worker("cpu-3", "transcribe-cpu")  # the replacement machine
    output, _ = parent.communicate(timeout=460)
    assert parent.returncode == 0, output[-4000:]
    assert_every_file_once(out, example_library)
    # the killed shard was detected and crashed by the automation, then done again elsewhere
    assert loopback.flow_run_state(killed) == "CRASHED"


def test_a_corrupt_files_decode_error_is_in_its_shard_runs_logs(loopback: LoopbackPrefect, tmp_path: Path) -> None:
    """What the UI's Logs tab of the shard run shows: the line tasks/transcribe.py logs, once."""
    library, out = corrupt_library(tmp_path / "library"), tmp_path / "out"
    done = loopback.run_deployment("transcribe-library/nightly", {
        "source": str(library), "out": str(out), "pool": "cpu", "shards": 1, "engine": "fake"}, timeout_s=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parent = done.stdout.split("UUID: ", 1)[1].split()[0]
    [shard] = loopback.api("flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent]}}})
    logs = loopback.api("logs/filter", {"logs": {"flow_run_id": {"any_": [shard["id"]]}}, "limit": 200})
    lines = [entry for entry in logs if "garbled.mp3" in entry["message"]]
    assert len(lines) == 1, [entry["message"] for entry in logs]
    assert GARBLED_ERROR in lines[0]["message"] and lines[0]["name"] == "tasks.transcribe"
    assert lines[0]["level"] == 30 and lines[0]["task_run_id"]  # a warning of its batch's task run
    # and never twice on the workers' consoles: the API handler adds no console line (after the module's
    # killed-worker test the line can still sit in a flow-run process's buffer when this reads, so at most once)
    consoles = "".join(path.read_text(errors="replace") for path in loopback.home.glob("worker-cpu-*.log"))
    assert consoles.count(GARBLED_ERROR) <= 1
