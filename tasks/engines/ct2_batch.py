"""Many files' windows through CTranslate2 Whisper as one batch, each window on its own.

Why not packing: clips packed into one 30 s window are heard together, so one clip's
text depends on which clips share its window (measured: "an ill disposed young man"
became "an old-sposed young man" with other neighbours). Here every file keeps its own
window(s): a clip up to 30 s is one window; a longer file's speech (Silero VAD, as
faster-whisper's `BatchedInferencePipeline` finds it: pauses over 160 ms dropped, 0.4 s of
padding kept) is joined into windows of at most 30 s, and times are mapped back afterwards.
Windows of all files are sorted by length and encoded and decoded together in batches
(CTranslate2's `encode` / `generate`), as `BatchedInferencePipeline` does within one file.
Nothing carries from one window to the next, so a window's tokens are the same whatever
shares its batch (CTranslate2 computes each row of a batch on its own; the test compares
tokens alone and in three mixes).

Whisper pads every window to 30 s before its encoder, so a 3 s clip costs a 30 s encoder pass
(0.15-0.17 s of a 2-core CPU for tiny.en, ~4x its batched greedy decode). With `fit_context` (opt-in,
`audio_context: fit`) a clip shorter than that is encoded at its own length plus at least 2 s of
padding, rounded up to 5 s and never under 15 s (`encoder_frames`; CTranslate2's encoder takes any
length up to 30 s), and clips of one length are batched together. It is 2-3x as fast on clips,
but the model then hears what it was not trained on: at 7.5 s tiny.en loops on 3 s clips, and on held-out
real speech it read worse even at 15 s, so the default is `full` (figures for tiny.en and base:
bench/results/audio_context_cpu.md). A window's length is its own, so its text does not depend on its
neighbours either way.
The other gain is the decoder: one step for the whole batch instead of one per file.

A clip up to 30 s is decoded with Whisper's timestamp tokens, as faster-whisper's
sequential decoder does (same tokens as the plain loop), and its segments are the cues.
A long file's windows are decoded as text only, as `BatchedInferencePipeline` does: on the
suite's long files timestamp tokens cost WER (0.108 against 0.077 on a 3 min file), so
cues are sentences timed by their share of the window's speech, or from the words when
word times are asked for. Word times (cross-attention alignment, +33 % on CPU) only on
request, and then one window at a time, since faster-whisper's aligner carries state
across a batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.engines.lanes import Lanes
from tasks.engines.windows import batches
from tasks.engines.words import caption_groups, segment_of, transcript_of
from tasks.records import SAMPLE_RATE, Clip, Segment, Transcript, Word

WINDOW_S = 30.0
# `fit_context`: the encoder hears a short window plus >= CONTEXT_PAD_S of silence, in steps of
# CONTEXT_STEP_S, at least MIN_CONTEXT_S (7.5 s made tiny.en loop on 3 s clips; see the module docstring)
MIN_CONTEXT_S, CONTEXT_STEP_S, CONTEXT_PAD_S = 15.0, 5.0, 2.0
MAX_INITIAL_TIMESTAMP_S = 1.0  # faster-whisper's default for the first timestamp of a window
PUNCTUATION = ("\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")  # faster-whisper's word-merging defaults


Decoded = tuple[list[tuple[Segment, tuple[Word, ...]]], str | None]  # a window's segments and language


@dataclass(frozen=True, slots=True)
class Window:
    """At most 30 s of one clip: which clip, and the stretches of the clip (start, end seconds on its
    clock) that were joined end to end to make `samples`."""

    clip: int
    pieces: tuple[tuple[float, float], ...]
    samples: npt.NDArray[np.float32]
    timestamps: bool = True  # decode Whisper's timestamp tokens (a whole clip), or text only (a long file)

    def clip_time(self, t: float, is_end: bool = False) -> float:
        """A time on the window's clock, on the clip's; an end time at a join stays in the piece before."""
        position = 0.0
        for start, end in self.pieces:
            length = end - start
            if t < position + length or (is_end and t <= position + length):
                return round(start + max(t - position, 0.0), 3)
            position += length
        return round(self.pieces[-1][1], 3)

    def clip_span(self, start: float, end: float) -> tuple[float, float]:
        """A word's times on the clip's clock, both in the piece that holds its midpoint (as faster-whisper
        restores them), so a word at a join does not stretch over the pause that was cut out."""
        middle, position = (start + end) / 2, 0.0
        for first, last in self.pieces:
            if middle < position + last - first or (first, last) == self.pieces[-1]:
                a = min(max(first + start - position, first), last)
                return round(a, 3), round(min(max(first + end - position, a), last), 3)
            position += last - first
        raise AssertionError("unreachable: the last piece takes every time")


@dataclass(frozen=True, slots=True)
class Decoding:
    """What changes the tokens: beam size and whether word times are aligned."""

    beam_size: int = 1
    word_timestamps: bool = False


def plan_windows(clips: Sequence[Clip]) -> list[Window]:
    """Every clip's windows, in clip order: one for a clip up to 30 s, else its speech in windows of 30 s."""
    windows: list[Window] = []
    for index, clip in enumerate(clips):
        if clip.duration_s <= WINDOW_S:
            windows.append(Window(index, ((0.0, clip.duration_s),), clip.samples))
        else:
            windows += _speech_windows(index, clip.samples, clip.speech)
    return windows


