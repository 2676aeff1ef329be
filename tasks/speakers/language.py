"""In which language: identified on the speech VAD found, and checked against what the model can read.

Whisper guesses a file's language from its first 30 s of audio; leading silence or music makes
that guess noise (faster-whisper #918). Here the guess is made on the first `DETECT_S` of the
file's *speech* (VAD spans joined), by a multilingual Whisper: the run's own model when it is one,
else `language_model` (default: Whisper base, `--model whisper-base`'s weights, when installed). A model that cannot
transcribe the language found (an `.en` Whisper, a Parakeet outside its languages) gets the flag
`language_mismatch` (the row's `language` names what was heard; its text is kept, flagged, not
trusted); with no multilingual model to ask, an English-only model's rows get `language_unverified`.
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
LANGUAGE_MISMATCH = "language_mismatch"
LANGUAGE_UNVERIFIED = "language_unverified"
# Parakeet TDT 0.6B v3 (NVIDIA model card): 25 European languages; other Parakeets are English-only.
PARAKEET_V3 = frozenset({"bg", "hr", "cs", "da", "nl", "en", "et", "fi", "fr", "de", "el", "hu", "it", "lv", "lt",
                         "mt", "pl", "pt", "ro", "sk", "sl", "es", "sv", "ru", "uk"})


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    code: str
    probability: float


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


def detect(whisper: Any, samples: npt.NDArray[np.float32], speech: SpeechMap) -> LanguageGuess | None:
    """The language of the speech (None: no speech)."""
    audio = speech_sample(samples, speech)
    if len(audio) < SAMPLE_RATE // 4:
        return None
    code, probability, _ = whisper.detect_language(audio)
    return LanguageGuess(str(code), round(float(probability), 4))


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
    from faster_whisper import WhisperModel

    whisper = WhisperModel(model, device="cpu", compute_type="float32", cpu_threads=1, local_files_only=True)
    if not whisper.model.is_multilingual:
        raise RuntimeError(f"language_model: {model} is English-only; languages need a multilingual Whisper")
    log.info("languages identified with %s", model)
    return whisper


def language_flags(guess: LanguageGuess | None, readable: frozenset[str] | None, has_speech: bool) -> tuple[str, ...]:
    """`language_mismatch` when the model cannot read what was heard; `language_unverified` when nobody
    could tell and the model reads only some languages."""
    if readable is None or not has_speech:
        return ()
    if guess is None or guess.probability < TRUST:
        return (LANGUAGE_UNVERIFIED,) if guess is None or guess.code not in readable else ()
    return (LANGUAGE_MISMATCH,) if guess.code not in readable else ()


def allowed(code: str | None, languages: tuple[str, ...]) -> bool:
    """`languages` lists codes to keep (`en`, `de`) and/or codes to leave out (`-en`: every language but
    English). Empty: every language."""
    if not languages:
        return True
    keep = {c for c in languages if not c.startswith("-")}
    drop = {c[1:] for c in languages if c.startswith("-")}
    return code not in drop and (not keep or code in keep)
