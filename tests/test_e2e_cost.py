"""End to end on loopback: 4 shards queued on ONE process worker are billed for the worker's time.

A real Prefect server, `prefect deploy --all`, a control worker for the parent and one process
worker on the CPU pool. The run's 4 shards queue on that worker, one after another; its runs row
must report worker hours within 10 % of the time the worker spent on them, measured independently
from the shard flow runs' start and end times as the Prefect API reports them, and 1 worker.
(Before: wall time × 4 shards, about 4× the worker's time.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tasks.output.shard_attempts import read_shard_attempts
from tasks.planning.pricing import BUILTIN_PROFILES
from tests.prefect_loopback import LoopbackPrefect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECONDS_PER_AUDIO_SECOND = 1.5  # the example library's 24 s of audio: ~9 s of work per shard on average


@pytest.fixture(scope="module")
def one_cpu_worker() -> Iterator[LoopbackPrefect]:
    prefect = LoopbackPrefect().start()
    try:
        prefect.deploy_all()
        prefect.start_worker("control", "transcribe-control", limit=2)
        prefect.start_worker("cpu-only", "transcribe-cpu", limit=1)
        yield prefect
    finally:
        prefect.stop()


def _seconds(run: dict[str, object]) -> float:
    start, end = (datetime.fromisoformat(str(run[key])) for key in ("start_time", "end_time"))
    return (end - start).total_seconds()


def test_four_shards_on_one_worker_are_billed_for_the_workers_time(
    one_cpu_worker: LoopbackPrefect, tmp_path: Path, example_library: Path
) -> None:
    out = tmp_path / "out"
    params = {"source": str(example_library), "out": str(out), "pool": "cpu", "shards": 4, "shard_minutes": None,
              "engine": "fake", "engine_options": {"seconds_per_audio_second": str(SECONDS_PER_AUDIO_SECOND)}}
    done = one_cpu_worker.run_deployment("transcribe-library/nightly", params)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [run] = ds.dataset(out / "runs").to_table().to_pylist()
    shard_runs = one_cpu_worker.api("flow_runs/filter", {"flows": {"name": {"any_": ["transcribe-shard"]}},
                                                          "limit": 50})
    assert [r["state_type"] for r in shard_runs] == ["COMPLETED"] * 4
    on_shards_s = sum(_seconds(r) for r in shard_runs)  # what the Prefect API says the worker spent on them
    assert on_shards_s > 4 * 3.0, on_shards_s  # the shards did real work (~36 s of fake inference)
    assert run["worker_hours"] * 3600 == pytest.approx(on_shards_s, rel=0.10), (run, on_shards_s)
    assert run["worker_s"] == pytest.approx(run["worker_hours"] * 3600)
    assert run["workers"] == 1 and run["hardware"] == "cpu" and run["files_ok"] == 6
    cpu = BUILTIN_PROFILES["cpu"]
    assert run["cost_usd"] == pytest.approx(run["worker_hours"] * cpu.price_per_hour_usd)
    assert run["gpu_hours"] == 0.0  # a CPU instance: instance hours, no GPU hours
    assert run["wall_s"] * 4 > 2 * run["worker_s"]  # what wall time × shards would have billed
    assert 0 < run["utilisation"] <= 1
    # each shard flow run recorded its attempt, on the one worker, inside the run Prefect saw
    attempts = read_shard_attempts(out, run["run_id"])
    assert sorted(a.flow_run_id for a in attempts) == sorted(str(r["id"]) for r in shard_runs)
    assert {(a.pool, a.worker) for a in attempts} == {("cpu", attempts[0].worker)}
    assert attempts[0].worker.endswith("/cpu-only") and len({a.pid for a in attempts}) == 4
    by_id = {str(r["id"]): r for r in shard_runs}
    for a in attempts:
        assert a.worker_s <= _seconds(by_id[a.flow_run_id]) + 0.5
