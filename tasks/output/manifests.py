"""The Parquet manifest: one row per file per run, and the ledger read back from it.

Layout: DIR/manifest/run_id=<RUN>/part-00000.parquet (hive-partitioned, so `run_id`
comes from the folder name). While a run is in progress every writer — the planner,
every batch of every shard — stages its own uniquely named part under
DIR/_staging/run_id=<RUN>/, atomically, so concurrent workers never touch the same
file and a killed worker leaves no half-written part. At the end the parent merges
the staged parts into the run's manifest partition, one row per source; a run whose
parent died is merged by the next run. The ledger reads both, so nothing staged is
ever redone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from prefect import task

from tasks.output.layout import (
    MANIFEST,
    STAGING,
    OutputLayout,
    merged_part,
    output_layout,
    run_folder,
    staged_part,
)
from tasks.output.links import transcript_url
from tasks.output.manifest_merge import merge_parts
from tasks.output.overlap import settle_overlaps
from tasks.output.transcripts import atomic_write_bytes
from tasks.records import FileResult, Quality

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
        ("quality_flags", pa.list_(pa.string())),  # named guard trips, see tasks/quality/guards.py
        ("speech_s", pa.float64()),  # seconds of speech found by voice-activity detection
        ("quality_attempts", pa.string()),  # JSON: both decodes of a retried file, else null
        ("audio_stream", pa.int32()),  # the container's stream index that was transcribed
        ("change_key", pa.string()),  # besides size and mtime: local inode:ctime_ns, S3 ETag (tasks/media/scan.py)
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
        **_quality_fields(transcript.quality if transcript else None, item.duration_s),
        "audio_stream": result.audio_stream,
        "change_key": item.change_key,
    }


def _quality_fields(quality: Quality | None, duration_s: float | None) -> dict[str, object]:
    """`speech_s` is measured on the decoded audio, which can run past the header's `duration_s` (the
    example m4a decodes to 3.499 s where its header says 3.482 s): a row never says more speech than
    the file it describes."""
    if quality is None:
        return {"quality_flags": None, "speech_s": None, "quality_attempts": None}
    attempts = json.dumps([asdict(a) for a in quality.attempts]) if quality.attempts else None
    speech_s = quality.speech_s
    if speech_s is not None and duration_s is not None:
        speech_s = min(speech_s, duration_s)
    return {"quality_flags": list(quality.flags), "speech_s": speech_s, "quality_attempts": attempts}


def write_part(out: Path, run_id: str, part: str, results: Sequence[FileResult], ctx: RunContext) -> Path | None:
    """Stage one batch's rows atomically; `finalize_run` merges them into the manifest."""
    if not results:
        return None
    path = out / staged_part(run_id, part)
    _write_table(path, to_table(results, ctx))
    return path


def _write_table(path: Path, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    atomic_write_bytes(path, buffer.getvalue())


def read_manifest(out: Path, columns: Iterable[str] | None = None, run_id: str | None = None,
                  where: pc.Expression | None = None) -> pa.Table:
    """Merged rows of every run (or of one), optionally filtered: what users read. Empty, with the schema, if none."""
    return _read(out / MANIFEST, columns, run_id, where)


def read_staging(out: Path, columns: Iterable[str] | None = None, run_id: str | None = None,
                 where: pc.Expression | None = None) -> pa.Table:
    """Rows written by shards but not yet merged (a run in progress, or one that died)."""
    return _read(out / STAGING, columns, run_id, where)


def _read(root: Path, columns: Iterable[str] | None, run_id: str | None, where: pc.Expression | None) -> pa.Table:
    schema = MANIFEST_SCHEMA.append(pa.field("run_id", pa.string()))
    wanted = list(columns) if columns is not None else schema.names
    folder = root / f"run_id={run_id}" if run_id is not None else root
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return schema.empty_table().select(wanted)
    if run_id is None:
        dataset = ds.dataset(folder, format="parquet", partitioning="hive", schema=schema)
        return dataset.to_table(columns=wanted, filter=where)
    table = ds.dataset(folder, format="parquet", schema=MANIFEST_SCHEMA).to_table(
        columns=[c for c in wanted if c != "run_id"], filter=where
    )
    return table.append_column("run_id", pa.array([run_id] * len(table), pa.string())).select(wanted)


STATUS_RANK = {"ok": 0, "skipped": 1, "failed": 2, "removed": 3}


@dataclass(frozen=True, slots=True)
class Merged:
    rows: int  # the run's rows, one per source
    written: Path | None  # the merged part (None: the run has no rows)
    removed: tuple[Path, ...]  # staged parts folded in and deleted


def finalize_run(out: Path, run_id: str) -> Merged:
    """Merge a run's staged rows into its manifest partition: one row per source, sorted, atomically.

    If a source was written twice (a shard retried while its first attempt was still
    alive), the ok row wins, then the earliest. The merged part replaces the old one
    only once complete, and staged parts are deleted only after that, so re-running it
    after a crash anywhere is harmless. Streams: see tasks/output/manifest_merge.py.
    """
    target = out / merged_part(run_id)
    staged = _parts(out / run_folder(STAGING, run_id))
    rows = merge_parts([*_parts(target.parent), *staged], target, MANIFEST_SCHEMA, tuple(STATUS_RANK))
    if rows:
        settle_overlaps(out, run_id, target, MANIFEST_SCHEMA)  # in case two runs wrote DIR at once anyway
    for path in staged:
        path.unlink(missing_ok=True)
    return Merged(rows, target if rows else None, staged)


def _parts(folder: Path) -> tuple[Path, ...]:
    """The Parquet files a dataset reader would list in `folder` (hidden temp files are not)."""
    return tuple(sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))))


