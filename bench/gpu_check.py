"""The GPU check: the project's own engines on Whisper large-v3 and large-v3-turbo geometry, random weights.

One prepared script for a machine with torch, transformers and CUDA and nothing else (no network, no
weights, no prefect): each model is built from a `WhisperConfig` with random weights and a synthetic
byte-level tokenizer of the English Whisper layout, saved to a folder, and loaded from it by the project's
engine — `tasks/engines/transformers_whisper.py`'s `TransformersWhisper` (and, where `ctranslate2` and
`faster_whisper` import, the CTranslate2 engine on the same weights, converted). Each row calls the engine's
own `transcribe(clips)`: its features, batching by length, dtype, attention choice and auto batch size (from
free GPU memory, `tasks/engines/hardware.py`), timestamps and, for long files, word times and stitching.

Token counts are fixed to what real speech gives (~100-150 tokens per 30 s window): the saved generation
config sets `min_new_tokens = max_new_tokens = --tokens` (default 128), so random weights cannot stop at the
first step nor run to 448; the CTranslate2 row caps `max_length` and suppresses end-of-text to the same
count. The rows report the tokens per window they really generated. Timestamp tokens are off in the
transformers rows (the engine's own `timestamps=False`): with random weights Whisper's timestamp rule
fires at every step (1,501 near-uniform timestamp logits outweigh any one text token), so a window would
decode nothing but timestamps and re-seek; left out is that rule's per-step logits processor. Rows, each
changing one thing:

    pipeline() fp32 batch 1 eager (what a first script does) → engine fp32 eager batch 1 → float16 →
    sdpa (flash_attention_2 when flash-attn imports) → batch from free memory → bfloat16 →
    long files (5 min each: windows with word times and stitching) → CTranslate2 engine (if it imports)

RTFx = audio seconds / wall seconds after one untimed warm-up call of the same row, peak GPU memory
(`torch.cuda.max_memory_allocated`), GPU utilisation sampled every 0.2 s (pynvml, else nvidia-smi, else
n/a). Random weights: cost, not accuracy (no WER). Batch-1 rows run `--b1-windows` windows, the others
`--windows`.

    bash bench/gpu_check.sh                                  # on a lent H100/H200: ≤ 8 min, table to $OUT
    python bench/gpu_check.py --smoke --out bench/results/gpu_check_smoke_cpu.md   # tiny geometry on CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_model import GEOMETRIES, Utilisation, convert_ct2, save_model


@dataclass(frozen=True)
class Spec:
    label: str
    kind: str  # pipeline | transformers | ctranslate2
    dtype: str = "float32"
    attention: str = "eager"
    batch: int = 1  # 0: the engine's auto batch size
    long: bool = False


@dataclass
class Row:
    label: str
    note: str = ""
    batch: str = "1"
    rtfx: float | None = None
    tokens: float | None = None
    peak_mib: float | None = None
    util: str = "n/a"


def specs(cuda: bool) -> list[Spec]:
    half = "float16" if cuda else "float32"  # float16 needs CUDA: on CPU those rows stay float32
    fast = _fast_attention(cuda)
    return [
        Spec("pipeline() fp32, batch 1, eager", "pipeline"),
        Spec("engine (TransformersWhisper), fp32, batch 1, eager", "transformers"),
        Spec("+ float16" + ("" if cuda else " (needs CUDA: float32 here)"), "transformers", half),
        Spec(f"+ {fast}", "transformers", half, fast),
        Spec("+ batch from free memory", "transformers", half, fast, 0),
        Spec("same, bfloat16", "transformers", "bfloat16", fast, 0),
        Spec("long files (word times, stitching)", "transformers", half, fast, 0, True),
        Spec(f"CTranslate2 engine, {half}, batch from free memory", "ctranslate2", half, "its own kernels", 0),
    ]


def _fast_attention(cuda: bool) -> str:
    from tasks.engines.hardware import choose_attention

    return choose_attention(cuda)


def run_spec(spec: Spec, folder: Path, windows: int, args: argparse.Namespace, device: str) -> Row:
    import numpy as np

    from tasks.records import Clip

    long_s = args.long_s
    seconds = [long_s] * max(1, round(windows * 30 / long_s)) if spec.long else [30.0] * windows
    row = Row(spec.label + (f", {len(seconds)} × {long_s / 60:g} min" if spec.long else ""),
              f"{spec.dtype}, {spec.attention}")
    rng = np.random.default_rng(0)
    clips = [Clip(f"c{i}", rng.normal(0, 0.05, int(16_000 * s)).astype(np.float32)) for i, s in enumerate(seconds)]
    torch = _cuda_sync(device)
    if torch is not None:
        gc.collect()
        torch.cuda.empty_cache()  # the previous row's model is gone: free memory is this row's to size batches
    try:
        engine, count = _engine(spec, folder, args, device)
    except Exception as error:  # noqa: BLE001 - a row that cannot run says why, the others go on
        row.note = f"not run: {type(error).__name__}: {str(error).splitlines()[0][:140] if str(error) else ''}"
        return row
    row.batch = str(getattr(engine, "batch_size", 1))
    warm = clips[:1] if not spec.long else [Clip("w", clips[0].samples[: 16_000 * 30])]
    engine.transcribe(warm)  # warm-up
    if spec.kind == "ctranslate2" and count and sum(count) / len(count) != args.tokens:
        _calibrate_ct2(engine, args.tokens, sum(count) / len(count))
        engine.transcribe(warm)
    if _cuda_sync(device) is not None:
        torch.cuda.reset_peak_memory_stats()
    count.clear()
    sampler = Utilisation(device)
    started = time.perf_counter()
    engine.transcribe(clips)
    _cuda_sync(device)
    wall = time.perf_counter() - started
    row.util = sampler.stop()
    row.rtfx = sum(seconds) / wall
    row.tokens = sum(count) / len(count) if count else None
    row.peak_mib = torch.cuda.max_memory_allocated() / 2**20 if torch is not None else None
    return row


def _cuda_sync(device: str) -> Any:
    if device != "cuda":
        return None
    import torch

    torch.cuda.synchronize()
    return torch


def _engine(spec: Spec, folder: Path, args: argparse.Namespace, device: str) -> tuple[Any, list[int]]:
    """The row's engine, and a list that fills with the tokens generated per window."""
    from tasks.engines.base import EngineConfig

    count: list[int] = []
    batch = spec.batch if spec.batch else args.batch
    if spec.kind == "pipeline":
        return _Pipeline(folder, device, args.tokens, count), count
    if spec.kind == "ctranslate2":
        from tasks.engines.ctranslate2_whisper import CTranslate2Whisper

        config = EngineConfig(device=device, compute_type=spec.dtype, batch_size=batch)
        engine: Any = CTranslate2Whisper(config, str(convert_ct2(folder, spec.dtype)))
        _fix_ct2_tokens(engine, args.tokens, count)
        return engine, count
    from tasks.engines.transformers_whisper import TransformersWhisper

    config = EngineConfig(engine="transformers", device=device, compute_type=spec.dtype, batch_size=batch,
                          extra=(("attention", spec.attention),))
    engine = TransformersWhisper(config, str(folder))
    generate = engine.generate

    def counted(samples: Any, words: bool, timestamps: bool = True) -> Any:
        tokens, times = generate(samples, words, timestamps=False)  # random weights: see the docstring
        count.extend(len(t) for t in tokens)
        return tokens, times

    engine.generate = counted
    return engine, count


