"""Whisper output tokens → segments and words, on the window's clock.

Segments come from the timestamp tokens the model emits (`<|t0|> text <|t1|>`).
Words come from the per-token times transformers computes from cross-attention
(`return_token_timestamps`): `times[i]` is when token `i` ends, so a word made of
tokens a..b spans `times[a-1]`..`times[b]`. A token that starts with a space starts
a word; punctuation and word pieces join the word before them.

The alignment stretches a word that borders silence over the silence (the first word
of a window often "starts" at 0.0). As in openai/whisper, such words are cut to
twice the median word length, so a word's midpoint says where it was spoken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tasks.records import Segment, Word

TIME_PRECISION = 0.02  # seconds per timestamp token
Decoded = list[tuple[Segment, tuple[Word, ...]]]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    eot: int
    timestamp_begin: int
    decode: Callable[[list[int]], str]


def parse_tokens(
    tokens: Sequence[int], times: Sequence[float] | None, vocab: Vocabulary, duration: float
) -> Decoded:
    """Segments (and words when `times` is given) from one window's generated tokens."""
    offsets = _seek_offsets(tokens, vocab)
    if times is not None:
        times = [t + o for t, o in zip(times, offsets, strict=True)]
    decoded: Decoded = []
    start: float | None = None
    last = 0.0
    text: list[int] = []  # positions of the open segment's text tokens
    for position, token in enumerate(tokens):
        if token == vocab.eot:
            break
        if token < vocab.eot:
            text.append(position)
        elif token >= vocab.timestamp_begin:
            stamp = min(offsets[position] + (token - vocab.timestamp_begin) * TIME_PRECISION, duration)
            if text:
                decoded.append(
                    _segment(tokens, text, times, vocab, start if start is not None else last, stamp)
                )
                text, start = [], None
            else:
                start = stamp
            last = stamp
    if text:  # the window ended inside a segment: it runs to its last word, or the window's end
        end = min(times[text[-1]], duration) if times is not None else duration
        decoded.append(_segment(tokens, text, times, vocab, start if start is not None else last, end))
    return [(segment, words) for segment, words in decoded if segment.text]


def _seek_offsets(tokens: Sequence[int], vocab: Vocabulary) -> list[float]:
    """Where each token's clock starts, in seconds into the window.

    transformers decodes a window's unfinished last segment again from that segment's
    start and appends the result, whose timestamps and token times restart at 0.0
    (`... <|24.00|><|24.00|><|0.00|> text <|5.00|>`). Time running backwards marks
    such a seek; everything after it is shifted by the last time reached before it.
    """
    offsets: list[float] = []
    offset = last = 0.0
    for token in tokens:
        if token >= vocab.timestamp_begin:
            stamp = (token - vocab.timestamp_begin) * TIME_PRECISION
            if offset + stamp < last:
                offset = last
            last = offset + stamp
        offsets.append(offset)
    return offsets


def _segment(
    tokens: Sequence[int],
    text: list[int],
    times: Sequence[float] | None,
    vocab: Vocabulary,
    start: float,
    end: float,
) -> tuple[Segment, tuple[Word, ...]]:
    segment = Segment(
        round(start, 3), round(max(end, start), 3), vocab.decode([tokens[p] for p in text]).strip()
    )
    if times is None:
        return segment, ()
    return segment, tuple(_words(tokens, text, times, vocab))


def _words(tokens: Sequence[int], text: list[int], times: Sequence[float], vocab: Vocabulary) -> list[Word]:
    groups: list[list[int]] = []
    for position in text:
        piece = vocab.decode([tokens[position]])
        if not groups or (piece.startswith(" ") and _has_letters(groups[-1], tokens, vocab)):
            groups.append([position])
        else:
            groups[-1].append(position)
    spans = []
    for group in groups:
        begin = float(times[group[0] - 1]) if group[0] > 0 else float(times[0])
        spans.append((begin, max(float(times[group[-1]]), begin)))
    longest = _longest_word(spans)
    words = []
    for n, (group, (begin, end)) in enumerate(zip(groups, spans, strict=True)):
        if end - begin > longest:  # stretched over silence: the first word keeps its end, others their start
            begin, end = (end - longest, end) if n == 0 else (begin, begin + longest)
        words.append(Word(round(begin, 3), round(end, 3), vocab.decode([tokens[p] for p in group])))
    return words


def _longest_word(spans: list[tuple[float, float]]) -> float:
    durations = sorted(end - begin for begin, end in spans if end > begin)
    median = durations[len(durations) // 2] if durations else 0.7
    return 2 * min(median, 0.7)


def _has_letters(group: list[int], tokens: Sequence[int], vocab: Vocabulary) -> bool:
    return bool(vocab.decode([tokens[p] for p in group]).strip())