def unfinished_runs(out: Path) -> list[str]:
    """Runs with staged rows that were never merged (their parent died)."""
    root = out / STAGING
    if not root.is_dir():
        return []
    return sorted(p.name.removeprefix("run_id=") for p in root.glob("run_id=*") if any(p.glob("*.parquet")))


@dataclass(frozen=True, slots=True)
class Ledger:
    """What earlier runs (and this one, on a retry) already settled."""

    done: dict[str, str]  # content_sha256 → run_id of its ok row, for this config
    seen_this_run: frozenset[str]  # sources that already have a row in this run
    transcripts: dict[str, str] = field(default_factory=dict)  # content_sha256 → its ok row's transcript_path
    # contents with an ok row under another config only: done again because the configuration changed
    other_configs: frozenset[str] = frozenset()


def load_ledger(out: Path, config_hash: str, run_id: str) -> Ledger:
    """Only the ok rows are read, four columns of them (the filter runs in Arrow, per row group), so the
    ledger grows with the library's distinct contents × configs, not with files × nightly runs."""
    columns = ["content_sha256", "run_id", "transcript_path", "config_hash"]
    wanted = pc.field("status") == "ok"
    done: dict[str, str] = {}
    transcripts: dict[str, str] = {}
    elsewhere: set[str] = set()
    for table in (read_manifest(out, columns, where=wanted), read_staging(out, columns, where=wanted)):
        for content, ok_in_run, path, made_by in zip(*(table.column(c).to_pylist() for c in columns), strict=True):
            if made_by != config_hash:
                elsewhere.add(content)
            elif content not in done:
                done[content] = ok_in_run
                if path:
                    transcripts[content] = path
    return Ledger(done, frozenset(sources_in_run(out, run_id)), transcripts, frozenset(elsewhere - done.keys()))


def sources_in_run(out: Path, run_id: str) -> set[str]:
    """Sources that already have a row in this run: a retried shard skips them."""
    tables = (read_manifest(out, ["source"], run_id=run_id), read_staging(out, ["source"], run_id=run_id))
    return {source for table in tables for source in table.column("source").to_pylist()}


@task(name="read-run-sources", retries=2, retry_delay_seconds=[2, 10])
def sources_in_run_task(out: str, run_id: str) -> set[str]:
    """Sources this run has already settled (a retried shard skips them)."""
    return sources_in_run(output_layout(out).read_root(), run_id)


@task(name="merge-manifest", retries=2, retry_delay_seconds=[2, 10])
def finalize_run_task(out: str, run_id: str) -> int:
    """Merge the run's staged rows into DIR/manifest; return its row count."""
    layout = output_layout(out)
    return finalize_and_ship(layout, layout.read_root(), run_id)


def finalize_and_ship(layout: OutputLayout, root: Path, run_id: str) -> int:
    """Merge a run under `root` (DIR or its S3 mirror), ship the merged part, drop the staged ones; rows."""
    merged = finalize_run(root, run_id)
    if merged.written is not None:
        layout.publish([merged.written], keep=True)  # the merged part first, then drop the staged ones
    layout.delete([path.relative_to(root).as_posix() for path in merged.removed])
    return merged.rows