def _speech_windows(
    index: int, samples: npt.NDArray[np.float32], speech: tuple[tuple[float, float], ...] | None = None
) -> list[Window]:
    """Speech spans joined greedily into windows of at most 30 s (faster-whisper's `collect_chunks`).

    The spans are the clip's own when the quality guards' VAD found them already, else found here by
    the same call (`detect_speech`: a long clip's `windows`, searched as `BatchedInferencePipeline` does)."""
    from tasks.quality.vad import detect_speech, group_spans

    if speech is None:
        speech = detect_speech(samples).windows or ()
    windows = []
    for group in group_spans(speech, WINDOW_S):
        cuts = [(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)) for start, end in group]
        windows.append(Window(index, tuple((a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in cuts),
                              np.concatenate([samples[a:b] for a, b in cuts]), timestamps=False))
    return windows


def encoder_frames(samples: int, fit_context: bool, full: int = 3000, per_second: int = 100,
                   fit: tuple[float, float, float] | None = None) -> int:
    """Mel frames the encoder hears for a window of `samples`: Whisper's whole 30 s (`full`), or with
    `fit_context` the window plus at least CONTEXT_PAD_S, rounded up to CONTEXT_STEP_S, at least
    MIN_CONTEXT_S (or another `fit`: pad, step, least, in seconds). It depends on the window alone, never
    on what shares its batch."""
    if not fit_context:
        return full
    pad, step, least = fit or (CONTEXT_PAD_S, CONTEXT_STEP_S, MIN_CONTEXT_S)
    seconds = max(least, math.ceil((samples / SAMPLE_RATE + pad) / step) * step)
    return min(full, round(seconds * per_second))


class BatchDecoder:
    """Greedy (or beam) decoding of windows in batches on a loaded faster-whisper `WhisperModel`."""

    def __init__(self, whisper: Any, language: str | None, batch_size: int, encode_batch: int | None = None,
                 fit_context: bool = False, lanes: Lanes | None = None) -> None:
        """`batch_size` windows are decoded together; on the CPU they are encoded `encode_batch` at a time;
        with `fit_context` a short window's encoder input is cut to its own length (`encoder_frames`).
        With `lanes` (the model's CPU replicas, `lanes.py`) the encoder calls and the batch's decoding
        are spread over them, a share of the rows each.

        Why two sizes: on the CPU the decoder gains from wide batches (one step for every row: 32 rows
        took 8.6 s where batches of 8 took 14.4 s on a 20-minute file) but the encoder does not (0.15 s
        a window one at a time on two lanes, 0.19 s four at a time on one), while its attention scores
        cost ~54 MB a window at once (tiny.en; a batch of 32 peaked at 3.1 GB)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._whisper, self.batch_size, self.encode_batch = whisper, batch_size, encode_batch
        self._lanes = lanes or Lanes(1)
        self.fit_context = fit_context
        # language None (a multilingual model, no language given): detected per window, as
        # `BatchedInferencePipeline(multilingual=True)` does; a file gets its first window's
        self._detect = language is None
        self._tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual, task="transcribe",
                                    language=language or "en")
        self._prompts = {ts: whisper.get_prompt(self._tokenizer, [], without_timestamps=not ts) for ts in (True, False)}
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])

    def transcribe(self, clips: Sequence[Clip], decoding: Decoding) -> list[Transcript]:
        windows = plan_windows(clips)
        decoded = self.decode(windows, decoding)
        pieces: list[list[tuple[Segment, tuple[Word, ...]]]] = [[] for _ in clips]
        languages: list[str | None] = [None] * len(clips)
        for window, (segments, language) in zip(windows, decoded, strict=True):
            restored = [_restored(s, w, window) for s, w in segments]
            # a long file's cues from its words, once they are on the clip's clock (a cue never spans a cut pause)
            timed = window.timestamps or not decoding.word_timestamps
            pieces[window.clip] += restored if timed else _word_cues(restored)
            languages[window.clip] = languages[window.clip] or language
        return [_transcript(p, decoding.word_timestamps, clip.duration_s, language)
                for p, clip, language in zip(pieces, clips, languages, strict=True)]

    def decode(self, windows: Sequence[Window], decoding: Decoding) -> list[Decoded]:
        """Each window's segments (and words if asked) on the window's clock and its language, in order."""
        out: list[Decoded] = [([], None) for _ in windows]
        for rows in self._batches(windows):
            for index, segments in zip(rows, self._decode_batch([windows[i] for i in rows], decoding), strict=True):
                out[index] = segments
        return out

    def _frames(self, window: Window) -> int:
        """A whole clip's window is fitted; a long file's windows keep 30 s: nearly all of them are full
        anyway, and a short last window per piece would be a batch of its own (11 decode batches where 6
        did on the suite's long files, 1.1x slower)."""
        extractor = self._whisper.feature_extractor
        return encoder_frames(len(window.samples), self.fit_context and window.timestamps, extractor.nb_max_frames,
                              SAMPLE_RATE // extractor.hop_length)

    def _batches(self, windows: Sequence[Window]) -> list[list[int]]:
        """Window indices in batches of one prompt kind (timestamps or not) and one encoder length, longest
        first; empty windows skipped."""
        kinds: dict[tuple[bool, int], list[int]] = {}
        for i, window in enumerate(windows):
            if len(window.samples):
                kinds.setdefault((window.timestamps, self._frames(window)), []).append(i)
        grouped = []
        for _, kind in sorted(kinds.items(), key=lambda item: (not item[0][0], -item[0][1])):
            grouped += [[kind[b] for b in batch] for batch in batches([len(windows[i].samples) for i in kind],
                                                                       self.batch_size)]
        return grouped

    def tokens(self, windows: Sequence[Window], beam_size: int = 1) -> list[list[int]]:
        """The raw token ids of each window (timestamps included), in the order given."""
        out: list[list[int]] = [[] for _ in windows]
        for batch in self._batches(windows):
            chosen = [windows[i] for i in batch]
            results, _ = self._generate(self._encode(chosen, to_cpu=False), chosen[0].timestamps, beam_size)
            for index, result in zip(batch, results, strict=True):
                out[index] = list(result.sequences_ids[0])
        return out

    def _decode_batch(self, windows: Sequence[Window], decoding: Decoding) -> list[Decoded]:
        encoded = self._encode(windows, to_cpu=decoding.word_timestamps)
        results, languages = self._generate(encoded, windows[0].timestamps, decoding.beam_size, len(windows))
        whisper, tokenizer = self._whisper, self._tokenizer
        decoded: list[Decoded] = []
        for row, (window, result) in enumerate(zip(windows, results, strict=True)):
            duration = len(window.samples) / SAMPLE_RATE
            frames = round(duration * whisper.frames_per_second)
            segments = [s for s in _split(whisper, tokenizer, list(result.sequences_ids[0]), frames, duration)
                        if any(t < tokenizer.eot for t in s["tokens"])]
            if decoding.word_timestamps and segments:
                self._align(segments, encoded, row, frames)
            parts = [_segment(tokenizer, s, duration) for s in segments]
            text_only = not (window.timestamps or decoding.word_timestamps)
            decoded.append((_sentence_cues(parts, duration) if text_only else parts, languages[row]))
        return decoded

    def _encode(self, windows: Sequence[Window], to_cpu: bool) -> Any:
        """The windows' encoder output, `encode_batch` windows at a time on the CPU (see `__init__`); the
        windows share one encoder length (`_batches`)."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_ctranslate2_storage

        extract, model = self._whisper.feature_extractor, self._whisper.model
        frames = self._frames(windows[0])
        features = np.stack([pad_or_trim(extract(w.samples)[..., :-1], frames) for w in windows])
        step = self.encode_batch or len(windows)
        if model.device != "cpu" or step >= len(windows):
            return model.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)
        # features made here first: made in the lanes (43 s against 40 s on the suite's 180 real prompts) or
        # beside them (39-40 s against 38-40 s) they were no faster
        parts = self._lanes.map(lambda i: np.asarray(model.encode(get_ctranslate2_storage(features[i : i + step]),
                                                                  to_cpu=True)), range(0, len(windows), step))
        return ctranslate2.StorageView.from_array(np.concatenate(parts))

    def _generate(self, encoded: Any, timestamps: bool, beam_size: int, rows: int = 0) -> tuple[list[Any], list[str]]:
        """Each row's result and language; on CPU lanes, a share of the rows on each lane (`Lanes.split`)."""
        rows = rows or int(encoded.shape[0])
        shares = self._lanes.split(rows)  # one share on a GPU: its model has one lane
        if len(shares) < 2:
            return self._generate_rows(encoded, timestamps, beam_size, rows)
        import ctranslate2

        every = np.asarray(encoded)
        done = self._lanes.map(lambda share: self._generate_rows(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(every[share])), timestamps, beam_size,
            len(share)), shares)
        results: list[Any] = [None] * rows
        languages: list[str] = [""] * rows
        for share, (share_results, share_languages) in zip(shares, done, strict=True):
            for row, result, language in zip(share, share_results, share_languages, strict=True):
                results[row], languages[row] = result, language
        return results, languages

    def _generate_rows(self, encoded: Any, timestamps: bool, beam_size: int, rows: int) -> tuple[list[Any], list[str]]:
        """Each row's result and language; every row gets the same prompt but for its language token."""
        whisper, tokenizer = self._whisper, self._tokenizer
        prompts = [list(self._prompts[timestamps]) for _ in range(rows)]
        languages = [tokenizer.language_code] * rows
        if self._detect:
            detected = [row[0][0] for row in whisper.model.detect_language(encoded)]  # e.g. "<|de|>"
            position = prompts[0].index(tokenizer.language)
            for prompt, token in zip(prompts, detected, strict=True):
                prompt[position] = tokenizer.tokenizer.token_to_id(token)
            languages = [token.strip("<|>") for token in detected]
        results = whisper.model.generate(
            encoded, prompts, beam_size=beam_size, max_length=whisper.max_length,
            suppress_blank=True, suppress_tokens=self._suppress,
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP_S / whisper.time_precision),
        )
        return list(results), languages

    def _align(self, segments: list[dict[str, Any]], encoded: Any, row: int, frames: int) -> None:
        """Word times for one window's segments, from its own row of the encoder output."""
        import ctranslate2

        own = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[row : row + 1]))
        self._whisper.add_word_timestamps([segments], self._tokenizer, own, [frames], *PUNCTUATION, 0.0)


