"""What the transformers engine runs on: dtype, attention kernel and batch size for the device.

Kept apart from the engine so the choices are tested without loading a model. torch
is imported inside the functions that need it (flash-attn is only ever imported).
"""

from __future__ import annotations

from typing import Any

from tasks.engines.base import EngineConfig, EngineError

MAX_BATCH = 64
DTYPES = ("float32", "float16", "bfloat16")


def choose_attention(cuda: bool, requested: str = "auto") -> str:
    """flash_attention_2 when flash-attn imports and CUDA is there, else sdpa, else eager."""
    if requested != "auto":
        return requested
    if cuda and _flash_attn_available():
        return "flash_attention_2"
    if _sdpa_available():
        return "sdpa"
    return "eager"


def _flash_attn_available() -> bool:
    try:
        import flash_attn  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # absent, or built against another torch/CUDA
        return False
    return True


def _sdpa_available() -> bool:
    import torch

    return hasattr(torch.nn.functional, "scaled_dot_product_attention")


def choose_dtype(device: str, config: EngineConfig) -> str:
    """float16 on CUDA, float32 on CPU; `compute_type` or the `dtype` option overrides."""
    default = (
        config.compute_type
        if config.compute_type != "auto"
        else ("float16" if device == "cuda" else "float32")
    )
    from tasks.engines.options import TransformersOptions, engine_options

    chosen = engine_options(config, TransformersOptions).dtype
    dtype = default if chosen == "auto" else chosen
    if dtype not in DTYPES:
        raise EngineError(f"dtype: the transformers engine takes {', '.join(DTYPES)}, got {dtype!r}")
    if device == "cpu" and dtype == "float16":
        raise EngineError("dtype: float16 needs CUDA; use float32 (or bfloat16) on CPU")
    return dtype


def auto_batch_size(free_bytes: int, window_bytes: int, cap: int = MAX_BATCH) -> int:
    """Windows per batch that fit in 60% of free GPU memory (the rest absorbs fragmentation)."""
    return max(1, min(cap, int(free_bytes * 0.6) // max(window_bytes, 1)))


def window_bytes(
    d_model: int, decoder_layers: int, heads: int, dtype_bytes: int, beams: int, eager: bool
) -> int:
    """Rough cost of one 30 s window: cross-attention KV cache per beam, encoder activations, eager scores."""
    frames = 1500
    cross_kv = 2 * decoder_layers * frames * d_model * dtype_bytes * beams
    encoder = 16 * frames * d_model * dtype_bytes
    scores = heads * frames * frames * dtype_bytes if eager else 0
    return cross_kv + encoder + scores


def available_ram_bytes() -> int:
    """Memory the system can give without swapping (MemAvailable), else its free pages."""
    import os

    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def free_cuda_bytes() -> int | None:
    """Free memory on CUDA device 0: from torch if it imports, else nvidia-smi; None if neither answers.

    The CTranslate2 engine has no memory query of its own, and torch is an optional extra.
    """
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[0])
    except ImportError:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", "0"],
                          capture_output=True, text=True, check=False)
    try:
        return int(float(done.stdout.strip().splitlines()[0]) * 2**20)
    except (ValueError, IndexError):
        return None


def ct2_whisper_geometry(model_bin: str) -> tuple[int, int, int]:
    """(d_model, decoder layers, decoder heads) of a CTranslate2 Whisper `model.bin`, read from its
    variable headers only (the weights are skipped, so a 3 GB file costs a few hundred seeks)."""
    import re
    import struct

    def u32(handle: Any) -> int:
        return int(struct.unpack("<I", handle.read(4))[0])

    def string(handle: Any) -> str:
        return str(handle.read(struct.unpack("<H", handle.read(2))[0]).rstrip(b"\0").decode())

    d_model, layers, heads = 0, set(), 0
    with open(model_bin, "rb") as handle:
        u32(handle), string(handle), u32(handle)  # version, spec name, revision
        for _ in range(u32(handle)):
            name = string(handle)
            shape = [u32(handle) for _ in range(handle.read(1)[0])]
            handle.read(1)  # dtype id
            size = u32(handle)
            if name == "decoder/num_heads":
                heads = int.from_bytes(handle.read(size), "little")
                continue
            handle.seek(size, 1)
            if name == "encoder/conv1/weight":
                d_model = shape[0]
            if match := re.match(r"decoder/layer_(\d+)/", name):
                layers.add(int(match.group(1)))
    return d_model, len(layers), heads
