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

from tasks.quality import GuardLimits
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
) -> list[Transcript] | None:
    """One transcript per member, on the member's own clock; None when the split is not clean.

    None means the caller must transcribe the pack's clips one by one (see `split_is_clean`).
    """
    if not split_is_clean(pack, segments, gap_s):
        return None
    words_of: list[list[list[Word]]] = [[] for _ in pack.members]  # member → segment → words
    for _segment, words in segments:
        per_member: list[list[Word]] = [[] for _ in pack.members]
        for word in words:
            member = _owner(pack, (word.start + word.end) / 2, gap_s)
            start = pack.offsets[member]
            duration = pack.durations[member]
            per_member[member].append(
                Word(
                    _clamp(word.start - start, duration),
                    _clamp(word.end - start, duration),
                    word.word,
                    word.probability,
                )
            )
        for member, found in enumerate(per_member):
            if found:
                words_of[member].append(found)
    return [_transcript(groups, language) for groups in words_of]


def split_is_clean(pack: Pack, segments: Sequence[tuple[Segment, Sequence[Word]]], gap_s: float) -> bool:
    """Trust a split only if the model's own segments respect the clips' boundaries.

    Each segment must sit inside one clip's span widened by the silent gap on each side
    (segment times often run into the silence), its words must all fall to that clip, and
    its text must fit its time: more characters per second than speech allows (the quality
    guard's limit) means the timestamps drifted, as they do on a phrase said several times. Whisper's word times can drift by seconds on repeated
    phrases; when they disagree with the segment times, words would leak into a
    neighbouring clip, so the caller transcribes the pack's clips one by one instead.
    """
    for segment, words in segments:
        owner = _owner(pack, (segment.start + segment.end) / 2, gap_s)
        start, end = pack.offsets[owner] - gap_s, pack.offsets[owner] + pack.durations[owner] + gap_s
        if segment.start < start or segment.end > end:
            return False
        if len(segment.text) > GuardLimits().max_chars_per_s * max(segment.end - segment.start, 0.1):
            return False
        if any(_owner(pack, (w.start + w.end) / 2, gap_s) != owner for w in words):
            return False
    return True


def _owner(pack: Pack, t: float, gap_s: float) -> int:
    for member, (start, duration) in enumerate(zip(pack.offsets, pack.durations, strict=True)):
        if t < start + duration + gap_s / 2:
            return member
    return len(pack.members) - 1


def _clamp(t: float, duration: float) -> float:
    return float(round(min(max(t, 0.0), duration), 3))


def _transcript(groups: list[list[Word]], language: str | None) -> Transcript:
    segments = tuple(
        Segment(words[0].start, words[-1].end, "".join(w.word for w in words).strip()) for words in groups
    )
    words = tuple(w for group in groups for w in group)
    return Transcript(
        text=" ".join(s.text for s in segments).strip(), segments=segments, words=words, language=language
    )
