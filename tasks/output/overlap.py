"""Defence in depth behind the run lease: one `ok` row per (content_sha256, config_hash) across runs.

The lease keeps a second run out of DIR, but a lease can still be lost (a holder stalled
past its expiry, clocks far apart, a hand-deleted lease file). If two runs did transcribe
the same content anyway, the merge settles it: a run's `ok` row becomes `skipped`, with
`done_in_run` naming the other run, when that run's row is already merged (final), or
staged by a run with an earlier id (it will win its own merge). Whichever order the two
merges happen in, exactly one `ok` row survives; both point at the same content-addressed
transcript, so no row loses its transcript.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.output.layout import MANIFEST, STAGING
from tasks.output.manifest_merge import READ_BUFFER_BYTES, ROW_GROUP_ROWS, conform
from tasks.output.transcripts import atomic_path

_KEYS = pa.schema([("content_sha256", pa.string()), ("config_hash", pa.string()), ("status", pa.string()),
                   ("run_id", pa.string())])


def settle_overlaps(root: Path, run_id: str, target: Path, schema: pa.Schema) -> int:
    """Turn this run's ok rows that another run holds into `skipped` rows, in `target`; how many."""
    mine = pq.read_table(target, columns=["content_sha256", "config_hash", "status"])
    ok = mine.filter(pc.equal(mine.column("status"), "ok"))
    if not ok.num_rows:
        return 0
    holders = _holders(root, run_id, set(ok.column("config_hash").to_pylist()))
    keys = set(zip(ok.column("content_sha256").to_pylist(), ok.column("config_hash").to_pylist(), strict=True))
    held = {key: holder for key, holder in holders.items() if key in keys}
    if not held:
        return 0
    part = pq.ParquetFile(target, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in part.iter_batches(ROW_GROUP_ROWS):
            writer.write_batch(_demote(conform(batch, schema), held))
    return len(held)


def _holders(root: Path, run_id: str, configs: set[str]) -> dict[tuple[str, str], str]:
    """(content, config) → the other run whose ok row wins: merged by any run, or staged by an earlier one."""
    holders: dict[tuple[str, str], str] = {}
    for folder, earlier_only in ((MANIFEST, False), (STAGING, True)):
        if not (root / folder).is_dir():
            continue
        wanted = (pc.field("status") == "ok") & pc.field("config_hash").isin(sorted(c for c in configs if c)) & (
            pc.field("run_id") < run_id if earlier_only else pc.field("run_id") != run_id)
        table = ds.dataset(root / folder, format="parquet", partitioning="hive", schema=_KEYS).to_table(
            columns=["content_sha256", "config_hash", "run_id"], filter=wanted)
        columns = (table.column(name).to_pylist() for name in ("content_sha256", "config_hash", "run_id"))
        for content, config, other in sorted(zip(*columns, strict=True), key=lambda row: row[2] or ""):
            if other:
                holders.setdefault((content, config), other)
    return holders


def _demote(batch: pa.RecordBatch, held: dict[tuple[str, str], str]) -> pa.RecordBatch:
    status = batch.column("status").to_pylist()
    keys = zip(batch.column("content_sha256").to_pylist(), batch.column("config_hash").to_pylist(), strict=True)
    done_in = batch.column("done_in_run").to_pylist()
    errors = batch.column("error").to_pylist()
    for n in np.flatnonzero([s == "ok" and key in held for s, key in zip(status, keys, strict=True)]):
        key = (batch.column("content_sha256")[n].as_py(), batch.column("config_hash")[n].as_py())
        status[n], done_in[n] = "skipped", held[key]
        errors[n] = f"transcribed twice: run {held[key]} wrote DIR at the same time and holds the ok row"
    for name, values in (("status", status), ("done_in_run", done_in), ("error", errors)):
        index = batch.schema.get_field_index(name)
        batch = batch.set_column(index, name, pa.array(values, batch.schema.field(index).type))
    return batch
