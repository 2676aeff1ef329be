"""The Parquet manifest: one row per file per run, and the ledger read back from it.

Layout: DIR/manifest/run_id=<RUN>/<part>.parquet (hive-partitioned, so `run_id`
comes from the folder name). Each writer — the planner, every batch of every
shard — writes its own part with a unique name, atomically, so concurrent workers
never touch the same file and a killed worker leaves no half-written part.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from prefect import task

from tasks.links import transcript_url
from tasks.records import FileResult
from tasks.storage import open_output
from tasks.transcripts import atomic_write_bytes

MANIFEST_DIR = "manifest"

SEGMENT_TYPE = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])
MANIFEST_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("content_sha256", pa.string()),
        ("duration_s", pa.float64()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("language", pa.string()),
        ("text", pa.string()),
        ("segments", pa.list_(SEGMENT_TYPE)),
        ("engine", pa.string()),
        ("model", pa.string()),
        ("config_hash", pa.string()),
        ("engine_config", pa.string()),  # JSON: effective settings + per-file decode notes
        ("processing_s", pa.float64()),
        ("shard_id", pa.int32()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("done_in_run", pa.string()),  # skipped rows: the run that holds the ok row
        ("transcript_path", pa.string()),  # relative to DIR
        ("transcript_url", pa.string()),  # {base_url}/outputs/{transcript_path}; null without a base URL
    ]
)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every row of one run shares."""

    run_id: str
    engine: str
    model: str
    config_hash: str
    engine_settings: tuple[tuple[str, str], ...] = ()
    base_url: str | None = None  # where DIR is served: rows get links to their transcripts


def to_table(results: Sequence[FileResult], ctx: RunContext) -> pa.Table:
    rows = [_row(result, ctx) for result in results]
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def _row(result: FileResult, ctx: RunContext) -> dict[str, object]:
    item, transcript = result.item, result.transcript
    settings = dict(ctx.engine_settings) | (dict(transcript.info) if transcript else {})
    return {
        "source": item.source,
        "size_bytes": item.size_bytes,
        "mtime_ns": item.mtime_ns,
        "content_sha256": item.content_sha256,
        "duration_s": item.duration_s,
        "status": result.status,
        "error": result.error,
        "language": transcript.language if transcript else None,
        "text": transcript.text if transcript else None,
        "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments]
        if transcript
        else None,
        "engine": ctx.engine,
        "model": ctx.model,
        "config_hash": ctx.config_hash,
        "engine_config": json.dumps(settings, sort_keys=True),
        "processing_s": result.processing_s,
        "shard_id": result.shard_id,
        "finished_at": result.finished_at,
        "done_in_run": result.done_in_run,
        "transcript_path": result.transcript_path,
        "transcript_url": transcript_url(ctx.base_url, result.transcript_path),
    }


def write_part(out: Path, run_id: str, part: str, results: Sequence[FileResult], ctx: RunContext) -> Path | None:
    """Write one part of the run's manifest atomically; nothing for no results."""
    if not results:
        return None
    buffer = io.BytesIO()
    pq.write_table(to_table(results, ctx), buffer, compression="zstd")
    path = out / MANIFEST_DIR / f"run_id={run_id}" / f"{part}.parquet"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_manifest(out: Path, columns: Iterable[str] | None = None, run_id: str | None = None) -> pa.Table:
    """All rows (or one run's) as a table; empty with the full schema when there are none."""
    folder = out / MANIFEST_DIR
    if run_id is not None:
        folder = folder / f"run_id={run_id}"
    schema = MANIFEST_SCHEMA.append(pa.field("run_id", pa.string()))
    wanted = list(columns) if columns is not None else schema.names
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return schema.empty_table().select(wanted)
    dataset = ds.dataset(folder, format="parquet", partitioning="hive" if run_id is None else None,
                         schema=schema if run_id is None else MANIFEST_SCHEMA)
    if run_id is not None:
        table = dataset.to_table(columns=[c for c in wanted if c != "run_id"])
        return table.append_column("run_id", pa.array([run_id] * len(table), pa.string())).select(wanted)
    return dataset.to_table(columns=wanted)


@dataclass(frozen=True, slots=True)
class Ledger:
    """What earlier runs (and this one, on a retry) already settled."""

    done: dict[str, str]  # content_sha256 → run_id of its ok row, for this config
    seen_this_run: frozenset[str]  # sources that already have a row in this run


def load_ledger(out: Path, config_hash: str, run_id: str) -> Ledger:
    table = read_manifest(out, ["source", "content_sha256", "status", "config_hash", "run_id"])
    done: dict[str, str] = {}
    seen: set[str] = set()
    for row in table.to_pylist():
        if row["run_id"] == run_id:
            seen.add(row["source"])
        if row["status"] == "ok" and row["config_hash"] == config_hash:
            done.setdefault(row["content_sha256"], row["run_id"])
    return Ledger(done, frozenset(seen))


def sources_in_run(out: Path, run_id: str) -> set[str]:
    """Sources that already have a row in this run: a retried shard skips them."""
    return set(read_manifest(out, ["source"], run_id=run_id).column("source").to_pylist())


@task(name="read-run-sources", retries=2, retry_delay_seconds=[2, 10])
def sources_in_run_task(out: str, run_id: str) -> set[str]:
    """Sources this run has already settled (a retried shard skips them)."""
    return sources_in_run(open_output(out).pull_manifest(), run_id)
