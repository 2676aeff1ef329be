"""What the transformers engine runs on: dtype, attention kernel and batch size for the device.

Kept apart from the engine so the choices are tested without loading a model. torch
is imported inside the functions that need it (flash-attn is only ever imported).
"""

from __future__ import annotations

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
