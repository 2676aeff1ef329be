"""Engine registry: one entry per engine — what it needs installed, its default model, its options.

`check_engine` runs at the boundary (CLI, flow start), so a missing extra or model is
one line before any work; `load_transcriber` loads a model once per worker process.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.engines.base import ENGINES, EngineConfig, EngineError, Transcriber
from tasks.engines.identity import config_hash

__all__ = ["ENGINES", "REGISTRY", "EngineConfig", "EngineError", "EngineSpec", "Transcriber", "check_engine",
           "config_hash", "load_transcriber", "resolve_model"]


def _bundled_ct2() -> str:
    from tasks.models import bundled_whisper_ct2

    return str(bundled_whisper_ct2())


def _whisper_base() -> str:
    from tasks.models import whisper_base_ct2

    return str(whisper_base_ct2())


# Real weights that a pip extra installs, by name (`--model whisper-base`): name → (its engines, where it is)
NAMED_MODELS: dict[str, tuple[tuple[str, ...], Callable[[], str]]] = {
    "whisper-base": (("ctranslate2",), _whisper_base),
}


def _bundled_transformers() -> str:
    from tasks.models import bundled_whisper_transformers

    return str(bundled_whisper_transformers())


@dataclass(frozen=True, slots=True)
class EngineSpec:
    name: str
    loader: str  # "module:Class"; the class takes (config, model, cpu_threads)
    modules: tuple[str, ...]  # imported by the engine: checked before any work
    extra: str | None  # the pip extra that installs them
    default_model: Callable[[], str] | None  # None: the user must name one
    hub_hint: str | None = None  # named in the error when there is no installed default


REGISTRY: dict[str, EngineSpec] = {
    "ctranslate2": EngineSpec("ctranslate2", "tasks.engines.ctranslate2_whisper:CTranslate2Whisper",
                              ("ctranslate2", "faster_whisper"), None, _bundled_ct2),
    "transformers": EngineSpec("transformers", "tasks.engines.transformers_whisper:TransformersWhisper",
                               ("torch", "transformers", "safetensors"), "whisper", _bundled_transformers),
    "nemo": EngineSpec("nemo", "tasks.engines.nemo_parakeet:NemoParakeet", ("torch", "nemo"), "nemo", None,
                       hub_hint="nvidia/parakeet-tdt-0.6b-v3"),
    "fake": EngineSpec("fake", "tasks.engines.fake:FakeTranscriber", (), None, lambda: "fake"),
}
assert tuple(REGISTRY) == ENGINES, "tasks/engines/base.py ENGINES and REGISTRY must name the same engines"


def check_engine(config: EngineConfig) -> str:
    """Everything checkable without loading the model: installed modules, then the model. Returns it."""
    spec = REGISTRY[config.engine]
    missing = [name for name in spec.modules if importlib.util.find_spec(name) is None]
    if missing:
        install = f"pip install 'transcribe-all[{spec.extra}]'" if spec.extra else "pip install transcribe-all"
        raise EngineError(f"engine: {config.engine} needs {', '.join(missing)}, not installed here: {install}")
    return resolve_model(config)


def resolve_model(config: EngineConfig) -> str:
    """The model the config means: a named model, the user's path or hub id, else the engine's default."""
    if config.model in NAMED_MODELS:
        engines, locate = NAMED_MODELS[config.model]
        if config.engine not in engines:
            raise EngineError(f"model: {config.model} runs on the {' or '.join(engines)} engine, not {config.engine}")
        try:
            return locate()
        except RuntimeError as error:  # a missing package or weights that are not the published ones
            raise EngineError(str(error)) from None
    if config.model:
        if _looks_like_path(config.model) and not Path(config.model).exists():
            raise EngineError(f"model: no such file or folder: {config.model}")
        return str(Path(config.model).absolute()) if Path(config.model).exists() else config.model
    spec = REGISTRY[config.engine]
    if spec.default_model is not None:
        return spec.default_model()
    # No weights are downloaded unless the user names a hub model.
    hint = f", or the hub id {spec.hub_hint} on a machine that is online" if spec.hub_hint else ""
    raise EngineError(f"model: the {config.engine} engine has no installed default; pass --model PATH{hint}")


@lru_cache(maxsize=2)
def load_transcriber(config: EngineConfig) -> Transcriber:
    """Load once per worker process: every shard and batch after the first reuses it."""
    from tasks.settings import worker_settings

    model = check_engine(config)
    module, _, name = REGISTRY[config.engine].loader.partition(":")
    engine_class = getattr(importlib.import_module(module), name)
    transcriber: Transcriber = engine_class(config, model, cpu_threads=worker_settings().cpu_threads)
    return transcriber


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or Path(model).suffix == ".nemo"
