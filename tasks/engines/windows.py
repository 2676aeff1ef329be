"""Cut audio into Whisper's 30 s windows, batch them, and stitch long files back.

Long files are cut into windows that overlap by `overlap_s`. Each window *owns*
the span between the middles of its overlaps: a word belongs to the window whose
owned span holds the word's midpoint. With the boundary half an overlap away from
either window's edge, each word is judged in a window that heard it whole, so a
boundary word is kept exactly once (neither lost nor doubled). The engine keeps
these functions free of torch so they are tested on plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.records import Segment, Transcript, Word


@dataclass(frozen=True, slots=True)
class Span:
    """One window of a clip: where it starts and ends, and the part of the clip it owns."""

    start: float
    end: float
    own_from: float
    own_to: float


def plan_spans(duration_s: float, window_s: float, overlap_s: float) -> list[Span]:
    """Windows of at most `window_s` covering [0, duration_s], consecutive ones overlapping by `overlap_s`."""
    if not 0 <= overlap_s < window_s:
        raise ValueError(f"overlap_s must be in [0, {window_s}), got {overlap_s}")
    if duration_s <= window_s:
        return [Span(0.0, duration_s, 0.0, math.inf)]
    step = window_s - overlap_s
    count = math.ceil((duration_s - overlap_s) / step)
    starts = [min(i * step, duration_s - window_s) for i in range(count)]
    spans = []
    for i, start in enumerate(starts):
        own_from = 0.0 if i == 0 else (start + starts[i - 1] + window_s) / 2
        own_to = math.inf if i == count - 1 else (starts[i + 1] + start + window_s) / 2
        spans.append(Span(start, min(start + window_s, duration_s), own_from, own_to))
    return spans


def batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most `batch_size`, longest first (similar lengths decode together)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def stitch(pieces: Sequence[tuple[Span, Sequence[tuple[Segment, Sequence[Word]]]]], language: str | None) -> Transcript:
    """One transcript from overlapping windows; piece times are on the window's clock."""
    segments: list[Segment] = []
    words: list[Word] = []
    for span, decoded in pieces:
        for _segment, seg_words in decoded:
            kept = [_shift(w, span.start) for w in seg_words if span.own_from <= span.start + _mid(w) < span.own_to]
            if kept:
                segments.append(Segment(kept[0].start, kept[-1].end, "".join(w.word for w in kept).strip()))
                words.extend(kept)
    text = " ".join(s.text for s in segments if s.text).strip()
    return Transcript(text=text, segments=tuple(segments), words=tuple(words), language=language)


def _mid(word: Word) -> float:
    return (word.start + word.end) / 2


def _shift(word: Word, offset: float) -> Word:
    return Word(round(word.start + offset, 3), round(word.end + offset, 3), word.word, word.probability)
