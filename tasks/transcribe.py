"""One batch of a shard: transcribe its decoded audio → write outputs, with per-file isolation.

The audio arrives decoded (`tasks/media/prefetch.py` decodes ahead in worker processes); a
long file arrives as a `LongAudio` on disk and is transcribed piece by piece (tasks/media/pieces.py).
A file that could not be decoded, or that makes the engine raise, becomes a `failed`
result with its reason; the rest of the batch carries on. Only an `EngineError`
(the model itself is unusable) stops the batch.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.engines import load_transcriber
from tasks.engines.base import EngineError, Transcriber
from tasks.media.pieces import LongAudio
from tasks.media.prefetch import Batch, Decoded, decode_workers
from tasks.output.layout import output_layout, transcript_stem
from tasks.output.manifests import RunContext, write_part
from tasks.output.metrics import ShardSummary, write_stage_times
from tasks.output.transcripts import UnsafePathError, transcript_files, write_transcript_files
from tasks.progress import report
from tasks.quality.guarded import QualityOptions, transcribe_guarded
from tasks.records import Clip, Failure, FileResult, MediaItem, StageTimes, Transcript
from tasks.run_config import RunConfig, RunRef
from tasks.settings import worker_settings
from tasks.speakers.stage import Refused, SpeakerOptions, SpeakerStage, transcribe_clips, transcribe_long

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: tuple[FileResult, ...]
    times: StageTimes


def transcribe_batch(
    items: Sequence[MediaItem],
    decoded: Sequence[Decoded],
    shard_id: int,
    transcriber: Transcriber,
    out: Path,
    ctx: RunContext,
    quality: QualityOptions | None = None,  # None: the defaults (VAD on, retry on)
    speakers: SpeakerOptions | None = None,  # None: no language check, no diarization, every language
) -> BatchOutcome:
    """Transcribe the batch's decoded clips (a `Failure` in `decoded` is a file that failed to decode)."""
    started = time.perf_counter()
    options = quality or QualityOptions()
    stage = SpeakerStage(transcriber, speakers or SpeakerOptions(vad_threshold=options.vad_threshold))
    clips = [d for d in decoded if isinstance(d, Clip)]
    # languages identified on speech (when checked); voice-activity detection, quality guards, one safer
    # retry of flagged files (tasks/quality/guarded.py); speakers when asked (tasks/speakers/stage.py)
    guarded = transcribe_clips(stage, clips, lambda todo, speech: transcribe_guarded(
        transcriber, todo, options, run_engine, speech))
    outputs: dict[str, Transcript | Failure | Refused] = dict(zip((c.key for c in clips), guarded, strict=True))
    for long in (d for d in decoded if isinstance(d, LongAudio)):  # piece by piece: memory stays flat
        outputs[long.key] = transcribe_long(stage, long, lambda pieces, speech: transcribe_guarded(
            transcriber, pieces, options, run_engine, speech))
    inferred_at = time.perf_counter()
    total_audio = sum(d.duration_s for d in decoded if not isinstance(d, Failure)) or 1.0
    busy = inferred_at - started
    results = []
    for item, got in zip(items, decoded, strict=True):
        if isinstance(got, Failure):  # the engine's failures are logged where they happen (run_engine)
            log.warning("%s failed: %s", item.source, got)
        outcome = got if isinstance(got, Failure) else outputs.get(item.source)
        share = busy * (0.0 if isinstance(got, Failure) else got.duration_s / total_audio)
        results.append(_settle(item, outcome, shard_id, out, ctx, share, None if isinstance(got, Failure) else got))
    written_at = time.perf_counter()
    times = StageTimes(inference_s=inferred_at - started, write_s=written_at - inferred_at)
    return BatchOutcome(tuple(results), times)


def run_engine(transcriber: Transcriber, clips: Sequence[Clip]) -> list[Transcript | Failure]:
    """Transcribe the batch; if it raises, bisect until the file that fails is alone."""
    if not clips:
        return []
    try:
        return list(transcriber.transcribe(clips))
    except EngineError:
        raise
    except Exception as error:  # noqa: BLE001 - one bad file must not fail the others
        if len(clips) == 1:
            log.warning("engine failed on %s: %s", clips[0].key, error)
            return [Failure(f"engine failed: {type(error).__name__}: {error}")]
        middle = len(clips) // 2
        return run_engine(transcriber, clips[:middle]) + run_engine(transcriber, clips[middle:])


