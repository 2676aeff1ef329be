"""What a run does first, under the lease: clear up after runs that did not finish cleanly.

1. Quarantine: a manifest or staged part that cannot be read (a torn upload, a disk
   error, a hand edit) would stop every reader of the ledger. It is moved to
   `DIR/_quarantine/<this run>/<its path>` and named in a warning of the run report;
   its rows are simply gone, so its files are redone (nothing is lost but time).
2. Merge what dead runs staged (their `ok` files are not redone).
3. A run that has rows but no runs row (its parent was killed, Ctrl-C, a crash) gets
   one now, marked `interrupted`: its counts from its rows; its wall time from its id to
   its last row; its worker time from the shard attempts it recorded; hardware `unknown`
   and cost 0, since what it ran on died with it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from tasks.output.layout import MANIFEST, RUNS, STAGING, OutputLayout, output_layout, quarantine_path
from tasks.output.manifests import finalize_and_ship, read_manifest, unfinished_runs
from tasks.output.metrics import RunMetrics, read_stage_times, summarise_run, write_run_row
from tasks.output.shard_attempts import held_by, read_shard_attempts
from tasks.planning.pricing import Pricing

log = logging.getLogger(__name__)
UNKNOWN_HARDWARE = Pricing("unknown", 0.0, 0.0, 0)


def corrupt_parts(root: Path) -> list[tuple[Path, str]]:
    """Parts under manifest/ and _staging/ whose footer or key column cannot be read, with why."""
    found = []
    for folder in (MANIFEST, STAGING):
        for path in sorted((root / folder).rglob("*.parquet")) if (root / folder).is_dir() else ():
            if path.name.startswith((".", "_")):
                continue  # a temp file being written: readers skip it too
            try:
                part = pq.ParquetFile(path)
                for group in range(part.num_row_groups):
                    part.read_row_group(group, columns=["source", "status"])
            except (pa.ArrowException, OSError, KeyError, ValueError) as error:
                found.append((path, " ".join(str(error).split())[:300]))
    return found


def quarantine(layout: OutputLayout, root: Path, run_id: str) -> list[str]:
    """Move every corrupt part aside (in DIR too, for S3); one warning line each."""
    warnings = []
    for path, why in corrupt_parts(root):
        relative = path.relative_to(root).as_posix()
        target = root / quarantine_path(run_id, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        layout.publish([target])  # S3: upload the copy, then drop the original key
        layout.delete([relative])
        warnings.append(f"corrupt part {relative} moved to {quarantine_path(run_id, relative)} ({why});"
                        " its files are redone")
        log.warning(warnings[-1])
    return warnings


def runs_without_row(root: Path, current_run_id: str) -> list[str]:
    merged = sorted(p.name.removeprefix("run_id=") for p in (root / MANIFEST).glob("run_id=*") if p.is_dir())
    return [r for r in merged if r != current_run_id and not (root / RUNS / f"{r}.parquet").is_file()]


def interrupted_metrics(root: Path, run_id: str) -> RunMetrics:
    rows = read_manifest(root, ["status", "duration_s", "finished_at", "engine", "model", "config_hash"],
                         run_id=run_id)
    times = [t for t in rows.column("finished_at").to_pylist() if t is not None]
    finished = max(times, default=datetime.now(UTC))
    try:
        started = datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        started = min(times, default=finished)
    first = {c: next((v for v in rows.column(c).to_pylist() if v), "") for c in ("engine", "model", "config_hash")}
    metrics = summarise_run(run_id=run_id, started_at=started, finished_at=finished, rows=rows,
                            times=read_stage_times(root, run_id), pricing=UNKNOWN_HARDWARE,
                            held=held_by(read_shard_attempts(root, run_id)), **first)
    return replace(metrics, interrupted=True)


@task(name="recover-output", retries=2, retry_delay_seconds=[2, 10])
def recover_output_task(out: str, current_run_id: str) -> list[str]:
    """Quarantine corrupt parts, merge dead runs' staged rows, write interrupted runs' rows; the warnings."""
    layout = output_layout(out)
    root = layout.read_root()
    warnings = quarantine(layout, root, current_run_id)
    for run_id in (r for r in unfinished_runs(root) if r != current_run_id):
        finalize_and_ship(layout, root, run_id)
    for run_id in runs_without_row(root, current_run_id):
        layout.publish([write_run_row(layout.write_root(), interrupted_metrics(root, run_id))])
        log.warning("run %s ended without its runs row: recorded now as interrupted", run_id)
    return warnings
