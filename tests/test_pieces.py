"""Long files as pieces: decoded to disk past a limit, cut at quiet moments, joined on the file's clock."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tasks.media.audio import decode_audio
from tasks.media.local import LocalSource
from tasks.media.pieces import LongAudio, decode_spilling, iter_pieces, join_pieces, transcribe_in_pieces
from tasks.media.prefetch import DecodeAhead
from tasks.records import Attempt, Clip, Failure, MediaItem, Quality, Segment, Transcript, Word
from tests.media_factory import speech, write_audio

RATE = 16_000


def long_speech(repeats: int, pause_s: float = 1.5) -> np.ndarray:
    """The example sentence said `repeats` times with pauses: ~(3.4 + pause_s) s each."""
    voice, pause = speech(), np.zeros(int(pause_s * RATE), np.float32)
    return np.concatenate([part for _ in range(repeats) for part in (voice, pause)])


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio(tmp_path_factory.mktemp("long") / "long.wav", long_speech(10), RATE)


def test_a_short_file_stays_in_memory_and_a_long_one_goes_to_disk(long_wav: Path, tmp_path: Path) -> None:
    whole = decode_audio(long_wav)
    assert isinstance(decode_spilling(long_wav, "long.wav", None, tmp_path, spill_after_s=60), Clip)
    spilled = decode_spilling(long_wav, "long.wav", None, tmp_path, spill_after_s=10)
    assert isinstance(spilled, LongAudio) and spilled.samples == len(whole) and spilled.audio_stream == 0
    assert Path(spilled.path).stat().st_size == 2 * len(whole)  # int16
    pieces = list(iter_pieces(spilled, piece_s=12))
    joined = np.concatenate([clip.samples for _, clip in pieces])
    np.testing.assert_allclose(joined, whole, atol=1 / 32767 + 1e-6)  # int16 on disk: nothing else lost


def test_pieces_are_contiguous_bounded_and_cut_in_pauses(long_wav: Path, tmp_path: Path) -> None:
    spilled = decode_spilling(long_wav, "long.wav", None, tmp_path, spill_after_s=5)
    assert isinstance(spilled, LongAudio)
    pieces = list(iter_pieces(spilled, piece_s=12, search_s=4))
    assert len(pieces) >= 4
    position = 0.0
    for offset, clip in pieces:
        assert offset == pytest.approx(position) and clip.duration_s <= 12.0
        position += clip.duration_s
        if offset > 0:  # every cut falls where the audio is quiet
            around = clip.samples[: RATE // 20]
            assert float(np.sqrt(np.mean(np.square(around)))) < 0.01
    assert position == pytest.approx(spilled.duration_s)


def test_joined_pieces_carry_their_offsets_and_flags() -> None:
    first = Transcript("one two", (Segment(0.5, 1.0, "one two"),), (Word(0.5, 0.7, " one"),), "en",
                       {"device": "cpu"}, Quality(("no_speech",), 0.0))
    second = Transcript("three", (Segment(0.25, 1.5, "three"),), (Word(0.25, 1.5, " three"),), None,
                        {"quality_decode": "safer"}, Quality(("repetition_loop",), 1.2, (Attempt("default", (), "x"),)))
    joined = join_pieces([(0.0, first), (600.0, second)])
    assert joined.text == "one two three" and joined.language == "en"
    assert [(s.start, s.end) for s in joined.segments] == [(0.5, 1.0), (600.25, 601.5)]
    assert [w.start for w in joined.words] == [0.5, 600.25]
    assert joined.info == {"device": "cpu", "quality_decode": "safer", "pieces": "2"}
    assert joined.quality == Quality(("repetition_loop",), 1.2, (Attempt("default", (), "x"),))  # speech in piece 2
    silent = join_pieces([(0.0, first), (600.0, first)])
    assert silent.quality is not None and silent.quality.flags == ("no_speech",)


def test_a_failing_piece_fails_the_file_with_where(long_wav: Path, tmp_path: Path) -> None:
    spilled = decode_spilling(long_wav, "long.wav", None, tmp_path, spill_after_s=5)
    assert isinstance(spilled, LongAudio)
    calls: list[float] = []

    def engine(clips: Sequence[Clip]) -> list[Transcript | Failure]:
        calls.append(clips[0].duration_s)
        return [Failure("engine failed: boom") if len(calls) == 2 else Transcript("x", ()) for _ in clips]

    outcome = transcribe_in_pieces(spilled, engine, piece_s=12, group=1)
    assert isinstance(outcome, Failure) and str(outcome).startswith("engine failed: boom (in the piece at ")
    assert len(calls) == 2


def test_pieces_go_to_the_engine_a_group_at_a_time_and_join_in_order(long_wav: Path, tmp_path: Path) -> None:
    spilled = decode_spilling(long_wav, "long.wav", None, tmp_path, spill_after_s=5)
    assert isinstance(spilled, LongAudio)
    groups: list[int] = []

    def engine(clips: Sequence[Clip]) -> list[Transcript | Failure]:
        done = sum(groups)
        groups.append(len(clips))
        return [Transcript(f"piece{done + n}", (Segment(0.0, 1.0, "p"),)) for n in range(len(clips))]

    pieces = len(list(iter_pieces(spilled, piece_s=6)))
    outcome = transcribe_in_pieces(spilled, engine, piece_s=6, group=2)
    assert isinstance(outcome, Transcript) and pieces >= 3
    assert groups == [2] * (pieces // 2) + [1] * (pieces % 2)  # full groups, then what is left
    assert outcome.text == " ".join(f"piece{n}" for n in range(pieces))
    starts = [s.start for s in outcome.segments]  # each piece's segment shifted by the piece's offset
    assert starts == sorted(starts) and starts[0] == 0.0 and len(set(starts)) == pieces


def test_decode_ahead_hands_over_long_files_on_disk_and_removes_them(long_wav: Path) -> None:
    item = MediaItem("long.wav", str(long_wav), long_wav.stat().st_size, 0, duration_s=len(long_speech(10)) / RATE)
    short = MediaItem("short.wav", str(long_wav), long_wav.stat().st_size, 0, duration_s=item.duration_s)
    with DecodeAhead(LocalSource(long_wav.parent), [item, short], workers=1, spill_after_s=10) as ahead:
        (first,) = ahead.take([item]).decoded
        assert isinstance(first, LongAudio) and Path(first.path).is_file()
        ahead.take([short])
        assert not Path(first.path).exists()  # removed once the next batch is taken
        spill_dir = Path(first.path).parent
    assert not spill_dir.exists()


def test_spill_folders_of_dead_processes_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import tempfile

    from tasks.media.prefetch import SPILL_PREFIX, new_spill_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"{SPILL_PREFIX}{gone.pid}-abc"
    stale.mkdir()
    (stale / "x.s16").write_bytes(b"\0" * 10)
    mine = new_spill_dir()
    assert not stale.exists() and Path(mine).is_dir() and Path(mine).name.startswith(f"{SPILL_PREFIX}{os.getpid()}-")

