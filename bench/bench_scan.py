"""Library scan at archive scale: cold and incremental (warm) scan throughput and peak memory.

For each size, a library of tiny valid media files is written to a temp dir — 0.5–2 s
WAVs, plus FLAC, MP3 and M4A encoded once by PyAV — as copies of a few templates with
a counter written into each (a WAV sample, or a metadata tag of the encoded formats),
so every file has its own hash. Then, in a fresh child process per size (so peak RSS
is that size's):

- cold: `scan_library` with no manifest: every file is listed, sniffed, hashed, probed;
- warm: the rows of the cold scan are written as a manifest, then `previous_scan` reads
  them back and `scan_library` runs again on the unchanged library: every file's hash
  and duration come from the manifest (size + mtime + path unchanged).

"Cold" means no manifest, not a cold disk cache: the files were just written, so they
are in the page cache (dropping it needs root). Timings on a shared machine are noisy.

    python bench/bench_scan.py                       # 1,000, 10,000 and 100,000 files
    python bench/bench_scan.py --sizes 1000 --json rows.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAG = b"scan-bench-" + b"~" * 12  # replaced by a counter in each copy of an encoded template
FILES_PER_FOLDER = 500
ENCODED = {".flac": "flac", ".mp3": "mp3", ".m4a": "aac"}  # 5 % of the files each; the rest WAV


def templates(folder: Path) -> dict[str, list[bytes]]:
    """A few WAVs of 0.5–2 s and one file per encoded format, each at least one full frame long."""
    import av

    rng = np.random.default_rng(0)
    made: dict[str, list[bytes]] = {".wav": []}
    for seconds in (0.5, 1.0, 1.5, 2.0):
        samples = (rng.normal(0, 0.05, int(seconds * 16_000)) * 32767).astype(np.int16)
        made[".wav"].append(_encode(folder / f"t{seconds}.wav", samples, "pcm_s16le", "wav", av))
    for suffix, codec in ENCODED.items():
        samples = (rng.normal(0, 0.05, 16_000) * 32767).astype(np.int16)
        made[suffix] = [_encode(folder / f"t{suffix}", samples, codec, None, av)]
    return made


def _encode(path: Path, samples: np.ndarray, codec: str, container_format: str | None, av: object) -> bytes:
    with av.open(str(path), "w", format=container_format) as container:  # type: ignore[attr-defined]
        if codec != "pcm_s16le":
            container.metadata["comment"] = TAG.decode()
        stream = container.add_stream(codec, rate=16_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")  # type: ignore[attr-defined]
        frame.sample_rate = 16_000
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=16_000)  # type: ignore[attr-defined]
        for chunk in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(chunk):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = path.read_bytes()
    if codec != "pcm_s16le" and data.count(TAG) != 1:
        raise RuntimeError(f"{path.suffix}: the counter tag is not in the encoded file")
    return data


def build_library(root: Path, files: int, made: dict[str, list[bytes]]) -> None:
    """`files` files, 500 per folder; each copy differs from its template by a counter."""
    wavs = made[".wav"]
    for n in range(files):
        folder = root / f"box{n // FILES_PER_FOLDER:04d}"
        if n % FILES_PER_FOLDER == 0:
            folder.mkdir(parents=True)
        kind = n % 20
        if kind < len(ENCODED):
            suffix = list(ENCODED)[kind]
            data = made[suffix][0].replace(TAG, b"scan-bench-%012d" % n)
        else:
            suffix, template = ".wav", wavs[n % len(wavs)]
            data = template[:44] + n.to_bytes(4, "little") + template[48:]  # the first two samples
        (folder / f"item{n:06d}{suffix}").write_bytes(data)


def measure(library: Path, out: Path) -> dict[str, float]:
    """Cold scan, manifest written, warm scan: run in a child process so peak RSS is this size's."""
    import pyarrow.parquet as pq

    from tasks.media.local import LocalSource
    from tasks.media.scan import previous_scan, scan_library
    MANIFEST_DIR = "manifest"  # the layout's name; literal so `--against REV` runs old code too
    from tasks.output.manifests import RunContext, to_table
    from tasks.records import FileResult

    started = time.perf_counter()
    cold = scan_library(LocalSource(library), previous_scan(out))
    cold_s = time.perf_counter() - started
    failed = [i for i in cold if not i.ok]
    if failed or len(cold) == 0:
        raise RuntimeError(f"{len(failed)} of {len(cold)} files failed the scan, e.g. {failed[:1]}")
    now = datetime.now(UTC)
    rows = to_table([FileResult(i, "ok", 0, now) for i in cold], RunContext("bench", "fake", "fake", "cfg"))
    (out / MANIFEST_DIR / "run_id=bench").mkdir(parents=True)
    pq.write_table(rows, out / MANIFEST_DIR / "run_id=bench" / "part-00000.parquet")
    started = time.perf_counter()
    warm = scan_library(LocalSource(library), previous_scan(out))
    warm_s = time.perf_counter() - started
    if warm != cold:
        raise RuntimeError("the warm scan does not match the cold one")
    return {"files": len(cold), "cold_s": round(cold_s, 3), "cold_files_per_s": round(len(cold) / cold_s),
            "warm_s": round(warm_s, 3), "warm_files_per_s": round(len(warm) / warm_s),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run_size(files: int, made: dict[str, list[bytes]], scratch: Path) -> dict[str, float]:
    library, out = scratch / f"library-{files}", scratch / f"out-{files}"
    started = time.perf_counter()
    build_library(library, files, made)
    print(f"{files} files written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    child = subprocess.run([sys.executable, __file__, "--measure", str(library), str(out)],
                           check=True, stdout=subprocess.PIPE, text=True)
    shutil.rmtree(library)
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def table(rows: list[dict[str, float]]) -> str:
    lines = ["| files | cold scan s | cold files/s | warm scan s | warm files/s | peak RSS MiB |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['files']:,} | {r['cold_s']:.2f} | {r['cold_files_per_s']:,.0f} | {r['warm_s']:.2f}"
                     f" | {r['warm_files_per_s']:,.0f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated file counts")
    parser.add_argument("--json", type=Path, help="also write the rows here, as a JSON list")
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)  # LIBRARY OUT, in the child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as folder:
        scratch = Path(folder)
        made = templates(scratch)
        for files in (int(s) for s in args.sizes.split(",")):
            rows.append(run_size(files, made, scratch))
    print(f"# bench_scan.py — {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
