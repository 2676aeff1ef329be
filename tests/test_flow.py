"""The transcribe-library flow on a real Prefect API, end to end on one machine."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from flows.transcribe_library import transcribe_library
from flows.transcribe_shard import transcribe_shard
from tasks.engines import EngineConfig
from tasks.output.manifests import finalize_run
from tasks.output.metrics import ShardSummary
from tasks.output.shard_plans import read_shard_plan, write_shard_plan
from tasks.records import MediaItem, Shard, ShardRef
from tasks.run_config import RunConfig, RunRef
from tests.media_factory import build_bad, build_odd_valid, speech, write_audio

pytestmark = pytest.mark.slow


def manifest(out: Path) -> pd.DataFrame:
    return ds.dataset(out / "manifest", partitioning="hive").to_table().to_pandas()


def ok_rows_are_unique(out: Path) -> bool:
    ok = manifest(out).query("status == 'ok'")
    return not ok.duplicated(["content_sha256", "config_hash"]).any()


@pytest.fixture
def library(tmp_path: Path, example_library: Path) -> Path:
    return Path(shutil.copytree(example_library, tmp_path / "library"))


def test_run_writes_manifest_transcripts_and_metrics_then_resumes(
    prefect_api: str, library: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = transcribe_library(source=str(library), out=str(out), shards=2)
    assert (first.files_ok, first.files_failed, first.files_skipped) == (6, 0, 0)
    assert first.audio_s == pytest.approx(24.4, abs=0.5) and first.rtfx > 0
    rows = manifest(out)
    assert sorted(rows["source"]) == sorted(p.relative_to(library).as_posix() for p in library.rglob("*.*"))
    assert set(rows["shard_id"]) == {0, 1}
    for path, sha in zip(rows["transcript_path"], rows["content_sha256"], strict=True):
        assert path.startswith("transcripts/") and path.endswith(f"/{sha[:2]}/{sha}.json")
        for suffix in (".json", ".srt", ".vtt"):
            assert (out / path).with_suffix(suffix).is_file()
    runs = ds.dataset(out / "runs").to_table().to_pandas()
    assert list(runs["run_id"]) == [first.run_id] and runs.loc[0, "files_ok"] == 6

    second = transcribe_library(source=str(library), out=str(out), shards=2)
    assert (second.files_ok, second.files_skipped, second.audio_s) == (0, 6, 0.0)
    skipped = manifest(out).query(f"run_id == '{second.run_id}'")
    assert set(skipped["status"]) == {"skipped"} and set(skipped["done_in_run"]) == {first.run_id}

    write_audio(library / "meetings" / "standup.wav", speech(22_050), 22_050)  # the file changes
    third = transcribe_library(source=str(library), out=str(out))
    assert (third.files_ok, third.files_skipped, third.files_reconfigured) == (1, 5, 0)  # new content: not counted

    fourth = transcribe_library(source=str(library), out=str(out), beam_size=2)  # the config changes
    assert fourth.files_ok == 6 and fourth.config_hash != first.config_hash
    assert fourth.files_reconfigured == 6  # the summary says why a no-change library was done again
    assert ok_rows_are_unique(out)
    assert len(ds.dataset(out / "runs").to_table()) == 4


def test_a_rerun_on_an_unchanged_library_reads_no_file(
    prefect_api: str, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = transcribe_library(source=str(library), out=str(out), engine="fake")
    opened: list[str] = []
    monkeypatch.setattr("tasks.media.scan._inspect_local", lambda listed: opened.append(listed.source))
    second = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (second.files_ok, second.files_skipped, opened) == (0, 6, [])  # hashes from the manifest
    rows = manifest(out).set_index("run_id").loc[second.run_id]
    assert set(rows["done_in_run"]) == {first.run_id} and rows["content_sha256"].notna().all()


def test_bad_inputs_fail_alone_and_odd_files_succeed(prefect_api: str, tmp_path: Path) -> None:
    root = tmp_path / "library"
    odd = build_odd_valid(root / "odd")
    bad = build_bad(root / "bad")
    out = tmp_path / "out"
    metrics = transcribe_library(source=str(root), out=str(out), shards=3)
    rows = manifest(out).set_index("source")
    assert Counter(rows.index) == Counter({f"odd/{k}": 1 for k in odd} | {f"bad/{k}": 1 for k in bad})
    for name, fragment in bad.items():
        assert rows.loc[f"bad/{name}", "status"] == "failed"
        assert fragment in rows.loc[f"bad/{name}", "error"]
    for name in odd:
        assert rows.loc[f"odd/{name}", "status"] == "ok", rows.loc[f"odd/{name}", "error"]
        assert "quick" in rows.loc[f"odd/{name}", "text"].lower()
    assert (metrics.files_ok, metrics.files_failed) == (len(odd), len(bad))


def test_same_content_twice_is_transcribed_once(prefect_api: str, library: Path, tmp_path: Path) -> None:
    shutil.copy(library / "meetings" / "standup.wav", library / "meetings" / "standup copy.wav")
    out = tmp_path / "out"
    metrics = transcribe_library(source=str(library), out=str(out), engine="fake")
    rows = manifest(out).set_index("source")
    assert (metrics.files_ok, metrics.files_skipped) == (6, 1)
    # the first in sorted order is transcribed, the other points to it
    assert rows.loc["meetings/standup copy.wav", "status"] == "ok"
    assert rows.loc["meetings/standup.wav", "error"] == "same content as meetings/standup copy.wav"
    assert ok_rows_are_unique(out)


def test_a_retried_shard_only_redoes_what_is_missing(prefect_api: str, library: Path, tmp_path: Path) -> None:
    from tasks.media.local import LocalSource
    from tasks.media.scan import scan_library

    out = tmp_path / "out"
    items: list[MediaItem] = scan_library(LocalSource(library))
    shard = write_shard_plan(out, "run-x", Shard(0, tuple(items)))
    config = RunConfig(source=str(library), out=str(out), engine="fake")
    run = RunRef("run-x", "cfg", str(library))
    first = transcribe_shard(shard=shard, config=config, run=run)
    assert first.files_ok == 6
    # A worker killed mid-shard: its last batch never reached the manifest.
    parts = sorted((out / "_staging" / "run_id=run-x").glob("*.parquet"))
    assert len(parts) == 1
    parts[0].unlink()
    again = transcribe_shard(shard=shard, config=config, run=run)
    assert again.files_ok == 6
    third = transcribe_shard(shard=shard, config=config, run=run)
    assert third.files_ok == 0  # everything is already in this run: nothing twice
    assert finalize_run(out.resolve(), "run-x").rows == 6
    assert Counter(manifest(out)["source"]) == Counter({i.source: 1 for i in items})
    assert not list((out / "_staging").rglob("*.parquet"))


def test_on_one_machine_a_failed_shard_is_tried_once_more_inline(
    prefect_api: str, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a pool the shards run inside the library flow run (no child flow run, whose ~3 s Prefect
    overhead held the suite's long files level with the peer); a shard that fails is tried once more,
    as the `transcribe-shard` flow's own retry did, and nothing lands twice."""
    import flows.transcribe_library as library_flow

    tries: list[int] = []
    real = library_flow.run_shard

    def blip_once(shard: ShardRef, config: RunConfig, run: RunRef) -> ShardSummary:
        tries.append(shard.shard_id)
        summary = real(shard, config, run)
        if len(tries) == 1:
            raise OSError("a blip after the shard's batches landed")
        return summary

    monkeypatch.setattr(library_flow, "run_shard", blip_once)
    out = tmp_path / "out"
    metrics = transcribe_library(source=str(library), out=str(out), engine="fake", canary="off")
    assert tries == [0, 0] and metrics.files_ok == 6
    assert ok_rows_are_unique(out) and len(manifest(out)) == 6


