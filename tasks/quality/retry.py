"""The safer retry, stretch by stretch: a long clip's flagged stretches are decoded again, not the clip.

A clip longer than one window (30 s) is decoded as windows of its speech (`ct2_batch.py`). When the
guards flag such a clip, the fault is nearly always one stretch: a window whose decoder looped or
dropped out. Decoding the whole clip again with the safer settings (beam 5, temperature fallback, one
window at a time) was a second, slower pass over all of it: three 4.5-minute files, one with a looping
stretch, took 18.6 s instead of 11.2 s without the retry.

Here the clip's speech is cut into the stretches the batched decoder windows it by (`vad.group_spans`
over the VAD's windows, at most 30 s of speech each); a segment or word belongs to the stretch that holds
its midpoint (the ownership rule of `words.py`). The guards' text checks run on each stretch's text
against its own speech, and only the flagged stretches are decoded again, all files' stretches in one
call. A retried stretch takes its second decode only when that has fewer flags (a stretch flagged the
same way twice is most likely truly repetitive speech), spliced back on the clip's clock. When no single
stretch explains the file's flags (a timestamp fault, a loop split between two stretches that neither
shows alone), the caller retries the whole clip as before.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tasks.engines.base import Transcriber
from tasks.quality.guards import GuardLimits, check_transcript, retry_flags
from tasks.quality.vad import LONG_CLIP_S, MERGE_GAP_S, SpeechMap, compact, group_spans, merge_spans, restore_times
from tasks.records import Clip, Failure, Segment, Transcript, Word

Runner = Callable[[Transcriber, Sequence[Clip]], list[Transcript | Failure]]


@dataclass(frozen=True, slots=True)
class Stretch:
    """At most one window of a long clip's speech: its spans, on the clip's clock."""

    spans: tuple[tuple[float, float], ...]

    @property
    def start(self) -> float:
        return self.spans[0][0]

    @property
    def speech_s(self) -> float:
        return sum(end - start for start, end in self.spans)


@dataclass(frozen=True, slots=True)
class Retry:
    """One flagged long clip: its stretches and which of them to decode again."""

    index: int  # the clip's position in the batch
    stretches: tuple[Stretch, ...]
    flagged: tuple[int, ...]


def stretches(speech: SpeechMap) -> tuple[Stretch, ...]:
    """A long clip's stretches; none for a clip of one window (its retry is the whole clip anyway)."""
    groups = group_spans(speech.windows or (), LONG_CLIP_S)
    return tuple(Stretch(group) for group in groups) if len(groups) > 1 else ()


def flagged_stretches(transcript: Transcript, parts: Sequence[Stretch], limits: GuardLimits) -> tuple[int, ...]:
    """The stretches whose own text the guards flag; else adjacent pairs whose joined text they flag (a
    loop or a dense stretch across a boundary); else none."""
    texts = [_text(segments) for segments, _ in split(transcript, parts)]
    alone = tuple(i for i, text in enumerate(texts) if _flags(text, parts[i].speech_s, limits))
    if alone:
        return alone
    pairs = [i for i in range(len(parts) - 1)
             if _flags(f"{texts[i]} {texts[i + 1]}", parts[i].speech_s + parts[i + 1].speech_s, limits)]
    return tuple(sorted({j for i in pairs for j in (i, i + 1)}))


def retry_stretches(
    safer: Transcriber, clips: Sequence[Clip], firsts: Sequence[Transcript], retries: Sequence[Retry], runner: Runner,
    limits: GuardLimits,
) -> list[Transcript]:
    """Each flagged clip with its flagged stretches decoded by `safer`, the better decode of each stretch
    kept (in the order of `retries`). All the stretches go to the engine in one call."""
    jobs = [(retry, j) for retry in retries for j in retry.flagged]
    maps = [SpeechMap(merge_spans(retry.stretches[j].spans, MERGE_GAP_S), clips[retry.index].duration_s)
            for retry, j in jobs]
    inputs = [Clip(f"{clips[retry.index].key} (stretch {j + 1} of {len(retry.stretches)})",
                   compact(clips[retry.index].samples, speech)) for (retry, j), speech in zip(jobs, maps, strict=True)]
    decoded = runner(safer, inputs)
    better: dict[tuple[int, int], Transcript] = {}
    for (retry, j), speech, outcome in zip(jobs, maps, decoded, strict=True):
        if isinstance(outcome, Transcript):
            stretch = retry.stretches[j]
            second = restore_times(outcome, speech)
            first = split(firsts[retry.index], retry.stretches)[j]
            # Fewer flags, not merely a lower compression ratio: a stretch flagged the same way twice is most
            # likely truly repetitive speech, and the retry that compresses less has dropped some of it
            # (measured: WER 0.028 → 0.032 on a prompt said 12 times when the ratio alone decided).
            if _flag_count(second.segments, stretch, limits) < _flag_count(first[0], stretch, limits):
                better[(retry.index, j)] = second
    return [_splice(firsts[retry.index], retry, {j: better[(retry.index, j)] for j in retry.flagged
                                                 if (retry.index, j) in better}) for retry in retries]


def split(transcript: Transcript, parts: Sequence[Stretch]) -> list[tuple[list[Segment], list[Word]]]:
    """The segments and words of each stretch: each goes to the stretch that holds its midpoint (a
    midpoint in the pause between two stretches goes to the earlier one)."""
    starts = [stretch.start for stretch in parts]
    out: list[tuple[list[Segment], list[Word]]] = [([], []) for _ in parts]
    for segment in transcript.segments:
        out[_owner(starts, (segment.start + segment.end) / 2)][0].append(segment)
    for word in transcript.words:
        out[_owner(starts, (word.start + word.end) / 2)][1].append(word)
    return out


def _splice(first: Transcript, retry: Retry, replaced: dict[int, Transcript]) -> Transcript:
    """The first decode with the replaced stretches' segments and words swapped in, in time order."""
    info = dict(first.info) | {"quality_retry": f"{len(retry.flagged)} of {len(retry.stretches)} stretches"}
    if not replaced:
        return replace(first, info=info)
    segments: list[Segment] = []
    words: list[Word] = []
    for j, (own_segments, own_words) in enumerate(split(first, retry.stretches)):
        segments += replaced[j].segments if j in replaced else own_segments
        words += replaced[j].words if j in replaced else own_words
    return replace(first, text=_text(segments), segments=tuple(segments), words=tuple(words) if first.words else (),
                   info=info, quality=None)


def _owner(starts: Sequence[float], t: float) -> int:
    return max(bisect.bisect_right(starts, t) - 1, 0)


def _text(segments: Sequence[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def _flags(text: str, speech_s: float, limits: GuardLimits) -> tuple[str, ...]:
    """The guards' text checks on a stretch, against its own speech (no timestamps: those are the file's)."""
    return retry_flags(check_transcript(Transcript(text, ()), speech_s, speech_s, limits))


def _flag_count(segments: Sequence[Segment], stretch: Stretch, limits: GuardLimits) -> int:
    return len(_flags(_text(segments), stretch.speech_s, limits))
