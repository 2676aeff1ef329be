from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tasks.output.layout import transcript_stem
from tasks.output.manifests import (
    MANIFEST_SCHEMA,
    RunContext,
    finalize_run,
    load_ledger,
    read_manifest,
    unfinished_runs,
    write_part,
)
from tasks.output.transcripts import UnsafePathError, output_path, to_srt, to_vtt, write_transcript_files
from tasks.planning.plan import plan_run
from tasks.records import FileResult, MediaItem, Segment, Transcript, Word

SEGMENTS = (Segment(0.0, 1.5, "Hello there."), Segment(61.25, 3725.007, "A long way in."))


def test_srt_and_vtt_timestamps() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:01:01,250 --> 01:02:05,007\nA long way in.\n"
    )
    assert to_vtt(SEGMENTS).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n")


@pytest.mark.parametrize(
    "key", ["../escape.wav", "/etc/passwd", "a/../../b.wav", "bad\x00name.wav", "new\nline.wav", ""]
)
def test_hostile_keys_never_leave_the_output_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafePathError):
        output_path(tmp_path, key)


def test_transcript_files_are_addressed_by_content_and_config(tmp_path: Path) -> None:
    transcript = Transcript("Hello there.", SEGMENTS[:1], (Word(0.0, 0.5, " Hello", 0.9),), "en")
    sha = "ab" * 32
    stem = transcript_stem("0123456789abcdef", sha)
    assert stem == f"transcripts/0123456789abcdef/ab/{sha}"
    path = write_transcript_files(tmp_path, stem, transcript, {"engine": "fake", "content_sha256": sha})
    assert path == (tmp_path / f"{stem}.json").resolve()
    document = json.loads(path.read_text())
    assert document["text"] == "Hello there." and document["words"][0]["word"] == " Hello"
    assert document["content_sha256"] == sha
    assert (tmp_path / f"{stem}.srt").exists() and (tmp_path / f"{stem}.vtt").exists()
    assert not list(tmp_path.rglob(".tmp-*"))


def result(source: str, sha: str, status: str = "ok") -> FileResult:
    item = MediaItem(source, f"/lib/{source}", 10, 1, sha, 2.0)
    transcript = Transcript("hi", (Segment(0.0, 1.0, "hi"),), language="en") if status == "ok" else None
    return FileResult(item, status, 0, datetime.now(UTC), transcript, None if status == "ok" else "boom", 0.5)  # type: ignore[arg-type]


def test_manifest_is_a_hive_dataset_with_the_contract_columns(tmp_path: Path) -> None:
    ctx = RunContext("20260101T000000Z-aaaa", "fake", "fake", "cfg1", (("device", "cpu"),))
    write_part(tmp_path, ctx.run_id, "part-a", [result("a.wav", "s1"), result("b.wav", "s2", "failed")], ctx)
    assert not (tmp_path / "manifest").exists()  # staged until the run merges
    finalize_run(tmp_path, ctx.run_id)
    table = ds.dataset(tmp_path / "manifest", partitioning="hive").to_table()
    required = ["run_id", "source", "size_bytes", "content_sha256", "duration_s", "status", "error", "language",
                "text", "segments", "engine", "model", "config_hash", "processing_s", "shard_id", "finished_at"]
    assert set(required) <= set(table.column_names)
    assert table.schema.field("segments").type == pa.list_(
        pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])
    )
    rows = {r["source"]: r for r in table.to_pylist()}
    assert rows["a.wav"]["segments"] == [{"start": 0.0, "end": 1.0, "text": "hi"}]
    assert rows["b.wav"]["error"] == "boom"
    assert json.loads(rows["a.wav"]["engine_config"]) == {"device": "cpu"}
    assert str(rows["a.wav"]["run_id"]) == ctx.run_id
    assert not list((tmp_path / "manifest").rglob(".tmp-*"))


def test_ledger_knows_ok_content_per_config_and_this_runs_rows(tmp_path: Path) -> None:
    first = RunContext("r1", "fake", "fake", "cfg1")
    write_part(tmp_path, "r1", "p", [result("a.wav", "s1"), result("b.wav", "s2", "failed")], first)
    assert load_ledger(tmp_path, "cfg1", "r2").done == {"s1": "r1"}  # staged rows count
    finalize_run(tmp_path, "r1")
    ledger = load_ledger(tmp_path, "cfg1", "r2")
    assert ledger.done == {"s1": "r1"} and ledger.seen_this_run == frozenset()
    assert load_ledger(tmp_path, "other-config", "r2").done == {}
    assert load_ledger(tmp_path, "cfg1", "r1").seen_this_run == {"a.wav", "b.wav"}
    # s1 was done under cfg1 only: under another config it is done again, and counted as such
    assert load_ledger(tmp_path, "other-config", "r2").other_configs == {"s1"}
    assert load_ledger(tmp_path, "cfg1", "r2").other_configs == frozenset()
    items = [result("a.wav", "s1").item, result("c.wav", "s3").item]
    plan = plan_run(items, load_ledger(tmp_path, "other-config", "r2"), "r2")
    assert (len(plan.todo), plan.reconfigured) == (2, 1)


def test_merge_keeps_one_row_per_source_preferring_ok(tmp_path: Path) -> None:
    ctx = RunContext("r1", "fake", "fake", "cfg1")
    write_part(tmp_path, "r1", "first", [result("a.wav", "s1", "failed"), result("b.wav", "s2")], ctx)
    write_part(tmp_path, "r1", "second", [result("a.wav", "s1"), result("b.wav", "s2")], ctx)  # a zombie's copy
    assert unfinished_runs(tmp_path) == ["r1"]
    finalize_run(tmp_path, "r1")
    merged = read_manifest(tmp_path, run_id="r1").to_pylist()
    assert sorted((r["source"], r["status"]) for r in merged) == [("a.wav", "ok"), ("b.wav", "ok")]
    assert unfinished_runs(tmp_path) == []
    write_part(tmp_path, "r1", "late", [result("c.wav", "s3")], ctx)  # a straggler after the merge
    assert finalize_run(tmp_path, "r1").rows == 3


def test_empty_manifest_reads_as_an_empty_table(tmp_path: Path) -> None:
    table = read_manifest(tmp_path)
    assert table.num_rows == 0 and set(MANIFEST_SCHEMA.names) <= set(table.column_names)
