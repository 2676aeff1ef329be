from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.media.audio import MediaError, decode_audio, probe_duration
from tasks.media.local import LocalSource
from tasks.media.scan import scan_library
from tasks.media.sources import looks_like_media
from tests.media_factory import build_bad, build_odd_valid, build_symlink_loop


@pytest.fixture(scope="module")
def mixed_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    build_odd_valid(root / "odd")
    build_bad(root / "bad")
    build_symlink_loop(root)
    (root / "notes.txt").write_text("not media, no media magic")
    return root


def test_example_formats_decode_to_16k_mono_float32(example_library: Path) -> None:
    files = sorted(p for p in example_library.rglob("*") if p.is_file())
    assert {p.suffix for p in files} >= {".wav", ".flac", ".mp3", ".m4a", ".opus", ".mp4"}
    for path in files:
        duration = probe_duration(path)
        samples = decode_audio(path, duration)
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert abs(len(samples) / 16_000 - duration) < 0.1, path
        assert 0.01 < float(np.abs(samples).max()) < 1.5  # lossy codecs overshoot a little


def test_scan_finds_media_once_and_reports_bad_files(mixed_library: Path) -> None:
    items = {i.source: i for i in scan_library(LocalSource(mixed_library))}
    expected_odd = {f"odd/{k}" for k in build_odd_valid_names()}
    assert expected_odd <= set(items)
    for source in expected_odd:
        assert items[source].ok, (source, items[source].error)
        assert items[source].duration_s == pytest.approx(3.44, abs=0.05)
        assert len(items[source].content_sha256 or "") == 64
    assert "notes.txt" not in items
    # the loop back to the parent folder is walked once, not forever
    assert not any(s.startswith("loop/") for s in items)
    assert len(items) == len(expected_odd) + 6


def build_odd_valid_names() -> list[str]:
    return ["eight_channels.wav", "narrowband_8k.wav", "stereo_48k.flac", "héllo wörld ☃ with spaces.wav",
            "a/b/c/d/e/f/deep.wav", "no_extension_but_wav"]


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("zero_bytes.wav", "empty file"), ("truncated.wav", "truncated"), ("not_audio.mp3", "not a readable media"),
     ("random_bytes.flac", "no audio samples"), ("dangling_link.wav", "cannot read"),
     ("header_only.wav", "no audio samples")],
)
def test_each_bad_file_gets_its_reason(mixed_library: Path, name: str, fragment: str) -> None:
    items = {i.source: i for i in scan_library(LocalSource(mixed_library))}
    assert fragment in (items[f"bad/{name}"].error or "")
    assert not items[f"bad/{name}"].ok


def test_truncated_flac_fails_at_decode(tmp_path: Path, example_library: Path) -> None:
    whole = (example_library / "meetings" / "planning.flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(MediaError, match="truncated|decode failed"):
        decode_audio(cut, probe_duration(cut))


def test_scan_leaves_out_the_output_folder(tmp_path: Path, example_library: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "copy.wav").write_bytes((example_library / "meetings" / "standup.wav").read_bytes())
    (tmp_path / "in.wav").write_bytes((example_library / "meetings" / "standup.wav").read_bytes())
    sources = [i.source for i in scan_library(LocalSource(tmp_path, exclude=(tmp_path / "out",)))]
    assert sources == ["in.wav"]


def test_sniffing_by_magic_bytes() -> None:
    assert looks_like_media("x.bin", b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert looks_like_media("x", b"fLaC\x00")
    assert looks_like_media("x", b"\x00\x00\x00\x20ftypM4A ")
    assert looks_like_media("song.MP3", b"")
    assert not looks_like_media("notes.txt", b"hello world, not media")


def test_local_source_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^SOURCE: not a folder"):
        LocalSource(tmp_path / "missing")
