"""Whisper output tokens → segments and words, on the window's clock.

Segments come from the timestamp tokens the model emits (`<|t0|> text <|t1|>`).
Words come from the per-token times transformers computes from cross-attention
(`return_token_timestamps`): `times[i]` is when token `i` ends, so a word made of
tokens a..b spans `times[a-1]`..`times[b]`. A token that starts with a space starts
a word; punctuation and word pieces join the word before them.
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


def parse_tokens(tokens: Sequence[int], times: Sequence[float] | None, vocab: Vocabulary, duration: float) -> Decoded:
    """Segments (and words when `times` is given) from one window's generated tokens."""
    decoded: Decoded = []
    start: float | None = None
    last = 0.0
    text: list[int] = []  # positions of the open segment's text tokens
    for position, token in enumerate(tokens):
        if token == vocab.eot:
            break
        if token >= vocab.timestamp_begin:
            stamp = min((token - vocab.timestamp_begin) * TIME_PRECISION, duration)
            if text:
                decoded.append(_segment(tokens, text, times, vocab, start if start is not None else last, stamp))
                text, start = [], None
            else:
                start = stamp
            last = stamp
        elif token < vocab.eot:
            text.append(position)
    if text:  # the window ended inside a segment: it runs to its last word, or the window's end
        end = min(times[text[-1]], duration) if times is not None else duration
        decoded.append(_segment(tokens, text, times, vocab, start if start is not None else last, end))
    return decoded


def _segment(
    tokens: Sequence[int], text: list[int], times: Sequence[float] | None, vocab: Vocabulary, start: float, end: float
) -> tuple[Segment, tuple[Word, ...]]:
    segment = Segment(round(start, 3), round(max(end, start), 3), vocab.decode([tokens[p] for p in text]).strip())
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
    words = []
    for group in groups:
        begin = float(times[group[0] - 1]) if group[0] > 0 else float(times[0])
        words.append(Word(round(begin, 3), round(max(float(times[group[-1]]), begin), 3),
                          vocab.decode([tokens[p] for p in group])))
    return words


def _has_letters(group: list[int], tokens: Sequence[int], vocab: Vocabulary) -> bool:
    return bool(vocab.decode([tokens[p] for p in group]).strip())
