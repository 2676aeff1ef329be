"""The throughput suite: this pipeline against what users would run instead, then scan and manifest writer.

    python bench/bench_throughput.py            # 32 min on a shared 2-core CPU (+ ~10 min to build the speech
                                                # once); writes bench/results/throughput_<machine>.*
    python bench/bench_throughput.py --quick    # small libraries, a smoke run of every row (~3 min)

Same files, same weights (the bundled tiny.en), same decoding (float32 on CPU, greedy, temperature 0, no
conditioning on previous text, English), side by side in one run. Every row runs in a fresh process, so
its peak RSS (the process and its children, sampled every 20 ms, model included) is its own:

- plain loop: faster-whisper `WhisperModel.transcribe(path)` per file, what most users write first;
- faster-whisper `BatchedInferencePipeline.transcribe(path, batch_size=8)` per file;
- transformers `pipeline("automatic-speech-recognition", batch_size=8, chunk_length_s=30)` over the list
  of files (decoded with faster-whisper's PyAV decoder, inside the timed part as for the other rows);
- transcribe-all: the whole `transcribe-library` flow — scan and hash, plan, decode ahead in worker
  processes, VAD, packing of short clips / batched windows of long files, quality guards, JSON/SRT/VTT,
  Parquet manifest, run metrics — on a warm Prefect API and a warm model. The WER canary, a fixed ~3 s
  per run whatever the library's size, is off for this row.

Three libraries, built by `bench/material.py` and cached under `--material`: `prompts`, 180 real recorded
prompts of 2-10 s (Debian's asterisk-core-sounds-en-wav: one human voice, 8 kHz telephone WAV); and from
festival's HTS and diphone voices at three speaking rates, with pauses, a third of the clips over noise or
music beds: `short`, clips of 2-10 s as MP3 plus the two real recordings of Debian's pocketsphinx-testdata
whose text is known (a voicemail or call-snippet archive); `long`, files of 3, 10 and 20 min, M4A (lectures,
meetings). WER is scored for every row with tasks/quality/wer.py's normaliser against the known text. The
`transcribe-all --packing` row is the opt-in packing (clips only): faster, but a clip's text then depends
on its neighbours.

Then `bench_scan.py` (scan files/s at 1k, 10k, 100k files, cold and incremental) and
`bench_manifest_writer.py` (peak memory of the manifest merge at 1k, 10k, 100k files) run as they are.
The PNG has one panel per part. Audio s / wall s is only comparable within one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS = ("plain loop", "BatchedInferencePipeline", "transformers pipeline", "transcribe-all",
        "transcribe-all --packing")
LONG_ROWS = ROWS[:4]  # packing only touches clips up to 20 s
BATCH = 8


# --- libraries: bench/material.py (festival voices, pauses, noise and music beds, real recordings) ---


def build_libraries(root: Path, short_count: int, long_minutes: list[float], cache: Path) -> dict[str, dict[str, str]]:
    """Build (or reuse, if `root` already holds them) the short and long libraries; part → source → text."""
    from bench.material import build_long, build_prompts, build_short

    index = root / "references.json"
    wanted = {"short": short_count, "long": long_minutes, "prompts": "asterisk 2-10 s"}
    if index.exists() and json.loads(index.read_text()).get("wanted") == wanted:
        return dict(json.loads(index.read_text())["references"])
    references = {"short": build_short(root / "short", short_count, cache), "prompts": build_prompts(root / "prompts"),
                  "long": build_long(root / "long", long_minutes, cache)}
    index.write_text(json.dumps({"wanted": wanted, "references": references}))
    return references


# --- one row, in its own process ----------------------------------------------------------------


def run_row(row: str, library: Path, sources: list[str], work: Path) -> dict[str, Any]:
    """Load (untimed), transcribe every file (timed); return wall seconds and text per source."""
    kwargs = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
    paths = [str(library / s) for s in sources]
    extra: dict[str, Any] = {}
    if row in ("plain loop", "BatchedInferencePipeline"):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from transcribe_all.models import bundled_whisper_ct2

        model = WhisperModel(str(bundled_whisper_ct2()), device="cpu", compute_type="float32")
        if row == "plain loop":
            def transcribe(path: str) -> str:
                return " ".join(s.text.strip() for s in model.transcribe(path, **kwargs)[0])
        else:
            batched = BatchedInferencePipeline(model)

            def transcribe(path: str) -> str:
                return " ".join(s.text.strip() for s in batched.transcribe(path, batch_size=BATCH, **kwargs)[0])
        started = time.perf_counter()
        texts = [transcribe(p) for p in paths]
    elif row == "transformers pipeline":
        import torch
        from faster_whisper import decode_audio
        from transformers import pipeline

        from transcribe_all.models import bundled_whisper_transformers

        asr = pipeline("automatic-speech-recognition", model=str(bundled_whisper_transformers()),
                       dtype=torch.float32, device="cpu")
        started = time.perf_counter()
        inputs = [{"raw": decode_audio(p), "sampling_rate": 16_000} for p in paths]
        outputs = asr(inputs, batch_size=BATCH, chunk_length_s=30, generate_kwargs={"num_beams": 1})
        texts = [o["text"].strip() for o in outputs]
    elif row.startswith("transcribe-all"):
        import pyarrow.dataset as ds

        from flows.transcribe_library import transcribe_library
        from tasks.engines import EngineConfig, load_transcriber

        load_transcriber(EngineConfig(pack_short_clips=row.endswith("--packing")))  # warm, as the others
        # Warm Prefect as well: the first run in a process registers both flows and builds their
        # parameter schemas (~2 s here), a once-per-process cost like loading the model.
        (work / "warmup").mkdir()
        shutil.copy(ROOT / "examples" / "library" / "meetings" / "standup.wav", work / "warmup")
        transcribe_library(source=str(work / "warmup"), out=str(work / "warmup-out"), canary="off",
                           pack_short_clips=row.endswith("--packing"))
        started = time.perf_counter()
        # The WER canary (6 example clips, ~3 s here) is a fixed cost per run, not per file: left out.
        metrics = transcribe_library(source=str(library), out=str(work / "out"), canary="off",
                                     pack_short_clips=row.endswith("--packing"))
        wall = time.perf_counter() - started
        rows = ds.dataset(work / "out" / "manifest", partitioning="hive").to_table(columns=["source", "text"])
        by_source = {r["source"]: r["text"] or "" for r in rows.to_pylist()}
        texts = [by_source.get(s, "") for s in sources]
        extra = {"files_ok": metrics.files_ok, "decode_wait_s": metrics.decode_s,
                 "inference_s": metrics.inference_s, "write_s": metrics.write_s, "scan_s": metrics.scan_s}
        return {"wall_s": wall, "texts": texts, **extra}
    else:
        raise SystemExit(f"--row: unknown row {row!r}")
    return {"wall_s": time.perf_counter() - started, "texts": texts}


class PeakRss:
    """Sample the RSS of this process plus its children (decoder workers) every 20 ms."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.02):
            total = 0
            for process in [self._me, *self._me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def _child(args: argparse.Namespace) -> int:
    sampler = PeakRss()
    sources = json.loads(Path(args.sources).read_text())
    result = run_row(args.row, Path(args.library), sources, Path(args.work))
    result["peak_rss_mib"] = sampler.stop()
    Path(args.result).write_text(json.dumps(result))
    return 0


def measure_row(row: str, library: Path, sources: list[str], tmp: Path, api_url: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(dir=tmp, prefix="row-"))
    (work / "sources.json").write_text(json.dumps(sources))
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, __file__, "--row", row, "--library", str(library), "--sources",
               str(work / "sources.json"), "--work", str(work), "--result", str(work / "result.json")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{row} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads((work / "result.json").read_text()))


