"""Cut word-timed text into caption-sized segments.

Batched long-form decoding (faster-whisper's `BatchedInferencePipeline`) returns one
segment per ~30 s voice-activity chunk: fine for text, useless as SRT/VTT cues. Its
word timestamps are good, so the segments are rebuilt from the words: a cue ends at a
sentence end, at a pause, or when it reaches `max_s`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.records import Segment, Word

SENTENCE_END = (".", "?", "!", "。", "？", "！")


def caption_segments(words: Sequence[Word], max_s: float = 6.0, pause_s: float = 0.6) -> tuple[Segment, ...]:
    """Group consecutive words into cues; every word lands in exactly one cue, in order."""
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
    return tuple(Segment(cue[0].start, cue[-1].end, "".join(w.word for w in cue).strip()) for cue in cues)
