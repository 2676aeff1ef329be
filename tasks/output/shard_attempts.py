"""What each shard attempt held its worker for: one Parquet row per attempt in DIR/shards/run_id=<RUN>/.

A run is billed for the time the hardware that did its work was held, not for its wall
time × its shard count: shards that queue on fewer workers than shards would otherwise be
billed once per shard for the whole run (4 shards on 1 worker: about 4× too much). So each
attempt records when its work began (model load included) and when it returned, on which
worker, and what it did meanwhile; a failed attempt is recorded too, since its worker was
held all the same (an attempt whose process is killed leaves no row: nothing is left to write it).
`workers` counts distinct workers: the Prefect worker that started the flow-run process (each
flow run is a process of its own, so a process id would count one worker per shard), else
the host and process id (a shard run inline by the CLI).
"""

from __future__ import annotations

import io
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.output.layout import SHARDS, output_layout, run_folder, shard_attempt_file
from tasks.output.transcripts import atomic_write_bytes
from tasks.records import StageTimes
from tasks.settings import prefect_worker_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Worker:
    """The machine and process that ran an attempt, and how it is priced."""

    host: str
    pool: str  # "" when the shard ran inline, in the library flow's own process
    hardware: str  # the price profile (tasks/planning/pricing.py)
    pid: int
    prefect_worker: str  # the Prefect worker that started the process; "" inline

    @property
    def key(self) -> str:
        """What tells workers apart when counting them."""
        return f"{self.host}/{self.prefect_worker or f'pid {self.pid}'}"


def this_worker(pool: str | None, hardware: str) -> Worker:
    return Worker(socket.gethostname(), pool or "", hardware, os.getpid(), prefect_worker_name() or "")


@dataclass(frozen=True, slots=True)
class ShardAttempt:
    run_id: str
    shard_id: int
    flow_run_id: str  # the flow run it ran in: `transcribe-shard` on a pool, the library run inline
    status: str  # "completed" or "failed"
    error: str | None
    host: str
    pool: str
    hardware: str
    pid: int
    worker: str  # Worker.key
    started_at: datetime  # the attempt's work began (before the model loaded)
    finished_at: datetime  # it returned or raised
    worker_s: float  # finished_at - started_at, on a monotonic clock
    model_load_s: float
    decode_wait_s: float  # the model waiting on decoded audio
    inference_s: float
    write_s: float
    audio_s: float  # audio of the files it transcribed ok
    files_ok: int
    files_failed: int


SCHEMA = pa.schema([
    ("run_id", pa.string()), ("shard_id", pa.int64()), ("flow_run_id", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("host", pa.string()), ("pool", pa.string()), ("hardware", pa.string()),
    ("pid", pa.int64()), ("worker", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    *((name, pa.float64()) for name in ("worker_s", "model_load_s", "decode_wait_s", "inference_s", "write_s",
                                        "audio_s")),
    ("files_ok", pa.int64()), ("files_failed", pa.int64()),
])


class BatchDone(Protocol):
    """What a batch reports back (`tasks.output.metrics.ShardSummary`)."""

    @property
    def files_ok(self) -> int: ...
    @property
    def files_failed(self) -> int: ...
    @property
    def audio_s(self) -> float: ...
    @property
    def times(self) -> StageTimes: ...


class AttemptClock:
    """Started when a shard attempt's work begins; tallies what the attempt has done so far."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._start = time.perf_counter()
        self.model_load_s = 0.0
        self.done: list[BatchDone] = []  # one per batch

    def attempt(self, run_id: str, shard_id: int, worker: Worker, flow_run_id: str,
                error: BaseException | None = None) -> ShardAttempt:
        """The attempt's record, as of now (its end)."""
        worker_s = time.perf_counter() - self._start
        times = sum((s.times for s in self.done), StageTimes())
        return ShardAttempt(
            run_id, shard_id, flow_run_id, "failed" if error else "completed",
            None if error is None else f"{type(error).__name__}: {error}"[:1000],
            worker.host, worker.pool, worker.hardware, worker.pid, worker.key,
            self.started_at, datetime.now(UTC), worker_s, self.model_load_s, times.decode_s, times.inference_s,
            times.write_s, sum(s.audio_s for s in self.done), sum(s.files_ok for s in self.done),
            sum(s.files_failed for s in self.done),
        )


def write_shard_attempt(out: Path, attempt: ShardAttempt) -> Path:
    """The attempt's row, atomically, under a name of its own (attempts of one shard never collide)."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([asdict(attempt)], schema=SCHEMA), buffer)
    path = out / shard_attempt_file(attempt.run_id, attempt.shard_id, uuid.uuid4().hex[:12])
    atomic_write_bytes(path, buffer.getvalue())
    return path


def record_shard_attempt(out: str, attempt: ShardAttempt) -> None:
    """Write the attempt's row to DIR (uploaded at once for s3:// DIRs)."""
    layout = output_layout(out)
    layout.publish([write_shard_attempt(layout.write_root(), attempt)])


def record_failed_attempt(out: str, attempt: ShardAttempt) -> None:
    """As `record_shard_attempt`, for an attempt that is failing: its own error is the one that matters."""
    try:
        record_shard_attempt(out, attempt)
    except Exception as error:  # noqa: BLE001 - the attempt's error is raised next; this one is only logged
        log.warning("shard %d: could not record its failed attempt: %s", attempt.shard_id, error)


def read_shard_attempts(root: Path, run_id: str) -> list[ShardAttempt]:
    """Every recorded attempt of the run, oldest first."""
    folder = root / run_folder(SHARDS, run_id)
    parts = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))) if folder.is_dir() else []
    rows = [row for part in parts for row in pq.read_table(part, schema=SCHEMA).to_pylist()]
    return sorted((ShardAttempt(**row) for row in rows), key=lambda a: (a.started_at, a.shard_id))


@dataclass(frozen=True, slots=True)
class Held:
    """What a run held its workers for: seconds summed over workers, and how many workers."""

    worker_s: float
    workers: int


def held_by(attempts: Sequence[ShardAttempt]) -> Held:
    """Σ every attempt's worker time (queued shards count once each), over the distinct workers."""
    return Held(sum(a.worker_s for a in attempts), len({a.worker for a in attempts}))