# --- the suite -----------------------------------------------------------------------------------


def asr_table(name: str, references: dict[str, str], library: Path, tmp: Path, api_url: str,
              rows: tuple[str, ...]) -> tuple[str, list[dict[str, Any]]]:
    from tasks.media.audio import probe_duration
    from tasks.quality.wer import word_error_rate

    sources = sorted(references)
    refs = [references[s] for s in sources]
    audio_s = sum(probe_duration(library / s) for s in sources)
    results = []
    for row in rows:
        print(f"[{name}] {row} ...", file=sys.stderr, flush=True)
        got = measure_row(row, library, sources, tmp, api_url)
        got |= {"row": row, "audio_s": audio_s, "speed": audio_s / got["wall_s"],
                "wer": word_error_rate(refs, got["texts"])}
        results.append(got)
    loop = next((r for r in results if r["row"] == "plain loop"), results[0])
    heading = (f"**{name}**: {len(sources)} files, {audio_s / 60:.1f} min of audio "
               f"({audio_s / len(sources):.1f} s per file on average)")
    lines = [heading, "",
             "| | wall s | audio s / wall s | × plain loop | WER | peak RSS MiB |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['wall_s']:.1f} | {r['speed']:.1f} | {r['speed'] / loop['speed']:.2f} | "
                     f"{r['wer']:.3f} | {r['peak_rss_mib']:.0f} |")
    ours = next((r for r in results if r["row"] == "transcribe-all"), None)
    peer = next((r for r in results if r["row"] == "BatchedInferencePipeline"), None)
    if ours and peer:
        ratio = ours["speed"] / peer["speed"]
        lines += ["", f"transcribe-all ÷ BatchedInferencePipeline (batch {BATCH}): {ratio:.2f}×."]
    if ours:
        stages = (f"transcribe-all stage seconds: scan {ours['scan_s']:.2f}, model waiting on decode "
                  f"{ours['decode_wait_s']:.2f}, inference {ours['inference_s']:.1f}, write {ours['write_s']:.2f}"
                  f" ({ours['files_ok']} files ok).")
        lines += ["", stages]
    return "\n".join(lines), results


