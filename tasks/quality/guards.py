"""Quality guards: pure checks over one transcript that name what looks wrong with it.

Each check returns flag names for the manifest's `quality_flags` column. They catch
the usual failures of Whisper-style models in unattended batch use:

- `repetition_loop`: an n-gram (1 to 20 words) repeated back to back 4 or more times;
- `high_compression_ratio`: some ~400-character stretch of the text compresses with
  zlib by more than 2.4× (Whisper's own threshold per 30 s window; natural English
  is ~1.5, a looping decoder 3 or more). Measured per stretch, not over the whole
  file, because a long file of ordinary speech compresses well as a whole;
- `chars_per_second_high` / `_low`: text per second of detected speech outside
  3 to 30 (normal speech is 10 to 20), on files with at least 2 s of speech;
- `empty_text_on_speech`: no text although the detector found ≥ 1 s of speech;
- `text_without_speech`: text although the detector found no speech (invented text);
- `timestamps_not_monotonic` / `timestamps_past_end`: segment or word times that go
  backwards, or end more than 0.5 s after the file does;
- `no_speech`: the detector found no speech. Informational: the file is `ok`, empty.

All flags but `no_speech` make the file eligible for one retry with a safer decode.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from tasks.records import Segment, Transcript, Word

NO_SPEECH = "no_speech"
INFORMATIONAL = frozenset({NO_SPEECH, "canary_failed"})


@dataclass(frozen=True, slots=True)
class GuardLimits:
    loop_min_repeats: int = 4
    loop_max_ngram: int = 20
    max_compression_ratio: float = 2.4
    ratio_window_chars: int = 400
    min_chars_per_s: float = 3.0
    max_chars_per_s: float = 30.0
    min_speech_for_rate_s: float = 2.0
    min_speech_for_empty_s: float = 1.0
    time_tolerance_s: float = 0.5


def check_transcript(
    transcript: Transcript, duration_s: float, speech_s: float | None, limits: GuardLimits = GuardLimits()
) -> tuple[str, ...]:
    """Every guard over one transcript; `speech_s` None means no detector ran."""
    flags: list[str] = []
    text = transcript.text.strip()
    if has_loop(text, limits.loop_min_repeats, limits.loop_max_ngram):
        flags.append("repetition_loop")
    if max_compression_ratio(text, limits.ratio_window_chars) > limits.max_compression_ratio:
        flags.append("high_compression_ratio")
    flags += _rate_flags(text, duration_s, speech_s, limits)
    flags += _timestamp_flags(transcript.segments, transcript.words, duration_s, limits.time_tolerance_s)
    return tuple(flags)


def retry_flags(flags: Sequence[str]) -> tuple[str, ...]:
    """The flags that a safer decode might fix."""
    return tuple(f for f in flags if f not in INFORMATIONAL)


def has_loop(text: str, min_repeats: int, max_ngram: int) -> bool:
    """Some run of 1..max_ngram words repeated back to back `min_repeats` times or more."""
    words = re.findall(r"[\w']+", text.lower())
    for n in range(1, max_ngram + 1):
        run = 0  # how many words in a row equal the word n places before them
        for i in range(n, len(words)):
            run = run + 1 if words[i] == words[i - n] else 0
            if run >= n * (min_repeats - 1):
                return True
    return False


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def max_compression_ratio(text: str, window_chars: int) -> float:
    """The worst ratio over overlapping stretches of about `window_chars` characters."""
    if len(text) <= window_chars:
        return compression_ratio(text)
    step = window_chars // 2
    return max(compression_ratio(text[i : i + window_chars]) for i in range(0, len(text) - step, step))


def _rate_flags(text: str, duration_s: float, speech_s: float | None, limits: GuardLimits) -> list[str]:
    if speech_s is not None and speech_s <= 0.0:
        return ["text_without_speech"] if text else []
    basis = duration_s if speech_s is None else speech_s
    if not text:
        return ["empty_text_on_speech"] if speech_s is not None and basis >= limits.min_speech_for_empty_s else []
    if basis < limits.min_speech_for_rate_s:
        return []
    rate = len(text) / basis
    if rate > limits.max_chars_per_s:
        return ["chars_per_second_high"]
    return ["chars_per_second_low"] if rate < limits.min_chars_per_s else []


def _timestamp_flags(
    segments: Sequence[Segment], words: Sequence[Word], duration_s: float, tolerance_s: float
) -> list[str]:
    flags = []
    if not (_monotonic([(s.start, s.end) for s in segments]) and _monotonic([(w.start, w.end) for w in words])):
        flags.append("timestamps_not_monotonic")
    ends = [s.end for s in segments] + [w.end for w in words]
    if ends and max(ends) > duration_s + tolerance_s:
        flags.append("timestamps_past_end")
    return flags


def _monotonic(spans: Sequence[tuple[float, float]], epsilon: float = 0.01) -> bool:
    previous = float("-inf")
    for start, end in spans:
        if start < 0 or end + epsilon < start or start + epsilon < previous:
            return False
        previous = start
    return True


def badness(transcript: Transcript, flags: Sequence[str], limits: GuardLimits = GuardLimits()) -> tuple[int, float]:
    """Lower is better: how many fixable flags, then the worst compression ratio."""
    return len(retry_flags(flags)), round(max_compression_ratio(transcript.text, limits.ratio_window_chars), 3)
