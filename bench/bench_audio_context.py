"""How long an audio context the encoder needs: the CTranslate2 engine alone, full 30 s windows against
`audio_context=fit` at several minimum lengths, with WER and the clips the quality guards would flag.

Whisper pads every window to 30 s before its encoder; `fit` (tasks/engines/ct2_batch.py, `encoder_frames`)
encodes a shorter clip at its own length plus >= 2 s, in 5 s steps, never under MIN_CONTEXT_S (15 s).
This sweeps that minimum to show where the model breaks (it starts to loop on short clips) and what the
default leaves in hand. Same clip libraries as the throughput suite (bench/material.py): real recorded
prompts and festival clips (a long file's windows keep 30 s, so long files are not swept). Every row
runs in this one process on clips decoded beforehand (untimed), so the times are the engine's own:
model warm, no Prefect, no VAD, no guards, no retry.

    python bench/bench_audio_context.py                   # ~7 min on 2 cores
    python bench/bench_audio_context.py --skip short      # real prompts only
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MINIMUMS = (7.5, 10.0, 15.0)  # the default, MIN_CONTEXT_S, is 15 s


def rows_for(name: str, references: dict[str, str], library: Path) -> list[str]:
    from faster_whisper import WhisperModel

    from tasks.engines import EngineConfig, load_transcriber
    from tasks.engines import ct2_batch as batch
    from tasks.media.audio import decode_audio, probe_duration
    from tasks.quality.guards import check_transcript, retry_flags
    from tasks.quality.wer import word_error_rate
    from tasks.records import Clip
    from transcribe_all.models import bundled_whisper_ct2

    sources = sorted(references)
    refs = [references[s] for s in sources]
    clips = [Clip(s, decode_audio(library / s, probe_duration(library / s))) for s in sources]
    audio_s = sum(c.duration_s for c in clips)
    plain = WhisperModel(str(bundled_whisper_ct2()), device="cpu", compute_type="float32")
    options = {"language": "en", "beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False}
    started = time.perf_counter()
    texts = [" ".join(s.text.strip() for s in plain.transcribe(c.samples, **options)[0]) for c in clips]
    loop_s = time.perf_counter() - started
    lines = [f"**{name}**: {len(clips)} files, {audio_s / 60:.1f} min", "",
             "| engine alone | wall s | × plain loop | × full windows | WER | flagged by the guards |",
             "|---|---|---|---|---|---|",
             (f"| plain loop (faster-whisper, one file at a time) | {loop_s:.1f} | 1.00 | | "
              f"{word_error_rate(refs, texts):.3f} | |")]
    variants = [("full", "audio_context=full (30 s windows)", batch.MIN_CONTEXT_S)]
    variants += [("fit", f"audio_context=fit, at least {m:g} s{' (default)' if m == batch.MIN_CONTEXT_S else ''}", m)
                 for m in MINIMUMS]
    default_minimum, full_s = batch.MIN_CONTEXT_S, 0.0
    try:
        for context, label, minimum in variants:
            batch.MIN_CONTEXT_S = minimum
            engine = load_transcriber(EngineConfig(extra=(("audio_context", context),)))
            engine.transcribe(clips[:2])  # warm
            started = time.perf_counter()
            transcripts = engine.transcribe(clips)
            wall = time.perf_counter() - started
            full_s = full_s or wall
            flagged = sum(bool(retry_flags(check_transcript(t, c.duration_s, None)))
                          for t, c in zip(transcripts, clips, strict=True))
            lines.append(f"| {label} | {wall:.1f} | {loop_s / wall:.2f} | {full_s / wall:.2f} | "
                         f"{word_error_rate(refs, [t.text for t in transcripts]):.3f} | {flagged} |")
            print(lines[-1], file=sys.stderr, flush=True)
    finally:
        batch.MIN_CONTEXT_S = default_minimum
    return lines


def main() -> int:
    from bench.bench_throughput import build_libraries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-bench-speech")
    parser.add_argument("--festival-cache", type=Path, default=Path(tempfile.gettempdir()) / "transcribe-all-festival")
    parser.add_argument("--short", type=int, default=80)
    parser.add_argument("--long-minutes", default="3,10,20")
    parser.add_argument("--skip", default="", help="parts to skip: prompts,short")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audio_context_cpu.md")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    libraries = build_libraries(args.material, args.short, [float(m) for m in args.long_minutes.split(",")],
                                args.festival_cache)
    parts = [("prompts", "Real recorded prompts of 2-10 s (asterisk-core-sounds-en)"),
             ("short", "Festival clips of 2-10 s (+ 2 pocketsphinx recordings)")]
    started = datetime.now(UTC)
    sections = []
    for part, name in parts:
        if part not in skip:
            sections.append("\n".join(rows_for(name, libraries[part], args.material / part)))
            print(sections[-1] + "\n", flush=True)
    title = (f"# Audio context of the encoder — {started:%Y-%m-%d %H:%M} UTC — {os.cpu_count()}-core CPU, "
             f"{platform.machine()}, tiny.en float32")
    command = "python bench/bench_audio_context.py " + " ".join(sys.argv[1:])
    took = (datetime.now(UTC) - started).seconds / 60
    args.out.write_text("\n\n".join([title, f"`{command.strip()}` — took {took:.0f} min.", *sections]) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
