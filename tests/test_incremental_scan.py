"""The incremental scan (unchanged path + size + mtime + inode and ctime reuse the manifest) and the WAV
header fast path."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tasks.media.audio import WAV_HEADER_BYTES, MediaError, probe_container, probe_duration, wav_duration
from tasks.media.local import LocalSource
from tasks.media.scan import Known, previous_scan, scan, unchanged
from tasks.media.sources import SourceFile
from tasks.output.manifests import RunContext, write_part
from tasks.records import FileResult, MediaItem
from tests.media_factory import build_odd_valid, speech, write_audio


@pytest.fixture
def library(tmp_path: Path, example_library: Path) -> Path:
    return Path(shutil.copytree(example_library, tmp_path / "library"))


def remember(out: Path, items: list[MediaItem], run_id: str = "run-1", at: datetime | None = None) -> None:
    """Stage the items as one run's rows, as the planner does."""
    results = [FileResult(i, "ok" if i.ok else "failed", 0, at or datetime.now(UTC), error=i.error) for i in items]
    write_part(out, run_id, "part", results, RunContext(run_id, "fake", "fake", "cfg"))


def rewrite_in_place(path: Path) -> None:
    """New bytes, same size, same mtime: only the ctime (and git's index) can tell."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file whose content the scan reads: `open_regular` is the one way it opens a local file."""
    from tasks.media import scan as scan_module

    opened: list[str] = []
    real = scan_module.open_regular

    def spy(path: str | Path) -> object:
        opened.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(scan_module, "open_regular", spy)
    return opened


def test_unchanged_files_are_not_opened_and_keep_their_hash(library: Path, tmp_path: Path, reads: list[str]) -> None:
    first = scan(LocalSource(library))
    assert (first.reused, first.inspected) == (0, 6) and len(reads) == 6  # the spy sees every first read
    remember(tmp_path / "out", first.items)
    reads.clear()
    second = scan(LocalSource(library), previous_scan(tmp_path / "out"))
    assert (second.reused, second.inspected, reads) == (6, 0, [])
    assert second.items == first.items


def test_bytes_rewritten_with_the_old_size_and_mtime_are_seen_by_their_ctime(
    library: Path, tmp_path: Path, reads: list[str]
) -> None:
    first = {i.source: i for i in scan(LocalSource(library)).items}
    remember(tmp_path / "out", list(first.values()))
    reads.clear()
    rewrite_in_place(library / "meetings" / "standup.wav")
    second = scan(LocalSource(library), previous_scan(tmp_path / "out"))
    assert (second.reused, second.inspected, reads) == (5, 1, ["standup.wav"])
    items = {i.source: i for i in second.items}
    assert items["meetings/standup.wav"].content_sha256 != first["meetings/standup.wav"].content_sha256
    assert items["meetings/standup.wav"].mtime_ns == first["meetings/standup.wav"].mtime_ns


def test_two_files_swapped_keep_size_and_mtime_but_each_gets_its_own_hash(tmp_path: Path, reads: list[str]) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name, gain in (("a.wav", 0.5), ("b.wav", 0.25)):
        write_audio(library / name, speech() * gain, 16_000)
        os.utime(library / name, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))
    first = {i.source: i for i in scan(LocalSource(library)).items}
    assert first["a.wav"].size_bytes == first["b.wav"].size_bytes and first["a.wav"].mtime_ns == first["b.wav"].mtime_ns
    remember(tmp_path / "out", list(first.values()))
    (library / "a.wav").rename(library / "t.wav")  # mv A t; mv B A; mv t B
    (library / "b.wav").rename(library / "a.wav")
    (library / "t.wav").rename(library / "b.wav")
    reads.clear()
    second = {i.source: i for i in scan(LocalSource(library), previous_scan(tmp_path / "out")).items}
    assert sorted(reads) == ["a.wav", "b.wav"]
    assert second["a.wav"].content_sha256 == first["b.wav"].content_sha256
    assert second["b.wav"].content_sha256 == first["a.wav"].content_sha256


def test_rows_from_before_the_change_key_are_hashed_once_then_reused(
    library: Path, tmp_path: Path, reads: list[str]
) -> None:
    import pyarrow.parquet as pq

    first = scan(LocalSource(library))
    remember(tmp_path / "out", first.items)
    for part in (tmp_path / "out").rglob("*.parquet"):  # a manifest written by an older release
        pq.write_table(pq.read_table(part).drop_columns(["change_key"]), part)
    assert all(known.change_key is None for known in previous_scan(tmp_path / "out").values())
    reads.clear()
    again = scan(LocalSource(library), previous_scan(tmp_path / "out"))
    assert (again.reused, again.inspected, len(reads)) == (0, 6, 6)
    assert [i.content_sha256 for i in again.items] == [i.content_sha256 for i in first.items]
    remember(tmp_path / "out", again.items, run_id="run-2")
    assert scan(LocalSource(library), previous_scan(tmp_path / "out")).reused == 6


@pytest.mark.parametrize("change", ["mtime", "size", "rename"])
def test_a_changed_or_renamed_file_is_hashed_again(library: Path, tmp_path: Path, change: str) -> None:
    first = {i.source: i for i in scan(LocalSource(library)).items}
    remember(tmp_path / "out", list(first.values()))
    path = library / "meetings" / "standup.wav"
    if change == "mtime":
        rewrite_in_place(path)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    elif change == "size":
        write_audio(path, speech()[:-1600], 16_000)  # 0.1 s shorter
        os.utime(path, ns=(path.stat().st_atime_ns, first["meetings/standup.wav"].mtime_ns))
    else:
        path = path.rename(path.with_name("renamed.wav"))
    second = scan(LocalSource(library), previous_scan(tmp_path / "out"))
    items = {i.source: i for i in second.items}
    assert (second.reused, second.inspected) == (5, 1)
    changed = items[path.relative_to(library).as_posix()]
    assert changed.ok
    if change != "rename":  # a renamed file has the same bytes, but was read again all the same
        assert changed.content_sha256 != first["meetings/standup.wav"].content_sha256
    if change == "size":
        assert changed.duration_s == pytest.approx(first["meetings/standup.wav"].duration_s - 0.1)