def _transcript(
    pieces: list[tuple[Segment, tuple[Word, ...]]], words: bool, duration: float, language: str | None
) -> Transcript:
    info = {"decode": "batched"} if duration > WINDOW_S else {}
    return transcript_of([(s, ws) for s, ws in pieces if s.text], language, keep_words=words, info=info)


def _word_cues(parts: list[tuple[Segment, tuple[Word, ...]]]) -> list[tuple[Segment, tuple[Word, ...]]]:
    """Caption cues from a text-only window's aligned words (`words.py`), each with its words."""
    return [(segment_of(group), tuple(group)) for group in caption_groups([w for _, ws in parts for w in ws])]


def _sentence_cues(
    parts: list[tuple[Segment, tuple[Word, ...]]], duration: float
) -> list[tuple[Segment, tuple[Word, ...]]]:
    """Cues for a window decoded as text only, without word times: each sentence timed by its share of
    the window's characters. The window holds only speech (pauses were cut out), so characters track
    time well enough for a cue; `--word-timestamps` gives exact ones."""
    text = " ".join(s.text for s, _ in parts).strip()
    sentences = [t for t in re.split(r"(?<=[.!?])\s+", text) if t]
    total, done = sum(map(len, sentences)) or 1, 0
    cues: list[tuple[Segment, tuple[Word, ...]]] = []
    for sentence in sentences:
        start = duration * done / total
        done += len(sentence)
        cues.append((Segment(_clamp(start, duration), _clamp(duration * done / total, duration), sentence), ()))
    return cues


