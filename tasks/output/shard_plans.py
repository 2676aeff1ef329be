"""Each shard's file list, written under DIR for the shard's flow run to read.

Prefect caps a flow run's parameters at 512 KB (about 2,500 files), so a shard is
handed over by reference: the parent writes DIR/_plans/run_id=<RUN>/shard-<N>.parquet
and passes a small `ShardRef`; the shard flow, on whichever worker, reads the list back
through the same `OutputStore` that carries the manifest (a local folder or S3). The
lists stay after the run: they record what each shard was asked to do.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.output.layout import output_layout, plan_file
from tasks.output.transcripts import atomic_write_bytes
from tasks.records import MediaItem, Shard, ShardRef

PLAN_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("locator", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("content_sha256", pa.string()),
        ("duration_s", pa.float64()),
        ("error", pa.string()),
        ("change_key", pa.string()),
    ]
)
assert PLAN_SCHEMA.names == [f.name for f in fields(MediaItem)], "PLAN_SCHEMA must follow MediaItem"


def write_shard_plan(root: Path, run_id: str, shard: Shard) -> ShardRef:
    """Write the shard's files under `root` (atomically); the reference to pass on."""
    relative = plan_file(run_id, shard.shard_id)
    columns = {name: [getattr(item, name) for item in shard.items] for name in PLAN_SCHEMA.names}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns, schema=PLAN_SCHEMA), buffer, compression="zstd")
    atomic_write_bytes(root / relative, buffer.getvalue())
    return ShardRef(shard.shard_id, len(shard.items), shard.audio_s, relative)


def read_shard_plan(plan: Path | bytes, shard_id: int) -> Shard:
    """The shard written by `write_shard_plan`, from its file or its bytes."""
    rows = pq.read_table(io.BytesIO(plan) if isinstance(plan, bytes) else plan, schema=PLAN_SCHEMA).to_pylist()
    return Shard(shard_id, tuple(MediaItem(**row) for row in rows))


@task(name="write-shard-plans", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def write_shard_plans_task(shards: Sequence[Shard], out: str, run_id: str) -> list[ShardRef]:
    """Write every shard's file list to DIR/_plans/ (shipped to S3 for an s3:// DIR)."""
    layout = output_layout(out)
    refs = [write_shard_plan(layout.write_root(), run_id, shard) for shard in shards]
    layout.publish([layout.write_root() / ref.plan for ref in refs])
    return refs


@task(name="read-shard-plan", retries=2, retry_delay_seconds=[2, 10])
def read_shard_plan_task(out: str, ref: ShardRef) -> Shard:
    """The shard's files, read back from DIR."""
    return read_shard_plan(output_layout(out).fetch(ref.plan), ref.shard_id)
