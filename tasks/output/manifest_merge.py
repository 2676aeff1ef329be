"""Merge a run's Parquet parts into one file, one row per source, in memory that does not grow with the run.

A run of 100,000 files is ~250 MB of text and segments, so the rows are never all
held at once. Pass 1 reads only the key columns (source, status, finished_at) of every
part and picks each source's winner: ok, then skipped, then failed, then the earliest,
then the first read (the merged part before the staged ones, which makes a re-merge
keep what it already has). Pass 2 reads the parts one batch at a time, keeps the
winners with `take` (no per-row Python objects), and sorts them by source with an
external merge sort: sorted runs of `row_group_rows` rows are spilled to a hidden file
beside the target, then read back a slice of each run at a time and interleaved by the
order pass 1 already knows. A run that fits in one row group skips the spill. Peak
memory is about two row groups plus the key columns; the output is sorted by source
(so its row-group statistics narrow a lookup) and written as row groups of at most
`row_group_rows` rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from tasks.output.transcripts import atomic_path

ROW_GROUP_ROWS = 10_000  # ~23 MB of 60-second transcripts in memory; see bench/results/manifest_writer_cpu.md
READ_BATCH_ROWS = 1_024
SPILL_PAGE_BYTES = 64 << 10
READ_BUFFER_BYTES = 64 << 10  # stream column chunks a page at a time rather than read whole ones


def merge_parts(inputs: Sequence[Path], target: Path, schema: pa.Schema, status_order: Sequence[str],
                row_group_rows: int | None = None) -> int:
    """Write the winning row of each source in `inputs` to `target`, atomically; the row count.

    Nothing is written when there are no rows; `target` may be one of `inputs`.
    """
    row_group_rows = row_group_rows or ROW_GROUP_ROWS
    winners = _pick_winners(inputs, schema, status_order)
    if not len(winners.file):
        return 0
    with atomic_path(target) as tmp:
        if len(winners.file) <= row_group_rows:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                _write_runs(inputs, schema, winners, writer, row_group_rows)
        else:
            _spill_and_merge(inputs, schema, winners, tmp, row_group_rows)
    return len(winners.file)


class _Winners:
    """Each source's winning row (part index, row in that part) and its place in the sorted output."""

    def __init__(self, file: NDArray[np.int32], row: NDArray[np.int64]) -> None:  # given in output order
        by_part = np.lexsort((row, file))  # so each part's winners are one slice, in reading order
        self.file, self.row, self.place = file[by_part], row[by_part], np.arange(len(file))[by_part]

    def in_file(self, index: int) -> slice:
        return slice(*np.searchsorted(self.file, [index, index + 1]))


def _pick_winners(inputs: Sequence[Path], schema: pa.Schema, status_order: Sequence[str]) -> _Winners:
    keys = []
    for index, path in enumerate(inputs):
        part = pq.ParquetFile(path).read(columns=["source", "status", "finished_at"])
        part = part.cast(pa.schema([schema.field(name) for name in part.column_names]))
        status_rank = pc.fill_null(pc.index_in(part.column("status"), pa.array(status_order)), len(status_order))
        keys.append(pa.table({"source": part.column("source"), "status": status_rank,
                              "finished_at": part.column("finished_at"),
                              "file": pa.array(np.full(part.num_rows, index, np.int32)),
                              "row": pa.array(np.arange(part.num_rows, dtype=np.int64))}))
    if not keys or not sum(k.num_rows for k in keys):
        return _Winners(np.empty(0, np.int32), np.empty(0, np.int64))
    table = pa.concat_tables(keys)
    table = table.take(pc.sort_indices(table, [(name, "ascending") for name in table.column_names]))
    source = table.column("source").combine_chunks()
    first = np.ones(len(source), bool)
    first[1:] = pc.fill_null(pc.not_equal(source[1:], source[:-1]), True).to_numpy(zero_copy_only=False)
    return _Winners(table.column("file").to_numpy()[first], table.column("row").to_numpy()[first])


