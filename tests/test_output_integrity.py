"""DIR holds up: transcripts always match their rows, gone files are recorded, corrupt parts are moved
aside, killed runs get a runs row, overlapping runs keep one ok row per key, and links are escaped.

Flows run on the real Prefect test API with the fake engine (the model does not matter here).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from flows.transcribe_library import transcribe_library
from tasks.output.links import check_base_url, transcript_url
from tasks.output.manifests import RunContext, finalize_run, read_manifest, write_part
from tasks.output.reporting import run_report
from tasks.records import FileResult, MediaItem
from tests.media_factory import speech, write_audio


def manifest(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "manifest", partitioning="hive").to_table().to_pandas()


def runs(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "runs").to_table().to_pandas().set_index("run_id")


def assert_every_row_points_at_its_own_content(out: Path) -> None:
    rows = manifest(out).query("status in ('ok', 'skipped')")
    assert len(rows) and rows["transcript_path"].notna().all()
    for path, sha in zip(rows["transcript_path"], rows["content_sha256"], strict=True):
        assert json.loads((out / path).read_text())["content_sha256"] == sha, path


def clip(path: Path, variant: int) -> Path:
    return write_audio(path, speech() * (0.3 + 0.1 * variant), 16_000)


@pytest.mark.slow
def test_an_edit_a_b_a_and_a_backslash_pair_keep_every_transcript_matching_its_row(
    prefect_api: str, tmp_path: Path
) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    clip(library / "a" / "b.wav", 1)
    clip(library / "a\\b.wav", 2)  # one file whose name holds a backslash, beside the folder a/
    clip(library / "edited.wav", 3)  # A
    first = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (first.files_ok, first.files_total) == (3, 3)
    rows = manifest(out).set_index("source")
    assert rows.loc["a/b.wav", "transcript_path"] != rows.loc["a\\b.wav", "transcript_path"]
    a_path = rows.loc["edited.wav", "transcript_path"]
    a_text = json.loads((out / a_path).read_text())["text"]

    clip(library / "edited.wav", 4)  # B
    second = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (second.files_ok, second.files_skipped) == (1, 2)
    clip(library / "edited.wav", 3)  # A again: already done in the first run
    third = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (third.files_ok, third.files_skipped) == (0, 3)

    rows = manifest(out)
    edited = rows.query("source == 'edited.wav'").set_index("run_id")
    assert edited.loc[third.run_id, "done_in_run"] == first.run_id
    assert edited.loc[third.run_id, "transcript_path"] == a_path == edited.loc[first.run_id, "transcript_path"]
    assert edited.loc[second.run_id, "transcript_path"] != a_path
    assert json.loads((out / a_path).read_text())["text"] == a_text, "nothing later rewrote A's transcript"
    assert_every_row_points_at_its_own_content(out)


@pytest.mark.slow
def test_files_gone_since_the_last_run_get_one_removed_row_and_are_counted(
    prefect_api: str, tmp_path: Path
) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    for n in range(3):
        clip(library / f"f{n}.wav", n)
    first = transcribe_library(source=str(library), out=str(out), engine="fake")
    (library / "f1.wav").unlink()
    second = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (second.files_removed, second.files_total, second.files_skipped) == (1, 2, 2)
    gone = manifest(out).query(f"run_id == '{second.run_id}' and status == 'removed'")
    assert list(gone["source"]) == ["f1.wav"] and list(gone["done_in_run"]) == [first.run_id]
    assert f"last seen in run {first.run_id}" in gone["error"].iloc[0]
    assert runs(out).loc[second.run_id, "files_removed"] == 1
    third = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert third.files_removed == 0, "marked once, not on every run"
    clip(library / "f1.wav", 1)  # it comes back: an ordinary file again, already done
    fourth = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (fourth.files_skipped, fourth.files_removed) == (3, 0)


@pytest.mark.slow
def test_a_corrupt_part_is_quarantined_and_its_files_redone(prefect_api: str, tmp_path: Path) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    for n in range(2):
        clip(library / f"f{n}.wav", n)
    first = transcribe_library(source=str(library), out=str(out), engine="fake")
    part = out / "manifest" / f"run_id={first.run_id}" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # a torn write
    staged = out / "_staging" / "run_id=dead-run" / "shard-00000-batch-00000.parquet"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"PAR1 not really parquet")
    second = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (second.files_ok, second.quarantined) == (2, 2)  # the corrupt part's files are redone
    moved = sorted(p.relative_to(out).as_posix() for p in (out / "_quarantine").rglob("*.parquet"))
    assert moved == [f"_quarantine/{second.run_id}/_staging/run_id=dead-run/shard-00000-batch-00000.parquet",
                     f"_quarantine/{second.run_id}/manifest/run_id={first.run_id}/part-00000.parquet"]
    report = run_report(second, [f"corrupt part {m}" for m in moved])
    assert report.count("**warning**") == 2 and "_staging/run_id=dead-run" in report
    assert set(manifest(out)["run_id"].astype(str)) == {second.run_id}


@pytest.mark.slow
def test_a_killed_run_gets_its_runs_row_from_the_next_run_marked_interrupted(
    prefect_api: str, tmp_path: Path
) -> None:
    library, out = tmp_path / "library", tmp_path / "out"
    for n in range(2):
        clip(library / f"f{n}.wav", n)
    first = transcribe_library(source=str(library), out=str(out), engine="fake")
    (out / "runs" / f"{first.run_id}.parquet").unlink()  # as if it died after its merge
    killed = "20260101T000000Z-deadbeef"
    item = MediaItem("f9.wav", "", 1, 1, "9" * 64, 2.0)
    ctx = RunContext(killed, "fake", "fake", "cfg")
    write_part(out, killed, "shard-00000-batch-00000", [FileResult(item, "failed", 0, datetime.now(UTC),
                                                                     error="boom")], ctx)
    second = transcribe_library(source=str(library), out=str(out), engine="fake")
    table = runs(out)
    assert not table.loc[second.run_id, "interrupted"]
    for run_id in (first.run_id, killed):
        assert table.loc[run_id, "interrupted"] and table.loc[run_id, "hardware"] == "unknown"
    assert table.loc[first.run_id, "files_ok"] == 2 and table.loc[killed, "files_failed"] == 1
    assert table.loc[killed, "started_at"] == pd.Timestamp("2026-01-01T00:00:00Z")
    third = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert len(runs(out)) == 4 and not runs(out).loc[third.run_id, "interrupted"], "recorded once"


def test_overlapping_runs_keep_one_ok_row_per_key_whichever_merges_first(tmp_path: Path) -> None:
    def ok(run_id: str, source: str, sha: str) -> None:
        ctx = RunContext(run_id, "fake", "fake", "cfg")
        write_part(tmp_path, run_id, f"part-{source}", [FileResult(MediaItem(source, "", 1, 1, sha, 1.0), "ok", 0,
                                                                    datetime.now(UTC))], ctx)

    for early_first in (True, False):
        shutil.rmtree(tmp_path, ignore_errors=True)
        ok("r1-early", "x.wav", "a" * 64)
        ok("r2-late", "x.wav", "a" * 64)
        ok("r2-late", "y.wav", "b" * 64)
        for run_id in (("r1-early", "r2-late") if early_first else ("r2-late", "r1-early")):
            finalize_run(tmp_path, run_id)
        rows = read_manifest(tmp_path).to_pandas().set_index(["run_id", "source"])
        assert rows.loc[("r1-early", "x.wav"), "status"] == "ok"
        late = rows.loc[("r2-late", "x.wav")]
        assert late["status"] == "skipped" and late["done_in_run"] == "r1-early"
        assert "transcribed twice" in late["error"] and rows.loc[("r2-late", "y.wav"), "status"] == "ok"


@pytest.mark.parametrize("base_url", [
    "https://user:pass@h.example", "https://h.example/\"onmouseover=x", "https://h.example/<script>",
    "https://h.example/a b", "https://h.example/a\nb", "javascript:alert(1)", "ftp://h.example",
    "https://h.example/?q=1", "https://h.example/'x", "https://h.example\\evil", "https:///nohost",
])
def test_base_urls_with_credentials_quotes_spaces_or_markup_are_refused_in_one_line(base_url: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_base_url(base_url)
    assert str(refused.value).startswith("base_url: ") and "\n" not in str(refused.value)


def test_every_segment_of_a_transcript_url_is_percent_encoded() -> None:
    assert check_base_url("https://media.example/archive/") == "https://media.example/archive"
    url = transcript_url("https://media.example", "transcripts/c#f/ab/a b?&<\"x'>.json")
    assert url == "https://media.example/outputs/transcripts/c%23f/ab/a%20b%3F%26%3C%22x%27%3E.json"


def test_user_text_in_the_run_report_is_inert() -> None:
    import pyarrow as pa

    from tasks.output.metrics import summarise_run
    from tasks.planning.pricing import BUILTIN_PROFILES
    from tasks.records import StageTimes

    hostile = "/models/<script>alert(1)</script>\n# [link](http://x) `tick` **bold**"
    now = datetime.now(UTC)
    metrics = summarise_run(run_id="r", started_at=now, finished_at=now, times=StageTimes(), held=None,
                            rows=pa.table({"status": ["ok"], "duration_s": [1.0]}), pricing=BUILTIN_PROFILES["cpu"],
                            engine="fake", model=hostile, config_hash="cfg")
    report = run_report(metrics, [hostile])
    for line in report.splitlines():
        if "script" in line:
            assert "`` /models/<script>alert(1)</script> # [link](http://x) `tick` **bold** ``" in line
    assert "\n# [link]" not in report


@pytest.mark.slow
def test_an_s3_dir_quarantines_a_corrupt_part_in_the_bucket_and_releases_its_lease(
    s3: object, bucket: str, moto_url: str, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.settings import worker_settings

    monkeypatch.setenv("TRANSCRIBE_ALL_S3_ENDPOINT_URL", moto_url)
    monkeypatch.delenv("TRANSCRIBE_ALL_AWS_CREDENTIALS_BLOCK", raising=False)
    worker_settings.cache_clear()
    try:
        library, out = tmp_path / "library", f"s3://{bucket}/out"
        for n in range(2):
            clip(library / f"f{n}.wav", n)
        first = transcribe_library(source=str(library), out=out, engine="fake")
        part = f"out/manifest/run_id={first.run_id}/part-00000.parquet"
        s3.put_object(Bucket=bucket, Key=part, Body=b"PAR1 torn upload")  # type: ignore[attr-defined]
        second = transcribe_library(source=str(library), out=out, engine="fake")
        assert (second.files_ok, second.quarantined) == (2, 1)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
        keys = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
        assert part not in keys and f"out/_quarantine/{second.run_id}/{part.removeprefix('out/')}" in keys
        assert "out/_lease.json" not in keys
        assert {f"out/runs/{first.run_id}.parquet", f"out/runs/{second.run_id}.parquet"} <= keys
    finally:
        worker_settings.cache_clear()
