"""The incremental scan (unchanged path + size + mtime reuse the manifest) and the WAV header fast path."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tasks.media.audio import WAV_HEADER_BYTES, MediaError, probe_container, probe_duration, wav_duration
from tasks.media.local import LocalSource
from tasks.media.scan import Known, previous_scan, scan
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
    """New bytes, same size, same mtime: what the incremental scan cannot see."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_unchanged_files_are_not_opened_and_keep_their_hash(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = scan(LocalSource(library))
    assert (first.reused, first.inspected) == (0, 6)
    remember(tmp_path / "out", first.items)
    rewrite_in_place(library / "meetings" / "standup.wav")
    opened: list[str] = []
    monkeypatch.setattr("tasks.media.scan.open", lambda *a, **k: opened.append(a[0]), raising=False)
    second = scan(LocalSource(library), previous_scan(tmp_path / "out"))
    assert (second.reused, second.inspected, opened) == (6, 0, [])
    assert second.items == first.items  # the documented trade-off: same size and mtime, old hash kept


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