def test_a_file_that_failed_before_is_looked_at_again(tmp_path: Path, example_library: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    cut = library / "cut.wav"
    whole = (example_library / "meetings" / "standup.wav").read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    first = scan(LocalSource(library))
    assert "truncated" in (first.items[0].error or "") and first.items[0].content_sha256
    remember(tmp_path / "out", first.items)
    assert previous_scan(tmp_path / "out") == {}  # a row without a duration is no scan to reuse
    assert scan(LocalSource(library), previous_scan(tmp_path / "out")).inspected == 1


def test_the_latest_row_of_a_source_wins(tmp_path: Path) -> None:
    out, now = tmp_path / "out", datetime.now(UTC)
    old = MediaItem("a.wav", "/a.wav", 10, 1, "old", 1.0)
    new = MediaItem("a.wav", "/a.wav", 20, 2, "new", 2.0)
    remember(out, [new], "run-b", at=now)
    remember(out, [old], "run-a", at=now - timedelta(days=1))
    assert previous_scan(out) == {"a.wav": Known(20, 2, "new", 2.0)}
    assert previous_scan(tmp_path / "no-output-yet") == {}


def test_wav_header_durations_match_ffmpeg(tmp_path: Path, example_library: Path) -> None:
    build_odd_valid(tmp_path / "odd")  # 8 channels (WAVE_FORMAT_EXTENSIBLE), 8 kHz, 24 kHz
    for codec, layout in [("pcm_u8", "mono"), ("pcm_s24le", "stereo"), ("pcm_f32le", "5.1"), ("pcm_f64le", "mono")]:
        write_pcm(tmp_path / f"{codec}.wav", codec, layout)
    paths = [*tmp_path.rglob("*.wav"), tmp_path / "odd" / "no_extension_but_wav", *example_library.rglob("*.wav")]
    assert len(paths) >= 10
    for path in paths:
        data = path.read_bytes()
        assert wav_duration(data[:WAV_HEADER_BYTES], len(data)) == pytest.approx(probe_container(path), abs=1e-9), path


def test_wav_formats_ffmpeg_must_count_are_left_to_it(tmp_path: Path) -> None:
    mulaw = write_pcm(tmp_path / "mulaw.wav", "pcm_mulaw", "mono")
    data = mulaw.read_bytes()
    assert wav_duration(data[:WAV_HEADER_BYTES], len(data)) is None
    assert probe_duration(mulaw) == pytest.approx(1.37, abs=0.01)
    assert wav_duration(b"fLaC" + bytes(60), 64) is None
    with pytest.raises(MediaError, match="truncated"):
        wav_duration(data[:WAV_HEADER_BYTES], len(data) // 2)


def write_pcm(path: Path, codec: str, layout: str, rate: int = 22_050) -> Path:
    noise = np.random.default_rng(0).normal(0, 0.1, int(rate * 1.37)).clip(-1, 1).astype(np.float32)
    return write_audio(path, noise, rate, codec=codec, layout=layout)


def test_s3_objects_swapped_are_seen_by_their_etag(s3: object, bucket: str, moto_url: str, tmp_path: Path) -> None:
    from tasks.media.library import open_source
    from tasks.media.s3 import S3Access

    for name, gain in (("a.wav", 0.5), ("b.wav", 0.25)):
        write_audio(tmp_path / name, speech() * gain, 16_000)
        s3.put_object(Bucket=bucket, Key=f"lib/{name}", Body=(tmp_path / name).read_bytes())  # type: ignore[attr-defined]

    def library() -> dict[str, MediaItem]:
        source = open_source(f"s3://{bucket}/lib", access=S3Access(endpoint_url=moto_url))
        return {i.source: i for i in scan(source, previous_scan(tmp_path / "out")).items}

    first = library()
    etags = {name: s3.head_object(Bucket=bucket, Key=f"lib/{name}")["ETag"] for name in first}  # type: ignore[attr-defined]
    assert {name: item.change_key for name, item in first.items()} == etags
    remember(tmp_path / "out", list(first.values()))
    known = previous_scan(tmp_path / "out")["a.wav"]
    assert known.change_key == etags["a.wav"]
    same_but_etag = SourceFile("a.wav", "lib/a.wav", known.size_bytes, known.mtime_ns, change_key=etags["b.wav"])
    assert not unchanged(same_but_etag, known)  # S3 LastModified has 1 s steps: the ETag decides
    for src, dst in (("a.wav", "t.wav"), ("b.wav", "a.wav"), ("t.wav", "b.wav")):
        s3.copy_object(Bucket=bucket, Key=f"lib/{dst}", CopySource={"Bucket": bucket, "Key": f"lib/{src}"})  # type: ignore[attr-defined]
    s3.delete_object(Bucket=bucket, Key="lib/t.wav")  # type: ignore[attr-defined]
    second = library()
    assert second["a.wav"].content_sha256 == first["b.wav"].content_sha256
    assert second["b.wav"].content_sha256 == first["a.wav"].content_sha256