def test_a_run_whose_parent_died_is_merged_by_the_next(prefect_api: str, library: Path, tmp_path: Path) -> None:
    from tasks.media.local import LocalSource
    from tasks.media.scan import scan_library

    out = tmp_path / "out"
    items = scan_library(LocalSource(library))
    # the dead run staged three files, then its parent vanished before merging
    shard = write_shard_plan(out, "dead-run", Shard(0, tuple(items[:3])))
    transcribe_shard(shard=shard, config=RunConfig(source=str(library), out=str(out), engine="fake"),
                     run=RunRef("dead-run", _fake_config_hash(), str(library)))
    metrics = transcribe_library(source=str(library), out=str(out), engine="fake")
    assert (metrics.files_ok, metrics.files_skipped) == (3, 3)
    rows = manifest(out)
    assert Counter(rows["run_id"].astype(str)) == Counter({"dead-run": 3, metrics.run_id: 6})
    assert ok_rows_are_unique(out)


def _fake_config_hash() -> str:
    from tasks.engines import config_hash, resolve_model

    config = EngineConfig(engine="fake")
    return config_hash(config, resolve_model(config))


def test_a_shard_too_big_for_flow_run_parameters_goes_by_reference(prefect_api: str, tmp_path: Path) -> None:
    """Prefect caps a flow run's parameters at 512 KB: 1,000 files with long paths are over it."""
    import numpy as np

    library, out = tmp_path / "library", tmp_path / "out"
    deep = "/".join(["a-rather-long-folder-name-as-archives-have"] * 4)
    for n in range(1000):
        samples = np.zeros(1600, np.float32)
        samples[0] = (n + 1) / 10_000  # every file's bytes differ, or all but one would be duplicates
        write_audio(library / deep / f"recording-{n:04d}-from-the-archive.wav", samples, 16_000)
    metrics = transcribe_library(source=str(library), out=str(out), engine="fake", canary="off")
    assert (metrics.files_ok, metrics.files_failed) == (1000, 0)
    (plan,) = (out / "_plans").rglob("shard-00000.parquet")
    items = read_shard_plan(plan, 0).items
    assert len(items) == 1000 and len(repr(items)) > 512 * 1024
    assert Counter(manifest(out)["source"]).most_common(1)[0][1] == 1
