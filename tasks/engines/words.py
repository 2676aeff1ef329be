"""The rules every engine shares for timed words: one implementation each.

- **Ownership** (`owns`): when audio is cut into overlapping windows (long files) or
  several clips share one window (packing), a word belongs to the span that holds its
  midpoint, so a word at a cut is kept exactly once — neither lost nor doubled.
- **Segments from words** (`segment_of`): a run of words becomes one segment, start of
  the first to end of the last; Whisper's words carry their own leading space, NeMo's
  do not (`spaced`).
- **Caption cues** (`caption_segments`): word-timed text is cut into cues at sentence
  ends, at pauses and at a maximum length, the same for every engine and mode.
- **A transcript from decoded segments** (`transcript_of`): text, segments and words
  built one way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tasks.records import Segment, Transcript, Word

SENTENCE_END = (".", "?", "!", "。", "？", "！")
CUE_MAX_S = 6.0  # a cue longer than this ends at the next word
CUE_PAUSE_S = 0.6  # a pause longer than this starts a new cue


def midpoint(word: Word) -> float:
    return (word.start + word.end) / 2


def owns(own_from: float, own_to: float, word: Word, offset: float = 0.0) -> bool:
    """Whether the span [own_from, own_to) owns `word`, whose times are `offset` seconds early."""
    return own_from <= offset + midpoint(word) < own_to


def join_words(words: Sequence[Word], spaced: bool = True) -> str:
    """The words' text: as they are when each carries its own leading space (Whisper), else with spaces."""
    if spaced:
        return "".join(w.word for w in words).strip()
    return " ".join(w.word.strip() for w in words if w.word.strip())


def segment_of(words: Sequence[Word], spaced: bool = True) -> Segment:
    return Segment(words[0].start, words[-1].end, join_words(words, spaced))


def caption_segments(
    words: Sequence[Word], max_s: float = CUE_MAX_S, pause_s: float = CUE_PAUSE_S, spaced: bool = True
) -> tuple[Segment, ...]:
    """Cues from consecutive words; every word lands in exactly one cue, in order."""
    return tuple(segment_of(cue, spaced) for cue in caption_groups(words, max_s, pause_s))


def caption_groups(words: Sequence[Word], max_s: float = CUE_MAX_S, pause_s: float = CUE_PAUSE_S) -> list[list[Word]]:
    """The words of each cue: a cue ends at a sentence end, before a pause over `pause_s`, or past `max_s`."""
    cues: list[list[Word]] = []
    for word in words:
        current = cues[-1] if cues else None
        if (
            current is None
            or current[-1].word.strip().endswith(SENTENCE_END)
            or word.start - current[-1].end > pause_s
            or word.end - current[0].start > max_s
        ):
            cues.append([word])
        else:
            current.append(word)
    return cues


def transcript_of(
    decoded: Sequence[tuple[Segment, Sequence[Word]]],
    language: str | None,
    keep_words: bool = True,
    info: Mapping[str, str] | None = None,
) -> Transcript:
    """A transcript from (segment, its words) pairs: the text is the segments' text, in order."""
    segments = tuple(s for s, _ in decoded)
    return Transcript(
        text=" ".join(s.text for s in segments if s.text).strip(),
        segments=segments,
        words=tuple(w for _, words in decoded for w in words) if keep_words else (),
        language=language,
        info=dict(info or {}),
    )
