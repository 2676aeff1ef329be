"""Cut audio into Whisper's 30 s windows, batch them, and stitch long files back.

Long files are cut into overlapping windows that start at quiet moments (see
`plan_spans`). Each window *owns* the span from its start to the next window's
start: a word belongs to the window whose owned span holds the word's midpoint, so
a word at a cut is kept exactly once (neither lost nor doubled). The engine keeps
these functions free of torch so they are tested on plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tasks.engines.words import owns, segment_of, transcript_of
from tasks.records import Segment, Transcript, Word

SEARCH_S = 8.0  # how far before the latest cut point a quieter one is looked for


@dataclass(frozen=True, slots=True)
class Span:
    """One window of a clip: where it starts and ends, and the part of the clip it owns."""

    start: float
    end: float
    own_from: float
    own_to: float


def plan_spans(
    duration_s: float, window_s: float, overlap_s: float, quiet: Callable[[float, float], float] | None = None
) -> list[Span]:
    """Windows of at most `window_s` covering [0, duration_s]; each starts where the one before stops owning.

    Window k+1 starts at a cut point c between `window_s - overlap_s - search` and
    `window_s - overlap_s` after window k's start: the quietest moment there when
    `quiet(lo, hi)` is given (so no window starts inside a word, as sequential
    decoding seeks to a segment's end), else the latest. Window k owns [c_k, c_k+1)
    and still hears `overlap_s` or more past c_k+1, so a word that straddles the
    cut is heard whole by window k and dropped by window k+1 (its midpoint decides).
    """
    if not 0 <= overlap_s < window_s / 2:
        raise ValueError(f"overlap_s must be in [0, {window_s / 2}), got {overlap_s}")
    step = window_s - overlap_s
    search = min(SEARCH_S, step / 2)
    cuts = [0.0]
    while duration_s - cuts[-1] > window_s:
        latest = cuts[-1] + step
        cuts.append(quiet(latest - search, latest) if quiet else latest)
    ends = [*cuts[1:], math.inf]
    return [Span(c, min(c + window_s, duration_s), c, end) for c, end in zip(cuts, ends, strict=True)]


def quietest(samples: npt.NDArray[np.float32], sample_rate: int) -> Callable[[float, float], float]:
    """`quiet(lo, hi)`: the centre of the lowest-energy 0.3 s in [lo, hi] seconds of `samples`."""
    frame = sample_rate // 100  # 10 ms
    usable = len(samples) // frame * frame
    energy = np.square(samples[:usable], dtype=np.float64).reshape(-1, frame).mean(axis=1)
    smooth = np.convolve(energy, np.ones(30) / 30, mode="same")

    def quiet(lo: float, hi: float) -> float:
        first, last = max(int(lo * 100), 0), min(int(hi * 100), len(smooth) - 1)
        if last <= first:
            return hi
        region = smooth[first : last + 1]
        quiet_frames = np.flatnonzero(region <= region.min() * (1 + 1e-6) + 1e-12)
        run_end = next(
            (i for i in range(1, len(quiet_frames)) if quiet_frames[i] != quiet_frames[i - 1] + 1),
            len(quiet_frames),
        )
        return (
            float(first + (quiet_frames[0] + quiet_frames[run_end - 1]) // 2) / 100
        )  # middle of the silence

    return quiet


def batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of at most `batch_size`, longest first (similar lengths decode together)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def stitch(
    pieces: Sequence[tuple[Span, Sequence[tuple[Segment, Sequence[Word]]]]], language: str | None
) -> Transcript:
    """One transcript from overlapping windows; piece times are on the window's clock."""
    kept: list[tuple[Segment, list[Word]]] = []
    for span, decoded in pieces:
        for _segment, seg_words in decoded:
            owned = [_shift(w, span.start) for w in seg_words if owns(span.own_from, span.own_to, w, span.start)]
            if owned:
                kept.append((segment_of(owned), owned))
    return transcript_of(kept, language)


def _shift(word: Word, offset: float) -> Word:
    return Word(round(word.start + offset, 3), round(word.end + offset, 3), word.word, word.probability)
