"""The GPU check: the transformers engine's ablation on Whisper large-v3 and large-v3-turbo geometry.

One prepared script for a machine with torch, transformers and CUDA and nothing else (no network,
no weights, no prefect): each model is built from a `WhisperConfig` with random weights, with a
synthetic byte-level tokenizer of the English Whisper layout, and every window decodes exactly
`--tokens` tokens (min_new_tokens = max_new_tokens), so the rows time the same work. Rows, as in
bench/bench_transformers_ablation.py (which needs real weights), each adding one change:

    pipeline() fp32 batch 1 eager → direct AutoModelForSpeechSeq2Seq → float16 → sdpa
    (flash_attention_2 when flash-attn imports) → dynamic batching (batch from free memory)

RTFx = audio seconds / wall seconds (after one warm-up window), peak GPU memory
(`torch.cuda.max_memory_allocated`), GPU utilisation sampled every 0.2 s while the row runs
(pynvml if it imports, else nvidia-smi, else n/a). Random weights: cost, not accuracy (no WER).

    python bench/gpu_check.py --out bench/results/gpu_check_h200.md      # meant for ≤ 8 min on one H100/H200
                                                                         # (not yet run on one)
    python bench/gpu_check.py --smoke --out bench/results/gpu_check_smoke_cpu.md   # tiny geometry on CPU:
                                                                                   # ~1 min of CPU time

The vocabulary is 51,864 (English layout) for both geometries, 2 tokens fewer than large-v3's: the
cost difference is nil. Windows are 30 s of noise (content does not matter with random weights).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GEOMETRIES = {  # d_model, encoder/decoder layers, heads, ffn, mel bins
    "whisper-large-v3": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 32, "heads": 20, "ffn": 5120,
                         "mels": 128},
    "whisper-large-v3-turbo": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 4, "heads": 20, "ffn": 5120,
                               "mels": 128},
    "smoke (tiny)": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "heads": 2, "ffn": 128, "mels": 80},
}
ROWS = ("pipeline() fp32, batch 1, eager", "+ direct AutoModelForSpeechSeq2Seq", "+ float16",
        "+ sdpa / flash_attention_2", "+ dynamic batching")
SOT, EOT, NO_TIMESTAMPS, VOCAB = 50257, 50256, 50362, 51864  # the English Whisper layout


@dataclass
class Row:
    label: str
    rtfx: float | None = None
    peak_mib: float | None = None
    util: str = "n/a"
    batch: int = 1
    note: str = ""


def tokenizer_and_processor(mels: int) -> Any:
    """A byte-level Whisper tokenizer with the English layout, built in memory (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for i in range(len(chars), EOT):  # fillers: unique two-character byte strings
        vocab[chars[i // 256] + chars[i % 256]] = i
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|l{k}|>" for k in range(99)], "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    tokenizer = WhisperTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    assert len(tokenizer) == VOCAB and tokenizer.convert_tokens_to_ids("<|notimestamps|>") == NO_TIMESTAMPS
    extractor = WhisperFeatureExtractor(feature_size=mels, sampling_rate=16_000, hop_length=160, chunk_length=30,
                                        n_fft=400)
    return WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer)


def _byte_chars() -> list[str]:
    """GPT-2's byte-level alphabet: one printable character per byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def build_model(geometry: dict[str, int], dtype: Any, attention: str, device: str) -> Any:
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    ids = {"decoder_start_token_id": SOT, "eos_token_id": EOT, "pad_token_id": EOT, "bos_token_id": EOT}
    config = WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=geometry["mels"], d_model=geometry["d_model"],
        encoder_layers=geometry["encoder_layers"], decoder_layers=geometry["decoder_layers"],
        encoder_attention_heads=geometry["heads"], decoder_attention_heads=geometry["heads"],
        encoder_ffn_dim=geometry["ffn"], decoder_ffn_dim=geometry["ffn"], begin_suppress_tokens=None, **ids,
    )
    config._attn_implementation = attention
    torch.manual_seed(0)
    with torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype).eval()
    model.generation_config = GenerationConfig(**ids, max_length=448, no_timestamps_token_id=NO_TIMESTAMPS,
                                               is_multilingual=False, return_timestamps=False)
    return model


class Utilisation:
    """GPU utilisation sampled every 0.2 s in a thread: pynvml, else nvidia-smi, else nothing."""

    def __init__(self, device: str) -> None:
        self.samples: list[float] = []
        self._read = _utilisation_reader() if device == "cuda" else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._read is not None and not self._stop.wait(0.2):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        if not self.samples:
            return "n/a"
        return f"{sum(self.samples) / len(self.samples):.0f} % mean, {max(self.samples):.0f} % max"


def _utilisation_reader() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # noqa: BLE001, S110 - absent or no driver: try nvidia-smi
        pass
    if shutil.which("nvidia-smi") is None:
        return None

    def smi() -> float | None:
        done = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, check=False)
        try:
            return float(done.stdout.strip().splitlines()[0])
        except (ValueError, IndexError):
            return None

    return smi


def attention_for(device: str) -> str:
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except (ImportError, OSError, RuntimeError):
            pass
    return "sdpa"


def run_row(
    index: int, geometry: dict[str, int], processor: Any, windows: list[Any], args: argparse.Namespace, device: str
) -> Row:
    import torch

    if index == 2 and device == "cpu":
        return Row(ROWS[index], note="float16 needs CUDA: later rows stay float32 on CPU")
    dtype = torch.float16 if index >= 2 and device == "cuda" else torch.float32
    attention = "eager" if index < 3 else attention_for(device)
    row = Row(ROWS[index], note=f"{str(dtype).split('.')[-1]}, {attention}")
    row.batch = _batch_size(geometry, dtype, device, args) if index == 4 else 1
    transcribe = _runner(index, build_model(geometry, dtype, attention, device), processor, row.batch, args, device)
    transcribe(windows[:1])  # warm-up: kernels, allocator
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    sampler = Utilisation(device)
    started = time.perf_counter()
    transcribe(windows)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    row.util = sampler.stop()
    row.rtfx = len(windows) * 30.0 / wall
    row.peak_mib = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
    return row


def _runner(index: int, model: Any, processor: Any, batch_size: int, args: argparse.Namespace, device: str) -> Any:
    """The row's transcribe(windows): pipeline() one by one, or generate() in batches of `batch_size`."""
    import torch

    fixed = {"min_new_tokens": args.tokens, "max_new_tokens": args.tokens, "num_beams": 1, "do_sample": False}
    if index == 0:
        from transformers import pipeline

        asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                       feature_extractor=processor.feature_extractor, device=device, dtype=model.dtype)

        def one_by_one(windows: list[Any]) -> None:
            for audio in windows:
                text = asr(audio.copy(), generate_kwargs=fixed)["text"]
                assert len(text) >= args.tokens, text  # every filler token decodes to 1-2 characters

        return one_by_one

    def batched(windows: list[Any]) -> None:
        for start in range(0, len(windows), batch_size):
            inputs = processor.feature_extractor(windows[start : start + batch_size], sampling_rate=16_000,
                                                 return_tensors="pt", return_attention_mask=True)
            with torch.inference_mode():
                out = model.generate(inputs.input_features.to(device, model.dtype),
                                     attention_mask=inputs.attention_mask.to(device), **fixed)
            assert out.shape[-1] >= args.tokens

    return batched


def _batch_size(geometry: dict[str, int], dtype: Any, device: str, args: argparse.Namespace) -> int:
    """As the engine does it (tasks/engines/hardware.py): windows that fit in 60 % of free memory."""
    if args.batch:
        return int(args.batch)
    if device != "cuda":
        return 8
    import torch

    from tasks.engines.hardware import auto_batch_size, window_bytes

    free, _total = torch.cuda.mem_get_info()
    per = window_bytes(geometry["d_model"], geometry["decoder_layers"], geometry["heads"],
                       torch.finfo(dtype).bits // 8, 1, False)
    return auto_batch_size(free, per, cap=args.max_batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny geometry on CPU: a check that the script runs")
    parser.add_argument("--windows", type=int, default=32,
                        help="30 s windows per row (32: ~5 min on an H100, estimated)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per window (fixed)")
    parser.add_argument("--batch", type=int, default=0, help="batch size of the last row; 0: from free memory")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import numpy as np
    import torch
    from transformers.utils import logging

    logging.set_verbosity_error()  # not one notice per generate() call

    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    names = ["smoke (tiny)"] if args.smoke else ["whisper-large-v3-turbo", "whisper-large-v3"]
    if args.smoke:
        args.windows, args.tokens = min(args.windows, 6), min(args.tokens, 16)
    rng = np.random.default_rng(0)
    windows = [rng.normal(0, 0.05, 16_000 * 30).astype(np.float32) for _ in range(args.windows)]
    started = time.perf_counter()
    tables = []
    for name in names:
        rows = []
        processor = tokenizer_and_processor(GEOMETRIES[name]["mels"])
        for index in range(len(ROWS)):
            row = run_row(index, GEOMETRIES[name], processor, windows, args, device)
            rows.append(row)
            print(json.dumps({"geometry": name, **row.__dict__}), file=sys.stderr, flush=True)
        tables.append(_table(name, rows))
    head = (f"# GPU check — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — "
            f"{torch.cuda.get_device_name(0) if device == 'cuda' else platform.machine() + ' CPU'}, torch "
            f"{torch.__version__}, Python {platform.python_version()}\n\n`python bench/gpu_check.py "
            f"{' '.join(sys.argv[1:])}` — {args.windows} windows of 30 s per row, {args.tokens} tokens each, "
            f"random weights; took {time.perf_counter() - started:.0f} s.")
    text = "\n\n".join([head, *tables])
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


def _table(name: str, rows: list[Row]) -> str:
    lines = [f"**{name}**", "", "| row | dtype, attention | batch | RTFx | peak GPU MiB | GPU utilisation |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        rtfx = f"{r.rtfx:.1f}" if r.rtfx is not None else "n/a"
        peak = f"{r.peak_mib:,.0f}" if r.peak_mib is not None else "n/a"
        lines.append(f"| {r.label} | {r.note} | {r.batch} | {rtfx} | {peak} | {r.util} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
