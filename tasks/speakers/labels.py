"""Speakers onto a transcript: every segment (and word) gets the speaker of its time; a segment that
spans a speaker change is split at the change.

With word times, each word takes the speaker who holds most of it (or the nearest turn) and a segment
is cut between the words where the speaker changes. Without them, a segment is cut at the turn
boundaries inside it and its text is shared out in proportion to each part's duration, at the
nearest space (a whole-word cut; characters stand in for time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tasks.records import Segment, Transcript, Word
from tasks.speakers.diarize import Turn

MIN_PART_S = 0.5  # a segment's share of a turn shorter than this is not a part of its own


def speaker_name(index: int) -> str:
    return f"S{index + 1}"


def label_transcript(transcript: Transcript, turns: Sequence[Turn]) -> Transcript:
    """The transcript with speakers; `speakers` is the number of distinct speakers in `turns`."""
    count = len({t.speaker for t in turns})
    if not turns:
        return replace(transcript, speakers=count)
    words = tuple(replace(w, speaker=speaker_name(_speaker_at(turns, w.start, w.end))) for w in transcript.words)
    segments: list[Segment] = []
    for segment in transcript.segments:
        inside = [w for w in words if segment.start - 0.01 <= w.start and w.end <= segment.end + 0.01]
        segments += _split_by_words(segment, inside) if inside else _split_by_time(segment, turns)
    # S1 is who speaks first in the transcript (a turn's speaker with no text comes last)
    seen = [*(s.speaker for s in segments), *(speaker_name(t.speaker) for t in turns)]
    names = {old: speaker_name(n) for n, old in enumerate(dict.fromkeys(seen))}
    return replace(transcript, segments=tuple(replace(s, speaker=names[s.speaker]) for s in segments),
                   words=tuple(replace(w, speaker=names[w.speaker]) for w in words), speakers=count)


def _speaker_at(turns: Sequence[Turn], start: float, end: float) -> int:
    """The speaker who holds most of [start, end]; if none does, the nearest turn's."""
    overlap: dict[int, float] = {}
    for turn in turns:
        shared = min(end, turn.end) - max(start, turn.start)
        if shared > 0:
            overlap[turn.speaker] = overlap.get(turn.speaker, 0.0) + shared
    if overlap:
        return max(overlap, key=lambda k: overlap[k])
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - middle), abs(t.end - middle))).speaker


def _split_by_words(segment: Segment, words: Sequence[Word]) -> list[Segment]:
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    if len(runs) == 1:
        return [replace(segment, speaker=runs[0][0].speaker)]
    parts = []
    for n, run in enumerate(runs):
        start = segment.start if n == 0 else run[0].start
        end = segment.end if n == len(runs) - 1 else run[-1].end
        parts.append(Segment(start, end, _joined(run), run[0].speaker))
    return parts


def _joined(words: Sequence[Word]) -> str:
    """Whisper's words carry their leading space; other engines' words are joined with one."""
    return "".join(w.word if w.word[:1].isspace() else f" {w.word}" for w in words).strip()


def _split_by_time(segment: Segment, turns: Sequence[Turn]) -> list[Segment]:
    pieces = _pieces(segment, turns)
    if len(pieces) == 1:
        return [replace(segment, speaker=speaker_name(pieces[0][2]))]
    total = sum(end - start for start, end, _ in pieces)
    text, parts, used = segment.text, [], 0
    for n, (start, end, speaker) in enumerate(pieces):
        share = len(text) * (end - start) / total
        cut = len(text) if n == len(pieces) - 1 else _cut_at_space(text, used, used + share)
        if text[used:cut].strip():
            parts.append(Segment(round(start, 3), round(end, 3), text[used:cut].strip(), speaker_name(speaker)))
        used = cut
    return parts or [replace(segment, speaker=speaker_name(pieces[0][2]))]


def _pieces(segment: Segment, turns: Sequence[Turn]) -> list[tuple[float, float, int]]:
    """The segment's time cut where turns change speaker: (start, end, speaker) of parts of ≥ MIN_PART_S."""
    parts: list[tuple[float, float, int]] = []
    for turn in turns:
        start, end = max(segment.start, turn.start), min(segment.end, turn.end)
        if end - start < MIN_PART_S:
            continue
        if parts and parts[-1][2] == turn.speaker:
            parts[-1] = (parts[-1][0], end, turn.speaker)
        else:
            parts.append((start, end, turn.speaker))
    if not parts:
        return [(segment.start, segment.end, _speaker_at(turns, segment.start, segment.end))]
    parts[0] = (segment.start, parts[0][1], parts[0][2])  # the parts cover the segment, pauses included
    parts[-1] = (parts[-1][0], segment.end, parts[-1][2])
    return [(start, parts[n + 1][0] if n + 1 < len(parts) else end, speaker)
            for n, (start, end, speaker) in enumerate(parts)]


def _cut_at_space(text: str, after: int, at: float) -> int:
    """The index of the space after `after` nearest to character position `at` (the end if there is none)."""
    spaces = [i for i, ch in enumerate(text) if ch == " " and i > after]
    return min(spaces, key=lambda i: abs(i - at)) if spaces else len(text)
