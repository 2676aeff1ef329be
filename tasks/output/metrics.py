"""Per-run cost and throughput: the one row per run in DIR/runs/.

Cost is what the hardware that did the work was held for × its hourly price. On a pool:
the sum over every shard attempt of the time its worker held it, from the start of its
work (model load included) until it returned (tasks/output/shard_attempts.py); the control
worker that scans and merges is not priced. On one machine (no pool): the flow's wall time,
since the machine that transcribes also scans, plans and merges. GPU hours are worker hours ×
GPUs per worker. Audio counted is what this run transcribed (ok files), not skipped files.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from tasks.output.layout import STAGES, output_layout, run_folder, run_row_file, stage_times_file
from tasks.output.manifests import read_manifest
from tasks.output.shard_attempts import Held, held_by, read_shard_attempts
from tasks.output.transcripts import atomic_write_bytes, atomic_write_text
from tasks.planning.pricing import Pricing
from tasks.records import StageTimes


@dataclass(frozen=True, slots=True)
class ShardSummary:
    """What one shard run reports back to the parent flow."""

    shard_id: int
    files_ok: int
    files_failed: int
    files_skipped: int
    audio_s: float  # audio of the ok files
    times: StageTimes


@dataclass(frozen=True, slots=True)
class RunMetrics:
    run_id: str
    started_at: datetime
    finished_at: datetime
    files_total: int
    files_ok: int
    files_failed: int
    files_skipped: int
    audio_s: float
    wall_s: float  # the library flow's own wall time
    rtfx: float | None  # audio_s / wall_s; None when nothing was transcribed
    scan_s: float
    decode_s: float  # the model waiting on decoded audio (decoding itself runs ahead, see tasks/media/prefetch.py)
    inference_s: float
    write_s: float
    hardware: str
    workers: int  # distinct workers that ran shards (1 on one machine)
    gpu_hours: float  # worker_hours × GPUs per worker
    price_per_hour_usd: float
    spot_price_per_hour_usd: float
    cost_usd: float
    spot_cost_usd: float
    cost_per_audio_hour_usd: float | None
    spot_cost_per_audio_hour_usd: float | None
    engine: str
    model: str
    config_hash: str
    files_flagged: int = 0  # ok files with a quality flag (tasks/quality/guards.py), no_speech included
    canary_wer: float | None = None  # None: no canary in this run (tasks/quality/canary.py)
    canary_threshold: float | None = None
    files_removed: int = 0  # files gone from SOURCE since the last run: `removed` rows
    quarantined: int = 0  # corrupt parts moved to DIR/_quarantine/ at the start of the run
    interrupted: bool = False  # written by a later run for a run that was killed before its own row
    source: str | None = None  # the SOURCE scanned (an absolute folder or a URI): the site's media (archive.py)
    worker_s: float = 0.0  # Σ seconds the workers were held for the run's shards (one machine: wall_s)
    worker_hours: float = 0.0  # worker_s in hours: instance-hours, what the price is per
    utilisation: float | None = None  # inference_s / worker_s: the share of held time the model was busy


def summarise_run(
    *,
    run_id: str,
    started_at: datetime,
    finished_at: datetime,
    rows: pa.Table,
    times: StageTimes,
    pricing: Pricing,
    held: Held | None,
    engine: str,
    model: str,
    config_hash: str,
) -> RunMetrics:
    """The run's metrics from its merged manifest rows, the stage times its writers left, and what its
    workers were held for (`held`; None: this machine, for the flow's wall time)."""
    status = rows.column("status").to_pylist()
    durations = rows.column("duration_s").to_pylist()
    audio_s = sum(d or 0.0 for s, d in zip(status, durations, strict=True) if s == "ok")
    removed = status.count("removed")
    wall_s = max((finished_at - started_at).total_seconds(), 1e-9)
    held = held or Held(wall_s, 1)
    hours = held.worker_s / 3600
    cost, spot = hours * pricing.price_per_hour_usd, hours * pricing.spot_price_per_hour_usd
    audio_h = audio_s / 3600
    return RunMetrics(
        run_id=run_id, started_at=started_at, finished_at=finished_at, files_total=len(status) - removed,
        files_ok=status.count("ok"), files_failed=status.count("failed"), files_skipped=status.count("skipped"),
        audio_s=audio_s, wall_s=wall_s, rtfx=audio_s / wall_s if audio_s else None, scan_s=times.scan_s,
        decode_s=times.decode_s, inference_s=times.inference_s, write_s=times.write_s, hardware=pricing.name,
        workers=held.workers, gpu_hours=hours * pricing.gpus, price_per_hour_usd=pricing.price_per_hour_usd,
        spot_price_per_hour_usd=pricing.spot_price_per_hour_usd, cost_usd=cost, spot_cost_usd=spot,
        cost_per_audio_hour_usd=cost / audio_h if audio_h else None,
        spot_cost_per_audio_hour_usd=spot / audio_h if audio_h else None,
        engine=engine, model=model, config_hash=config_hash, files_removed=removed,
        worker_s=held.worker_s, worker_hours=hours,
        utilisation=times.inference_s / held.worker_s if held.worker_s > 0 else None,
    )


def write_stage_times(out: Path, run_id: str, part: str, times: StageTimes) -> Path:
    """Each writer leaves its stage seconds beside the run; the parent adds them up."""
    path = out / stage_times_file(run_id, part)
    atomic_write_text(path, json.dumps(asdict(times)))
    return path


def read_stage_times(out: Path, run_id: str) -> StageTimes:
    total = StageTimes()
    for path in sorted((out / run_folder(STAGES, run_id)).glob("*.json")):
        total = total + StageTimes(**json.loads(path.read_text()))
    return total


def _arrow_type(annotation: str) -> pa.DataType:
    return {"str": pa.string(), "str | None": pa.string(), "int": pa.int64(), "bool": pa.bool_(),
            "datetime": pa.timestamp("us", tz="UTC")}.get(
        annotation, pa.float64()  # float and float | None
    )


RUNS_SCHEMA = pa.schema([(f.name, _arrow_type(str(f.type))) for f in fields(RunMetrics)])


def write_run_row(out: Path, metrics: RunMetrics) -> Path:
    """DIR/runs/<run_id>.parquet, atomically; `pyarrow.dataset.dataset(DIR/'runs')` reads them all."""
    table = pa.Table.from_pylist([asdict(metrics)], schema=RUNS_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path = out / run_row_file(metrics.run_id)
    atomic_write_bytes(path, buffer.getvalue())
    return path


@task(name="record-run", retries=2, retry_delay_seconds=[2, 10])
def record_run_task(
    out: str, run_id: str, started_at: datetime, pricing: Pricing, on_pool: bool, engine: str, model: str,
    config_hash: str,
    canary_wer: float | None = None,
    canary_threshold: float | None = None,
    quarantined: int = 0,
    source: str | None = None,
) -> RunMetrics:
    """Compute the run's metrics from its merged manifest and write its row to DIR/runs/.

    `on_pool`: the shards ran on a pool's workers, whose held time their attempts recorded; else here."""
    layout = output_layout(out)
    root = layout.read_root()
    flags = read_manifest(root, ["quality_flags"], run_id=run_id).column("quality_flags").to_pylist()
    flagged = sum(1 for f in flags if set(f or ()) - {"canary_failed"})
    metrics = summarise_run(
        run_id=run_id, started_at=started_at, finished_at=datetime.now(UTC),
        rows=read_manifest(root, ["status", "duration_s"], run_id=run_id),
        times=read_stage_times(root, run_id), pricing=pricing,
        held=held_by(read_shard_attempts(root, run_id)) if on_pool else None, engine=engine, model=model,
        config_hash=config_hash,
    )
    metrics = replace(metrics, files_flagged=flagged, canary_wer=canary_wer, canary_threshold=canary_threshold,
                      quarantined=quarantined, source=source)
    layout.publish([write_run_row(layout.write_root(), metrics)])
    return metrics
