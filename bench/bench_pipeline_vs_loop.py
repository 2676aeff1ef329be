"""The pipeline vs the plain loop a user would write, on the same files, in one run.

Plain loop: faster-whisper's `WhisperModel.transcribe` per file, same model (bundled
tiny.en), same settings (float32, greedy, temperature 0, no conditioning on previous
text). Pipeline: the whole `transcribe-library` flow (scan, hash, plan, decode,
packed inference, JSON/SRT/VTT, Parquet) on a warm Prefect API and a warm model.

    python bench/bench_pipeline_vs_loop.py [--copies 5]

The library is the example clips, each in `--copies` variants (a slightly different
gain, so every file has its own bytes and none is skipped as a duplicate).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def build_library(root: Path, copies: int) -> dict[str, str]:
    """Variants of every example clip; returns source → reference text."""
    from tasks.audio import decode_audio, probe_duration
    from tests.media_factory import write_audio

    references = {}
    with open(ROOT / "examples" / "references.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        path = ROOT / "examples" / "library" / row["source"]
        samples = decode_audio(path, probe_duration(path))
        for copy in range(copies):
            source = f"copy{copy}/{Path(row['source']).stem}.wav"
            write_audio(root / source, samples * (1.0 - 0.03 * copy), 16_000)
            references[source] = row["text"]
    return references


def plain_loop(library: Path, sources: list[str]) -> tuple[float, list[str]]:
    from faster_whisper import WhisperModel

    from transcribe_all.models import bundled_whisper_ct2

    model = WhisperModel(str(bundled_whisper_ct2()), device="cpu", compute_type="float32")
    started = time.perf_counter()
    texts = []
    for source in sources:
        segments, _ = model.transcribe(str(library / source), language="en", beam_size=1, temperature=0.0,
                                       condition_on_previous_text=False)
        texts.append(" ".join(s.text.strip() for s in segments))
    return time.perf_counter() - started, texts


def pipeline(library: Path, out: Path, sources: list[str]) -> tuple[float, list[str]]:
    import pyarrow.dataset as ds

    from flows.transcribe_library import transcribe_library
    from tasks.engines import EngineConfig, load_transcriber

    load_transcriber(EngineConfig())  # warm, as the loop's model is
    empty = out.parent / "empty"
    empty.mkdir(exist_ok=True)
    transcribe_library(str(empty), str(out.parent / "warmup"))  # starts the Prefect API
    started = time.perf_counter()
    metrics = transcribe_library(str(library), str(out))
    wall = time.perf_counter() - started
    assert metrics.files_ok == len(sources), metrics
    rows = ds.dataset(out / "manifest", partitioning="hive").to_table(columns=["source", "text"]).to_pylist()
    by_source = {r["source"]: r["text"] for r in rows}
    return wall, [by_source[s] for s in sources]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
    args = parser.parse_args()
    from tasks.wer import word_error_rate

    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "library"
        references = build_library(library, args.copies)
        sources = sorted(references)
        refs = [references[s] for s in sources]
        audio_s = sum(_duration(library / s) for s in sources)
        loop_s, loop_texts = plain_loop(library, sources)
        pipe_s, pipe_texts = pipeline(library, Path(tmp) / "out", sources)
    print(f"{len(sources)} files, {audio_s:.1f} s of speech, bundled tiny.en, float32 greedy, {os.cpu_count()} cores")
    print("| | wall s | audio s / wall s | WER |")
    print("|---|---|---|---|")
    print(f"| plain faster-whisper loop | {loop_s:.2f} | {audio_s / loop_s:.2f} | {word_error_rate(refs, loop_texts):.3f} |")
    print(f"| transcribe-all pipeline | {pipe_s:.2f} | {audio_s / pipe_s:.2f} | {word_error_rate(refs, pipe_texts):.3f} |")
    print(f"ratio pipeline / loop: {loop_s / pipe_s:.2f}x")
    return 0


def _duration(path: Path) -> float:
    from tasks.audio import probe_duration

    return probe_duration(path)


if __name__ == "__main__":
    sys.exit(main())
