"""The throughput suite: this pipeline against what users would run instead, then scan and manifest writer.

    python bench/bench_throughput.py            # ~35 min on a shared 2-core CPU (+ ~10 min to build the speech
                                                # once); writes bench/results/throughput_<machine>.*
    python bench/bench_throughput.py --quick    # small libraries, a smoke run of every row (~5 min)

Same files, same weights (the bundled tiny.en, or `--model base|PATH`), same decoding (float32 on CPU,
greedy, temperature 0, no conditioning on previous text, English), side by side in one run. Every row runs
in a fresh process, so its peak RSS (the process and its children, sampled every 20 ms, model included) is
its own. **One warm-up rule for every row**: in the row's process the model is loaded and one short clip
(examples/library/meetings/standup.wav, 3.4 s) is transcribed by the row's own code path, untimed; the
clock then runs over the whole library. Rows:

- plain loop: faster-whisper `WhisperModel.transcribe(path)` per file, what most users write first;
- faster-whisper `BatchedInferencePipeline.transcribe(path, batch_size=N)` per file, N swept (`--peer-batches`,
  4/8/16/32 on long files; on clips, 8 and 16 by default: a clip under 30 s is one VAD chunk, a batch of one,
  so N cannot change its work); every table compares each row with the **fastest** of the sweep;
- transformers `pipeline("automatic-speech-recognition", batch_size=8, chunk_length_s=30)` over the list
  of files (opt-in row: `--rows`);
- transcribe-all: the whole `transcribe-library` flow — scan and hash, plan, decode ahead in worker
  processes, VAD, clips / batched windows of long files, quality guards, JSON/SRT/VTT, Parquet manifest, run
  metrics — on a warm Prefect API. The WER canary, a fixed ~3 s per run whatever the library's size, is off.
  `transcribe-all` is the default configuration of the checkout measured (its default engine options are
  named in the results header; its language check, which the peers do not do, is also measured off:
  `transcribe-all --language-check=false`); `transcribe-all audio_context=fit` and `transcribe-all --packing` are the
  opt-in options that change what the model hears, passed as a user passes them (the flow's
  `engine_options` / `pack_short_clips`, i.e. `--engine-option audio_context=fit` / `--packing` on the CLI).
  Any `transcribe-all KEY=VALUE` row (an engine option) or `transcribe-all --NAME=VALUE` row (a flow
  parameter, e.g. `--language-check=false`, `--batch-size=32`) can be asked for with `--rows`.

Three libraries, built by `bench/material.py` and cached under `--material`: `prompts`, 180 real recorded
prompts of 2-10 s (Debian's asterisk-core-sounds-en-wav: one human voice, 8 kHz telephone WAV); and from
festival's HTS and diphone voices at three speaking rates, with pauses, a third of the clips over noise or
music beds: `short`, clips of 2-10 s as MP3 plus the two real recordings of Debian's pocketsphinx-testdata
whose text is known; `long`, files of 3, 10 and 20 min, M4A. WER is scored for every row twice: with
tasks/quality/wer.py's normaliser and with Whisper's EnglishTextNormalizer (bench/common.py).

Then `bench_scan.py` and `bench_manifest_writer.py` run as they are. The PNG has one panel per part. Audio s /
wall s is only comparable within one run of this script: the machine is shared.
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

PEER = "BatchedInferencePipeline"
OURS = "transcribe-all"
ROWS = f"plain loop,{PEER},{OURS},{OURS} --language-check=false,{OURS} audio_context=fit,{OURS} --packing"
WARMUP = ROOT / "examples" / "library" / "meetings" / "standup.wav"
TRANSFORMERS_BATCH = 8


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


def subset(references: dict[str, str], count: int) -> dict[str, str]:
    """Every k-th source (sorted) so `count` remain; all of them when `count` is 0."""
    if not count:
        return references
    chosen = sorted(references)[:: max(1, len(references) // count)][:count]
    return {source: references[source] for source in chosen}


def only(library: Path, references: dict[str, str], folder: Path) -> Path:
    """A folder holding exactly the chosen sources (hard links, else copies): the flow transcribes what a
    folder holds, so a subset must be a folder of its own for every row to see the same files."""
    if len(references) == sum(1 for p in library.iterdir() if p.is_file()):
        return library
    folder.mkdir(parents=True)
    for source in references:
        try:
            os.link(library / source, folder / source)
        except OSError:
            shutil.copyfile(library / source, folder / source)
    return folder


def expand_rows(spec: str, batches: list[int]) -> list[str]:
    """`--rows` with `BatchedInferencePipeline` expanded to one row per batch size; unknown rows refused."""
    rows: list[str] = []
    for row in (r.strip() for r in spec.split(",") if r.strip()):
        if row == PEER:
            rows += [f"{PEER} batch {b}" for b in batches]
        elif row in ("plain loop", "transformers pipeline", OURS) or row.startswith(f"{PEER} batch ") or (
                row.startswith(OURS + " ") and all(t == "--packing" or "=" in t for t in row.split()[1:])):
            rows.append(row)
        else:
            raise SystemExit(f"--rows: unknown row {row!r}; rows are: plain loop, {PEER}, {PEER} batch N, "
                             f"transformers pipeline, {OURS} [--packing] [KEY=VALUE ...] [--NAME=VALUE ...]")
    return rows


# --- one row, in its own process ----------------------------------------------------------------


def run_row(row: str, library: Path, sources: list[str], work: Path, model: str) -> dict[str, Any]:
    """Load and warm up (untimed, the same for every row), transcribe every file (timed)."""
    paths = [str(library / s) for s in sources]
    if row.startswith(OURS):
        return _run_ours(row, library, sources, work, model)
    if row == "transformers pipeline":
        transcribe_all = _transformers_rows(model)
    else:
        transcribe_all = _faster_whisper_rows(row, model)
    transcribe_all([str(WARMUP)])  # warm-up: untimed
    cpu, started = cpu_seconds(), time.perf_counter()
    texts = transcribe_all(paths)
    return {"wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu, "texts": texts}


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process, its live children and the children it has reaped:
    steadier than wall time on a shared machine, though not immune to it."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _faster_whisper_rows(row: str, model: str) -> Any:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from bench.common import model_path

    kwargs = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
    threads = int(os.environ.get("TRANSCRIBE_ALL_CPU_THREADS", "0"))  # the same for every row (--cpu-threads)
    whisper = WhisperModel(str(model_path(model)), device="cpu", compute_type="float32", cpu_threads=threads)
    if row == "plain loop":
        def one(path: str) -> str:
            return " ".join(s.text.strip() for s in whisper.transcribe(path, **kwargs)[0])
    elif row.startswith(f"{PEER} batch "):
        batched, batch = BatchedInferencePipeline(whisper), int(row.split()[-1])

        def one(path: str) -> str:
            return " ".join(s.text.strip() for s in batched.transcribe(path, batch_size=batch, **kwargs)[0])
    else:
        raise SystemExit(f"--row: unknown row {row!r}")
    return lambda paths: [one(p) for p in paths]


def _transformers_rows(model: str) -> Any:
    import torch
    from faster_whisper import decode_audio
    from transformers import pipeline

    from tasks.models import bundled_whisper_transformers

    if model != "tiny.en":
        raise SystemExit("the transformers pipeline row runs the bundled tiny.en only")
    asr = pipeline("automatic-speech-recognition", model=str(bundled_whisper_transformers()),
                   dtype=torch.float32, device="cpu")

    def transcribe(paths: list[str]) -> list[str]:
        inputs = [{"raw": decode_audio(p), "sampling_rate": 16_000} for p in paths]  # decoding is timed too
        outputs = asr(inputs, batch_size=TRANSFORMERS_BATCH, chunk_length_s=30, generate_kwargs={"num_beams": 1})
        return [o["text"].strip() for o in outputs]

    return transcribe


def ours_parameters(row: str, model: str) -> dict[str, Any]:
    """The flow parameters a user passes for this row (`--packing`, `--engine-option KEY=VALUE`)."""
    from bench.common import model_path

    words = row.split()[1:]
    options = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("--"))
    parameters: dict[str, Any] = {"canary": "off", "pack_short_clips": "--packing" in words}
    for word in (w for w in words if w.startswith("--") and "=" in w):  # a flow parameter: --batch-size=32
        name, value = word[2:].split("=", 1)
        literal = value in ("true", "false") or value.isdigit()
        parameters[name.replace("-", "_")] = json.loads(value) if literal else value
    if options:
        parameters["engine_options"] = options
    if model in ("base", "whisper-base"):
        parameters |= {"model": "whisper-base", "language": "en"}  # as a user names it
    elif model != "tiny.en":
        parameters |= {"model": str(model_path(model)), "language": "en"}
    return parameters


def _run_ours(row: str, library: Path, sources: list[str], work: Path, model: str) -> dict[str, Any]:
    import pyarrow.dataset as ds

    from flows.transcribe_library import transcribe_library

    parameters = ours_parameters(row, model)
    # Warm-up: the first run in a process loads the model, registers both flows and builds their parameter
    # schemas (~2 s here), once-per-process costs like the peers' model load and first call.
    (work / "warmup").mkdir()
    shutil.copy(WARMUP, work / "warmup")
    transcribe_library(source=str(work / "warmup"), out=str(work / "warmup-out"), **parameters)
    cpu, started = cpu_seconds(), time.perf_counter()
    metrics = transcribe_library(source=str(library), out=str(work / "out"), **parameters)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    rows = ds.dataset(work / "out" / "manifest", partitioning="hive").to_table(columns=["source", "text"])
    by_source = {r["source"]: r["text"] or "" for r in rows.to_pylist()}
    return {"wall_s": wall, "cpu_s": cpu, "texts": [by_source.get(s, "") for s in sources],
            "files_ok": metrics.files_ok, "decode_wait_s": metrics.decode_s, "inference_s": metrics.inference_s,
            "write_s": metrics.write_s, "scan_s": metrics.scan_s}


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
    result = run_row(args.row, Path(args.library), sources, Path(args.work), args.model)
    result["peak_rss_mib"] = sampler.stop()
    Path(args.result).write_text(json.dumps(result))
    return 0


def measure_row(row: str, library: Path, sources: list[str], tmp: Path, api_url: str, model: str,
                threads: int = 0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(dir=tmp, prefix="row-"))
    (work / "sources.json").write_text(json.dumps(sources))
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING"}
    if threads:  # every row's engine, ours through its worker setting, the peers through cpu_threads
        env |= {"TRANSCRIBE_ALL_CPU_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--row", row, "--library", str(library), "--sources",
               str(work / "sources.json"), "--work", str(work), "--result", str(work / "result.json"),
               "--model", model]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{row} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads((work / "result.json").read_text()))


# --- the suite -----------------------------------------------------------------------------------


def asr_part(name: str, references: dict[str, str], library: Path, tmp: Path, api_url: str, rows: list[str],
             model: str, threads: int = 0) -> tuple[str, list[dict[str, Any]]]:
    from bench.common import wer_pair
    from bench.throughput_report import table
    from tasks.media.audio import probe_duration

    sources = sorted(references)
    refs = [references[s] for s in sources]
    audio_s = sum(probe_duration(library / s) for s in sources)
    results = []
    for row in rows:
        print(f"[{name}] {row} ...", file=sys.stderr, flush=True)
        got = measure_row(row, library, sources, tmp, api_url, model, threads)
        got |= {"row": row, "audio_s": audio_s, "speed": audio_s / got["wall_s"], "wer": wer_pair(refs, got["texts"])}
        print(f"[{name}] {row}: {got['wall_s']:.1f} s, WER {got['wer'][0]:.3f} / {got['wer'][1]:.3f}",
              file=sys.stderr, flush=True)
        results.append(got)
    heading = (f"**{name}**: {len(sources)} files, {audio_s / 60:.1f} min of audio "
               f"({audio_s / len(sources):.1f} s per file on average)")
    return table(heading, results), results


def sub_bench(script: str, sizes: str, tmp: Path) -> tuple[str, list[dict[str, Any]]]:
    """Run bench/<script> as it is; its table and its JSON rows."""
    print(f"[{script}] sizes {sizes} ...", file=sys.stderr, flush=True)
    rows_path = tmp / f"{script}.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--sizes", sizes, "--json", str(rows_path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip(), json.loads(rows_path.read_text())


def header(args: argparse.Namespace, started: datetime, took_min: float, png: Path) -> list[str]:
    from dataclasses import fields

    from tasks.engines.options import CTranslate2Options

    machine = f"{args.machine}, {platform.machine()}, Python {platform.python_version()}"
    command = "python bench/bench_throughput.py " + " ".join(sys.argv[1:])
    options = ", ".join(f"{f.name}={f.default}" for f in fields(CTranslate2Options)
                        if f.name in ("audio_context", "long_form", "quality_retry"))
    return [f"# transcribe-all throughput suite — {started:%Y-%m-%d %H:%M} UTC — {machine}",
            f"`{command.strip()}` — took {took_min:.0f} min. Chart: {png.name}. Measured at {args.commit}.",
            (f"Model: {args.model}, float32, greedy, English, no conditioning on previous text, in every row. "
             f"The `{OURS}` row is this checkout's default configuration (CTranslate2 engine defaults: {options}). "
             "Warm-up, the same for every row: in the row's own process the model is loaded and one 3.4 s clip "
             "is transcribed by the row's own code path, untimed; the clock then runs over the whole library "
             "(decoding the files included). WER: ours = tasks/quality/wer.py's normaliser; Whisper norm. = "
             "OpenAI Whisper's EnglishTextNormalizer (whisper-normalizer 0.1.15, as the Open ASR leaderboard). "
             "The machine is shared with other jobs and noisy: compare rows of this run only. "
             + (f"Every row's engine ran {args.cpu_threads} CPU thread(s) (`--cpu-threads`; ours through "
                "TRANSCRIBE_ALL_CPU_THREADS, the peers through cpu_threads, OMP_NUM_THREADS for both)."
                if args.cpu_threads else "Engine threads: each library's default."))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small libraries and sizes: a smoke run")
    parser.add_argument("--short", type=int, default=80, help="synthetic clips of 2-10 s (+ 2 real recordings)")
    parser.add_argument("--long-minutes", default="3,10,20", help="one long file per entry, minutes")
    parser.add_argument("--prompts", type=int, default=0, help="every k-th real prompt so this many remain; 0: all")
    parser.add_argument("--clips", type=int, default=0, help="every k-th festival clip so this many remain; 0: all")
    parser.add_argument("--long-files", type=int, default=0, help="the N shortest long files only; 0: all")
    parser.add_argument("--material", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-bench-speech",
                        help="where the libraries are built (reused when they match)")
    parser.add_argument("--festival-cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival",
                        help="synthesised sentences, shared by every library")
    parser.add_argument("--sizes", default="1000,10000,100000", help="scan and manifest sizes")
    parser.add_argument("--rows", default=ROWS, help=f"which ASR rows, comma-separated (default: {ROWS})")
    parser.add_argument("--peer-batches", default="4,8,16,32", help=f"{PEER} batch sizes on long files")
    parser.add_argument("--clip-peer-batches", default="8,16", help=f"{PEER} batch sizes on clips")
    parser.add_argument("--cpu-threads", type=int, default=0,
                        help="engine threads in every row (0: each library's default); 1 on a crowded machine")
    parser.add_argument("--model", default="tiny.en", help="tiny.en (bundled), base, or a CTranslate2 folder")
    parser.add_argument("--skip", default="", help="parts to skip: short,prompts,long,scan,writer")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="for the file name and title")
    for hidden in ("--row", "--library", "--sources", "--work", "--result"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return _child(args)
    from bench.common import commit_stamp

    args.commit = commit_stamp()  # before anything is written
    if args.quick:
        args.short, args.long_minutes, args.sizes = 12, "1.5", "1000,10000"
        args.material = args.material.with_name(args.material.name + "-quick")
    clip_rows = expand_rows(args.rows, [int(b) for b in args.clip_peer_batches.split(",")])
    long_rows = [r for r in expand_rows(args.rows, [int(b) for b in args.peer_batches.split(",")])
                 if "--packing" not in r.split()]  # packing only touches clips up to 20 s
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from bench.throughput_report import chart

    started = datetime.now(UTC)
    sections: list[str] = []
    parts: list[tuple[str, list[dict[str, Any]]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp_name, \
            prefect_test_harness(server_startup_timeout=120):
        tmp = Path(tmp_name)
        api_url = str(PREFECT_API_URL.value())
        libraries = build_libraries(args.material, args.short, [float(m) for m in args.long_minutes.split(",")],
                                    args.festival_cache)
        libraries["prompts"] = subset(libraries["prompts"], args.prompts)
        libraries["short"] = subset(libraries["short"], args.clips)
        shortest = sorted(libraries["long"], key=lambda s: float(s.rsplit("_", 1)[-1].removesuffix("min.m4a")))
        libraries["long"] = {s: libraries["long"][s] for s in shortest[: args.long_files or len(shortest)]}
        for part, name, rows in (
            ("short", "Clips of 2-10 s (MP3; festival voices, 2 real recordings)", clip_rows),
            ("prompts", "Real recorded prompts of 2-10 s (asterisk-core-sounds-en: one human voice, 8 kHz WAV)",
             clip_rows),
            ("long", f"Files of {','.join(s.rsplit('_', 1)[-1][:-7] for s in libraries['long'])} min (M4A)", long_rows),
        ):
            if part not in skip:
                library = only(args.material / part, libraries[part], tmp / f"library-{part}")
                table, results = asr_part(name, libraries[part], library, tmp, api_url, rows, args.model,
                                          args.cpu_threads)
                sections.append(table)
                parts.append((name.split(" (")[0], results))
                print(table + "\n", flush=True)
        scan_table, scan = sub_bench("bench_scan.py", args.sizes, tmp) if "scan" not in skip else ("", [])
        writer_table, writer = (sub_bench("bench_manifest_writer.py", args.sizes, tmp) if "writer" not in skip
                                else ("", []))
    sections += [t for t in (scan_table, writer_table) if t]
    slug = args.machine.lower().replace(" ", "-").replace(",", "")
    args.results.mkdir(parents=True, exist_ok=True)
    png = args.results / f"throughput_{slug}{'_quick' if args.quick else ''}.png"
    head = header(args, started, (datetime.now(UTC) - started).seconds / 60, png)
    chart(png, parts, scan, writer, head[0].removeprefix("# "))
    png.with_suffix(".md").write_text("\n\n".join([*head, *sections]) + "\n")
    print(f"wrote {png.with_suffix('.md')} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
