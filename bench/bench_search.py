"""Search index at archive scale: build, incremental update and query latency; optionally the site.

Writes a synthetic manifest (FILES files × SEGMENTS segments of Zipf-distributed words, in the
project's MANIFEST_SCHEMA) in one run partition, builds the FTS5 index from it, adds a second run of
UPDATE new files and times that update, then times QUERIES varied queries (common and rare words,
two-word AND, phrases taken from the text, a miss) and prints p50/p95/max.

    python bench/bench_search.py                      # 100,000 × 20, 1,000-file update, 300 queries
    python bench/bench_search.py --site-files 10000   # also time the static site (pages + Pagefind)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.output.layout import MANIFEST, merged_part
from tasks.output.manifests import MANIFEST_SCHEMA
from tasks.output.search import INDEX_PATH, search, update_index

VOCABULARY = 20_000


def words(rng: np.random.Generator) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    made: set[str] = set()
    while len(made) < VOCABULARY:
        n = int(rng.integers(2, 5))
        made.add("".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(n)))
    return sorted(made, key=len)


def write_run(out: Path, run_id: str, first: int, files: int, segments: int, vocab: list[str],
              rng: np.random.Generator) -> None:
    """One run partition of `files` ok rows, written 10,000 rows per row group like a real merge."""
    path = out / merged_part(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    ranks = np.arange(1, len(vocab) + 1)
    zipf = (1 / ranks) / (1 / ranks).sum()
    now = datetime.now(UTC)
    with pq.ParquetWriter(path, MANIFEST_SCHEMA, compression="zstd") as writer:
        for start in range(first, first + files, 10_000):
            count = min(10_000, first + files - start)
            picks = rng.choice(len(vocab), size=(count, segments, 12), p=zipf)
            rows = []
            for i in range(count):
                texts = [" ".join(vocab[w] for w in picks[i, k]).capitalize() + "." for k in range(segments)]
                segs = [{"start": 3.0 * k, "end": 3.0 * k + 3, "text": text} for k, text in enumerate(texts)]
                n = start + i
                rows.append({"source": f"calls/{n // 1000:03d}/call-{n:06d}.wav", "size_bytes": 1, "mtime_ns": 1,
                             "content_sha256": f"{n:064x}", "duration_s": 3.0 * segments, "status": "ok",
                             "language": "en", "text": " ".join(s["text"] for s in segs), "segments": segs,
                             "engine": "ctranslate2", "model": "tiny.en", "config_hash": "cfg", "shard_id": 0,
                             "finished_at": now, "transcript_path": f"transcripts/call-{n:06d}.wav.json",
                             "quality_flags": []})
            writer.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA))


def queries(vocab: list[str], out: Path, n: int, rng: np.random.Generator) -> list[str]:
    sample = pq.read_table(out / MANIFEST, columns=["text"]).slice(0, 500).column("text").to_pylist()
    found: list[str] = []
    for i in range(n):
        kind = i % 6
        text = sample[int(rng.integers(len(sample)))].lower().replace(".", "").split()
        at = int(rng.integers(len(text) - 3))
        found.append([vocab[int(rng.integers(20))],  # very common word
                      vocab[int(rng.integers(5000, len(vocab)))],  # rare word
                      f"{vocab[int(rng.integers(50))]} {vocab[int(rng.integers(200, 2000))]}",  # two words, AND
                      f'"{text[at]} {text[at + 1]}"',  # two-word phrase from the text
                      f'"{text[at]} {text[at + 1]} {text[at + 2]}"',  # three-word phrase
                      "zzzzqx"][kind])  # no match
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--update", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--site-files", type=int, default=0, help="also build the site over this many files")
    args = parser.parse_args()
    from bench.common import commit_stamp

    print(f"Measured at {commit_stamp()}.")
    rng = np.random.default_rng(14)
    vocab = words(rng)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        out = Path(tmp)
        t = time.perf_counter()
        write_run(out, "20260101T000000Z-00000001", 0, args.files, args.segments, vocab, rng)
        print(f"manifest: {args.files:,} files × {args.segments} segments written in {time.perf_counter() - t:.1f} s")
        db = out / INDEX_PATH
        t = time.perf_counter()
        built = update_index(out, db)
        print(f"build: {built.files:,} files, {built.rows_read:,} rows in {time.perf_counter() - t:.1f} s; "
              f"index {db.stat().st_size / 2**20:,.0f} MiB")
        write_run(out, "20260102T000000Z-00000002", args.files, args.update, args.segments, vocab, rng)
        t = time.perf_counter()
        added = update_index(out, db)
        print(f"incremental update: {added.rows_read:,} new files in {time.perf_counter() - t:.2f} s "
              f"(runs read: {len(added.runs_read)})")
        t = time.perf_counter()
        update_index(out, db)
        print(f"update with no new run: {(time.perf_counter() - t) * 1000:.1f} ms")
        latencies: dict[str, list[float]] = {}
        for query in queries(vocab, out, args.queries, rng):
            t = time.perf_counter()
            search(db, query, 20)
            kind = "phrase" if query.startswith('"') else "miss" if query == "zzzzqx" else "words"
            latencies.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
        every = sorted(v for values in latencies.values() for v in values)
        for kind, values in [*latencies.items(), ("all", every)]:
            values = sorted(values)
            print(f"query {kind:>6}: n={len(values):4d} p50 {statistics.median(values):6.1f} ms  "
                  f"p95 {values[int(0.95 * (len(values) - 1))]:6.1f} ms  max {values[-1]:6.1f} ms")
        if args.site_files:
            bench_site(out, args.site_files, args.segments, vocab, rng)


def bench_site(out: Path, files: int, segments: int, vocab: list[str], rng: np.random.Generator) -> None:
    from tasks.output.site import build_site
    from tasks.output.site_media import MediaLinks

    site_root = out / "site-bench"
    write_run(site_root, "20260101T000000Z-00000001", 0, files, segments, vocab, rng)
    update_index(site_root, site_root / INDEX_PATH)
    t = time.perf_counter()
    built = build_site(site_root / INDEX_PATH, site_root / "site", MediaLinks(media_base_url="https://m.example"), [])
    first = time.perf_counter() - t
    t = time.perf_counter()
    again = build_site(site_root / INDEX_PATH, site_root / "site", MediaLinks(media_base_url="https://m.example"), [])
    pagefind = sum(p.stat().st_size for p in (site_root / "site" / "pagefind").rglob("*") if p.is_file())
    print(f"site: {built.files:,} files, {built.pages_written:,} pages + Pagefind in {first:.1f} s; "
          f"rebuild with nothing changed {time.perf_counter() - t:.1f} s ({again.pages_written} pages written); "
          f"Pagefind bundle {pagefind / 2**20:,.1f} MiB")


if __name__ == "__main__":
    main()
