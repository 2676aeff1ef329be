"""Voice-activity detection: find the speech in a clip, and cut long silences out of it.

Why: Whisper-style models invent text over silence and music ("Thank you.",
repeated phrases). faster-whisper ships Silero VAD (onnxruntime, no torch), so
every engine gets the same detector here, before the engine sees the audio:
a clip with no speech is never decoded, and one with long silent stretches is
decoded as its speech spans joined end to end, with times mapped back to the
clip's own clock afterwards. Silero's defaults only cut pauses over 2 s and keep
0.4 s of padding around speech, so ordinary pauses between words are untouched.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from tasks.records import SAMPLE_RATE, Segment, Transcript, Word

# Silence kept between joined speech spans, as between packed clips (`packing.py`), so a
# span ends as an utterance of its own. On pairs of example clips, gaps of 0.5 to 3 s gave
# WER 0.20 to 0.25 with no trend (tiny.en): the value is not critical.
JOIN_GAP_S = 1.0
LONG_CLIP_S = 30.0  # one Whisper window: a longer clip is windowed by its speech
MERGE_GAP_S = 2.0 - 2 * 0.4  # Silero's default minimum pause less its padding on both sides


@dataclass(frozen=True, slots=True)
class SpeechMap:
    """Where a clip's speech is, and how times in the compacted audio map back to it."""

    spans: tuple[tuple[float, float], ...]  # (start, end) of each speech span, seconds on the clip's clock
    duration_s: float
    # A clip over LONG_CLIP_S: its speech in spans of at most 30 s ended by pauses over 160 ms (what
    # `spans` was merged from), for an engine that windows a long clip by its speech
    windows: tuple[tuple[float, float], ...] | None = None

    @property
    def compacted_s(self) -> float:
        """The length of the clip once its silences are cut out (`compact`)."""
        return self.speech_s + JOIN_GAP_S * max(len(self.spans) - 1, 0)

    @property
    def speech_s(self) -> float:
        """Seconds of speech, to the millisecond, never more than the clip (a clip all speech is its length)."""
        return min(round(sum(end - start for start, end in self.spans), 3), self.duration_s)

    @property
    def is_whole(self) -> bool:
        """The spans cover the clip up to padding: nothing worth cutting."""
        return self.duration_s - self.speech_s < 0.5

    def original_time(self, t: float, is_end: bool = False) -> float:
        """A time in the compacted audio (see `compact`) on the clip's own clock.

        A time inside a joining gap goes to the end of the span before it (an end time)
        or to the start of the span after it (a start time).
        """
        offsets = _offsets(self.spans)
        index = min(max(bisect.bisect_right(offsets, t) - 1, 0), len(self.spans) - 1)
        start, end = self.spans[index]
        if t - offsets[index] > end - start and not is_end and index + 1 < len(self.spans):
            return round(self.spans[index + 1][0], 3)
        return round(start + min(t - offsets[index], end - start), 3)


def detect_speech(samples: npt.NDArray[np.float32], threshold: float = 0.5) -> SpeechMap:
    """Silero VAD over 16 kHz mono audio: spans ended by pauses over 2 s (Silero's default).

    A clip over `LONG_CLIP_S` is searched as `BatchedInferencePipeline` searches it, in spans of at
    most 30 s ended by pauses over 160 ms: those are the map's `windows`, which an engine that windows
    a long clip by its speech (`ct2_batch.py`) takes as they are, so VAD runs once per clip, not once
    here and once in the engine. Its `spans` are those merged across gaps under `MERGE_GAP_S`, which is
    what a 2 s minimum pause gives once each side has its 0.4 s of padding.
    """
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError as error:  # pragma: no cover - faster-whisper is a base dependency
        raise RuntimeError("voice-activity detection requires the faster-whisper package (onnxruntime)") from error
    duration = len(samples) / SAMPLE_RATE
    if duration <= LONG_CLIP_S:
        found = get_speech_timestamps(samples, VadOptions(threshold=threshold))
        return SpeechMap(tuple((c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in found), duration)
    options = VadOptions(threshold=threshold, max_speech_duration_s=LONG_CLIP_S, min_silence_duration_ms=160)
    found = get_speech_timestamps(samples, options)
    windows = tuple((c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in found)
    return SpeechMap(merge_spans(windows, MERGE_GAP_S), duration, windows=windows)


def group_spans(spans: Sequence[tuple[float, float]], max_s: float) -> list[tuple[tuple[float, float], ...]]:
    """Speech spans joined greedily, in order, into groups of at most `max_s` of speech (faster-whisper's
    `collect_chunks`): a long clip's windows in the batched decoder (`ct2_batch.py`), and the stretches
    the quality retry decodes again (`retry.py`). Lengths are counted in whole samples, as the decoder cuts."""
    groups: list[list[tuple[float, float]]] = []
    length, limit = 0, round(max_s * SAMPLE_RATE)
    for start, end in spans:
        samples = round(end * SAMPLE_RATE) - round(start * SAMPLE_RATE)
        if not groups or length + samples > limit:
            groups.append([])
            length = 0
        groups[-1].append((start, end))
        length += samples
    return [tuple(group) for group in groups]


def merge_spans(spans: Sequence[tuple[float, float]], gap_s: float) -> tuple[tuple[float, float], ...]:
    """Spans joined across gaps shorter than `gap_s`."""
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < gap_s:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def compact(samples: npt.NDArray[np.float32], speech: SpeechMap) -> npt.NDArray[np.float32]:
    """The clip's speech spans joined with `JOIN_GAP_S` of silence between them."""
    gap = np.zeros(int(JOIN_GAP_S * SAMPLE_RATE), dtype=np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    for n, (start, end) in enumerate(speech.spans):
        parts += [gap] if n else []
        parts.append(samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)])
    return np.concatenate(parts) if parts else samples[:0]


def restore_times(transcript: Transcript, speech: SpeechMap) -> Transcript:
    """Segments and words of a compacted clip's transcript, back on the clip's clock."""
    segments = tuple(
        Segment(speech.original_time(s.start), speech.original_time(s.end, is_end=True), s.text)
        for s in transcript.segments
    )
    words = tuple(
        Word(speech.original_time(w.start), speech.original_time(w.end, is_end=True), w.word, w.probability)
        for w in transcript.words
    )
    return replace(transcript, segments=segments, words=words)


def _offsets(spans: tuple[tuple[float, float], ...]) -> list[float]:
    offsets, position = [], 0.0
    for start, end in spans:
        offsets.append(position)
        position += end - start + JOIN_GAP_S
    return offsets
