"""The streaming merge gives what the old in-memory merge gave, in row groups of bounded size."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.output.manifest_merge
from tasks.output.layout import MANIFEST, STAGING
from tasks.output.manifest_merge import merge_parts
from tasks.output.manifests import (
    MANIFEST_SCHEMA,
    STATUS_RANK,
    RunContext,
    finalize_run,
    read_manifest,
    write_part,
)
from tasks.records import FileResult, MediaItem, Segment, Transcript

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def old_merge(parts: list[pa.Table]) -> list[dict[str, object]]:
    """The merge as it was before it streamed: every row in Python, sorted, the first per source kept."""
    rows = [row for part in parts for row in part.to_pylist()]
    rows.sort(key=lambda r: (r["source"], STATUS_RANK.get(r["status"], 9), r["finished_at"]))
    return [row for n, row in enumerate(rows) if n == 0 or row["source"] != rows[n - 1]["source"]]


def part(rows: list[tuple[str, str, int]], tag: str) -> pa.Table:
    """Rows of (source, status, seconds after T0); `text` says which part and row each came from."""
    return pa.Table.from_pylist(
        [{"source": source, "status": status, "finished_at": T0 + timedelta(seconds=s), "text": f"{tag}/{n}",
          "segments": [{"start": 0.0, "end": 1.0, "text": f"{tag}/{n}"}], "shard_id": n}
         for n, (source, status, s) in enumerate(rows)],
        schema=MANIFEST_SCHEMA,
    )


ROWS = st.lists(st.tuples(st.sampled_from("abcdefghij"), st.sampled_from(["ok", "skipped", "failed", "odd"]),
                          st.integers(0, 3)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(ROWS, max_size=6), row_group_rows=st.integers(1, 7))
def test_streaming_merge_equals_the_in_memory_merge(parts: list[list[tuple[str, str, int]]],
                                                     row_group_rows: int) -> None:
    tables = [part(rows, f"p{n}") for n, rows in enumerate(parts)]
    with tempfile.TemporaryDirectory() as folder:
        inputs = [Path(folder) / f"p{n}.parquet" for n in range(len(tables))]
        for path, table in zip(inputs, tables, strict=True):
            pq.write_table(table, path)
        target = Path(folder) / "merged" / "part-00000.parquet"
        rows = merge_parts(inputs, target, MANIFEST_SCHEMA, tuple(STATUS_RANK), row_group_rows)
        expected = old_merge(tables)
        assert rows == len(expected)
        if expected:
            merged = pq.ParquetFile(target)
            assert merged.read().to_pylist() == expected
            assert all(merged.metadata.row_group(g).num_rows <= row_group_rows
                       for g in range(merged.metadata.num_row_groups))
        else:
            assert not target.exists()
        assert not list(Path(folder).rglob(".tmp-*"))  # no temp or spill file left behind


def result(source: str, status: str = "ok", seconds: int = 0, text: str = "hi") -> FileResult:
    item = MediaItem(source, f"/lib/{source}", 10, 1, f"sha-{source}", 60.0)
    transcript = Transcript(text, (Segment(0.0, 1.0, text),), language="en") if status == "ok" else None
    return FileResult(item, status, 0, T0 + timedelta(seconds=seconds), transcript,  # type: ignore[arg-type]
                      None if status == "ok" else "boom", 0.5)


CTX = RunContext("r1", "fake", "fake", "cfg1")


def manifest_rows(out: Path) -> list[tuple[str, str, str | None]]:
    return [(r["source"], r["status"], r["text"]) for r in read_manifest(out, run_id="r1").to_pylist()]


def test_the_merged_part_is_sorted_and_written_in_bounded_row_groups(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks.output.manifest_merge, "ROW_GROUP_ROWS", 4)
    sources = [f"f{n:02d}.wav" for n in range(11)]
    for batch in range(0, 11, 3):  # shards stage parts whose sources interleave
        write_part(tmp_path, "r1", f"part-{batch}", [result(s) for s in sources[batch:batch + 3][::-1]], CTX)
    merged = finalize_run(tmp_path, "r1")
    assert merged.rows == 11 and merged.written is not None
    metadata = pq.ParquetFile(merged.written).metadata
    assert metadata.num_row_groups == 3
    assert [metadata.row_group(g).num_rows for g in range(3)] == [4, 4, 3]
    assert [r[0] for r in manifest_rows(tmp_path)] == sources
    assert not list(tmp_path.rglob(".tmp-*"))


def test_late_parts_merge_into_the_existing_merged_part(tmp_path: Path) -> None:
    write_part(tmp_path, "r1", "first", [result("a.wav", text="a1"), result("b.wav", "failed", 5)], CTX)
    finalize_run(tmp_path, "r1")
    write_part(tmp_path, "r1", "late", [result("a.wav", "failed", 9), result("b.wav", seconds=7, text="b2"),
                                        result("c.wav", text="c1")], CTX)
    merged = finalize_run(tmp_path, "r1")
    assert merged.rows == 3 and [p.name for p in merged.removed] == ["late.parquet"]
    assert manifest_rows(tmp_path) == [("a.wav", "ok", "a1"), ("b.wav", "ok", "b2"), ("c.wav", "ok", "c1")]


def test_a_merge_rerun_after_a_crash_is_harmless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks.output.manifest_merge, "ROW_GROUP_ROWS", 2)  # so the spill path runs
    write_part(tmp_path, "r1", "first", [result("a.wav", text="a1"), result("b.wav", text="b1")], CTX)
    finalize_run(tmp_path, "r1")
    before = (tmp_path / MANIFEST / "run_id=r1" / "part-00000.parquet").read_bytes()
    write_part(tmp_path, "r1", "second", [result("c.wav", text="c1"), result("a.wav", seconds=-1, text="a0")], CTX)

    def die(*args: object) -> None:
        raise KeyboardInterrupt  # the parent killed between the spill and the merged part

    with monkeypatch.context() as patch:
        patch.setattr(tasks.output.manifest_merge, "_interleave", die)
        with pytest.raises(KeyboardInterrupt):
            finalize_run(tmp_path, "r1")
    assert (tmp_path / MANIFEST / "run_id=r1" / "part-00000.parquet").read_bytes() == before
    assert (tmp_path / STAGING / "run_id=r1" / "second.parquet").exists()
    assert not list(tmp_path.rglob(".tmp-*"))
    staged = tmp_path / STAGING / "run_id=r1" / "second.parquet"
    kept = staged.read_bytes()
    finalize_run(tmp_path, "r1")
    expected = [("a.wav", "ok", "a0"), ("b.wav", "ok", "b1"), ("c.wav", "ok", "c1")]
    assert manifest_rows(tmp_path) == expected
    staged.write_bytes(kept)  # the parent died after the rename, before deleting the staged part
    assert finalize_run(tmp_path, "r1").rows == 3
    assert manifest_rows(tmp_path) == expected and not staged.exists()


def test_parts_written_before_a_column_existed_read_it_as_nulls(tmp_path: Path) -> None:
    old = part([("a.wav", "ok", 0)], "old").drop_columns(["quality_flags", "speech_s", "quality_attempts"])
    folder = tmp_path / STAGING / "run_id=r1"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "old.parquet")
    write_part(tmp_path, "r1", "new", [result("b.wav")], CTX)
    assert finalize_run(tmp_path, "r1").rows == 2
    rows = read_manifest(tmp_path, run_id="r1").to_pylist()
    assert [r["speech_s"] for r in rows] == [None, None] and rows[0]["text"] == "old/0"
