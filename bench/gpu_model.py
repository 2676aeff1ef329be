"""Random-weight Whisper models for the GPU check (bench/gpu_check.py): geometry, tokenizer, saved folder.

A model is built from a `WhisperConfig` of a real geometry with random weights and a byte-level tokenizer of
the English Whisper layout (51,864 tokens, 2 fewer than large-v3's: the cost difference is nil), and saved
with `save_pretrained`, so the engines load it the way they load real weights. Its generation config fixes
the tokens per window (`min_new_tokens = max_new_tokens`) and names alignment heads (word times need them).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

GEOMETRIES = {  # d_model, encoder/decoder layers, heads, ffn, mel bins
    "whisper-large-v3": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 32, "heads": 20, "ffn": 5120,
                         "mels": 128},
    "whisper-large-v3-turbo": {"d_model": 1280, "encoder_layers": 32, "decoder_layers": 4, "heads": 20, "ffn": 5120,
                               "mels": 128},
    "smoke (tiny)": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "heads": 2, "ffn": 128, "mels": 80},
}
SOT, EOT, NO_TIMESTAMPS, VOCAB = 50257, 50256, 50362, 51864  # the English Whisper layout


def save_model(geometry: dict[str, int], folder: Path, tokens: int, device: str) -> Path:
    """Build the model with random weights (on `device`, float16 there on CUDA) and save it with its processor."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    ids = {"decoder_start_token_id": SOT, "eos_token_id": EOT, "pad_token_id": EOT, "bos_token_id": EOT}
    config = WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=geometry["mels"], d_model=geometry["d_model"],
        encoder_layers=geometry["encoder_layers"], decoder_layers=geometry["decoder_layers"],
        encoder_attention_heads=geometry["heads"], decoder_attention_heads=geometry["heads"],
        encoder_ffn_dim=geometry["ffn"], decoder_ffn_dim=geometry["ffn"], begin_suppress_tokens=None,
        max_target_positions=448, **ids,
    )
    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = WhisperForConditionalGeneration(config).to(dtype).eval()
    heads = [[geometry["decoder_layers"] - 1, h] for h in range(min(2, geometry["heads"]))]
    model.generation_config = GenerationConfig(
        **ids, max_length=448, no_timestamps_token_id=NO_TIMESTAMPS, is_multilingual=False,
        min_new_tokens=tokens, max_new_tokens=tokens, alignment_heads=heads, suppress_tokens=[],
        begin_suppress_tokens=[220, EOT],
    )
    model.save_pretrained(folder)
    made = processor(geometry["mels"])
    made.save_pretrained(folder)
    made.feature_extractor.save_pretrained(folder)  # preprocessor_config.json: faster-whisper reads it
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def processor(mels: int) -> Any:
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


def convert_ct2(folder: Path, dtype: str) -> Path:
    """The same weights in CTranslate2 format (needs ctranslate2; the row says so when it does not import)."""
    from ctranslate2.converters import TransformersConverter

    out = folder.with_name(folder.name + f"-ct2-{dtype}")
    if not (out / "model.bin").is_file():
        TransformersConverter(str(folder), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
            str(out), quantization=dtype, force=True)
    return out


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
