"""transcribe-library: scan a media library, shard it, transcribe every shard, report.

Reads top to bottom: check the configuration (a wrong parameter fails the run at once,
in one line) → prepare (and check the canary set) → merge what dead runs left →
scan → plan (skip what is done) → shard → run the shards → merge the manifest → WER
canary (tasks/quality/canary.py; only when something was transcribed) → record
metrics → publish → fail if shards or the canary did. With no `pool` the shards run
here, one after another, inside this flow run (the CLI's one-machine path); with a pool
each shard is a `transcribe-shard/<pool>` deployment run that the pool's workers pick up.
The parameters are `RunConfig`'s fields (tasks/run_config.py), declared there once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from blocks.hardware import resolve_pricing
from blocks.library import resolve_library
from flows.params import model_parameters
from flows.transcribe_shard import run_shard
from tasks.engines import check_engine
from tasks.locations import check_location
from tasks.media.scan import scan_library_task
from tasks.output.archive import recorded_source, refresh_archive_task
from tasks.output.layout import run_lease
from tasks.output.manifests import finalize_run_task
from tasks.output.metrics import RunMetrics, ShardSummary, record_run_task
from tasks.output.recovery import recover_output_task
from tasks.output.reporting import publish_run_report
from tasks.output.shard_plans import write_shard_plans_task
from tasks.planning.fanout import ShardJob, run_shards_on_pool
from tasks.planning.plan import new_run_id, plan_run_task, prepare_run_task
from tasks.planning.sharding import shard_items
from tasks.progress import report
from tasks.quality.canary import (
    CANARY_FAILED,
    CanaryFailed,
    mark_run_task,
    resolve_canary_task,
    run_canary_task,
)
from tasks.records import ShardRef
from tasks.run_config import ConfigError, RunConfig, RunRef


class ShardsFailed(RuntimeError):
    """Some shards failed on every attempt; their files are redone by the next run."""


@flow(name="transcribe-library", validate_parameters=False)  # RunConfig validates, in one line per mistake
@model_parameters(RunConfig)
def transcribe_library(**parameters: Any) -> RunMetrics:
    """Transcribe every new or changed media file under `source` into `out` (folders or s3:// URIs)."""
    logger = get_run_logger()
    config, source, access = check_run(parameters)
    started_at = datetime.now(UTC)
    run_id = new_run_id(flow_run.scheduled_start_time or started_at, flow_run.id)
    pricing = resolve_pricing(config.hardware_profile())
    labelled = resolve_canary_task(config)  # a wrong path fails before any work
    ctx = prepare_run_task(config.engine_config(), run_id)
    with run_lease(config.out, run_id, config.wait_for_lease):  # one run writes to OUT at a time
        warnings = recover_output_task(config.out, run_id)  # quarantine corrupt parts, merge and record dead runs
        report("scanning", 0, 0.0)
        scan_started = datetime.now(UTC)
        items = scan_library_task(source, config.out, access, config.follow_links_outside)
        # quote: Prefect would otherwise walk every item looking for futures (~40 s at 100,000 files).
        scan_s = (datetime.now(UTC) - scan_started).total_seconds()
        todo = plan_run_task(quote(items), config.out, ctx, scan_s)  # type: ignore[call-overload]  # Prefect unquotes
        logger.info("run %s: %d files found, %d to transcribe", run_id, len(items), len(todo))
        shards, target_s = config.shard_plan()
        plan = shard_items(todo, shards, target_s)
        refs = write_shard_plans_task(quote(plan), config.out, run_id)  # by reference: parameters are capped
        run = RunRef(run_id, ctx.config_hash, source, access)
        failed: list[int] = []
        if config.pool:
            failed = run_shards_on_pool(config.pool, [ShardJob(ref, config, run) for ref in refs],
                                        attempts=config.shard_attempts)
        else:
            for ref in refs:
                run_shard_here(ref, config, run)
        report("finishing", 0, 0.0)
        finalize_run_task(config.out, run_id)
        # The canary checks the engine that made this run's transcripts: nothing transcribed, nothing to check.
        checked = None
        if labelled and todo:
            report("canary", 0, 0.0)
            checked = run_canary_task(config.engine_config(), labelled, config.canary_threshold, ctx.config_hash)
        if checked and not checked.passed:
            mark_run_task(config.out, run_id, CANARY_FAILED)
        metrics = record_run_task(config.out, run_id, started_at, pricing, bool(config.pool),
                                  ctx.engine, ctx.model, ctx.config_hash, checked.wer if checked else None,
                                  checked.threshold if checked else None, len(warnings), recorded_source(source))
        refresh_archive_task(config.out, base_url=config.base_url, site=config.site,
                             media_base_url=config.media_base_url)
    publish_run_report(metrics, warnings)
    if failed:
        raise ShardsFailed(f"shards {failed} failed on every attempt; the next run redoes their files")
    if checked and not checked.passed:
        raise CanaryFailed(f"{checked.summary()}; transcripts were written and flagged {CANARY_FAILED}")
    return metrics


def run_shard_here(shard: ShardRef, config: RunConfig, run: RunRef) -> ShardSummary:
    """One shard on this machine, tried twice as the `transcribe-shard` flow retries once; what its
    first try landed is kept (its batches are in the manifest) and not redone."""
    try:
        return run_shard(shard, config, run)
    except Exception as error:  # noqa: BLE001 - the second try raises what is still wrong
        get_run_logger().warning("shard %d failed (%s); trying it once more", shard.shard_id, error)
        return run_shard(shard, config, run)


def check_run(parameters: dict[str, Any]) -> tuple[RunConfig, str, Any]:
    """The run's configuration, checked on this machine before any work: a ConfigError of one line."""
    report("checking", 0, 0.0)
    config = RunConfig.parse(parameters)
    config.check_places()
    try:
        source, access = resolve_library(config.source)
        if source != config.source:
            check_location(source, f"source ({config.source})", must_exist=True)
        check_engine(config.engine_config())  # the engine's extra is installed, its model is there
    except (RuntimeError, ValueError) as error:
        raise ConfigError(str(error)) from None
    return config, source, access
