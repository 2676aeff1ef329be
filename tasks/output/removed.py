"""Files gone from SOURCE since they were last seen: one `removed` row each, once.

A source whose latest row (in any run, merged or staged) is not `removed`, and that this
run's scan did not find, gets a `removed` row: its last known size, hash and duration,
`done_in_run` = the run that last saw it, and a note in `error`. Once marked it is not
marked again; if it comes back it is an ordinary file again. Only four narrow columns of
the manifest are read, the same order of cost as the incremental scan's lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tasks.records import FileResult, MediaItem

Reader = Callable[..., pa.Table]  # read_manifest / read_staging
_EPOCH = datetime.min.replace(tzinfo=UTC)
_COLUMNS = ["source", "status", "finished_at", "run_id", "size_bytes", "mtime_ns", "content_sha256", "duration_s"]


def removed_since(root: Path, readers: Sequence[Reader], present: set[str], shard_id: int) -> list[FileResult]:
    """`removed` rows for sources known to DIR that are not in `present` and not marked removed already."""
    tables = [read(root, ["source", "status", "finished_at"]) for read in readers]
    known = pa.concat_tables(tables) if tables else None
    if known is None or not known.num_rows:
        return []
    gone = pc.invert(pc.is_in(known.column("source"), pa.array(sorted(present), pa.string())))
    known = known.filter(gone)
    if not known.num_rows:
        return []
    rows = zip(*(known.column(c).to_pylist() for c in ("source", "status", "finished_at")), strict=True)
    latest = {source: status for source, status, _ in sorted(rows, key=lambda row: row[2] or _EPOCH)}
    wanted = sorted(source for source, status in latest.items() if status != "removed")
    return _rows(root, readers, wanted, shard_id) if wanted else []


def _rows(root: Path, readers: Sequence[Reader], sources: list[str], shard_id: int) -> list[FileResult]:
    where = pc.field("source").isin(sources)
    rows = [row for read in readers for row in read(root, _COLUMNS, where=where).to_pylist()]
    last = {row["source"]: row for row in sorted(rows, key=lambda r: r["finished_at"] or _EPOCH)}  # latest wins
    now = datetime.now(UTC)
    return [
        FileResult(MediaItem(source, "", int(row["size_bytes"] or 0), int(row["mtime_ns"] or 0),
                             row["content_sha256"], row["duration_s"]),
                   "removed", shard_id, now, done_in_run=str(row["run_id"]),
                   error=f"no longer in SOURCE (last seen in run {row['run_id']})")
        for source, row in sorted(last.items())
    ]
