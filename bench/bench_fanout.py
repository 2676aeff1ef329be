"""Fan-out over N workers on loopback: makespan vs ideal, and Prefect's overhead per shard.

A library of `--files` files whose durations follow an archive's (minutes to hours,
long-tailed), scaled down by `--scale` so they fit on disk (1 h → 3.6 s at 1/1000);
the fake engine spends `--spas` wall seconds per audio second, so each shard's work
is proportional to its audio. A real Prefect server, `prefect deploy --all`, one
control worker and N shard workers (process pools) run `transcribe-library/nightly`.

    python bench/bench_fanout.py --files 1000 --workers 4 --spas 0.25
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_library(root: Path, files: int, scale: float, seed: int) -> list[float]:
    from tests.media_factory import write_audio

    rng = random.Random(seed)
    durations = []
    for n in range(files):
        archive_s = min(3 * 3600.0, max(120.0, rng.lognormvariate(7.0, 1.0)))  # 2 min … 3 h, median ~18 min
        seconds = round(archive_s * scale, 3)
        noise = np.random.default_rng(n).normal(0, 0.01, int(seconds * 16_000)).astype(np.float32)
        write_audio(root / f"batch{n // 100:02d}" / f"call{n:04d}.wav", noise, 16_000)
        durations.append(seconds)
    return durations


def shard_runs(prefect: object) -> list[dict[str, object]]:
    import json
    import urllib.request

    body = json.dumps({"flows": {"name": {"any_": ["transcribe-shard"]}}, "limit": 200}).encode()
    request = urllib.request.Request(f"{prefect.url}/flow_runs/filter", data=body,  # type: ignore[attr-defined]
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read()))


def stage_seconds_by_shard(out: Path, run_id: str) -> dict[int, float]:
    """Decode + inference + write seconds each shard's batches reported."""
    import json

    totals: dict[int, float] = {}
    for path in (out / "_stages" / f"run_id={run_id}").glob("shard-*.json"):
        shard = int(path.name.split("-")[1])
        times = json.loads(path.read_text())
        totals[shard] = totals.get(shard, 0.0) + times["decode_s"] + times["inference_s"] + times["write_s"]
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.001)
    parser.add_argument("--spas", type=float, default=0.25, help="fake engine seconds per audio second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import pyarrow.dataset as ds

    from bench.common import commit_stamp
    from tests.prefect_loopback import LoopbackPrefect

    print(f"Measured at {commit_stamp()}.\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    durations = build_library(tmp / "library", args.files, args.scale, args.seed)
    prefect = LoopbackPrefect(home=tmp / "prefect").start()
    try:
        prefect.deploy_all()
        prefect.start_worker("control", "transcribe-control", limit=2)
        for n in range(args.workers):
            prefect.start_worker(f"cpu-{n}", "transcribe-cpu")
        done = prefect.run_deployment("transcribe-library/nightly", {
            "source": str(tmp / "library"), "out": str(tmp / "out"), "pool": "cpu", "shards": args.workers,
            "shard_minutes": None, "engine": "fake", "hardware": "cpu",
            "engine_options": {"seconds_per_audio_second": str(args.spas)}}, timeout_s=1800)
        assert done.returncode == 0, done.stdout[-3000:]
        runs = [r for r in shard_runs(prefect) if r["state_type"] == "COMPLETED"]
    finally:
        prefect.stop()
    manifest = ds.dataset(tmp / "out" / "manifest", partitioning="hive").to_table().to_pylist()
    run_row = ds.dataset(tmp / "out" / "runs").to_table().to_pylist()[0]
    work_by_shard: dict[int, float] = {}
    for row in manifest:
        work_by_shard[row["shard_id"]] = work_by_shard.get(row["shard_id"], 0.0) + row["duration_s"] * args.spas
    starts = [datetime.fromisoformat(r["start_time"]) for r in runs]
    ends = [datetime.fromisoformat(r["end_time"]) for r in runs]
    makespan = (max(ends) - min(starts)).total_seconds()
    ideal = sum(durations) * args.spas / args.workers
    pipeline_by_shard = stage_seconds_by_shard(tmp / "out", run_row["run_id"])
    shard_of = [int(r["parameters"]["shard"]["shard_id"]) for r in runs]
    walls = [float(r["total_run_time"]) for r in runs]
    overheads = [wall - work_by_shard[s] for wall, s in zip(walls, shard_of, strict=True)]
    orchestration = [wall - pipeline_by_shard[s] for wall, s in zip(walls, shard_of, strict=True)]
    print(f"{args.files} files, {sum(durations) / args.scale / 3600:,.0f} archive hours scaled by {args.scale}"
          f" to {sum(durations):,.0f} s; fake engine {args.spas} s per audio second; {args.workers} workers")
    print("| figure | value |\n|---|---|")
    print(f"| ideal (total work / workers) | {ideal:.1f} s |")
    print(f"| shard phase makespan (first shard start → last shard end) | {makespan:.1f} s |")
    print(f"| makespan / ideal | {makespan / ideal:.3f} |")
    print(f"| heaviest shard's work / ideal (sharding balance) | {max(work_by_shard.values()) / ideal:.3f} |")
    print(f"| shard run time − engine work (decode, writes, Prefect), mean | {sum(overheads) / len(overheads):.2f} s |")
    print(f"| Prefect orchestration per shard (run time − all pipeline stages), mean | "
          f"{sum(orchestration) / len(orchestration):.2f} s |")
    print(f"| orchestration / shard run time, mean | "
          f"{100 * sum(o / w for o, w in zip(orchestration, walls, strict=True)) / len(walls):.1f} % |")
    print(f"| whole run wall (scan, plan, shards, merge) | {run_row['wall_s']:.1f} s |")
    print(f"| manifest rows ok / files | {sum(r['status'] == 'ok' for r in manifest)} / {args.files} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
