"""Long files as a stream of pieces, so memory does not grow with a file's length.

A decoder worker holds a file in memory only while it is short: past `SPILL_AFTER_S` of
decoded audio it writes the samples to a raw 16 kHz mono int16 file in the decode-ahead's
spill folder instead (1.15 GB for 10 hours, on disk), and hands over a `LongAudio` — a path,
not an array. The transcriber then reads pieces of at most `PIECE_S`, each cut at the
quietest moment of the last `SEARCH_S` before the limit (so no cut falls inside a word
when the file has any pause there), `PIECES_AT_ONCE` at a time; each piece goes through
VAD, the engine and the guards as a clip of its own (the engine batches their windows
together). The pieces' transcripts are joined with their time offsets into one
transcript, so the file still gets one row and one JSON / SRT / VTT.

This sits above the engines, so every engine gets it; an engine still windows a piece its
own way (30 s windows for Whisper). int16 on disk rather than float32: half the disk, and
the quantisation (-96 dB) is far below what a speech model hears.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tasks.engines.windows import quietest
from tasks.media.audio import AudioDecoder
from tasks.quality.guards import NO_SPEECH
from tasks.records import SAMPLE_RATE, Clip, Failure, Quality, Segment, Transcript, Word

# The most audio one piece holds. Not more: VAD (faster-whisper's Silero, run over a whole clip at
# once) costs ~27 MB per minute of clip, so a 10-minute piece peaked ~150 MB above a 5-minute one.
PIECE_S = 300.0
SPILL_AFTER_S = PIECE_S  # a file with more decoded audio than this goes to disk
SEARCH_S = 30.0  # how far before a piece's limit its quietest cut point is looked for
# Pieces handed to the engine together: their windows share batches (a lone 5-minute piece left its
# last batch of 8 windows almost empty), while VAD still runs one piece at a time. Costs ~20 MB of
# samples per piece held.
PIECES_AT_ONCE = 4
SPILL_SCALE = 32767.0


@dataclass(frozen=True, slots=True)
class LongAudio:
    """A decoded file too long to hold in memory: 16 kHz mono int16 samples in a raw file."""

    key: str
    path: str
    samples: int
    audio_stream: int | None = None
    note: str | None = None  # e.g. several audio streams

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE


def decode_spilling(path: str | Path, key: str, expected_s: float | None, spill_dir: str | Path,
                    spill_after_s: float | None = None) -> Clip | LongAudio:
    """Decode a file: a `Clip` while it is short, else a `LongAudio` written to `spill_dir`.

    Memory stays at one decoded packet plus `spill_after_s` of audio, however long the file.
    Raises `MediaError` (after removing its spill file) if the file is bad or truncated.
    """
    decoder = AudioDecoder(path, expected_s)
    held: list[npt.NDArray[np.float32]] = []
    held_samples, limit = 0, int((spill_after_s or SPILL_AFTER_S) * SAMPLE_RATE)
    spill_path = Path(spill_dir) / f"{os.getpid()}-{id(decoder):x}-{abs(hash(key)):x}.s16"
    spill = None
    try:
        for chunk in decoder.chunks():
            if spill is None and held_samples + len(chunk) > limit:
                spill = spill_path.open("wb")
                for earlier in held:
                    spill.write(_to_int16(earlier).tobytes())
                held = []
            if spill is not None:
                spill.write(_to_int16(chunk).tobytes())
            else:
                held.append(chunk)
                held_samples += len(chunk)
    except BaseException:
        if spill is not None:
            spill.close()
        spill_path.unlink(missing_ok=True)
        raise
    stream, note = (decoder.choice.index, decoder.choice.note) if decoder.choice else (None, None)
    if spill is None:
        samples = np.concatenate(held) if held else np.zeros(0, np.float32)
        return Clip(key, samples, audio_stream=stream, note=note)
    spill.close()
    return LongAudio(key, str(spill_path), decoder.samples, stream, note)


def iter_pieces(audio: LongAudio, piece_s: float = PIECE_S, search_s: float = SEARCH_S) -> Iterator[tuple[float, Clip]]:
    """The file as (offset in seconds, clip) pieces of at most `piece_s`, each cut at a quiet moment."""
    piece, search = int(piece_s * SAMPLE_RATE), int(min(search_s, piece_s / 2) * SAMPLE_RATE)
    start = 0
    while start < audio.samples:
        end = audio.samples
        if audio.samples - start > piece:
            region = _read(audio.path, start + piece - search, search)
            end = start + piece - search + int(quietest(region, SAMPLE_RATE)(0.0, search / SAMPLE_RATE) * SAMPLE_RATE)
            end = max(end, start + SAMPLE_RATE)  # always move on by at least a second
        yield start / SAMPLE_RATE, Clip(audio.key, _read(audio.path, start, end - start))
        start = end


def transcribe_in_pieces(
    audio: LongAudio, transcribe: Callable[[Sequence[Clip]], Sequence[Transcript | Failure]],
    piece_s: float | None = None, group: int | None = None,
) -> Transcript | Failure:
    """Transcribe `group` pieces at a time; one transcript on the file's clock, or why a piece failed."""
    parts: list[tuple[float, Transcript]] = []
    pieces = iter_pieces(audio, piece_s or PIECE_S)
    while pending := [piece for _, piece in zip(range(group or PIECES_AT_ONCE), pieces, strict=False)]:
        outcomes = transcribe([clip for _, clip in pending])
        for (offset, _), got in zip(pending, outcomes, strict=True):
            if not isinstance(got, Transcript):
                return got.within(f"in the piece at {offset:.0f} s of {audio.duration_s:.0f} s")
            parts.append((offset, got))
    return join_pieces(parts)


def join_pieces(parts: Sequence[tuple[float, Transcript]]) -> Transcript:
    """One transcript from pieces: times shifted by each piece's offset, texts joined in order."""
    info: dict[str, str] = {}
    for _, part in parts:
        info.update(part.info)
    info["pieces"] = str(len(parts))
    return Transcript(
        text=" ".join(t.text.strip() for _, t in parts if t.text.strip()),
        segments=tuple(Segment(_at(s.start, o), _at(s.end, o), s.text) for o, t in parts for s in t.segments),
        words=tuple(Word(_at(w.start, o), _at(w.end, o), w.word, w.probability) for o, t in parts for w in t.words),
        language=next((t.language for _, t in parts if t.language), None),
        info=info,
        quality=_join_quality([t.quality for _, t in parts]),
    )


def _join_quality(qualities: Sequence[Quality | None]) -> Quality | None:
    known = [q for q in qualities if q is not None]
    if not known:
        return None
    flags = list(dict.fromkeys(flag for q in known for flag in q.flags if flag != NO_SPEECH))
    if all(NO_SPEECH in q.flags for q in known):
        flags.append(NO_SPEECH)  # the file has no speech only if no piece has any
    speech = [q.speech_s for q in known if q.speech_s is not None]
    return Quality(tuple(flags), sum(speech) if speech else None, tuple(a for q in known for a in q.attempts))


def _at(seconds: float, offset: float) -> float:
    return round(seconds + offset, 3)


def _read(path: str, start: int, count: int) -> npt.NDArray[np.float32]:
    raw = np.fromfile(path, dtype=np.int16, count=count, offset=2 * start)
    return raw.astype(np.float32) / SPILL_SCALE


def _to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    scaled: npt.NDArray[np.int16] = np.clip(np.rint(samples * SPILL_SCALE), -32768, 32767).astype(np.int16)
    return scaled
