"""Decide, per scanned file, what this run does with it: transcribe, skip or fail.

A file's identity is its content hash × the config hash: a rerun skips what an
earlier run already transcribed with the same engine, model and options, and a
changed file (new hash) or changed config (new hash) is done again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.engines import EngineConfig, config_hash, resolve_model
from tasks.output.layout import output_layout, transcript_json
from tasks.output.manifests import Ledger, RunContext, load_ledger, read_manifest, read_staging, write_part
from tasks.output.metrics import write_stage_times
from tasks.output.removed import removed_since
from tasks.output.transcripts import UnsafePathError
from tasks.progress import report
from tasks.records import FileResult, MediaItem, StageTimes

SCAN_SHARD = -1  # shard_id of rows settled by the planner, not by a shard


@dataclass(frozen=True, slots=True)
class Plan:
    todo: tuple[MediaItem, ...]  # to transcribe now
    settled: tuple[FileResult, ...]  # skipped or failed without transcribing
    reconfigured: int = 0  # of `todo`: done before, but under another configuration


def plan_run(items: Sequence[MediaItem], ledger: Ledger, run_id: str, config_hash: str = "") -> Plan:
    """Skipped rows point at the transcript of their own content: the ok row's, or this run's own."""
    todo: list[MediaItem] = []
    settled: list[FileResult] = []
    claimed: dict[str, str] = {}  # content hash → source transcribing it in this run
    now = datetime.now(UTC)
    for item in items:
        if item.source in ledger.seen_this_run:
            continue  # a retry of this run: the row exists already
        if item.error is not None:
            settled.append(FileResult(item, "failed", SCAN_SHARD, now, error=item.error))
        elif item.content_sha256 in ledger.done:
            settled.append(FileResult(item, "skipped", SCAN_SHARD, now, done_in_run=ledger.done[item.content_sha256],
                                      transcript_path=ledger.transcripts.get(item.content_sha256)))
        elif item.content_sha256 in claimed:
            # Same bytes under another name: transcribe once, keep one ok row per content.
            settled.append(FileResult(item, "skipped", SCAN_SHARD, now, done_in_run=run_id,
                                      error=f"same content as {claimed[item.content_sha256]}",
                                      transcript_path=_own_transcript(config_hash, item.content_sha256)))
        else:
            claimed[item.content_sha256 or item.source] = item.source
            todo.append(item)
    reconfigured = sum(1 for item in todo if item.content_sha256 in ledger.other_configs)
    return Plan(tuple(todo), tuple(settled), reconfigured)


# No cache key: hashing every scanned item costs seconds at 100,000 files, and a plan is never reused.
@task(name="plan-run", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def plan_run_task(items: list[MediaItem], out: str, ctx: RunContext, scan_s: float) -> list[MediaItem]:
    """Read the ledger, stage rows for skipped and unreadable files, return the files to do."""
    layout = output_layout(out)
    root = layout.read_root()
    ledger = load_ledger(root, ctx.config_hash, ctx.run_id)
    plan = plan_run(items, ledger, ctx.run_id, ctx.config_hash)
    present = {item.source for item in items} | ledger.seen_this_run
    removed = removed_since(root, (read_manifest, read_staging), present, SCAN_SHARD)
    started = time.perf_counter()
    name = f"planned-{uuid.uuid4().hex[:8]}"
    part = write_part(layout.write_root(), ctx.run_id, name, [*plan.settled, *removed], ctx)
    times = StageTimes(scan_s=scan_s, write_s=time.perf_counter() - started)
    layout.publish([*([part] if part else []), write_stage_times(layout.write_root(), ctx.run_id, name, times)])
    report("planned", len(plan.todo), sum(i.duration_s or 0 for i in plan.todo))
    return list(plan.todo)


def _own_transcript(config_hash: str, content_sha256: str | None) -> str | None:
    try:
        return transcript_json(config_hash, content_sha256)
    except UnsafePathError:
        return None  # no config given (a bare plan) or no hash


@task(name="prepare-run")
def prepare_run_task(config: EngineConfig, run_id: str) -> RunContext:
    """Resolve the model (a missing path fails here, before any scan) and hash the config."""
    model = resolve_model(config)
    return RunContext(run_id, config.engine, model, config_hash(config, model))


def new_run_id(started_at: datetime, flow_run_id: str | None) -> str:
    """Sortable and stable across retries of the same flow run: time + flow-run id."""
    suffix = (flow_run_id or uuid.uuid4().hex).replace("-", "")[:8]
    return f"{started_at:%Y%m%dT%H%M%SZ}-{suffix}"