def _fix_ct2_tokens(engine: Any, tokens: int, count: list[int]) -> None:
    """CTranslate2 has no min_new_tokens: cap max_length (it counts the prompt) and suppress end-of-text."""
    whisper, decoder = engine._whisper, engine._batch
    whisper.max_length = max(len(p) for p in decoder._prompts.values()) + tokens
    decoder._suppress = [*decoder._suppress, decoder._tokenizer.eot]
    generate = decoder._generate

    def counted(encoded: Any, timestamps: bool, *a: Any, **k: Any) -> Any:
        results, languages = generate(encoded, False, *a, **k)  # no timestamp tokens, as the transformers rows
        count.extend(len(r.sequences_ids[0]) for r in results)
        return results, languages

    decoder._generate = counted


def _calibrate_ct2(engine: Any, tokens: int, got: float) -> None:
    """Scale max_length so the windows decode `tokens` tokens (here CTranslate2 stopped at about half of
    max_length with random weights: a smoke model given 26 decoded 13, given 60 decoded 30)."""
    engine._whisper.max_length = round(engine._whisper.max_length * tokens / max(got, 1.0))


class _Pipeline:
    """What a first script does: transformers pipeline(), one 30 s window at a time, fp32, eager."""

    def __init__(self, folder: Path, device: str, tokens: int, count: list[int]) -> None:
        import torch
        from transformers import pipeline

        self.count, self.tokens = count, tokens
        self.asr = pipeline("automatic-speech-recognition", model=str(folder), device=device, dtype=torch.float32,
                            model_kwargs={"attn_implementation": "eager"})

    def transcribe(self, clips: list[Any]) -> None:
        for clip in clips:
            self.asr(clip.samples.copy())
            self.count.append(self.tokens)  # min_new_tokens = max_new_tokens from the saved generation config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny geometry on CPU: a check that the script runs")
    parser.add_argument("--geometries", default="whisper-large-v3-turbo,whisper-large-v3")
    parser.add_argument("--windows", type=int, default=48, help="30 s windows per batched row")
    parser.add_argument("--b1-windows", type=int, default=6, help="30 s windows per batch-1 row")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per window (fixed)")
    parser.add_argument("--batch", type=int, default=0, help="batch size of the batched rows; 0: from free memory")
    parser.add_argument("--long-s", type=float, default=300.0, help="length of each long file, seconds")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--work", type=Path, help="where the random models are saved (default: a temp folder)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch
    from transformers.utils import logging

    from bench.common import commit_stamp

    logging.set_verbosity_error()
    commit = commit_stamp()
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if args.smoke:  # one thread: on a shared 2-core machine torch's two threads ran 25x slower (spinning)
        args.geometries, args.windows, args.b1_windows, args.tokens, args.long_s = "smoke (tiny)", 4, 2, 24, 60.0
        args.threads = args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tables: list[str] = []
    where = torch.cuda.get_device_name(0) if device == "cuda" else platform.machine() + " CPU"

    def write(rows: list[Row], name: str, final: bool) -> None:
        """The table so far (after every row, so a run cut short by its time limit still leaves its rows)."""
        head = (f"# GPU check — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {where}, torch {torch.__version__}, "
                f"Python {platform.python_version()}\n\n`python bench/gpu_check.py {' '.join(sys.argv[1:])}` — "
                f"measured at {commit}; {args.windows} windows of 30 s per batched row, {args.b1_windows} per "
                f"batch-1 row, {args.tokens} tokens each, random weights; "
                + (f"took {time.perf_counter() - started:.0f} s." if final else "**incomplete** (stopped early)."))
        text = "\n\n".join([head, *tables, *([_table(name, rows)] if rows else [])])
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        if final:
            print(text)

    with tempfile.TemporaryDirectory(prefix="gpu-check-", dir=args.work) as tmp:
        for name in args.geometries.split(","):
            folder = save_model(GEOMETRIES[name], Path(tmp) / name.replace(" ", "_"), args.tokens, device)
            rows: list[Row] = []
            for spec in specs(device == "cuda"):
                windows = args.b1_windows if spec.batch == 1 and not spec.long else args.windows
                rows.append(run_spec(spec, folder, windows, args, device))
                print(json.dumps({"geometry": name, **rows[-1].__dict__}), file=sys.stderr, flush=True)
                write(rows, name, final=False)
            tables.append(_table(name, rows))
    write([], "", final=True)
    return 0


def _table(name: str, rows: list[Row]) -> str:
    lines = [f"**{name}**", "",
             "| row | dtype, attention | batch | RTFx | tokens / window | peak GPU MiB | GPU utilisation |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        rtfx = f"{r.rtfx:.1f}" if r.rtfx is not None else "n/a"
        tokens = f"{r.tokens:.0f}" if r.tokens is not None else "n/a"
        peak = f"{r.peak_mib:,.0f}" if r.peak_mib is not None else "n/a"
        lines.append(f"| {r.label} | {r.note} | {r.batch} | {rtfx} | {tokens} | {peak} | {r.util} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
