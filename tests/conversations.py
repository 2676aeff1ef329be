"""Conversations of real, different speakers, assembled from recorded prompts, with the true turns.

Voices (Debian packages; professional recordings, 8 kHz, resampled to 16 kHz):
  allison: asterisk-core-sounds-en-wav (en_US_f_Allison, female, English)
  carlo:   asterisk-core-sounds-it-wav (it_IT_m_Carlo, male, Italian)
  irina:   asterisk-core-sounds-ru-wav (ru_RU_f_IvrvoiceRU, female, Russian)
  menardi: asterisk-prompt-it-menardi-wav (it_IT_f_Menardi, female, Italian)
Lines for language identification only (several speakers each, so never in a conversation):
  nl, cs:  fillets-ng-data-nl / -cs (Fish Fillets NG's spoken dialogue: voice actors' recorded lines,
           Ogg Vorbis, 3.8 s on average; the Czech cast is the original, the Dutch a later dubbing)
(pocketsphinx-testdata's three clips outside librivox/ and cards/ last 1.7-3 s in all and do not
sound like one speaker to the encoder: too little for turns of up to 20 s.)
A turn is one or more prompts of one voice (1–20 s); between turns a natural pause (0.2–1.2 s) or a
short overlap (0.2–0.6 s of the next speaker over the end of the last one).
"""

from __future__ import annotations

import random
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

SOUNDS = Path("/usr/share/asterisk/sounds")
VOICES = {"allison": SOUNDS / "en_US_f_Allison", "carlo": SOUNDS / "it_IT_m_Carlo",
          "irina": SOUNDS / "ru_RU_f_IvrvoiceRU", "menardi": SOUNDS / "it_IT_f_Menardi"}
LANGUAGES = {"allison": "en", "carlo": "it", "irina": "ru", "menardi": "it"}
RATE = 16_000
DIALOGUE = Path("/usr/share/games/fillets-ng/sound")  # <level>/<language>/<line>.ogg

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Conversation:
    samples: Audio
    turns: tuple[tuple[float, float, str], ...]  # (start, end, voice) of each turn's speech, true times

    @property
    def speakers(self) -> int:
        return len({voice for _, _, voice in self.turns})


def available(voices: tuple[str, ...]) -> bool:
    return all(VOICES[v].is_dir() and any(_files(v)) for v in voices)


@lru_cache(maxsize=8)
def _files(voice: str) -> tuple[Path, ...]:
    return tuple(sorted(VOICES[voice].glob("*.wav")))


def read_prompt(path: Path) -> Audio:
    """A prompt at 16 kHz, its leading and trailing silence trimmed."""
    with wave.open(str(path)) as handle:
        rate = handle.getframerate()
        samples = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float32) / 32768
    if len(samples) < rate // 10:  # a few prompts are empty
        return np.zeros(0, np.float32)
    samples = np.interp(np.arange(0, len(samples), rate / RATE), np.arange(len(samples)), samples)
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return samples[loud[0]: loud[-1] + 1].astype(np.float32) if len(loud) else samples[:0].astype(np.float32)


def prompts_of(voice: str, rng: random.Random, seconds: float) -> Audio:
    """Prompts of one voice, joined with short pauses, until about `seconds` (at least one prompt)."""
    parts: list[Audio] = []
    total = 0.0
    files = list(_files(voice))
    while not parts or total < seconds:
        prompt = read_prompt(rng.choice(files))
        if len(prompt) < RATE // 2 or (parts and total + len(prompt) / RATE > 20):
            if parts:
                break
            continue
        parts += [np.zeros(int(rng.uniform(0.15, 0.4) * RATE), np.float32)] if parts else []
        parts.append(prompt)
        total = sum(len(p) for p in parts) / RATE
    return np.concatenate(parts)


def conversation(voices: tuple[str, ...], turns: int, seed: int, overlaps: int = 2,
                 longest_turn_s: float = 12.0) -> Conversation:
    """`turns` turns, no voice twice in a row, each voice at least once; `overlaps` of the pauses are overlaps."""
    rng = random.Random(seed)
    order = list(voices)
    rng.shuffle(order)
    while len(order) < turns:
        order.append(rng.choice([v for v in voices if v != order[-1]]))
    overlapping = set(rng.sample(range(1, turns), min(overlaps, turns - 1)))
    track = np.zeros(0, np.float32)
    truth: list[tuple[float, float, str]] = []
    for n, voice in enumerate(order[:turns]):
        speech = prompts_of(voice, rng, rng.uniform(1.0, longest_turn_s))
        gap = -rng.uniform(0.2, 0.6) if n in overlapping else rng.uniform(0.2, 1.2)
        start = max(0, len(track) + int(gap * RATE)) if n else 0
        end = start + len(speech)
        if end > len(track):
            track = np.concatenate([track, np.zeros(end - len(track), np.float32)])
        track[start:end] += speech
        truth.append((start / RATE, end / RATE, voice))
    return Conversation(np.clip(track, -1, 1), tuple(truth))


def write_wav(path: Path, samples: Audio) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@lru_cache(maxsize=8)
def _lines(language: str) -> tuple[Path, ...]:
    return tuple(sorted(DIALOGUE.glob(f"*/{language}/*.ogg")))


def lines_available(language: str) -> bool:
    return bool(_lines(language))


def lines_of(language: str, rng: random.Random, seconds: float) -> Audio:
    """Recorded dialogue lines in `language` (fillets-ng-data-<language>), joined with short pauses,
    until about `seconds`."""
    from tasks.media.audio import decode_audio

    parts: list[Audio] = []
    files = _lines(language)
    while sum(len(p) for p in parts) / RATE < seconds:
        parts += [np.zeros(int(rng.uniform(0.15, 0.4) * RATE), np.float32)] if parts else []
        parts.append(decode_audio(rng.choice(files)))
    return np.concatenate(parts)
