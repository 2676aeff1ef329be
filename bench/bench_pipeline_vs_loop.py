"""The pipeline vs the plain loop a user would write, on the same files, in one run.

Plain loop: faster-whisper's `WhisperModel.transcribe` per file, same model (bundled
tiny.en), same settings (float32, greedy, temperature 0, no conditioning on previous
text). Pipeline: the whole `transcribe-library` flow (scan, hash, plan, decode,
packed inference, JSON/SRT/VTT, Parquet) on a warm Prefect API and a warm model.

    python bench/bench_pipeline_vs_loop.py [--files 40]

The library is `--files` Harvard sentences (examples/harvard_sentences.txt) spoken
by espeak-ng in four voices: short clips, as in a call or voicemail archive.
"""

from __future__ import annotations

import argparse
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


def build_library(root: Path, count: int) -> dict[str, str]:
    """Harvard sentences spoken by espeak-ng in four voices; returns source → reference text."""
    from tests.media_factory import spoken_library

    return spoken_library(root, count)


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
    parser.add_argument("--files", type=int, default=40)
    args = parser.parse_args()
    from tasks.wer import word_error_rate

    with tempfile.TemporaryDirectory() as tmp:
        library = Path(tmp) / "library"
        references = build_library(library, args.files)
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