def _winning_batches(inputs: Sequence[Path], schema: pa.Schema,
                     winners: _Winners) -> Iterator[tuple[pa.RecordBatch, NDArray[np.int64]]]:
    """Each part's winning rows, a batch at a time, with their places in the sorted output."""
    for index, path in enumerate(inputs):
        mine = winners.in_file(index)
        rows, places = winners.row[mine], winners.place[mine]
        if not len(rows):
            continue  # a part that lost every row is not read
        start = 0
        for batch in pq.ParquetFile(path).iter_batches(READ_BATCH_ROWS):  # a row group at most: bounded
            lo, hi = np.searchsorted(rows, [start, start + batch.num_rows])
            if hi > lo:
                yield conform(batch, schema).take(pa.array(rows[lo:hi] - start)), places[lo:hi]
            start += batch.num_rows


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Parts written before a column existed read it as nulls."""
    columns = [batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(len(batch), f.type)
               for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _write_runs(inputs: Sequence[Path], schema: pa.Schema, winners: _Winners, writer: pq.ParquetWriter,
                row_group_rows: int) -> NDArray[np.int64]:
    """Write the winners as row groups each sorted by source; each winner's row group, by output place."""
    run_of = np.empty(len(winners.place), np.int64)
    held: list[pa.RecordBatch] = []
    held_places: list[NDArray[np.int64]] = []
    runs = 0

    def flush() -> None:
        nonlocal runs
        places = np.concatenate(held_places)
        order = np.argsort(places)
        writer.write_table(pa.Table.from_batches(held, schema).take(pa.array(order)), row_group_size=len(order))
        run_of[places] = runs
        runs += 1
        held.clear()
        held_places.clear()

    for batch, places in _winning_batches(inputs, schema, winners):
        held.append(batch)
        held_places.append(places)
        if sum(len(r) for r in held_places) >= row_group_rows:
            flush()
    if held:
        flush()
    return run_of


def _spill_and_merge(inputs: Sequence[Path], schema: pa.Schema, winners: _Winners, target: Path,
                     row_group_rows: int) -> None:
    fd, name = tempfile.mkstemp(prefix=".tmp-spill-", dir=target.parent)
    os.close(fd)
    spill = Path(name)
    try:
        # Read back once, by one reader per run at a time: cheap to decode, no dictionaries, and small
        # pages, so each reader holds ~2 MB rather than a 1 MB page and dictionary per text column.
        with pq.ParquetWriter(spill, schema, compression="lz4", use_dictionary=False,
                              data_page_size=SPILL_PAGE_BYTES) as writer:
            run_of = _write_runs(inputs, schema, winners, writer, row_group_rows)
        runs = pq.ParquetFile(spill).num_row_groups
        cursors = [_RunCursor(spill, n, max(64, row_group_rows // runs)) for n in range(runs)]
        with pq.ParquetWriter(target, schema, compression="zstd") as writer:
            for start in range(0, len(run_of), row_group_rows):
                writer.write_table(_interleave(cursors, run_of[start:start + row_group_rows]),
                                   row_group_size=row_group_rows)
    finally:
        spill.unlink(missing_ok=True)


def _interleave(cursors: list[_RunCursor], run_of: NDArray[np.int64]) -> pa.Table:
    """The next len(run_of) rows of the output: the next few of each sorted run, put in output order."""
    by_run = np.argsort(run_of, kind="stable")  # output places grouped by run, each group ascending
    counts = np.bincount(run_of, minlength=len(cursors))
    taken = pa.concat_tables([cursors[n].take(int(c)) for n, c in enumerate(counts) if c])
    place = np.empty(len(run_of), np.int64)
    place[by_run] = np.arange(len(run_of))
    return taken.take(pa.array(place))


class _RunCursor:
    """Reads one sorted run of the spill file front to back, a batch at a time."""

    def __init__(self, spill: Path, row_group: int, batch_rows: int) -> None:
        runs = pq.ParquetFile(spill, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)  # one reader each
        self._batches = runs.iter_batches(batch_rows, row_groups=[row_group])
        self._held = runs.schema_arrow.empty_table()

    def take(self, rows: int) -> pa.Table:
        pending = [self._held]
        while sum(t.num_rows for t in pending) < rows:
            pending.append(pa.Table.from_batches([next(self._batches)]))
        held = pa.concat_tables(pending)
        self._held = held.slice(rows)
        return held.slice(0, rows)
