"""transcribe-library: scan a media library, shard it, transcribe every shard, report.

Reads top to bottom: prepare (and check the canary set) → merge what dead runs left →
scan → plan (skip what is done) → shard → run the shards → merge the manifest → WER
canary (tasks/quality/canary.py) → record metrics → publish → fail if shards or the canary did.
With no `pool` the shards run here, one after another, as child flow runs (the
CLI's one-machine path); with a pool each shard is a `transcribe-shard/<pool>`
deployment run that the pool's workers pick up.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from blocks.hardware import resolve_pricing
from blocks.library import resolve_library
from flows.transcribe_shard import transcribe_shard
from tasks.engines.base import EngineConfig
from tasks.media.scan import scan_library_task
from tasks.output.links import check_base_url
from tasks.output.manifests import finalize_run_task, finalize_unfinished_task
from tasks.output.metrics import RunMetrics, record_run_task
from tasks.output.reporting import publish_run_report
from tasks.output.shard_plans import write_shard_plans_task
from tasks.planning.fanout import ShardJob, run_shards_on_pool
from tasks.planning.plan import new_run_id, plan_run_task, prepare_run_task
from tasks.planning.sharding import shard_items
from tasks.quality.canary import (
    CANARY_FAILED,
    DEFAULT_THRESHOLD,
    SHIPPED,
    CanaryFailed,
    mark_run_task,
    resolve_canary_task,
    run_canary_task,
)


class ShardsFailed(RuntimeError):
    """Some shards failed on every attempt; their files are redone by the next run."""


@flow(name="transcribe-library")
def transcribe_library(
    source: str,
    out: str,
    engine: str = "ctranslate2",
    model: str | None = None,
    hardware: str = "cpu",
    shards: int | None = None,
    shard_minutes: float | None = None,
    pool: str | None = None,
    shard_attempts: int = 3,
    beam_size: int = 1,
    language: str | None = None,
    word_timestamps: bool = False,
    pack_short_clips: bool = False,
    engine_options: dict[str, str] | None = None,
    base_url: str | None = None,
    vad: bool = True,
    canary: str | None = SHIPPED,
    canary_references: str | None = None,
    canary_threshold: float = DEFAULT_THRESHOLD,
) -> RunMetrics:
    """Transcribe every new or changed media file under SOURCE into OUT (folders or s3:// URIs).

    SOURCE may also name a saved MediaLibrary block (`media-library/NAME`): its location and S3
    credentials are used. With `base_url` (where OUT is served), manifest rows link to their transcripts.
    """
    logger = get_run_logger()
    base_url = check_base_url(base_url)
    source, access = resolve_library(source)
    started_at = datetime.now(UTC)
    run_id = new_run_id(flow_run.scheduled_start_time or started_at, flow_run.id)
    config = EngineConfig(engine=engine, model=model, beam_size=beam_size, language=language,
                          word_timestamps=word_timestamps, pack_short_clips=pack_short_clips,
                          extra=tuple(sorted(((engine_options or {}) | ({} if vad else {"vad": "off"})).items())))
    pricing = resolve_pricing(hardware)
    labelled = resolve_canary_task(canary, canary_references, engine)  # a wrong path fails before any work
    ctx = prepare_run_task(config, run_id)
    finalize_unfinished_task(out, run_id)
    scan_started = datetime.now(UTC)
    items = scan_library_task(source, out, access)
    # quote: Prefect would otherwise walk every item looking for futures (~40 s at 100,000 files).
    todo = plan_run_task(quote(items), out, ctx, (datetime.now(UTC) - scan_started).total_seconds())
    logger.info("run %s: %d files found, %d to transcribe", run_id, len(items), len(todo))
    plan = shard_items(todo, target_s=shard_minutes * 60) if shard_minutes else shard_items(todo, shards or 1)
    refs = write_shard_plans_task(quote(plan), out, run_id)  # shards go by reference: parameters are capped
    jobs = [ShardJob(ref, source, out, run_id, config, ctx.config_hash, base_url, access) for ref in refs]
    failed: list[int] = []
    if pool:
        failed = run_shards_on_pool(pool, jobs, attempts=shard_attempts)
    else:
        for job in jobs:
            transcribe_shard(**job.parameters())  # type: ignore[arg-type]
    finalize_run_task(out, run_id)
    checked = run_canary_task(config, labelled, canary_threshold) if labelled else None
    if checked and not checked.passed:
        mark_run_task(out, run_id, CANARY_FAILED)
    metrics = record_run_task(out, run_id, started_at, pricing, len(plan) if pool else 1, ctx.engine,
                              ctx.model, ctx.config_hash, checked.wer if checked else None,
                              checked.threshold if checked else None)
    publish_run_report(metrics)
    if failed:
        raise ShardsFailed(f"shards {failed} failed on every attempt; the next run redoes their files")
    if checked and not checked.passed:
        raise CanaryFailed(f"{checked.summary()}; transcripts were written and flagged {CANARY_FAILED}")
    return metrics
