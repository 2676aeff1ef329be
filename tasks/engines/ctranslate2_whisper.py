"""Whisper on CTranslate2 (faster-whisper): the CPU engine and the embedded default.

Defaults are chosen for accuracy first: float32 on CPU (int8 cost words on real
speech), float16 on CUDA, greedy decoding at temperature 0 (deterministic), no
conditioning on previous text (the usual cause of repetition loops in batch use).
Short clips are packed into shared 30 s windows (see `packing.py`); files longer than
one window are cut at pauses by voice-activity detection and their windows decoded as
one batch (faster-whisper's `BatchedInferencePipeline`), with caption cues rebuilt
from word timestamps (see `words.py`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tasks.engines.base import EngineConfig, EngineError
from tasks.engines.options import CTranslate2Options, engine_options
from tasks.engines.packing import build_pack, plan_packs, split_pack
from tasks.engines.words import caption_segments, transcript_of
from tasks.records import Clip, Segment, Transcript, Word

log = logging.getLogger(__name__)

# Packed audio stays inside one 30 s window, with margin for the timestamps. Measured
# with tiny.en, greedy, on 40 Harvard sentences spoken by espeak-ng in 4 voices
# (bench_pipeline_vs_loop.py, now bench/bench_throughput.py): one clip per window WER 0.403; packed into 28 s
# windows 0.229, 20 s 0.244, 14 s 0.254 — a clip alone is the worst case for Whisper.
WINDOW_S = 28.0
GAP_S = 1.0  # silence between packed clips
PACK_MAX_CLIP_S = 20.0  # longer clips gain little from packing: transcribe them alone
PACK_ROUNDS = 2  # clips of a window that split unclearly are packed once more, then decoded alone
# The retry of a file the quality guards flagged (see `safer`): beam search, and a window
# whose text compresses > 2.4× or scores < -1 avg log-prob is decoded again at the next
# temperature. Whisper's full schedule (0.0 to 1.0 by 0.2, best of 5) cost 6-13× the
# default decode on a clip of truly repeated speech (every step fails the ratio check);
# three steps, best of 2, cost ~3.5× (tiny.en, 14 s clip, 2 CPU threads).
SAFER_TEMPERATURES = (0.0, 0.4, 0.8)
SAFER_BEST_OF = 2
SAFER_BEAM_SIZE = 5
# Long files: windows of one file decoded together. Measured on three ~2 min files of
# espeak-ng speech (tiny.en, float32, greedy, 2 CPU cores, quiet machine): the per-file
# loop 13.9 s, WER 0.179; batched 8 windows 9.5 s, WER 0.184. Letting the batched decoder
# emit timestamps cost 2 WER points, so cues come from word timestamps instead: +33 % decode
# time (10.1 → 13.4 s on the same files). The batched pipeline runs its own Silero pass to cut
# windows, after the guards' VAD (tasks/quality/guarded.py) already ran: ~3 % of the decode, left as is.
LONG_FORM_MIN_S = 30.0  # longer than one window
CPU_BATCH = 8
CUDA_BATCH = 16


class CTranslate2Whisper:
    engine = "ctranslate2"

    def __init__(self, config: EngineConfig, model: str, cpu_threads: int = 0) -> None:
        try:
            import ctranslate2
            from faster_whisper import BatchedInferencePipeline, WhisperModel
        except ImportError as error:  # pragma: no cover - faster-whisper is a base dependency
            raise EngineError("the ctranslate2 engine requires the faster-whisper package") from error
        self.config = config
        self.model = model
        self.device = config.device
        if self.device == "auto":
            self.device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.compute_type = config.compute_type
        if self.compute_type == "auto":
            self.compute_type = "float16" if self.device == "cuda" else "float32"
        try:
            self._whisper = WhisperModel(
                model, device=self.device, compute_type=self.compute_type, cpu_threads=cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise EngineError(f"cannot load CTranslate2 Whisper model from {model}: {error}") from error
        self.language = config.language or (None if self._whisper.model.is_multilingual else "en")
        self.temperatures: tuple[float, ...] = (0.0,)
        self.long_form = engine_options(config, CTranslate2Options).long_form
        self.batch_size = config.batch_size or (CUDA_BATCH if self.device == "cuda" else CPU_BATCH)
        self._batched = BatchedInferencePipeline(self._whisper)
        log.info("ctranslate2 whisper %s on %s (%s, long files %s, batch %d)", model, self.device,
                 self.compute_type, self.long_form, self.batch_size)

    def settings(self) -> dict[str, str]:
        settings = {"device": self.device, "compute_type": self.compute_type, "beam_size": str(self.config.beam_size),
                    "long_form": self.long_form, "batch_size": str(self.batch_size)}
        if len(self.temperatures) > 1:
            settings |= {"temperature": ",".join(map(str, self.temperatures)), "packing": "off"}
        return settings

    def safer(self) -> CTranslate2Whisper:
        """A twin for the quality retry, sharing the loaded model: beam search, temperature
        fallback, one clip per window, still no conditioning on previous text."""
        twin = copy.copy(self)
        twin.config = replace(self.config, pack_short_clips=False, beam_size=max(SAFER_BEAM_SIZE, self.config.beam_size))
        twin.temperatures = SAFER_TEMPERATURES
        twin.long_form = "sequential"  # the batched decoder has no temperature fallback
        return twin

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        results: list[Transcript | None] = [None] * len(clips)
        pending = [i for i, c in enumerate(clips) if self.config.pack_short_clips and c.duration_s <= PACK_MAX_CLIP_S]
        for _ in range(PACK_ROUNDS):  # a clip whose window split unclearly gets one more, with other neighbours
            unclear: list[int] = []
            for members in plan_packs([clips[i].duration_s for i in pending], WINDOW_S, GAP_S):
                indices = [pending[m] for m in members]
                if len(indices) == 1:
                    continue  # alone in its window: decoded alone below
                pack = build_pack([c.samples for c in clips], indices, GAP_S)
                segments, language = self._decode(pack.samples, word_timestamps=True)
                split = split_pack(pack, segments, GAP_S, language) or [None] * len(indices)
                for index, transcript in zip(indices, split, strict=True):
                    results[index] = transcript
                unclear += [index for index, transcript in zip(indices, split, strict=True) if transcript is None]
            if unclear:
                log.info("%d packed clips split unclearly: packed again or decoded alone", len(unclear))
            pending = unclear
        for index, clip in enumerate(clips):
            if results[index] is not None:
                continue
            if self.long_form == "batched" and clip.duration_s > LONG_FORM_MIN_S:
                results[index] = self._decode_long(clip.samples)
            else:
                segments, language = self._decode(clip.samples, self.config.word_timestamps)
                results[index] = _as_transcript(segments, language)
        return [r for r in results if r is not None]

    def _decode_long(self, samples: Any) -> Transcript:
        """One file's windows as one batch; cues rebuilt from the words (see `words.py`)."""
        chunks, info = self._batched.transcribe(
            samples,
            language=self.language,
            beam_size=self.config.beam_size,
            temperature=self.temperatures[0],
            condition_on_previous_text=False,
            word_timestamps=True,
            batch_size=self.batch_size,
        )
        chunks = list(chunks)
        words = tuple(Word(_sec(w.start), _sec(w.end), w.word, round(float(w.probability), 4))
                      for c in chunks for w in c.words or ())
        segments = caption_segments(words) if words else tuple(
            Segment(_sec(c.start), _sec(c.end), c.text.strip()) for c in chunks if c.text.strip()
        )
        return Transcript(
            text=" ".join(c.text.strip() for c in chunks if c.text.strip()),
            segments=segments,
            words=words if self.config.word_timestamps else (),
            language=info.language,
            info={"decode": "batched"},
        )

    def _decode(self, samples: Any, word_timestamps: bool) -> tuple[list[tuple[Segment, tuple[Word, ...]]], str]:
        segments, info = self._whisper.transcribe(
            samples,
            language=self.language,
            beam_size=self.config.beam_size,
            temperature=list(self.temperatures),
            best_of=SAFER_BEST_OF,
            condition_on_previous_text=False,
            word_timestamps=word_timestamps,
        )
        decoded = [
            (
                Segment(_sec(s.start), _sec(s.end), s.text.strip()),
                tuple(Word(_sec(w.start), _sec(w.end), w.word, round(float(w.probability), 4)) for w in s.words or ()),
            )
            for s in segments
        ]
        return decoded, info.language


def _as_transcript(segments: list[tuple[Segment, tuple[Word, ...]]], language: str) -> Transcript:
    return transcript_of(segments, language)


def _sec(t: float) -> float:
    return round(float(t), 3)
