"""Peak memory of the whole process tree and WER versus one file's length (5 / 60 / 600 minutes).

Each row builds one long WAV of spoken Harvard sentences (espeak-ng, four voices, known
text) with 0.5-2 s pauses between them, streamed to disk (600 min: ~1.1 GB at 16 kHz s16),
then runs `transcribe-all run LIB --out OUT --canary off` on it as a user would, sampling the
resident set of the CLI and every process under it (the decode workers and the temporary
Prefect server included) every 0.2 s with psutil. WER is the file's manifest text against
the sentences it was built from. The WAV, the library and DIR are deleted after each row.

Memory is the sum of each process's RSS: pages shared between processes (forkserver
decoders, libraries) count once per process, so the figure is an upper bound.

    python bench/bench_long_memory.py                # 5, 60 and 600 minutes
    python bench/bench_long_memory.py --quick        # 2 and 12 minutes (two pieces)
    python bench/bench_long_memory.py --minutes 5 60 --out bench/results/long_memory_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RATE = 16_000
VOICES = ("en-us", "en-gb", "en-us+m3", "en-gb-scotland")


@dataclass(frozen=True, slots=True)
class Row:
    minutes: float
    audio_s: float
    peak_rss_mib: float
    wall_s: float
    wer: tuple[float, float]  # the project's normaliser, Whisper's (bench/common.py)
    pieces: str
    status: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 60.0, 600.0])
    parser.add_argument("--quick", action="store_true", help="2 and 12 minutes")
    parser.add_argument("--sentences", type=int, default=40, help="distinct sentences to cycle through")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    from bench.common import commit_stamp

    commit = commit_stamp()
    minutes = [2.0, 12.0] if args.quick else args.minutes
    work = Path(tempfile.mkdtemp(prefix="bench-long-memory-"))
    try:
        sentences = speak_sentences(work / "sentences", args.sentences)
        rows = []
        for length in minutes:
            rows.append(run_row(work, sentences, length))
            print(table(rows[-1:]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = (f"# Peak memory vs file length ({datetime.now(UTC):%Y-%m-%d}, {platform.node()}, "
              f"{os.cpu_count()} cores)\n\nMeasured at {commit}.\n\n{table(rows)}\n")
    print(report)
    if args.out:
        args.out.write_text(report)


def speak_sentences(folder: Path, count: int) -> list[tuple[np.ndarray, str]]:
    """`count` Harvard sentences spoken by espeak-ng, as 16 kHz float32 with their text."""
    from tasks.media.audio import decode_audio

    folder.mkdir(parents=True)
    lines = [line.strip() for line in (ROOT / "examples" / "harvard_sentences.txt").read_text().splitlines()]
    spoken = []
    for n, text in enumerate([line for line in lines if line][:count]):
        path = folder / f"{n:03d}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[n % 4], "-s", str(140 + 10 * (n % 3)), "-w", str(path), text],
                       check=True, capture_output=True)
        spoken.append((decode_audio(path), text))
    return spoken


def write_long_wav(path: Path, sentences: list[tuple[np.ndarray, str]], minutes: float) -> tuple[float, str]:
    """Sentences with pauses until `minutes`, streamed to a 16 kHz s16 WAV; (seconds, reference text)."""
    rng = random.Random(7)
    target, written, texts = int(minutes * 60 * RATE), 0, list[str]()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while written < target:
            samples, text = sentences[len(texts) % len(sentences)]
            pause = np.zeros(int(rng.uniform(0.5, 2.0) * RATE), np.float32)
            chunk = np.concatenate([samples, pause])
            out.writeframes((np.clip(chunk, -1, 1) * 32767).astype(np.int16).tobytes())
            written += len(chunk)
            texts.append(text)
    return written / RATE, " ".join(texts)


def run_row(work: Path, sentences: list[tuple[np.ndarray, str]], minutes: float) -> Row:
    library, out = work / f"library-{minutes:g}", work / f"out-{minutes:g}"
    library.mkdir()
    audio_s, reference = write_long_wav(library / "long.wav", sentences, minutes)
    # Its own Prefect state and cache: other runs on the machine may share the default ones.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSCRIBE_ALL_CACHE_DIR": str(work / "cache"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    command = [sys.executable, "-m", "transcribe_all.cli", "run", str(library), "--out", str(out), "--canary", "off"]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = PeakSampler(process.pid)
    peak.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    peak.stop()
    try:
        row = manifest_row(out)
        status, text, pieces = row["status"], row["text"] or "", row["pieces"]
    except Exception as error:  # noqa: BLE001 - a failed run is a row too
        status, text, pieces = f"no manifest: {error}; {stderr.decode()[-300:]}", "", "-"
    from bench.common import wer_pair

    result = Row(minutes, audio_s, peak.peak / 2**20, wall, wer_pair([reference], [text]), pieces, status)
    shutil.rmtree(library, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return result


def manifest_row(out: Path) -> dict[str, str]:
    import json

    import pyarrow.dataset as ds

    row = ds.dataset(out / "manifest", partitioning="hive").to_table().to_pylist()[0]
    config = json.loads(row["engine_config"] or "{}")
    return {"status": row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}",
            "text": row["text"], "pieces": config.get("pieces", "1")}


class PeakSampler(threading.Thread):
    """The highest sum of RSS over a process and all its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self._done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in tree:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._done.wait(0.2)

    def stop(self) -> None:
        self._done.set()
        self.join()


def table(rows: list[Row]) -> str:
    from bench.common import WER_COLUMNS, wer_cells

    lines = [f"| file | audio | pieces | peak RSS, whole tree | wall | RTFx | {WER_COLUMNS} | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.minutes:g} min | {r.audio_s / 60:.1f} min | {r.pieces} | {r.peak_rss_mib:,.0f} MiB | "
                     f"{r.wall_s:,.0f} s | {r.audio_s / r.wall_s:.1f} | {wer_cells(r.wer)} | {r.status[:80]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
