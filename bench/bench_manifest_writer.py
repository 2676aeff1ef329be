"""The manifest writer's memory and time: merging a run's staged parts at 1k / 10k / 100k files.

For each size, a run is staged the way shards stage it: four shards, each writing
batches of 32 rows through `write_part`, every row a 60-second file's transcript
(~150 words of text and 10 segments). A fresh subprocess per size then times
`finalize_run` and reports its peak RSS above the RSS just before it (the kernel's
high-water mark is reset first, so imports do not count), then does the same for
`mark_run` (the canary's rewrite of the merged run) and `load_ledger` (what the next
run's planner reads). `--against REV` runs the same children on `tasks/` as of a git
revision, on a copy of the same staged parts, for a side-by-side figure.

    python bench/bench_manifest_writer.py --sizes 1000,10000,100000 --against 895ed29 --json rows.json
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = "20260101T000000Z-bench"
SHARDS, BATCH = 4, 32
WORDS_PER_FILE, SEGMENTS_PER_FILE = 150, 10


def stage_run(out: Path, files: int, seed: int = 0) -> int:
    """Stage `files` rows as shards do; the number of staged parts."""
    sys.path.insert(0, str(ROOT))
    from tasks.output.manifests import RunContext, write_part
    from tasks.records import FileResult, MediaItem, Quality, Segment, Transcript

    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(3000)]
    ctx = RunContext(RUN_ID, "ctranslate2", "tiny.en", "cfg", (("device", "cpu"), ("beam_size", "1")))
    started = datetime(2026, 1, 1, tzinfo=UTC)

    def result(n: int, shard: int) -> FileResult:
        words = rng.choices(vocabulary, k=WORDS_PER_FILE)
        per = WORDS_PER_FILE // SEGMENTS_PER_FILE
        segments = tuple(Segment(6.0 * s, 6.0 * s + 5.5, " ".join(words[s * per:(s + 1) * per]))
                         for s in range(SEGMENTS_PER_FILE))
        transcript = Transcript(" ".join(words), segments, language="en", quality=Quality(speech_s=55.0))
        source = f"archive/{n % 97:02d}/call-{n:07d}.wav"
        item = MediaItem(source, f"/lib/{source}", 960_000, n, f"{n:064x}", 60.0)
        return FileResult(item, "ok", shard, started + timedelta(seconds=n), transcript, None, 3.0,
                          transcript_path=f"transcripts/{source}.json")

    parts = 0
    for shard in range(SHARDS):  # shards hold interleaved sources, as LPT sharding leaves them
        mine = range(shard, files, SHARDS)
        for batch, start in enumerate(range(0, len(mine), BATCH)):
            rows = [result(n, shard) for n in mine[start:start + BATCH]]
            write_part(out, RUN_ID, f"shard-{shard:05d}-batch-{batch:05d}", rows, ctx)
            parts += 1
    return parts


def measure(step: object, *args: object) -> tuple[float, float]:
    """Seconds and peak RSS above the RSS before, in MiB, of `step(*args)`."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux)
    except OSError:
        pass
    before = _status_kib(status, "VmRSS:")
    started = time.perf_counter()
    step(*args)  # type: ignore[operator]
    seconds = time.perf_counter() - started
    peak = _status_kib(status, "VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, max(0, peak - before) / 1024


def _status_kib(status: Path, key: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def child(step: str, out: Path, code: Path) -> None:
    """Run in a fresh process, so memory freed by an earlier step cannot hide a later one's."""
    sys.path.insert(0, str(code))
    import gc

    MANIFEST_DIR = "manifest"  # the layout's name; literal so `--against REV` runs old code too
    from tasks.output.manifests import finalize_run, load_ledger
    from tasks.quality.canary import mark_run

    gc.collect()
    if step == "merge":
        seconds, mib = measure(finalize_run, out, RUN_ID)
    elif step == "mark":
        seconds, mib = measure(mark_run, out, RUN_ID, "canary_failed")
    else:
        seconds, mib = measure(load_ledger, out, "cfg", "next-run")
    written = out / MANIFEST_DIR / f"run_id={RUN_ID}" / "part-00000.parquet"
    print(json.dumps({f"{step}_s": seconds, f"{step}_rss_mib": mib, "output_mib": written.stat().st_size / 2**20}))


def run_children(staged: Path, work: Path, code: Path) -> dict[str, float]:
    """Merge a copy of the staged run, then mark it, then read its ledger: each step in its own process."""
    copy = work / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(staged, copy)
    got: dict[str, float] = {}
    for step in ("merge", "mark", "ledger"):
        done = subprocess.run([sys.executable, __file__, "--child", step, str(copy), str(code)],
                              capture_output=True, text=True, check=True)
        got |= json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(copy)
    return got


def old_code(rev: str, work: Path) -> Path:
    """`tasks/` as of `rev`, unpacked beside the staged runs."""
    code = work / f"code-{rev}"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "tasks"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda v: [int(n) for n in v.split(",")], default=[1_000, 10_000, 100_000],
                        help="comma-separated file counts")
    parser.add_argument("--against", help="also measure tasks/ as of this git revision (the old writer)")
    parser.add_argument("--json", type=Path, help="write the rows (this checkout's writer) as a JSON list")
    parser.add_argument("--child", nargs=3, metavar=("STEP", "OUT", "CODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    rows, lines = [], []
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as folder:
        work = Path(folder)
        variants = [("this", ROOT)] + ([(args.against, old_code(args.against, work))] if args.against else [])
        for files in args.sizes:
            staged = work / f"staged-{files}"
            started = time.perf_counter()
            parts = stage_run(staged, files)
            print(f"staged {files} files in {parts} parts ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            for label, code in variants:
                got = run_children(staged, work, code)
                row = {"files": files, "parts": parts, "merge_s": round(got["merge_s"], 3),
                       "rows_per_s": round(files / got["merge_s"]), "peak_rss_mib": round(got["merge_rss_mib"], 1),
                       "output_mib": round(got["output_mib"], 1)}
                if label == "this":
                    rows.append(row)
                lines.append((label, row, got))
            shutil.rmtree(staged)
    print("| writer | files | staged parts | merge s | rows/s | peak RSS over baseline (MiB) | output MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, row, _ in lines:
        print(f"| {label} | {row['files']:,} | {row['parts']:,} | {row['merge_s']:.2f} | {row['rows_per_s']:,} "
              f"| {row['peak_rss_mib']:.1f} | {row['output_mib']:.1f} |")
    print("\n| writer | files | mark_run s | mark_run peak RSS (MiB) | load_ledger s | load_ledger peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, row, got in lines:
        print(f"| {label} | {row['files']:,} | {got['mark_s']:.2f} | {got['mark_rss_mib']:.1f} "
              f"| {got['ledger_s']:.2f} | {got['ledger_rss_mib']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
