"""Whisper on CTranslate2 (faster-whisper): the CPU engine and the embedded default.

Defaults are chosen for accuracy first: float32 on CPU (int8 cost words on real
speech), float16 on CUDA, greedy decoding at temperature 0 (deterministic), no
conditioning on previous text (the usual cause of repetition loops in batch use).
A file's text does not depend on the files it is transcribed with: every file keeps its
own window(s) and the windows of all files in a batch are encoded and decoded together
(`ct2_batch.py`). Packing short clips into shared windows (`packing.py`) is opt-in
(`pack_short_clips`): slower than the default since clips are encoded at their own length
(`audio_context`), lower WER on tiny.en, and a packed clip's text depends on its neighbours.
Its own options are typed in `options.py` (`CTranslate2Options`); the rest are `RunConfig` fields.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tasks.engines.base import EngineConfig, EngineError
from tasks.engines.ct2_batch import WINDOW_S as WINDOW_S_BATCH
from tasks.engines.ct2_batch import BatchDecoder, Decoding
from tasks.engines.lanes import Lanes, cpu_lanes
from tasks.engines.options import CTranslate2Options, engine_options
from tasks.engines.packing import build_pack, plan_packs, split_pack
from tasks.engines.words import transcript_of
from tasks.records import Clip, Segment, Transcript, Word

log = logging.getLogger(__name__)


# Opt-in packing (`packing.py`): clips up to PACK_MAX_CLIP_S share 28 s windows with 1 s of
# silence between them; a clip whose window split unclearly is packed once more, then decoded alone.
WINDOW_S, GAP_S, PACK_MAX_CLIP_S, PACK_ROUNDS = 28.0, 1.0, 20.0, 2
# The retry of a file the quality guards flagged (see `safer`): beam search, and a window
# whose text compresses > 2.4x or scores < -1 avg log-prob is decoded again at the next
# temperature. Whisper's full schedule (0.0 to 1.0 by 0.2, best of 5) cost 6-13x the
# default decode on a clip of truly repeated speech (every step fails the ratio check);
# three steps, best of 2, cost ~3.5x (tiny.en, 14 s clip, 2 CPU threads).
SAFER_TEMPERATURES = (0.0, 0.4, 0.8)
SAFER_BEST_OF = 2
SAFER_BEAM_SIZE = 5
# On the CPU the gain of a batch is the decoder's (one step for all rows); the encoder gains nothing
# from it and its attention scores cost ~54 MB a window at once (tiny.en), so windows are encoded one
# at a time on each of the model's lanes (`lanes.py`) and decoded 32 at a time, a share on each lane
# (`ct2_batch.BatchDecoder`). On a 20-minute file (2 cores, one lane): decode 8 / encode 8: 27.6 s,
# 1.46 GB peak; 16 / 4: 23.0 s, 1.30 GB; 32 / 4: 21.8 s, 1.91 GB. Again at 4b2f4b5+: 32 windows of 30 s,
# decode 16: 10.4 s, 32: 9.8 s, the same tokens. Two lanes: bench/results/lanes_cpu.md.
CPU_BATCH = 32
CPU_ENCODE_BATCH = 1
CUDA_BATCH = 16  # when free memory cannot be read


class CTranslate2Whisper:
    engine = "ctranslate2"

    def __init__(self, config: EngineConfig, model: str, cpu_threads: int = 0) -> None:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
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
        lanes, threads = cpu_lanes(cpu_threads, self.device)
        self._lanes, self._threads = Lanes(lanes), threads
        try:
            self._whisper = WhisperModel(
                model, device=self.device, compute_type=self.compute_type, cpu_threads=threads,
                num_workers=lanes, local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise EngineError(f"cannot load CTranslate2 Whisper model from {model}: {error}") from error
        self.language = config.language or (None if self._whisper.model.is_multilingual else "en")
        self.temperatures: tuple[float, ...] = (0.0,)
        options = engine_options(config, CTranslate2Options)
        self.long_form, self.audio_context = options.long_form, options.audio_context
        self.batch_size = config.batch_size or self._auto_batch(model)
        self._batch = BatchDecoder(self._whisper, self.language, self.batch_size, CPU_ENCODE_BATCH,
                                   fit_context=self.audio_context == "fit", lanes=self._lanes)
        log.info("ctranslate2 whisper %s on %s (%s, %d lane(s) of %s threads, long files %s, batch %d, packing %s)",
                 model, self.device, self.compute_type, lanes, threads or "default", self.long_form,
                 self.batch_size, "on" if config.pack_short_clips else "off")

    def _auto_batch(self, model: str) -> int:
        """Windows per batch from the model's geometry (`hardware.auto_batch_size`): on CUDA what fits in
        60 % of free GPU memory (else CUDA_BATCH); on the CPU at most CPU_BATCH, within a quarter of the
        available RAM (tiny.en: 16; large-v3 in float32, ~0.6 GB a window: a few)."""
        from pathlib import Path

        from tasks.engines.hardware import (
            auto_batch_size,
            available_ram_bytes,
            ct2_whisper_geometry,
            free_cuda_bytes,
            window_bytes,
        )

        cuda = self.device == "cuda"
        free, weights = (free_cuda_bytes() if cuda else available_ram_bytes() // 4), Path(model) / "model.bin"
        if free is None or not weights.is_file():
            return CUDA_BATCH if cuda else CPU_BATCH
        d_model, layers, heads = ct2_whisper_geometry(str(weights))
        per_window = window_bytes(d_model, layers, heads, 2 if self.compute_type.endswith("float16") else 4,
                                  self.config.beam_size, eager=False)
        return auto_batch_size(free, per_window) if cuda else auto_batch_size(free, per_window, cap=CPU_BATCH)

    @property
    def windows_by_speech(self) -> bool:
        """Long clips go to the batched decoder, which windows them by their speech: the quality
        guards hand it the speech spans their VAD found (tasks/quality/guarded.py) instead of cutting."""
        return len(self.temperatures) == 1 and self.long_form == "batched"

    @property
    def whisper_model(self) -> Any:
        """The loaded faster-whisper model: the language stage identifies languages with it when it is
        multilingual (tasks/speakers/language.py), and knows it reads English only when it is not."""
        return self._whisper

    def settings(self) -> dict[str, str]:
        settings = {"device": self.device, "compute_type": self.compute_type, "beam_size": str(self.config.beam_size),
                    "long_form": self.long_form, "audio_context": self.audio_context,
                    "batch_size": str(self.batch_size),
                    "packing": "on" if self.config.pack_short_clips else "off"}
        if self.device == "cpu":
            settings["cpu_lanes"] = f"{self._lanes.count} x {self._threads} threads"
        if len(self.temperatures) > 1:
            settings |= {"temperature": ",".join(map(str, self.temperatures)), "decode": "sequential"}
        return settings

    def safer(self) -> CTranslate2Whisper:
        """A twin for the quality retry, sharing the loaded model: beam search, temperature
        fallback, one file at a time (faster-whisper's sequential decoder), still no conditioning
        on previous text."""
        twin = copy.copy(self)
        beams = max(SAFER_BEAM_SIZE, self.config.beam_size)
        twin.config = replace(self.config, pack_short_clips=False, beam_size=beams)
        twin.temperatures = SAFER_TEMPERATURES
        twin.long_form = "sequential"  # the batched decoder has no temperature fallback
        return twin

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        results: list[Transcript | None] = [None] * len(clips)
        if self.config.pack_short_clips and len(self.temperatures) == 1:
            self._transcribe_packed(clips, results)
        rest = [i for i, r in enumerate(results) if r is None]
        batched = [i for i in rest if self._batches(clips[i])]
        decoding = Decoding(self.config.beam_size, self.config.word_timestamps)
        decoded = self._batch.transcribe([clips[i] for i in batched], decoding)
        for index, transcript in zip(batched, decoded, strict=True):
            results[index] = transcript
        alone = sorted(set(rest) - set(batched))  # one file per lane at a time
        for index, (segments, language) in zip(alone, self._lanes.map(
                lambda i: self._decode(clips[i].samples, self.config.word_timestamps), alone), strict=True):
            results[index] = _as_transcript(segments, language)
        return [r for r in results if r is not None]

    def _batches(self, clip: Clip) -> bool:
        """The batched decoder has no temperature fallback (the safer twin); long files may opt out."""
        return len(self.temperatures) == 1 and (self.long_form == "batched" or clip.duration_s <= WINDOW_S_BATCH)

    def _transcribe_packed(self, clips: Sequence[Clip], results: list[Transcript | None]) -> None:
        """Opt-in: short clips share windows; a clip that splits unclearly is left for the batch."""
        pending = [i for i, c in enumerate(clips) if c.duration_s <= PACK_MAX_CLIP_S]
        for _ in range(PACK_ROUNDS):  # a clip whose window split unclearly gets one more, with other neighbours
            unclear: list[int] = []
            shared = [[pending[m] for m in members]
                      for members in plan_packs([clips[i].duration_s for i in pending], WINDOW_S, GAP_S)
                      if len(members) > 1]  # a clip alone in its window is decoded alone
            packs = [build_pack([c.samples for c in clips], indices, GAP_S) for indices in shared]
            decoded = self._lanes.map(lambda pack: self._decode(pack.samples, word_timestamps=True), packs)
            for indices, pack, (segments, language) in zip(shared, packs, decoded, strict=True):
                split = split_pack(pack, segments, GAP_S, language) or [None] * len(indices)
                for index, transcript in zip(indices, split, strict=True):
                    results[index] = transcript
                unclear += [index for index, transcript in zip(indices, split, strict=True) if transcript is None]
            if unclear:
                log.info("%d packed clips split unclearly: packed again or decoded alone", len(unclear))
            pending = unclear

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
