"""Fan shards out to a work pool: one `transcribe-shard` deployment run per shard.

Prefect's work pools and workers are the distributed engine: this only submits the
child runs, waits, and resubmits a shard whose run failed or crashed (a killed
worker, a spot reclaim). A resubmitted shard redoes only the files its earlier
attempt had not staged, because the shard flow skips sources already in the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from tasks.records import ShardRef
from tasks.run_config import RunConfig, RunRef

SHARD_FLOW = "transcribe-shard"


def shard_deployment(pool: str) -> str:
    """The shard deployment that runs on a pool, as named in prefect.yaml."""
    return f"{SHARD_FLOW}/{pool}"


@dataclass(frozen=True, slots=True)
class ShardJob:
    """One shard run's parameters: exactly `transcribe_shard`'s."""

    shard: ShardRef
    config: RunConfig
    run: RunRef

    def parameters(self) -> dict[str, object]:
        return {"shard": self.shard, "config": self.config, "run": self.run}


@task(name="run-shards-on-pool")
def run_shards_on_pool(pool: str, jobs: Sequence[ShardJob], attempts: int = 3, poll_s: float = 2.0) -> list[int]:
    """Run every shard on the pool; return the ids of shards that still failed after `attempts`."""
    logger = get_run_logger()
    tries = {job.shard.shard_id: 1 for job in jobs}
    running = {job.shard.shard_id: (_submit(pool, job, 1), job) for job in jobs}
    failed: list[int] = []
    with get_client(sync_client=True) as client:
        while running:
            time.sleep(poll_s)
            for shard_id, (run_id, job) in list(running.items()):
                state = client.read_flow_run(run_id).state
                if state is None or not state.is_final():
                    continue
                del running[shard_id]
                if state.is_completed():
                    continue
                if tries[shard_id] >= attempts:
                    logger.error("shard %d: %s after %d attempts", shard_id, state.name, tries[shard_id])
                    failed.append(shard_id)
                    continue
                tries[shard_id] += 1
                logger.warning("shard %d: %s; resubmitting (attempt %d)", shard_id, state.name, tries[shard_id])
                running[shard_id] = (_submit(pool, job, tries[shard_id]), job)
    return sorted(failed)


def _submit(pool: str, job: ShardJob, attempt: int) -> UUID:
    flow_run = cast(FlowRun, run_deployment(  # called from a sync task: a FlowRun, not a coroutine
        name=shard_deployment(pool),
        parameters=job.parameters(),
        timeout=0,  # return at once; the loop above waits for all shards together
        idempotency_key=f"{job.run.run_id}-shard-{job.shard.shard_id}-attempt-{attempt}",
        tags=[f"run:{job.run.run_id}"],
    ))
    return flow_run.id