def sub_bench(script: str, sizes: str, tmp: Path) -> tuple[str, list[dict[str, Any]]]:
    """Run bench/<script> as it is; its table and its JSON rows."""
    print(f"[{script}] sizes {sizes} ...", file=sys.stderr, flush=True)
    rows_path = tmp / f"{script}.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--sizes", sizes, "--json", str(rows_path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip(), json.loads(rows_path.read_text())


def chart(path: Path, short: list[dict[str, Any]], prompts: list[dict[str, Any]], long: list[dict[str, Any]],
          scan: list[dict[str, Any]], writer: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    width = 0.27
    groups = (("clips < 10 s", short), ("real recorded prompts < 10 s", prompts), ("several-minute files", long))
    for offset, (label, results) in zip((-width, 0.0, width), groups, strict=True):
        if not results:
            continue
        xs = [i + offset for i in range(len(results))]
        bars = ax.bar(xs, [r["speed"] for r in results], width, label=label)
        ax.bar_label(bars, labels=[f"WER {r['wer']:.2f}" for r in results], fontsize=7, rotation=90, padding=2)
    names = [r["row"] for r in max(short, prompts, long, key=len)]
    ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    tallest = max((r["speed"] for r in short + prompts + long), default=1.0)
    ax.set_ylim(top=tallest * 1.3)  # room for the WER labels
    ax.set_ylabel("audio seconds per wall second")
    ax.set_title("ASR throughput (same weights and decoding)")
    ax.legend(fontsize=8)
    ax = axes[1]
    if scan:
        files = [r["files"] for r in scan]
        ax.plot(files, [r["cold_files_per_s"] for r in scan], "o-", label="cold (hash + probe)")
        ax.plot(files, [r["warm_files_per_s"] for r in scan], "s-", label="incremental (unchanged)")
        ax.axhline(2000, color="grey", linestyle=":", label="target 2,000 files/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("files")
    ax.set_ylabel("files per second")
    ax.set_title("library scan")
    ax = axes[2]
    if writer:
        ax.plot([r["files"] for r in writer], [r["peak_rss_mib"] for r in writer], "o-")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
    ax.set_xlabel("files in the run")
    ax.set_ylabel("peak RSS over baseline, MiB")
    ax.set_title("manifest merge memory")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small libraries and sizes: a smoke run")
    parser.add_argument("--short", type=int, default=80, help="synthetic clips of 2-10 s (+ 2 real recordings)")
    parser.add_argument("--long-minutes", default="3,10,20", help="one long file per entry, minutes")
    parser.add_argument("--material", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-bench-speech",
                        help="where the libraries are built (reused when they match)")
    parser.add_argument("--festival-cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival",
                        help="synthesised sentences, shared by every library")
    parser.add_argument("--sizes", default="1000,10000,100000", help="scan and manifest sizes")
    parser.add_argument("--rows", default=",".join(ROWS), help="which ASR rows, comma-separated")
    parser.add_argument("--skip", default="", help="parts to skip: short,prompts,long,scan,writer")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="for the file name and title")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--library", help=argparse.SUPPRESS)
    parser.add_argument("--sources", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return _child(args)
    if args.quick:
        args.short, args.long_minutes, args.sizes = 12, "1.5", "1000,10000"
        args.material = args.material.with_name(args.material.name + "-quick")
    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"--rows: unknown {sorted(unknown)}; choose from {', '.join(ROWS)}")
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    started = datetime.now(UTC)
    sections: list[str] = []
    short: list[dict[str, Any]] = []
    prompts: list[dict[str, Any]] = []
    long: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp_name, \
            prefect_test_harness(server_startup_timeout=120):
        tmp = Path(tmp_name)
        api_url = str(PREFECT_API_URL.value())
        minutes = [float(m) for m in args.long_minutes.split(",")]
        libraries = build_libraries(args.material, args.short, minutes, args.festival_cache)
        if "short" not in skip:
            table, short = asr_table("Clips of 2-10 s (MP3; festival voices, 2 real recordings)",
                                     libraries["short"], args.material / "short", tmp, api_url, rows)
            sections.append(table)
            print(table + "\n", flush=True)
        if "prompts" not in skip:
            name = "Real recorded prompts of 2-10 s (asterisk-core-sounds-en: one human voice, 8 kHz WAV)"
            table, prompts = asr_table(name, libraries["prompts"], args.material / "prompts", tmp, api_url, rows)
            sections.append(table)
            print(table + "\n", flush=True)
        if "long" not in skip:
            long_rows = tuple(r for r in rows if r in LONG_ROWS)
            table, long = asr_table(f"Files of {args.long_minutes} min (M4A)", libraries["long"],
                                    args.material / "long", tmp, api_url, long_rows)
            sections.append(table)
            print(table + "\n", flush=True)
        scan_table, scan = sub_bench("bench_scan.py", args.sizes, tmp) if "scan" not in skip else ("", [])
        writer_table, writer = (sub_bench("bench_manifest_writer.py", args.sizes, tmp) if "writer" not in skip
                                else ("", []))
    for table in (scan_table, writer_table):
        if table:
            sections.append(table)
            print(table + "\n", flush=True)
    machine = f"{args.machine}, {platform.machine()}, Python {platform.python_version()}"
    title = f"transcribe-all throughput suite — {started:%Y-%m-%d %H:%M} UTC — {machine}"
    slug = args.machine.lower().replace(" ", "-").replace(",", "")
    args.results.mkdir(parents=True, exist_ok=True)
    png = args.results / f"throughput_{slug}{'_quick' if args.quick else ''}.png"
    chart(png, short, prompts, long, scan, writer, title)
    command = "python bench/bench_throughput.py " + " ".join(sys.argv[1:])
    took = (datetime.now(UTC) - started).seconds / 60
    report = "\n\n".join([f"# {title}", f"`{command.strip()}` — took {took:.0f} min. Chart: {png.name}", *sections])
    png.with_suffix(".md").write_text(report + "\n")
    print(f"wrote {png.with_suffix('.md')} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
