"""Engine registry: resolve the model, load it once per worker process, hand it out."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tasks.engines.base import ENGINES, EngineConfig, EngineError, Transcriber, config_hash

__all__ = ["ENGINES", "EngineConfig", "EngineError", "Transcriber", "config_hash", "load_transcriber", "resolve_model"]

# Named in the error when an engine has no installed default: the user opts into a download.
HUB_SUGGESTIONS = {"nemo": "nvidia/parakeet-tdt-0.6b-v3"}


def resolve_model(config: EngineConfig) -> str:
    """The model the config means: the user's path or hub id, else the engine's default."""
    if config.model:
        if _looks_like_path(config.model) and not Path(config.model).exists():
            raise EngineError(f"model: no such file or folder: {config.model}")
        return str(Path(config.model).absolute()) if Path(config.model).exists() else config.model
    if config.engine == "ctranslate2":
        from transcribe_all.models import bundled_whisper_ct2

        return str(bundled_whisper_ct2())
    if config.engine == "transformers":
        from transcribe_all.models import bundled_whisper_transformers

        return str(bundled_whisper_transformers())
    if config.engine == "fake":
        return "fake"
    # No weights are downloaded unless the user names a hub model.
    hint = f", or the hub id {HUB_SUGGESTIONS[config.engine]} on a machine that is online" \
        if config.engine in HUB_SUGGESTIONS else ""
    raise EngineError(f"model: the {config.engine} engine has no installed default; pass --model PATH{hint}")


@lru_cache(maxsize=2)
def load_transcriber(config: EngineConfig) -> Transcriber:
    """Load once per worker process: every shard and batch after the first reuses it."""
    from transcribe_all.settings import worker_settings

    model = resolve_model(config)
    if config.engine == "ctranslate2":
        from tasks.engines.ctranslate2_whisper import CTranslate2Whisper

        return CTranslate2Whisper(config, model, cpu_threads=worker_settings().cpu_threads)
    if config.engine == "transformers":
        from tasks.engines.transformers_whisper import TransformersWhisper

        return TransformersWhisper(config, model)
    if config.engine == "nemo":
        from tasks.engines.nemo_parakeet import NemoParakeet

        return NemoParakeet(config, model, cpu_threads=worker_settings().cpu_threads)
    if config.engine == "fake":
        from tasks.engines.fake import FakeTranscriber

        return FakeTranscriber(config)
    raise EngineError(f"engine: {config.engine!r} is not available in this install")


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or Path(model).suffix == ".nemo"
