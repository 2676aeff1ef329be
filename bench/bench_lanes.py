"""CPU lanes (tasks/engines/lanes.py): the CTranslate2 engine as one replica on every core against two replicas
on half the cores each, on both real models, with the plain loop beside them.

Rows, each the engine alone (no Prefect, no VAD stage, no guards, no retry; a long file's speech is found by
the engine's own VAD, the same in every row), on audio decoded beforehand, after an untimed warm-up of two files:

- plain loop: faster-whisper `WhisperModel.transcribe` one file at a time (its default threads);
- one lane, 4 windows an encoder call: the engine before lanes (ct2_batch encoded 4 windows a call);
- one lane, 1 window an encoder call: what the encoder gains from smaller calls alone;
- two lanes, 1 window an encoder call: the default (each lane encodes its own window, the decoder's batch
  is split between them).

None of these changes what the model hears, so each row's texts are compared with the first engine row's:
`same text` counts the files whose text is identical. WER twice (bench/common.py). Material: the throughput
suite's (bench/material.py): real recorded prompts (asterisk, one human voice) and its long files.

    python bench/bench_lanes.py                       # ~12 min on 2 cores: tiny.en and base
    python bench/bench_lanes.py --models tiny.en --prompts 45 --long-minutes 3
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

ROWS = (("one lane, 4 windows an encoder call (before lanes)", 1, 4),
        ("one lane, 1 window an encoder call", 1, 1),
        ("two lanes, 1 window an encoder call (default)", 2, 1))


def engine_row(model: str, lanes: int, encode_batch: int, clips: list[Any]) -> tuple[float, list[str]]:
    """The CTranslate2 engine with `lanes` replicas and `encode_batch` windows an encoder call: warm wall, texts."""
    from bench.common import model_path
    from tasks.engines import ctranslate2_whisper as engine
    from tasks.engines import lanes as lane_module
    from tasks.engines.base import EngineConfig

    saved = lane_module.CPU_LANES, engine.CPU_ENCODE_BATCH
    lane_module.CPU_LANES, engine.CPU_ENCODE_BATCH = lanes, encode_batch
    try:
        threads = int(os.environ.get("TRANSCRIBE_ALL_CPU_THREADS", "0"))
        whisper = engine.CTranslate2Whisper(EngineConfig(language="en"), str(model_path(model)), cpu_threads=threads)
        whisper.transcribe(clips[:2])  # warm-up
        started = time.perf_counter()
        texts = [t.text for t in whisper.transcribe(clips)]
        return time.perf_counter() - started, texts
    finally:
        lane_module.CPU_LANES, engine.CPU_ENCODE_BATCH = saved


def part(name: str, references: dict[str, str], library: Path, model: str) -> str:
    from faster_whisper import WhisperModel

    from bench.common import WER_COLUMNS, model_path, wer_cells, wer_pair
    from tasks.media.audio import decode_audio, probe_duration
    from tasks.records import Clip

    sources = sorted(references)
    refs = [references[s] for s in sources]
    clips = [Clip(s, decode_audio(library / s, probe_duration(library / s))) for s in sources]
    threads = int(os.environ.get("TRANSCRIBE_ALL_CPU_THREADS", "0"))
    plain = WhisperModel(str(model_path(model)), device="cpu", compute_type="float32", cpu_threads=threads)
    options = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}

    def loop(some: list[Clip]) -> list[str]:
        return [" ".join(s.text.strip() for s in plain.transcribe(c.samples, **options)[0]) for c in some]

    loop(clips[:2])  # warm-up, as every row
    started = time.perf_counter()
    texts = loop(clips)
    loop_s = time.perf_counter() - started
    lines = [f"**{model} — {name}**: {len(clips)} files, {sum(c.duration_s for c in clips) / 60:.1f} min", "",
             f"| | wall s | × plain loop | × before lanes | {WER_COLUMNS} | same text as before lanes |",
             "|---|---|---|---|---|---|---|",
             (f"| plain loop (faster-whisper, one file at a time) | {loop_s:.1f} | 1.00 | | "
              f"{wer_cells(wer_pair(refs, texts))} | |")]
    first: tuple[float, list[str]] | None = None
    for label, lanes, encode_batch in ROWS:
        wall, got = engine_row(model, lanes, encode_batch, clips)
        first = first or (wall, got)
        same = sum(a == b for a, b in zip(first[1], got, strict=True))
        lines.append(f"| {label} | {wall:.1f} | {loop_s / wall:.2f} | {first[0] / wall:.2f} | "
                     f"{wer_cells(wer_pair(refs, got))} | {same}/{len(got)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main() -> int:
    from bench.bench_throughput import build_libraries, subset
    from bench.common import commit_stamp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base", help="tiny.en, base, or CTranslate2 folders")
    parser.add_argument("--prompts", type=int, default=90, help="every k-th real prompt so this many remain; 0: all")
    parser.add_argument("--long-minutes", default="10", help="which of the suite's long files (minutes), or none")
    parser.add_argument("--material", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-bench-speech")
    parser.add_argument("--festival-cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lanes_cpu.md")
    args = parser.parse_args()
    commit = commit_stamp()
    libraries = build_libraries(args.material, 80, [3.0, 10.0, 20.0], args.festival_cache)
    wanted = {m.strip() for m in args.long_minutes.split(",") if m.strip() not in ("", "none")}
    long = {s: t for s, t in libraries["long"].items() if s.rsplit("_", 1)[-1].removesuffix("min.m4a") in wanted}
    prompts = subset(libraries["prompts"], args.prompts)
    started = datetime.now(UTC)
    sections = []
    for model in args.models.split(","):
        for folder, name, references in (
                ("prompts", (f"real recorded prompts of 2-10 s (asterisk, {len(prompts)} of "
                             f"{len(libraries['prompts'])})"), prompts),
                ("long", f"long files ({', '.join(sorted(wanted))} min, M4A)", long)):
            if references:
                sections.append(part(name, references, args.material / folder, model))
                print(sections[-1] + "\n", flush=True)
    title = (f"# CPU lanes — {started:%Y-%m-%d %H:%M} UTC — {os.cpu_count()}-core CPU, {platform.machine()}, "
             f"{args.models}, float32, greedy, English")
    took = (datetime.now(UTC) - started).seconds / 60
    command = "python bench/bench_lanes.py " + " ".join(sys.argv[1:])
    note = (f"Measured at {commit}. Every engine row is the CTranslate2 engine alone, warm. WER (ours): "
            "tasks/quality/wer.py; WER (Whisper norm.): OpenAI Whisper's EnglishTextNormalizer. Compare rows of "
            "one table: the machine's speed drifts between tables.")
    args.out.write_text("\n\n".join([title, f"`{command.strip()}` — took {took:.0f} min. {note}", *sections]) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
