"""Transcribe with voice-activity detection, quality guards and one safer retry.

Order per batch: detect speech in every clip (Silero VAD) → with VAD on, clips
without speech are settled as empty `ok` transcripts and long silences are cut
out of the rest (an engine that windows long clips by their speech, as the
CTranslate2 engine's batched decoder does, gets a long clip whole with the spans
found here, so VAD runs once) → the engine runs once over the batch (packing still applies)
→ times go back to each clip's clock → guards flag each transcript → flagged
clips are decoded once more by the engine's `safer()` twin (engines without one
skip the retry): a long clip only in its flagged stretches (`retry.py`), else whole
→ the attempt with fewer fixable flags is kept, the first on a tie. Both attempts
are recorded on the transcript's `Quality`.

Speech is always detected, also with VAD off: the guards need it, and it costs
little (Silero runs ~100× faster than real time on one CPU core).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tasks.engines.base import EngineConfig, Transcriber
from tasks.quality.guards import NO_SPEECH, GuardLimits, badness, check_transcript, retry_flags
from tasks.quality.retry import Retry, Runner, flagged_stretches, retry_stretches, stretches
from tasks.quality.vad import LONG_CLIP_S, SpeechMap, compact, detect_speech, restore_times
from tasks.records import Attempt, Clip, Failure, Quality, Transcript

log = logging.getLogger(__name__)

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
    results = _decode(transcriber, clips, speech, options.vad, runner)
    results = [_assess(r, c, s, options.limits) for r, c, s in zip(results, clips, speech, strict=True)]
    flagged = [i for i, r in enumerate(results) if isinstance(r, Transcript) and _fixable(r)]
    safer = _safer(transcriber) if options.retry and flagged else None
    if safer is None:
        return results
    firsts = {i: r for i, r in enumerate(results) if isinstance(r, Transcript)}
    by_stretch = [Retry(i, parts, bad) for i in flagged
                  if (parts := stretches(speech[i])) and (bad := flagged_stretches(firsts[i], parts, options.limits))]
    whole = [i for i in flagged if i not in {r.index for r in by_stretch}]
    seconds: dict[int, Transcript | Failure] = dict(zip(
        whole, _decode(safer, [clips[i] for i in whole], [speech[i] for i in whole], options.vad, runner), strict=True))
    spliced = retry_stretches(safer, clips, [firsts.get(i, Transcript("", ())) for i in range(len(clips))],
                              by_stretch, runner, options.limits)
    seconds |= {retry.index: second for retry, second in zip(by_stretch, spliced, strict=True)}
    settings = json.dumps(safer.settings(), sort_keys=True)
    for index, second in seconds.items():
        assessed = _assess(second, clips[index], speech[index], options.limits)
        if isinstance(assessed, Transcript):  # a retry that failed leaves the first decode in place
            results[index] = _keep_better(firsts[index], assessed, settings)
    log.info("quality: %d of %d clips flagged and retried (%d by their flagged stretches: %d of %d stretches)",
             len(flagged), len(clips), len(by_stretch), sum(len(r.flagged) for r in by_stretch),
             sum(len(r.stretches) for r in by_stretch))
    return results


def _engine_input(transcriber: Transcriber, clip: Clip, speech: SpeechMap, vad: bool) -> Clip | None:
    """What the engine gets: None for no speech; else (VAD on) the clip with long silences cut out or,
    when that is still longer than one window and the engine windows long clips by their speech, the
    clip whole with its speech spans (its times come back on the clip's clock)."""
    if not vad:
        return clip
    long = speech.windows is not None and speech.compacted_s > LONG_CLIP_S
    if long and getattr(transcriber, "windows_by_speech", False):
        return replace(clip, speech=speech.windows)
    if speech.is_whole:
        return clip
    if not speech.spans:
        return None
    return Clip(clip.key, compact(clip.samples, speech))


def _decode(
    transcriber: Transcriber, clips: Sequence[Clip], speech: Sequence[SpeechMap], vad: bool, runner: Runner
) -> list[Transcript | Failure]:
    """Run the engine on the clips that have speech (or all, VAD off); times of a cut clip go back."""
    inputs = [_engine_input(transcriber, c, s, vad) for c, s in zip(clips, speech, strict=True)]
    todo = [(i, clip) for i, clip in enumerate(inputs) if clip is not None]
    decoded = runner(transcriber, [clip for _, clip in todo])
    results: list[Transcript | Failure] = [Transcript("", ())] * len(inputs)  # no speech: empty, not decoded
    for (index, given), outcome in zip(todo, decoded, strict=True):
        cut = given.samples is not clips[index].samples  # compacted: times are on the cut audio's clock
        results[index] = restore_times(outcome, speech[index]) if cut and isinstance(outcome, Transcript) else outcome
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
