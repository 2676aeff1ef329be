"""The safer retry's cost on long files: the whole clip decoded again (before) against only its flagged
stretches (now), side by side in one sitting.

Material (real recorded speech, nothing synthesised): three files of 4.5 minutes joined from the asterisk
prompts (bench/material.py `build_prompts`, one human voice) with pauses of 0.4-1.2 s; the middle file has
one prompt said 12 times in a row in its middle, a ~450-character stretch that the guards flag (high
compression ratio, a loop), as an independent check found. Each row is a fresh `transcribe-all run` process
(`--canary off`, `audio_context=full` so both checkouts decode alike):

    retry off           this checkout, `quality_retry=off`: the floor
    whole-clip retry    the checkout given by `--before` (default: a worktree of 87411f4, the last commit
                        that retried the whole clip)
    stretch retry       this checkout, the default: only the flagged stretches are decoded again

    python bench/bench_retry.py [--before PATH] [--repeat 2]

Prints a markdown table (median of `--repeat`): the CLI's wall time, the run's inference seconds (its
`runs` row), the extra inference over the floor, WER against the prompts' text and the flags.
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import WER_COLUMNS, wer_cells, wer_pair
from bench.material import build_prompts

BEFORE_REV = "87411f4"
FILE_S, REPEATS = 270.0, 12


def build_library(root: Path) -> dict[str, str]:
    """Three 4.5-minute files of real prompts; the middle one repeats one prompt REPEATS times."""
    prompts = build_prompts(root / "prompts")
    names = sorted(prompts)
    rng = np.random.default_rng(7)
    references: dict[str, str] = {}
    for number in range(3):
        parts, texts, length, repeat = [], [], 0.0, number == 1
        order = list(rng.permutation(len(names)))
        while length < FILE_S:
            name = names[order.pop()]
            if repeat and length >= FILE_S / 2 - 30:
                repeated, repeat = next(n for n in names if 35 <= len(prompts[n]) <= 45), False
                parts += [_read(root / "prompts" / repeated), _pause(rng)] * REPEATS
                texts += [prompts[repeated]] * REPEATS
            parts += [_read(root / "prompts" / name), _pause(rng)]
            texts.append(prompts[name])
            length = sum(len(p) for p in parts) / 16_000
        source = f"file{number + 1}.wav"
        _write(root / "library" / source, np.concatenate(parts))
        references[source] = " ".join(texts)
    return references


def timed_run(code: Path, library: Path, out: Path, retry: str) -> tuple[float, pd.Series]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [sys.executable, "-m", "transcribe_all.cli", "run", str(library), "--out", str(out), "--canary", "off",
            "--engine-option", "audio_context=full", "--engine-option", f"quality_retry={retry}"]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, pd.read_parquet(out / "runs").iloc[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help=f"a checkout that retries whole clips (default: {BEFORE_REV})")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-retry-"))
    before = args.before or _worktree(work / "before")
    references = build_library(work)
    rows = [("retry off", ROOT, "off"), ("whole-clip retry (before)", before, "on"),
            ("stretch retry (now)", ROOT, "on")]
    results = []
    for label, code, retry in rows:
        runs = []
        for attempt in range(args.repeat):
            out = work / f"out-{len(results)}-{attempt}"
            runs.append((*timed_run(code, work / "library", out, retry), out))
        wall = statistics.median(r[0] for r in runs)
        inference = statistics.median(float(r[1]["inference_s"]) for r in runs)
        manifest = pd.read_parquet(runs[-1][2] / "manifest").set_index("source")
        sources = sorted(references)
        wer = wer_pair([references[s] for s in sources], list(manifest.loc[sources, "text"]))
        flags = "; ".join(f"{s}: {', '.join(manifest.loc[s, 'quality_flags'])}" for s in sorted(references)
                          if len(manifest.loc[s, "quality_flags"]))
        results.append((label, wall, inference, wer, flags or "none"))
    floor = results[0][2]
    print(f"# Safer retry on long files — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — "
          f"commit {_commit(ROOT)}, before = {_commit(before)}\n")
    print(f"3 files × {FILE_S / 60:.1f} min of real recorded prompts; file2 repeats one prompt {REPEATS}×. "
          f"Median of {args.repeat}; each run a fresh CLI process.\n")
    print(f"| row | CLI wall s | inference s | inference over retry off | {WER_COLUMNS} | flags kept |")
    print("|---|---|---|---|---|---|---|")
    for label, wall, inference, wer, flags in results:
        print(f"| {label} | {wall:.1f} | {inference:.1f} | +{inference - floor:.1f} s | {wer_cells(wer)} | {flags} |")
    return 0


def _read(path: Path) -> np.ndarray:
    from tasks.media.audio import decode_audio, probe_duration

    return decode_audio(path, probe_duration(path))


def _pause(rng: np.random.Generator) -> np.ndarray:
    return np.zeros(int(rng.uniform(0.4, 1.2) * 16_000), np.float32)


def _write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def _worktree(path: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", str(path), BEFORE_REV], cwd=ROOT, check=True,
                   capture_output=True)
    atexit.register(subprocess.run, ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False,
                    capture_output=True)  # the repository keeps no trace of the old checkout
    return path


def _commit(code: Path) -> str:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True,
                         check=False).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=code, capture_output=True, text=True,
                         check=False).stdout
    return rev.strip() + (" + uncommitted changes" if dirty.strip() else "")


if __name__ == "__main__":
    raise SystemExit(main())