def _split(whisper: Any, tokenizer: Any, tokens: list[int], frames: int, duration: float) -> list[dict[str, Any]]:
    """faster-whisper's own cut of a window's tokens into timestamped segments (seek 0: window clock)."""
    segments, _seek, _single = whisper._split_segments_by_timestamps(
        tokenizer=tokenizer, tokens=tokens, time_offset=0.0, segment_size=frames, segment_duration=duration, seek=0,
    )
    return list(segments)


def _segment(tokenizer: Any, raw: dict[str, Any], duration: float) -> tuple[Segment, tuple[Word, ...]]:
    text = tokenizer.decode([t for t in raw["tokens"] if t < tokenizer.eot]).strip()
    start, end = _clamp(raw["start"], duration), _clamp(raw["end"], duration)
    words = tuple(Word(_clamp(w["start"], duration), _clamp(w["end"], duration), w["word"],
                       round(float(w["probability"]), 4)) for w in raw.get("words", ()))
    return Segment(start, max(start, end), text), words


def _restored(segment: Segment, words: tuple[Word, ...], window: Window) -> tuple[Segment, tuple[Word, ...]]:
    """Times on the clip's clock (identity for a window that is a whole clip)."""
    if len(window.pieces) == 1 and window.pieces[0][0] == 0.0:
        return segment, words
    at = window.clip_time
    return (Segment(at(segment.start), max(at(segment.start), at(segment.end, True)), segment.text),
            tuple(Word(*window.clip_span(w.start, w.end), w.word, w.probability) for w in words))


def _clamp(t: float, duration: float) -> float:
    return round(min(max(float(t), 0.0), duration), 3)
