"""In which language: identified on the speech VAD found, and checked against what the model can read.

Whisper guesses a file's language from its first 30 s of audio; leading silence or music makes
that guess noise (faster-whisper #918). Here the guess is made on the first `DETECT_S` of the
file's *speech* (VAD spans joined), by a multilingual Whisper: the run's own model when it is one,
else `language_model` (default: Whisper base, `--model whisper-base`'s weights, when installed, run
in int8: it only guesses the language, never writes text). The run's own model hears Whisper's
30 s (its `language` is the row's deliverable); a model asked only whether the run's model can
read the speech hears the speech alone (`DETECT_FIT`): on 100 real recordings in five languages
it raised the same flags, 6x faster, though it named the exact language 88 times against 91
(bench/results/diarize_cpu.md).

A model that cannot transcribe what was heard (an `.en` Whisper, a Parakeet outside its
languages) gets a flag; its text is kept, flagged, not trusted. The row is unflagged only when the
model's own languages together hold `READABLE` of the probability: else `language_mismatch` when
one language it cannot read is likely (`TRUST`), and `language_unverified` when nobody can tell
(a close call, or no multilingual model to ask).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.quality.vad import SpeechMap
from tasks.records import SAMPLE_RATE

log = logging.getLogger(__name__)

DETECT_S = 30.0  # one Whisper window of speech
TRUST = 0.5  # below this probability a guess that the model cannot read is "unverified", not "mismatch"
# The model's languages together need this much probability for an unflagged row. On 20 real English
# recordings P(en) was 0.77 at the lowest (the next 0.88); on 80 in it, ru, nl, cs it was 0.48 at the highest
# (a Dutch line whose top guess was English): bench/results/diarize_cpu.md.
READABLE = 0.7
# With `fit`, detection hears the speech plus 1 s, in steps of 2 s (pad, step, least; `encoder_frames`)
DETECT_FIT = (1.0, 2.0, 0.0)
LANGUAGE_MISMATCH = "language_mismatch"
LANGUAGE_UNVERIFIED = "language_unverified"
# Parakeet TDT 0.6B v3 (NVIDIA model card): 25 European languages; other Parakeets are English-only.
PARAKEET_V3 = frozenset({"bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it", "lv", "lt",
                         "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk"})


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    code: str
    probability: float
    scores: tuple[tuple[str, float], ...] = ()  # every language's probability (0.001 and above)

    def share(self, codes: frozenset[str]) -> float:
        """The probability that the speech is in one of `codes`."""
        scores = self.scores or ((self.code, self.probability),)
        return sum(p for code, p in scores if code in codes)


def speech_sample(samples: npt.NDArray[np.float32], speech: SpeechMap) -> npt.NDArray[np.float32]:
    """The first `DETECT_S` seconds of speech, spans joined end to end (no silence or music before it)."""
    parts, held, limit = [], 0, int(DETECT_S * SAMPLE_RATE)
    for start, end in speech.spans:
        part = samples[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)][: limit - held]
        parts.append(part)
        held += len(part)
        if held >= limit:
            break
    return np.concatenate(parts).astype(np.float32) if parts else samples[:0]


def detect(whisper: Any, samples: npt.NDArray[np.float32], speech: SpeechMap, fit: bool = False
           ) -> LanguageGuess | None:
    """The language of the speech (None: no speech). The encoder hears Whisper's 30 s (the speech padded
    with silence), or with `fit` the speech alone (`DETECT_FIT`): enough to tell a language a model
    cannot read, at a fraction of the time, but it names the exact language less often."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import get_ctranslate2_storage

    from tasks.engines.ct2_batch import encoder_frames

    audio = speech_sample(samples, speech)
    if len(audio) < SAMPLE_RATE // 4:
        return None
    features = whisper.feature_extractor(audio)[..., :-1]
    full = whisper.feature_extractor.nb_max_frames
    features = pad_or_trim(features, encoder_frames(len(audio), fit, full, fit=DETECT_FIT))
    encoded = whisper.model.encode(get_ctranslate2_storage(features[None]))
    ranked = whisper.model.detect_language(encoded)[0]
    scores = tuple((token.strip("<|>"), round(float(p), 4)) for token, p in ranked if p >= 0.001)
    return LanguageGuess(scores[0][0], scores[0][1], scores)


def model_languages(transcriber: Any) -> frozenset[str] | None:
    """What the run's model can transcribe; None: any language Whisper knows."""
    declared = getattr(transcriber, "languages", None)
    if isinstance(declared, frozenset):
        return declared
    whisper = getattr(transcriber, "whisper_model", None)
    if whisper is not None:
        return None if whisper.model.is_multilingual else frozenset({"en"})
    name = Path(str(getattr(transcriber, "model", ""))).name.lower()
    if getattr(transcriber, "engine", "") == "nemo":
        return PARAKEET_V3 if "v3" in name else frozenset({"en"})
    return frozenset({"en"}) if name.endswith(".en") or ".en-" in name else None  # tiny.en, whisper-tiny.en-hf


def detector_for(transcriber: Any, language_model: str | None) -> Any:
    """A faster-whisper multilingual model to identify languages with, or None if none is at hand."""
    whisper = getattr(transcriber, "whisper_model", None)
    if whisper is not None and whisper.model.is_multilingual and language_model is None:
        return whisper
    if language_model is not None:
        return _load(language_model)
    if getattr(transcriber, "engine", "") == "fake":  # orchestration tests: no language to hear in fake text
        return None
    if not base_installed():
        return None
    from tasks.models import whisper_base_ct2

    return _load(str(whisper_base_ct2()))


def base_installed() -> bool:
    """Whisper base's two packages (the `base` extra) are installed."""
    import importlib.util

    from tasks.models import BASE_PACKAGES

    return all(importlib.util.find_spec(name) is not None for name in BASE_PACKAGES)


@lru_cache(maxsize=2)
def _load(model: str) -> Any:
    import ctranslate2
    from faster_whisper import WhisperModel

    from tasks.engines.lanes import cpu_lanes
    from tasks.settings import worker_settings

    device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    lanes, threads = cpu_lanes(worker_settings().cpu_threads, device)  # files side by side on the CPU
    # int8: it only guesses the language (bench_diarize.py measures it against float32)
    whisper = WhisperModel(model, device=device, compute_type="int8", cpu_threads=threads, num_workers=lanes,
                           local_files_only=True)
    if not whisper.model.is_multilingual:
        raise RuntimeError(f"language_model: {model} is English-only; languages need a multilingual Whisper")
    log.info("languages identified with %s", model)
    return whisper


def language_flags(guess: LanguageGuess | None, readable: frozenset[str] | None, has_speech: bool) -> tuple[str, ...]:
    """None when the model reads every language or there is no speech; else no flag only when the model's
    languages hold `READABLE` of the probability, `language_mismatch` when a language it cannot read is
    likely, and `language_unverified` otherwise."""
    if readable is None or not has_speech:
        return ()
    if guess is None:
        return (LANGUAGE_UNVERIFIED,)
    if guess.share(readable) >= READABLE:
        return ()
    return (LANGUAGE_MISMATCH,) if guess.code not in readable and guess.probability >= TRUST else (LANGUAGE_UNVERIFIED,)


def allowed(code: str | None, languages: tuple[str, ...]) -> bool:
    """`languages` lists codes to keep (`en`, `de`) and/or codes to leave out (`-en`: every language but
    English). Empty: every language."""
    if not languages:
        return True
    keep = {c for c in languages if not c.startswith("-")}
    drop = {c[1:] for c in languages if c.startswith("-")}
    return code not in drop and (not keep or code in keep)
