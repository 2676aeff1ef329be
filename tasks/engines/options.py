"""Each engine's typed options: the only keys `engine_options` accepts for that engine.

Options travel in `EngineConfig.extra` as sorted (name, text) pairs of what the user
set, so an `EngineConfig` stays hashable (the loaded model is cached on it). They are
validated once, at the boundary (`validate_options`), and read back typed
(`engine_options`): no code parses option strings itself. The config hash covers the
resolved value of every option that changes the text, defaults included
(`text_options`), so a row's key says what produced it, and a changed default is a new key.
An option that cannot change the text says so in its field's metadata (`NOT_TEXT`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from tasks.engines.base import EngineConfig
from tasks.engines.nemo_longform import LongformPolicy

NOT_TEXT = {"text": False}  # field metadata: the option cannot change a transcript (left out of the config hash)


@dataclass(frozen=True)
class CommonOptions:
    """Options every engine takes: voice-activity detection and the safer retry (tasks/quality/)."""

    vad: bool = True  # cut long silences before the engine (speech is detected either way)
    vad_threshold: float = 0.5  # Silero speech probability
    quality_retry: bool = True  # decode a flagged file once more with the engine's safer settings

    def __post_init__(self) -> None:
        if not 0.0 <= self.vad_threshold <= 1.0:
            raise ValueError(f"vad_threshold: must be between 0 and 1, got {self.vad_threshold}")


@dataclass(frozen=True)
class CTranslate2Options(CommonOptions):
    # Files over 30 s: "batched" cuts their speech into windows decoded together with every other file's
    # windows (ct2_batch.py); "sequential" is faster-whisper's own one-window-at-a-time decoder.
    long_form: Literal["batched", "sequential"] = "batched"
    # Clips under 30 s: "full" (the default) pads each to 30 s as Whisper was trained and faster-whisper
    # does; "fit" (opt-in) encodes them at their own length (+ >= 2 s, in 5 s steps, at least 15 s):
    # ~2x faster on clips of 2-10 s, but it changes what the model hears, was proven on tiny.en alone and
    # read worse there on held-out real speech (README, Engines; bench/results/audio_context_cpu.md).
    audio_context: Literal["fit", "full"] = "full"


@dataclass(frozen=True)
class TransformersOptions(CommonOptions):
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: compute_type, else by device
    pack: bool = False  # several short clips share one 30 s window (text then depends on neighbours)


@dataclass(frozen=True)
class NemoOptions(CommonOptions, LongformPolicy):
    """The long-audio policy (tasks/engines/nemo_longform.py) plus the quality options."""

    def __post_init__(self) -> None:
        CommonOptions.__post_init__(self)
        LongformPolicy.__post_init__(self)


@dataclass(frozen=True)
class FakeOptions(CommonOptions):
    # wall time per audio second: lets benchmarks model a real engine
    seconds_per_audio_second: float = field(default=0.0, metadata=NOT_TEXT)


OPTIONS: dict[str, type[CommonOptions]] = {
    "ctranslate2": CTranslate2Options,
    "transformers": TransformersOptions,
    "nemo": NemoOptions,
    "fake": FakeOptions,
}

O = TypeVar("O", bound=CommonOptions)


def option_names(engine: str) -> list[str]:
    return sorted(f.name for f in fields(OPTIONS[engine]))


def validate_options(engine: str, given: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """Check `given` against the engine's options; return them as canonical sorted pairs.

    Raises ValueError with one line naming the option and, for an unknown one, the valid names.
    """
    cls = OPTIONS[engine]
    valid = option_names(engine)
    for key in given:
        if key not in valid:
            raise ValueError(f"engine_options: unknown option {key!r} for the {engine} engine; "
                             f"valid: {', '.join(valid)}")
    typed = _parse(cls, dict(given))
    return tuple(sorted((key, _text(getattr(typed, key), given[key])) for key in given))


def engine_options(config: EngineConfig, cls: type[O]) -> O:
    """The config's options for its engine, typed (validated at the boundary, so this does not fail)."""
    parsed = _cached(config.engine, config.extra)
    if not isinstance(parsed, cls):
        raise TypeError(f"{config.engine} options are {type(parsed).__name__}, not {cls.__name__}")
    return parsed


@lru_cache(maxsize=64)
def _cached(engine: str, extra: tuple[tuple[str, str], ...]) -> CommonOptions:
    return _parse(OPTIONS[engine], dict(extra))


def _parse(cls: type[O], values: dict[str, object]) -> O:
    try:
        return TypeAdapter(cls).validate_python(values)  # unknown keys were refused by the caller
    except ValidationError as error:
        first = error.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a __post_init__ check: its message names the option
            raise ValueError(f"engine_options: {message}") from None
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"engine_options: {where}: {message} (got {first.get('input')!r})") from None


def _text(value: object, given: object) -> str:
    """Canonical text of an option: bools as on/off (what the config hash has always seen), else as given."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return given.strip() if isinstance(given, str) else str(value)


def text_options(config: EngineConfig) -> dict[str, str]:
    """The resolved value (given, else the default) of every option of the config's engine that can change
    the text, as canonical text: what the config hash covers."""
    typed = engine_options(config, OPTIONS[config.engine])
    return {f.name: _text(getattr(typed, f.name), getattr(typed, f.name)) for f in fields(typed)
            if f.metadata.get("text", True)}
