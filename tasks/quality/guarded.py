"""Transcribe with voice-activity detection, quality guards and one safer retry.

Order per batch: detect speech in every clip (Silero VAD) → with VAD on, clips
without speech are settled as empty `ok` transcripts and long silences are cut
out of the rest → the engine runs once over the batch (packing still applies)
→ times go back to each clip's clock → guards flag each transcript → flagged
clips are decoded once more, one by one, by the engine's `safer()` twin (engines
without one skip the retry) → the attempt with fewer fixable flags is kept, the
first on a tie. Both attempts are recorded on the transcript's `Quality`.

Speech is always detected, also with VAD off: the guards need it, and it costs
little (Silero runs ~100× faster than real time on one CPU core).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from tasks.engines.base import EngineConfig, Transcriber
from tasks.quality.guards import NO_SPEECH, GuardLimits, badness, check_transcript, retry_flags
from tasks.quality.vad import SpeechMap, compact, detect_speech, restore_times
from tasks.records import Attempt, Clip, Failure, Quality, Transcript

log = logging.getLogger(__name__)

Runner = Callable[[Transcriber, Sequence[Clip]], list[Transcript | Failure]]


@dataclass(frozen=True, slots=True)
class QualityOptions:
    vad: bool = True  # skip no-speech clips and cut long silences before the engine
    vad_threshold: float = 0.5  # Silero speech probability
    retry: bool = True  # decode flagged clips once more with the engine's safer settings
    limits: GuardLimits = field(default_factory=GuardLimits)

    @classmethod
    def from_config(cls, config: EngineConfig) -> QualityOptions:
        """From the engine options `vad`, `vad_threshold` and `quality_retry` every engine takes."""
        from tasks.engines.options import OPTIONS, engine_options

        options = engine_options(config, OPTIONS[config.engine])
        return cls(vad=options.vad, vad_threshold=options.vad_threshold, retry=options.quality_retry)


def transcribe_guarded(
    transcriber: Transcriber, clips: Sequence[Clip], options: QualityOptions, runner: Runner
) -> list[Transcript | Failure]:
    """One transcript (or an error string) per clip, in order, each carrying its `Quality`."""
    speech = [detect_speech(c.samples, options.vad_threshold) for c in clips]
    inputs = [_engine_input(c, s, options.vad) for c, s in zip(clips, speech, strict=True)]
    cuts = [s if i is not None and i is not c else None for c, s, i in zip(clips, speech, inputs, strict=True)]
    results = _decode(transcriber, inputs, cuts, runner)
    results = [_assess(r, c, s, options.limits) for r, c, s in zip(results, clips, speech, strict=True)]
    flagged = [i for i, r in enumerate(results) if isinstance(r, Transcript) and _fixable(r)]
    safer = _safer(transcriber) if options.retry and flagged else None
    if safer is None:
        return results
    retried = _decode(safer, [inputs[i] for i in flagged], [cuts[i] for i in flagged], runner)
    settings = json.dumps(safer.settings(), sort_keys=True)
    for index, second in zip(flagged, retried, strict=True):
        first = results[index]
        assert isinstance(first, Transcript)
        assessed = _assess(second, clips[index], speech[index], options.limits)
        if isinstance(assessed, Transcript):  # a retry that failed leaves the first decode in place
            results[index] = _keep_better(first, assessed, settings)
    log.info("quality: %d of %d clips flagged and retried", len(flagged), len(clips))
    return results


def _engine_input(clip: Clip, speech: SpeechMap, vad: bool) -> Clip | None:
    """What the engine gets: None for no speech, else the clip with long silences cut (VAD on)."""
    if not vad or speech.is_whole:
        return clip
    if not speech.spans:
        return None
    return Clip(clip.key, compact(clip.samples, speech))


def _decode(
    transcriber: Transcriber, inputs: Sequence[Clip | None], cuts: Sequence[SpeechMap | None], runner: Runner
) -> list[Transcript | Failure]:
    """Run the engine on the clips that have input; `cuts` maps a cut clip's times back."""
    todo = [(i, clip) for i, clip in enumerate(inputs) if clip is not None]
    decoded = runner(transcriber, [clip for _, clip in todo])
    results: list[Transcript | Failure] = [Transcript("", ())] * len(inputs)  # no speech: empty, not decoded
    for (index, _), outcome in zip(todo, decoded, strict=True):
        cut = cuts[index]
        results[index] = restore_times(outcome, cut) if cut and isinstance(outcome, Transcript) else outcome
    return results


def _assess(outcome: Transcript | Failure, clip: Clip, speech: SpeechMap, limits: GuardLimits) -> Transcript | Failure:
    if not isinstance(outcome, Transcript):
        return outcome
    flags = check_transcript(outcome, clip.duration_s, speech.speech_s, limits)
    if not speech.spans:
        flags = (NO_SPEECH, *flags)
    return replace(outcome, quality=Quality(flags=flags, speech_s=speech.speech_s))


def _fixable(transcript: Transcript) -> bool:
    return transcript.quality is not None and bool(retry_flags(transcript.quality.flags))


def _safer(transcriber: Transcriber) -> Transcriber | None:
    """The engine's safer twin, if it has one (an optional method, not part of the protocol)."""
    make = getattr(transcriber, "safer", None)
    return make() if callable(make) else None


def _keep_better(first: Transcript, second: Transcript, safer_settings: str) -> Transcript:
    assert first.quality is not None and second.quality is not None
    use_second = badness(second, second.quality.flags) < badness(first, first.quality.flags)
    attempts = (
        Attempt("default", first.quality.flags, first.text, kept=not use_second),
        Attempt("safer", second.quality.flags, second.text, kept=use_second),
    )
    kept = second if use_second else first
    assert kept.quality is not None
    info = dict(kept.info) | ({"quality_decode": safer_settings} if use_second else {})
    return replace(kept, info=info, quality=replace(kept.quality, attempts=attempts))
