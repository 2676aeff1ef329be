"""The engine contract: one `Transcriber` protocol and the options that shape its output.

Engines live one per module and import their heavy framework (ctranslate2, torch,
nemo) only inside that module, so scanning and planning never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol, runtime_checkable

from tasks.records import Clip, Transcript

ENGINES = ("ctranslate2", "transformers", "nemo", "fake")


class EngineError(RuntimeError):
    """A problem with the engine or its model, not with one file: stops the run."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything that decides which engine runs and what text it produces."""

    engine: str = "ctranslate2"
    model: str | None = None  # local path or hub id; None: the engine's default
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str = "auto"  # auto: float16 on CUDA, float32 on CPU
    beam_size: int = 1
    language: str | None = None
    word_timestamps: bool = False
    # opt-in: short clips share 30 s windows (a clip's text then depends on its neighbours)
    pack_short_clips: bool = False
    batch_size: int = 0  # 0: the engine picks (from free memory on a GPU)
    extra: tuple[tuple[str, str], ...] = ()  # engine-specific knobs, as sorted pairs

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine: unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: must be auto, cpu or cuda, got {self.device!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size: must be at least 1, got {self.beam_size}")
        if self.batch_size < 0:
            raise ValueError(f"batch_size: must be 0 (auto) or positive, got {self.batch_size}")

    def with_model(self, model: str) -> EngineConfig:
        return replace(self, model=model)

    def output_fields(self) -> dict[str, object]:
        """The fields that change the transcript (not device placement, batch size or engine options:
        those are resolved with their defaults by `identity.config_hash`)."""
        fields = asdict(self)
        for key in ("device", "batch_size", "extra"):
            fields.pop(key)
        return fields


@runtime_checkable
class Transcriber(Protocol):
    """A loaded model that turns clips into transcripts."""

    engine: str
    model: str  # the resolved model id or path, as recorded in the manifest

    def settings(self) -> dict[str, str]:
        """Effective settings chosen at load time (device, dtype, attention...)."""
        ...

    def transcribe(self, clips: Sequence[Clip]) -> list[Transcript]:
        """One transcript per clip, in order. May raise; the caller isolates failures."""
        ...

    # Optional, not part of the protocol: `safer() -> Transcriber | None`, a twin sharing the
    # loaded model that decodes more carefully (beam search, temperature fallback, one clip
    # per window). The quality guards use it to retry a flagged file once; an engine without
    # it has its flagged files kept as they are (tasks/quality/guarded.py).