def _settle(
    item: MediaItem, outcome: Transcript | Failure | Refused | None, shard_id: int, out: Path, ctx: RunContext,
    busy_s: float, audio: Clip | LongAudio | None = None,
) -> FileResult:
    now = datetime.now(UTC)
    stream = audio.audio_stream if audio else None
    if isinstance(outcome, Refused):  # not one of the run's languages: left for a run that takes it
        return FileResult(item, "skipped", shard_id, now, error=outcome.reason, processing_s=busy_s,
                          audio_stream=stream, language=outcome.language)
    if not isinstance(outcome, Transcript):
        reason = str(outcome) if outcome else "no transcript returned"
        return FileResult(item, "failed", shard_id, now, error=reason, processing_s=busy_s,
                          audio_stream=stream)
    if audio and audio.note:  # several audio streams: say which was transcribed (engine_config, JSON info)
        outcome = replace(outcome, info={**outcome.info, "audio_streams": audio.note})
    meta = {"source": item.source, "content_sha256": item.content_sha256, "duration_s": item.duration_s,
            "engine": ctx.engine, "model": ctx.model, "config_hash": ctx.config_hash, "run_id": ctx.run_id}
    try:
        path = write_transcript_files(out, transcript_stem(ctx.config_hash, item.content_sha256), outcome, meta)
    except (UnsafePathError, OSError) as error:
        return FileResult(item, "failed", shard_id, now, error=f"cannot write outputs: {error}", processing_s=busy_s,
                          audio_stream=stream)
    return FileResult(item, "ok", shard_id, now, transcript=outcome, processing_s=busy_s,
                      transcript_path=path.relative_to(out.resolve()).as_posix(), audio_stream=stream)


def make_batches(items: Sequence[MediaItem], max_files: int, max_audio_s: float) -> list[list[MediaItem]]:
    """Consecutive batches of at most `max_files` files and about `max_audio_s` of audio."""
    batches: list[list[MediaItem]] = []
    current: list[MediaItem] = []
    audio = 0.0
    for item in items:
        if current and (len(current) >= max_files or audio + (item.duration_s or 0) > max_audio_s):
            batches.append(current)
            current, audio = [], 0.0
        current.append(item)
        audio += item.duration_s or 0
    return batches + [current] if current else batches


def load_engine(config: RunConfig) -> float:
    """Load the run's engine into this process (or find it loaded); the seconds that took."""
    started = time.perf_counter()
    load_transcriber(config.engine_config())  # cached: the batches below find it loaded
    return time.perf_counter() - started


# NO_CACHE: the decoded audio is an input; hashing it for a cache key would be wasted work.
@task(name="transcribe-batch", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def transcribe_batch_task(
    items: list[MediaItem], decoded: Batch, shard_id: int, batch_no: int, config: RunConfig, run: RunRef,
) -> ShardSummary:
    """Transcribe one batch, ship its transcripts, then append it to the run's manifest as its own part."""
    engine = config.engine_config()
    transcriber = load_transcriber(engine)  # cached: loaded once per worker process
    # engine_config records the decode pool next to the engine's batch size: both follow the hardware
    settings = transcriber.settings() | {"decode_workers": str(decode_workers(worker_settings().decode_workers))}
    ctx = RunContext(run.run_id, transcriber.engine, transcriber.model, run.config_hash,
                     tuple(sorted(settings.items())), config.base_url)
    run_id = run.run_id
    layout = output_layout(config.out)
    out_dir = layout.write_root()
    quality = QualityOptions.from_config(engine)
    outcome = transcribe_batch(items, decoded.decoded, shard_id, transcriber, out_dir, ctx, quality,
                               config.speaker_options(quality.vad_threshold))
    started = time.perf_counter()
    layout.publish(written_files(out_dir, outcome.results))  # before the rows that point at them
    name = f"shard-{shard_id:05d}-batch-{batch_no:05d}-{uuid.uuid4().hex[:8]}"
    part = write_part(out_dir, run_id, name, outcome.results, ctx)
    times = replace(outcome.times, decode_s=decoded.waited_s,
                    write_s=outcome.times.write_s + time.perf_counter() - started)
    layout.publish([*([part] if part else []), write_stage_times(out_dir, run_id, name, times)])
    ok = [r for r in outcome.results if r.status == "ok"]
    for result in outcome.results:
        report("done", 1, result.item.duration_s or 0)
    skipped = sum(1 for r in outcome.results if r.status == "skipped")  # not one of the run's languages
    return ShardSummary(shard_id, len(ok), len(outcome.results) - len(ok) - skipped, skipped,
                        sum(r.item.duration_s or 0 for r in ok), times)


def written_files(out: Path, results: Sequence[FileResult]) -> list[Path]:
    """Every output file written for the batch's ok results."""
    return [path for r in results if r.status == "ok" and r.transcript_path
            for path in transcript_files(out / r.transcript_path)]
