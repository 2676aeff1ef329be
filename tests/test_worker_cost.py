"""Cost from the time workers were held: shard attempts, the run's worker hours, what the summaries say.

A run is billed for Σ shard-attempt worker time × price (on a pool) or the flow's wall time (one
machine), never wall time × shard count; the records are real Parquet files under DIR/shards/.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from tasks.output.history import read_runs, table_rows
from tasks.output.metrics import RUNS_SCHEMA, RunMetrics, ShardSummary, summarise_run, write_run_row
from tasks.output.reporting import run_report
from tasks.output.shard_attempts import (
    AttemptClock,
    Held,
    ShardAttempt,
    Worker,
    held_by,
    read_shard_attempts,
    write_shard_attempt,
)
from tasks.planning.pricing import BUILTIN_PROFILES
from tasks.records import StageTimes

T0 = datetime(2026, 12, 1, 2, tzinfo=UTC)
ONE_WORKER = Worker("gpu-box", "h100", "h100", 4242, "ProcessWorker abc")


def attempt(shard_id: int, start_s: float, worker_s: float, worker: Worker = ONE_WORKER, status: str = "completed",
            pid: int | None = None) -> ShardAttempt:
    started = T0 + timedelta(seconds=start_s)
    return ShardAttempt("run-1", shard_id, f"flow-{shard_id}-{start_s}", status, None, worker.host, worker.pool,
                        worker.hardware, pid or worker.pid, worker.key, started, started + timedelta(seconds=worker_s),
                        worker_s, 2.0, 0.1, worker_s - 3.0, 0.5, 600.0, 3, 0)


def rows(ok_audio_s: list[float]) -> pa.Table:
    return pa.table({"status": ["ok"] * len(ok_audio_s), "duration_s": ok_audio_s})


def summarise(held: Held | None, audio: list[float], wall_s: float = 100.0, profile: str = "h100",
              inference_s: float = 30.0) -> RunMetrics:
    return summarise_run(run_id="run-1", started_at=T0, finished_at=T0 + timedelta(seconds=wall_s), rows=rows(audio),
                         times=StageTimes(inference_s=inference_s), pricing=BUILTIN_PROFILES[profile], held=held,
                         engine="fake", model="fake", config_hash="cfg")


def test_shards_queued_on_one_worker_are_billed_for_their_own_time_not_wall_time_per_shard() -> None:
    # four 20 s shards one after another on one worker, in a 100 s run: 80 s held, not 4 × 100 s
    attempts = [attempt(n, 20.0 * n, 20.0, pid=1000 + n) for n in range(4)]  # each flow run is its own process
    held = held_by(attempts)
    assert held == Held(80.0, 1)
    m = summarise(held, [600.0] * 4)
    h100 = BUILTIN_PROFILES["h100"]
    assert m.worker_s == 80.0 and m.workers == 1 and m.wall_s == 100.0
    assert m.worker_hours == pytest.approx(80 / 3600)
    assert m.gpu_hours == pytest.approx(80 / 3600 * h100.gpus)
    assert m.cost_usd == pytest.approx(80 / 3600 * h100.price_per_hour_usd)
    assert m.spot_cost_usd == pytest.approx(80 / 3600 * h100.spot_price_per_hour_usd)
    assert m.cost_per_audio_hour_usd == pytest.approx(m.cost_usd / (2400 / 3600))
    assert m.utilisation == pytest.approx(30.0 / 80.0)


def test_failed_attempts_count_and_workers_are_told_apart_by_worker_not_process() -> None:
    other = Worker("gpu-box-2", "h100", "h100", 7, "ProcessWorker def")
    inline_a, inline_b = Worker("laptop", "", "cpu", 11, ""), Worker("laptop", "", "cpu", 12, "")
    attempts = [attempt(0, 0, 5.0, status="failed"), attempt(0, 6, 10.0), attempt(1, 0, 12.0, other)]
    assert held_by(attempts) == Held(27.0, 2)
    assert held_by([attempt(0, 0, 1.0, inline_a), attempt(1, 1, 1.0, inline_b)]).workers == 2  # no worker: pid
    assert held_by([]) == Held(0.0, 0)


def test_one_machine_is_billed_for_the_flow_wall_time() -> None:
    m = summarise(None, [60.0], wall_s=50.0, profile="cpu", inference_s=20.0)
    cpu = BUILTIN_PROFILES["cpu"]
    assert (m.worker_s, m.workers, m.gpu_hours) == (50.0, 1, 0.0)
    assert m.cost_usd == pytest.approx(50 / 3600 * cpu.price_per_hour_usd) and m.cost_usd > 0
    assert m.utilisation == pytest.approx(0.4) and m.rtfx == pytest.approx(1.2)


def test_the_cpu_profile_is_a_real_instance_with_a_price() -> None:
    cpu = BUILTIN_PROFILES["cpu"]
    assert "c7i.2xlarge" in cpu.instance and cpu.price_per_hour_usd > cpu.spot_price_per_hour_usd > 0
    assert cpu.gpus == 0 and all(p.instance for p in BUILTIN_PROFILES.values())


def test_a_run_that_transcribed_nothing_has_no_rtfx_and_says_so() -> None:
    m = summarise(Held(0.0, 0), [], wall_s=0.1)
    assert m.rtfx is None and m.utilisation is None and m.cost_per_audio_hour_usd is None
    report = run_report(m)
    assert "RTFx —" in report and "RTFx 0.0" not in report
    assert "Workers held: 0 workers for 0.0 s" in report and "utilisation — (inference ÷ worker time)" in report


def test_the_cli_summary_shows_the_commands_time_beside_the_flows_and_a_dash_for_rtfx() -> None:
    from transcribe_all.run import _summary

    m = summarise(None, [], wall_s=0.1, profile="cpu", inference_s=0.0)
    console = Console(record=True, width=200)
    console.print(_summary(m, "/tmp/out", 7.2))
    text = console.export_text()
    assert "7.2 s this command so far" in text and "0.1 s the flow's wall time" in text
    assert "RTFx —" in text and "RTFx 0.0" not in text
    assert "1 worker held 0.1 s" in text and "utilisation 0%" in text


def test_attempt_records_round_trip_through_parquet(tmp_path: Path) -> None:
    clock = AttemptClock()
    clock.model_load_s = 1.5
    clock.done += [ShardSummary(3, 2, 1, 0, 7.0, StageTimes(decode_s=0.2, inference_s=3.0, write_s=0.1)),
                   ShardSummary(3, 1, 0, 0, 4.0, StageTimes(decode_s=0.3, inference_s=2.0, write_s=0.1))]
    worker = Worker("host-a", "cpu", "cpu", 99, "cpu-1")
    done = clock.attempt("run-1", 3, worker, "flow-run-x")
    failed = AttemptClock().attempt("run-1", 3, worker, "flow-run-y", RuntimeError("model gone"))
    for record in (done, failed):
        write_shard_attempt(tmp_path, record)
    back = read_shard_attempts(tmp_path, "run-1")
    assert back == sorted([done, failed], key=lambda a: (a.started_at, a.shard_id))
    assert len(list((tmp_path / "shards" / "run_id=run-1").glob("shard-00003-*.parquet"))) == 2
    assert (done.files_ok, done.files_failed, done.audio_s, done.model_load_s) == (3, 1, 11.0, 1.5)
    assert done.inference_s == pytest.approx(5.0) and done.decode_wait_s == pytest.approx(0.5)
    assert done.status == "completed" and done.worker == "host-a/cpu-1" and done.finished_at >= done.started_at
    assert failed.status == "failed" and failed.error == "RuntimeError: model gone" and failed.files_ok == 0
    assert read_shard_attempts(tmp_path, "another-run") == []


def test_runs_rows_written_before_the_worker_columns_still_read(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    new = summarise(Held(80.0, 1), [600.0])
    old_columns = [f for f in RUNS_SCHEMA if f.name not in ("worker_s", "worker_hours", "utilisation")]
    older = replace(new, run_id="run-0", started_at=T0 - timedelta(days=1))
    table = pa.Table.from_pylist([{f.name: getattr(older, f.name) for f in old_columns}], schema=pa.schema(old_columns))
    runs.mkdir()
    pq.write_table(table, runs / "run-0.parquet")
    write_run_row(tmp_path, new)
    read = read_runs(runs)
    assert [r["run_id"] for r in read] == ["run-0", "run-1"]
    assert read[0]["worker_s"] is None and read[1]["worker_s"] == 80.0 and read[1]["workers"] == 1
    table_row = table_rows(read)[0]
    assert (table_row["worker_s"], table_row["utilisation"], table_row["workers"]) == (80.0, 30.0 / 80.0, 1)


def test_speech_never_exceeds_the_duration_a_row_reports() -> None:
    from tasks.output.manifests import RunContext, to_table
    from tasks.quality.vad import SpeechMap
    from tasks.records import FileResult, MediaItem, Quality, Transcript

    # a clip that is speech from end to end: its length to the millisecond would round up past it
    assert SpeechMap(((0.0, 4.8369875),), 4.8369875).speech_s == 4.8369875
    assert SpeechMap(((0.0, 1.0), (2.0, 2.5)), 3.0).speech_s == 1.5
    # decoded audio a little longer than the header's duration (the example m4a: 3.499 s of a 3.482 s file)
    item = MediaItem("science.m4a", "/x/science.m4a", 1, 1, "ab" * 32, 3.4817)
    said = Transcript("words", (), quality=Quality(speech_s=3.499))
    row = to_table([FileResult(item, "ok", 0, T0, said)], RunContext("r", "fake", "fake", "cfg")).to_pylist()[0]
    assert (row["speech_s"], row["duration_s"]) == (3.4817, 3.4817)
    fits = replace(said, quality=Quality(speech_s=2.0))
    assert to_table([FileResult(item, "ok", 0, T0, fits)], RunContext("r", "fake", "fake", "cfg")).column(
        "speech_s").to_pylist() == [2.0]
