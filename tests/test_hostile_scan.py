"""The scan over a hostile library: it finishes in seconds, stays inside SOURCE, and every case gets its row."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.media.audio import AudioDecoder, MediaError, decode_audio, open_regular, probe_duration
from tasks.media.local import LocalSource
from tasks.media.scan import _sha256, scan_library
from tasks.media.sources import decode_name, encode_name
from tasks.records import MediaItem
from tests.hostile_library import NON_UTF8, build_hostile, refuse_locked, unlock, video_with_audio
from tests.media_factory import speech

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, dict[str, str]]]:
    root = tmp_path / "library"
    expected = build_hostile(root, tmp_path / "outside")
    with refuse_locked(monkeypatch):
        yield root, expected
    unlock(root)


def scan_within(source: LocalSource, seconds: float = 30.0) -> dict[str, MediaItem]:
    """Scan in a thread: a hang fails the test instead of stalling the suite."""
    found: list[MediaItem] = []
    worker = threading.Thread(target=lambda: found.extend(scan_library(source)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the scan did not finish in {seconds} s"
    return {item.source: item for item in found}


def test_every_hostile_case_gets_its_row_and_nothing_outside_is_read(hostile: tuple[Path, dict[str, str]]) -> None:
    root, expected = hostile
    source = LocalSource(root)
    items = scan_within(source, seconds=20)
    assert set(items) == set(expected)  # the loop is walked once; nothing from outside, nothing locked
    for name, want in expected.items():
        item = items[name]
        if want == "ok":
            assert item.ok and len(item.content_sha256 or "") == 64, (name, item.error)
        else:
            assert want in (item.error or ""), (name, item.error)
            assert item.content_sha256 is None  # never opened
    assert (source.walked.links_outside, source.walked.folders_unreadable) == (2, 1)
    assert decode_name(items["caf%E9 %FF.wav"].locator) == str(root / NON_UTF8)


def test_links_outside_are_followed_only_when_asked(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    items = scan_within(LocalSource(root, follow_links_outside=True))
    assert items["out_link.wav"].ok and items["out_folder/deep.wav"].ok
    assert "out_folder/" not in items


def test_video_longer_than_its_audio_is_not_truncated_and_the_stream_is_chosen(
    hostile: tuple[Path, dict[str, str]]
) -> None:
    root, _ = hostile
    voice_s = len(speech()) / 16_000
    for name in ("video_longer.mkv", "video_longer.webm"):
        assert probe_duration(root / name) == pytest.approx(voice_s, abs=0.1), name  # not the video's 8 s
        assert len(decode_audio(root / name, probe_duration(root / name))) / 16_000 == pytest.approx(voice_s, abs=0.1)
    two = AudioDecoder(root / "two_streams.mkv", probe_duration(root / "two_streams.mkv"))
    decoded_s = sum(len(c) for c in two.chunks()) / 16_000  # the first stream: half as long as the container
    assert decoded_s == pytest.approx(voice_s / 2, abs=0.1)
    assert two.choice is not None and two.choice.index == 1
    assert two.choice.note == "2 audio streams (#1, #2): transcribed #1 (first; none marked default)"
    marked = AudioDecoder(root / "default_second.mkv")
    assert sum(len(c) for c in marked.chunks()) / 16_000 == pytest.approx(voice_s, abs=0.1)
    assert marked.choice is not None and marked.choice.index == 2 and "marked default" in (marked.choice.note or "")


def test_a_truncated_video_is_still_truncated(tmp_path: Path) -> None:
    whole = video_with_audio(tmp_path / "whole.mkv", "matroska", "mpeg4", [("aac", speech())], video_s=3.0)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(MediaError, match="truncated|decode failed|not a readable"):
        decode_audio(cut, probe_duration(cut))


def test_names_round_trip_through_their_utf8_form() -> None:
    names = ["plain.wav", "héllo ☃.wav", "100%.wav", "%25.wav", os.fsdecode(b"caf\xe9.wav"), "tab\there.wav",
             os.fsdecode(bytes(range(1, 256)).replace(b"/", b""))]
    for name in names:
        encoded = encode_name(name)
        encoded.encode("utf-8")  # valid UTF-8: Parquet and JSON take it
        assert decode_name(encoded) == name
    assert encode_name(os.fsdecode(b"caf\xe9.wav")) == "caf%E9.wav"
    assert encode_name("100%.wav") == "100%25.wav" and encode_name("héllo ☃.wav") == "héllo ☃.wav"


def test_reads_are_bounded_by_the_size_seen_at_open(tmp_path: Path) -> None:
    with open_regular("/proc/self/status") as handle:  # size 0, yet reads return bytes
        assert _sha256(handle, size=0) == _sha256(handle, first=b"", size=0) == EMPTY_SHA256
        assert handle.tell() == 0
    with pytest.raises(MediaError, match="not a regular file"):
        open_regular("/dev/zero")
    grown = tmp_path / "grown.wav"
    grown.write_bytes(b"x" * 1000)
    with open(grown, "rb") as handle:
        assert _sha256(handle, first=handle.read(4), size=10) == hashlib.sha256(b"x" * 10).hexdigest()
        assert handle.tell() == 10


def test_silent_stream_decodes_to_silence_not_an_error(tmp_path: Path) -> None:
    path = video_with_audio(tmp_path / "quiet.mkv", "matroska", "mpeg4", [("aac", np.zeros(16_000, np.float32))], 1.0)
    assert len(decode_audio(path)) / 16_000 == pytest.approx(1.0, abs=0.1)


def test_a_file_written_while_it_is_hashed_fails_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.media import scan as scan_module
    from tests.media_factory import write_audio

    growing = write_audio(tmp_path / "lib" / "growing.wav", speech(), 16_000)
    real = scan_module._sha256

    def append_then_hash(handle: object, first: bytes = b"", size: int | None = None) -> str:
        with open(growing, "ab") as writer:  # a recorder still writing
            writer.write(b"\0" * 4096)
        return real(handle, first, size)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_module, "_sha256", append_then_hash)
    (item,) = scan_library(LocalSource(tmp_path / "lib"))
    assert "changed while it was read" in (item.error or "")


@given(st.binary(min_size=1, max_size=40).filter(lambda raw: b"/" not in raw and b"\0" not in raw))
def test_any_file_name_round_trips_as_valid_utf8(raw: bytes) -> None:
    name = os.fsdecode(raw)
    encoded = encode_name(name)
    assert os.fsencode(decode_name(encoded)) == raw
    assert encoded.encode("utf-8").decode("utf-8") == encoded  # no surrogates left
