"""Pack short clips into one 30 s Whisper window, then split the words back out.

Why: Whisper's encoder always sees 30 s. A 4 s clip alone pays for 26 s of
padding; six of them joined with silent gaps pay for one window. Each word is
returned to the clip whose time span holds the word's midpoint, so a clip only
ever receives words spoken inside it (the gap is silence, so a boundary word
cannot straddle two clips by more than the timestamp error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tasks.engines.words import midpoint, segment_of, transcript_of
from tasks.quality.guards import GuardLimits
from tasks.records import SAMPLE_RATE, Segment, Transcript, Word


@dataclass(frozen=True, slots=True)
class Pack:
    members: tuple[int, ...]  # indices of the packed clips, in the order they sit
    offsets: tuple[float, ...]  # where each member starts in the packed audio, seconds
    durations: tuple[float, ...]
    samples: npt.NDArray[np.float32]


def plan_packs(durations: Sequence[float], window_s: float, gap_s: float) -> list[list[int]]:
    """First-fit decreasing: the fewest windows of at most `window_s` seconds."""
    order = sorted(range(len(durations)), key=lambda i: (-durations[i], i))
    packs: list[list[int]] = []
    loads: list[float] = []
    for index in order:
        need = durations[index]
        for slot, load in enumerate(loads):
            if load + gap_s + need <= window_s:
                packs[slot].append(index)
                loads[slot] = load + gap_s + need
                break
        else:
            packs.append([index])
            loads.append(need)
    return packs


def build_pack(clips: Sequence[npt.NDArray[np.float32]], members: Sequence[int], gap_s: float) -> Pack:
    gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    offsets: list[float] = []
    position = 0
    for n, index in enumerate(members):
        if n:
            parts.append(gap)
            position += len(gap)
        offsets.append(position / SAMPLE_RATE)
        parts.append(clips[index])
        position += len(clips[index])
    durations = tuple(len(clips[i]) / SAMPLE_RATE for i in members)
    return Pack(tuple(members), tuple(offsets), durations, np.concatenate(parts))


def split_pack(
    pack: Pack, segments: Sequence[tuple[Segment, Sequence[Word]]], gap_s: float, language: str | None
) -> list[Transcript | None] | None:
    """One transcript per member, on the member's own clock, or None for a member to decode alone.

    A member is trusted only if every segment that touches it is clean and its own (see
    `segment_is_clean`); a segment that runs across a boundary or whose words fall to two
    clips marks the clips it touches, and only those, for decoding alone. If any segment
    holds more text than its time allows, timestamps drifted somewhere in the window, and
    the whole pack is distrusted (None).
    """
    untrusted: set[int] = set()
    for segment, words in segments:
        if _too_much_text(segment):
            return None
        if not segment_is_clean(pack, segment, words, gap_s):
            untrusted |= _touched(pack, segment, words, gap_s)
    words_of: list[list[list[Word]]] = [[] for _ in pack.members]  # member → segment → words
    for segment, words in segments:
        member = _owner(pack, (segment.start + segment.end) / 2, gap_s)
        if member in untrusted or not words:
            continue
        start, duration = pack.offsets[member], pack.durations[member]
        words_of[member].append(
            [Word(_clamp(w.start - start, duration), _clamp(w.end - start, duration), w.word, w.probability)
             for w in words]
        )
    return [None if member in untrusted else _transcript(groups, language) for member, groups in enumerate(words_of)]


def segment_is_clean(pack: Pack, segment: Segment, words: Sequence[Word], gap_s: float) -> bool:
    """Trust a segment only if it respects the clips' boundaries.

    It must sit inside one clip's span widened by the silent gap on each side (segment
    times often run into the silence), and its words must all fall to that clip. Whisper
    sometimes runs two clips into one segment, and its word times can drift by seconds on
    repeated phrases; either way words would leak into a neighbouring clip.
    """
    owner = _owner(pack, (segment.start + segment.end) / 2, gap_s)
    start, end = pack.offsets[owner] - gap_s, pack.offsets[owner] + pack.durations[owner] + gap_s
    if segment.start < start or segment.end > end:
        return False
    return all(_owner(pack, midpoint(w), gap_s) == owner for w in words)


def _too_much_text(segment: Segment) -> bool:
    """More characters per second than speech allows (the quality guard's limit): drifted timestamps,
    as on a phrase said several times."""
    return len(segment.text) > GuardLimits().max_chars_per_s * max(segment.end - segment.start, 0.1)


def _touched(pack: Pack, segment: Segment, words: Sequence[Word], gap_s: float) -> set[int]:
    """The clips a segment overlaps in time or hands words to."""
    touched = {_owner(pack, midpoint(w), gap_s) for w in words}
    touched |= {m for m, (start, duration) in enumerate(zip(pack.offsets, pack.durations, strict=True))
                if segment.start < start + duration and segment.end > start}
    return touched | {_owner(pack, (segment.start + segment.end) / 2, gap_s)}


def _owner(pack: Pack, t: float, gap_s: float) -> int:
    for member, (start, duration) in enumerate(zip(pack.offsets, pack.durations, strict=True)):
        if t < start + duration + gap_s / 2:
            return member
    return len(pack.members) - 1


def _clamp(t: float, duration: float) -> float:
    return float(round(min(max(t, 0.0), duration), 3))


def _transcript(groups: list[list[Word]], language: str | None) -> Transcript:
    return transcript_of([(segment_of(words), words) for words in groups], language)
