"""The seed's ablation of the transformers Whisper engine, reproduced on the same files in one run.

Each row adds one change to the row before it:

    pipeline() fp32 batch 1 eager → direct AutoModel → fp16 → sdpa / flash_attention_2 → dynamic batching

and a last row adds clip packing (opt-in for this engine, the CTranslate2 engine's default). Every row runs
in its own process, so peak memory is that row's alone: RSS high-water mark on CPU,
`torch.cuda.max_memory_allocated` on CUDA. RTFx is audio seconds over transcription
wall seconds (median of `--repeat` timed runs after one warm-up; model loading and
audio decoding excluded). All rows decode greedily with timestamps, like the engine
(the transformers 5 pipeline would otherwise default to 5 beams).

    python bench/bench_transformers_ablation.py --device cpu --repeat 3 --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (label, loader, dtype on cuda, attention, batching)
ROWS = [
    ("pipeline() fp32, batch 1, eager", "pipeline", "float32", "eager", "none"),
    ("+ direct AutoModel", "direct", "float32", "eager", "none"),
    ("+ fp16", "direct", "float16", "eager", "none"),
    ("+ sdpa / flash_attention_2", "direct", "float16", "auto", "none"),
    ("+ dynamic batching", "engine", "float16", "auto", "batch"),
    ("+ clip packing (opt-in: extra pack=on)", "engine", "float16", "auto", "pack"),
]


def main() -> int:
    args = _parse()
    if args.row is not None:
        print(json.dumps(_run_row(args)))
        return 0
    from bench.common import commit_stamp, stamped

    commit = commit_stamp()
    rows = []
    for index, (label, *_rest) in enumerate(ROWS):
        result = _in_subprocess(args, index)
        rows.append((label, result))
        print(f"{label}: {result}", file=sys.stderr)
    table = stamped(_table(args, rows), commit)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--files",
        nargs="*",
        default=[str(ROOT / "examples" / "library")],
        help="audio files or folders (default: the committed examples)",
    )
    parser.add_argument(
        "--references",
        default=str(ROOT / "examples" / "references.tsv"),
        help="TSV of source (relative to the examples library) and text, for WER",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--model", default=None, help="transformers Whisper folder (default: bundled tiny.en)"
    )
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    parser.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _in_subprocess(args: argparse.Namespace, index: int) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--row",
        str(index),
        "--device",
        args.device,
        "--repeat",
        str(args.repeat),
        "--references",
        args.references,
        "--files",
        *args.files,
    ]
    if args.model:
        command += ["--model", args.model]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_row(args: argparse.Namespace) -> dict[str, object]:
    import torch

    label, loader, dtype, attention, batching = ROWS[args.row]
    device = (
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if device == "cpu" and label == "+ fp16":
        return {"na": "fp16 needs CUDA"}  # later rows go on in fp32 on CPU
    sources, clips = _load_clips(args.files)
    model = args.model or str(_default_model())
    transcribe = _make_runner(loader, model, device, dtype, attention, batching)
    transcribe(clips)  # warm-up: first-call costs are not throughput
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        texts = transcribe(clips)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    audio_s = sum(len(c) for c in clips) / 16_000
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_peak_bytes()
    return {
        "rtfx": audio_s / statistics.median(seconds),
        "peak_mib": peak / 2**20,
        "wer": _wer(args.references, sources, texts),
        "audio_s": audio_s,
        "device": device,
    }


def _make_runner(loader: str, model: str, device: str, dtype: str, attention: str, batching: str):  # type: ignore[no-untyped-def]
    import torch

    from tasks.engines.hardware import choose_attention

    attention = choose_attention(device == "cuda") if attention == "auto" else attention
    torch_dtype = getattr(torch, dtype if device == "cuda" else "float32")
    if loader == "pipeline":
        from transformers import pipeline

        pipe = pipeline(
            "automatic-speech-recognition",
            model=model,
            dtype=torch_dtype,
            device=device,
            model_kwargs={"attn_implementation": attention},
        )
        # transformers 5's ASR pipeline defaults to 5 beams; every row here decodes greedily
        greedy = {"num_beams": 1}
        return lambda clips: [
            pipe(c.copy(), batch_size=1, return_timestamps=True, generate_kwargs=greedy)["text"]
            for c in clips
        ]
    if loader == "direct":
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        processor = AutoProcessor.from_pretrained(model)
        whisper = AutoModelForSpeechSeq2Seq.from_pretrained(
            model, dtype=torch_dtype, attn_implementation=attention
        )
        whisper = whisper.to(device).eval()

        def one_by_one(clips):  # type: ignore[no-untyped-def]
            texts = []
            for clip in clips:
                features = processor(clip, sampling_rate=16_000, return_tensors="pt").input_features
                with torch.inference_mode():
                    tokens = whisper.generate(features.to(device, torch_dtype), return_timestamps=True)
                texts.append(processor.batch_decode(tokens, skip_special_tokens=True)[0])
            return texts

        return one_by_one
    from tasks.engines.base import EngineConfig
    from tasks.engines.transformers_whisper import TransformersWhisper
    from tasks.records import Clip

    config = EngineConfig(
        engine="transformers",
        device=device,
        pack_short_clips=batching == "pack",
        extra=(("attention", attention), ("dtype", str(torch_dtype).split(".")[-1]), ("pack", "on")),
    )
    engine = TransformersWhisper(config, model)
    return lambda clips: [t.text for t in engine.transcribe([Clip(str(i), c) for i, c in enumerate(clips)])]


def _load_clips(inputs: list[str]):  # type: ignore[no-untyped-def]
    from tasks.media.audio import decode_audio

    files: list[Path] = []
    for item in map(Path, inputs):
        files += sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
    sources = [_source_name(path) for path in files]
    return sources, [decode_audio(path, None) for path in files]


def _source_name(path: Path) -> str:
    library = ROOT / "examples" / "library"
    resolved = path.resolve()
    return str(resolved.relative_to(library)) if resolved.is_relative_to(library) else str(path)


def _wer(references: str, sources: list[str], texts: list[str]) -> list[float] | None:
    """WER after the project's normaliser and after Whisper's (bench/common.py)."""
    from bench.common import wer_pair

    if not Path(references).exists():
        return None
    with open(references, newline="") as handle:
        truth = {row["source"]: row["text"] for row in csv.DictReader(handle, delimiter="\t")}
    pairs = [(truth[s], t) for s, t in zip(sources, texts, strict=True) if s in truth]
    if not pairs:
        return None
    return list(wer_pair([r for r, _ in pairs], [h for _, h in pairs]))


def _rss_peak_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _default_model() -> Path:
    from tasks.models import bundled_whisper_transformers

    return bundled_whisper_transformers()


def _table(args: argparse.Namespace, rows: list[tuple[str, dict[str, object]]]) -> str:
    import torch

    device = next((str(r["device"]) for _, r in rows if "device" in r), args.device)
    machine = (
        torch.cuda.get_device_name(0) if device == "cuda" else f"{platform.processor() or platform.machine()}"
    )
    audio_s = next((float(r["audio_s"]) for _, r in rows if "audio_s" in r), 0.0)  # type: ignore[arg-type]
    lines = [
        (
            f"Ablation, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, device {device} ({machine}, "
            f"{torch.get_num_threads()} torch threads), torch {torch.__version__}, {platform.python_version()}; "
            f"{audio_s:.1f} s of audio, median of {args.repeat} runs after a warm-up."
        ),
        "",
        "| row | RTFx | peak memory (MiB) | WER (ours) | WER (Whisper norm.) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    peak_name = "GPU allocated" if device == "cuda" else "RSS"
    lines[2] = lines[2].replace("peak memory", f"peak {peak_name}")
    for label, result in rows:
        if "na" in result or "error" in result:
            note = f"n/a ({result.get('na') or result.get('error')})"
            lines.append(f"| {label} | {note} | n/a | n/a | n/a |")
        else:
            pair = result["wer"]
            wer = "n/a | n/a" if not isinstance(pair, list) else f"{pair[0]:.3f} | {pair[1]:.3f}"
            lines.append(
                f"| {label} | {float(result['rtfx']):.2f} | {float(result['peak_mib']):.0f} | {wer} |"
            )  # type: ignore[arg-type]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
