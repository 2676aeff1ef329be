"""transcribe-shard: one worker transcribes one shard, batch by batch (`run_shard`; on one machine
the library flow calls it inline).

Worker processes decode the shard's files a bounded amount ahead of the model
(tasks/media/prefetch.py), so the model does not wait on decoding. Each batch lands in the
manifest as soon as it is done, so a retried or resumed shard only redoes the
batches a killed worker had not finished. Each attempt records what it held its worker for
(tasks/output/shard_attempts.py): the run's cost is the sum of those, not its wall time.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.run_logs import send_project_logs_to_runs
from tasks.media.library import open_source
from tasks.media.prefetch import DecodeAhead, decode_workers
from tasks.output.manifests import sources_in_run_task
from tasks.output.metrics import ShardSummary
from tasks.output.reporting import start_progress, update_progress
from tasks.output.shard_attempts import AttemptClock, record_failed_attempt, record_shard_attempt, this_worker
from tasks.output.shard_plans import read_shard_plan_task
from tasks.records import ShardRef, StageTimes
from tasks.run_config import RunConfig, RunRef
from tasks.settings import worker_settings
from tasks.transcribe import load_engine, make_batches, transcribe_batch_task

BATCH_FILES = 32
BATCH_AUDIO_S = 600.0


@flow(name="transcribe-shard", retries=1, retry_delay_seconds=10)
def transcribe_shard(shard: ShardRef, config: RunConfig, run: RunRef) -> ShardSummary:
    """Transcribe one shard of `run` (its file list is read from DIR/_plans/) with the run's `config`:
    a pool's worker runs this as a deployment run."""
    send_project_logs_to_runs()  # the engine's and the decoders' warnings reach this run's logs
    return run_shard(shard, config, run)


def run_shard(shard: ShardRef, config: RunConfig, run: RunRef) -> ShardSummary:
    """The shard's work, inside whichever flow run calls it: `transcribe-shard` on a pool's worker, or
    `transcribe-library` itself on one machine, where a child flow run per shard cost ~3 s of Prefect's
    own time (a one-file run took 4.1 s as a child flow run, 1.1 s inline). Records the attempt, failed
    or not: the worker was held either way."""
    clock = AttemptClock()  # the worker is held for this shard from here until it returns
    worker = this_worker(config.pool, config.hardware_profile())
    try:
        summary = transcribe_files(shard, config, run, clock)
    except Exception as error:
        record_failed_attempt(config.out, clock.attempt(run.run_id, shard.shard_id, worker, str(flow_run.id), error))
        raise
    record_shard_attempt(config.out, clock.attempt(run.run_id, shard.shard_id, worker, str(flow_run.id)))
    return summary


def transcribe_files(shard: ShardRef, config: RunConfig, run: RunRef, clock: AttemptClock) -> ShardSummary:
    """The shard's files not yet in the run, batch by batch; `clock` tallies each batch as it lands."""
    logger = get_run_logger()
    items = read_shard_plan_task(config.out, shard).items
    done = sources_in_run_task(config.out, run.run_id)
    todo = [item for item in items if item.source not in done]
    logger.info("shard %d: %d files, %d already in this run", shard.shard_id, len(todo), len(items) - len(todo))
    progress = start_progress(f"shard {shard.shard_id}: {len(todo)} files")
    batches = make_batches(todo, BATCH_FILES, BATCH_AUDIO_S)
    workers = decode_workers(worker_settings().decode_workers)
    files = open_source(run.source, access=run.access)
    with DecodeAhead(files, [item for batch in batches for item in batch], workers) as ahead:
        if batches:
            clock.model_load_s = load_engine(config)  # while the first files decode
        for batch_no, batch in enumerate(batches):
            decoded = ahead.take(batch)  # waits only if decoding fell behind the model
            clock.done.append(transcribe_batch_task(batch, decoded, shard.shard_id, batch_no, config, run))
            update_progress(progress, 100.0 * (batch_no + 1) / len(batches))
    update_progress(progress, 100.0)
    summaries = clock.done
    return ShardSummary(
        shard.shard_id,
        sum(s.files_ok for s in summaries),
        sum(s.files_failed for s in summaries),
        0,
        sum(s.audio_s for s in summaries),
        sum((s.times for s in summaries), StageTimes()),
    )
