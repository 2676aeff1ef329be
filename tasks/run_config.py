"""One run's configuration: the single source of truth from `prefect deployment run` or the CLI to the worker.

`RunConfig` is what the user asked for — what to read, where to write, engine, model
and decoding, sharding, pool, hardware, quality, canary. The flow's parameters are
its fields (flows/params.py builds the signature, so the Prefect UI form and
`--params '{"shards": 2}'` both speak them), the CLI's options are generated from
them (transcribe_all/cli.py), and shards and batches receive the validated object.
Contradictions are refused here, before any work, as one line naming the parameter.
No Prefect import: the CLI validates before Prefect starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.engines.base import ENGINES, EngineConfig
from tasks.engines.options import validate_options
from tasks.locations import check_location, location_kind
from tasks.media.s3 import S3Access
from tasks.output.links import check_base_url
from tasks.speakers.stage import SpeakerOptions

EngineName = Literal["ctranslate2", "transformers", "nemo", "fake"]
assert set(EngineName.__args__) == set(ENGINES)  # type: ignore[attr-defined]

# Each shard pool's hardware, for pricing when `hardware` is not given (deployments/ and prefect.yaml).
POOL_HARDWARE = {"cpu": "cpu", "h100": "h100", "g6": "g6.xlarge"}
POOL_SHARD_MINUTES = 60.0  # with a pool and no sharding asked for: shards of about an hour of audio
SHIPPED_CANARY = "shipped"
DEFAULT_MAX_SPEAKERS = 8
DEFAULT_CANARY_THRESHOLD = 0.35  # tiny.en scores 0.232 on the shipped set (30 s windows); a broken decoder ~1.0


class ConfigError(ValueError):
    """A wrong or contradictory parameter: one line that names it. The CLI exits 2; a flow run fails at once."""


class RunConfig(BaseModel):
    """Transcribe every new or changed media file under `source` into `out`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Media folder (as the worker sees it), s3://BUCKET/PREFIX, or media-library/NAME "
                                    "(a saved MediaLibrary block).")
    out: str = Field(description="Output folder or s3://BUCKET/PREFIX: manifest, transcripts, runs.")
    follow_links_outside: bool = Field(False, description="Follow symlinks that resolve outside a local `source` "
                                                          "(default: each gets a failed row saying it was not).")
    engine: EngineName = Field("ctranslate2", description="ctranslate2 (CPU default, bundled tiny.en), "
                                                          "transformers (Whisper on torch) or nemo (Parakeet).")
    model: str | None = Field(None, description="Model folder/file or hub id; default: the engine's bundled model.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the engine runs.")
    compute_type: Literal["auto", "float32", "float16", "bfloat16", "int8", "int8_float16"] = Field(
        "auto", description="Numeric precision; auto: float16 on CUDA, float32 on CPU.")
    batch_size: int = Field(0, ge=0, description="Windows decoded together; 0: the engine picks (free GPU memory).")
    beam_size: int = Field(1, ge=1, description="Beam width; 1 is greedy decoding.")
    language: str | None = Field(None, description="Language code; default: the model's own, or detected.")
    word_timestamps: bool = Field(False, description="Word timings in the JSON output, and caption cues cut by them "
                                                     "(costs ~33 % more decode time on CPU).")
    pack_short_clips: bool = Field(False, description="Short clips share one 30 s window: lower WER on tiny "
                                                      "models, slower than the default, and a clip's text then "
                                                      "depends on its neighbours.")
    vad: bool = Field(True, description="Cut long silences before the engine (voice-activity detection).")
    engine_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="The engine's own options, e.g. {\"long_form\": \"sequential\"}; "
                                          "each engine lists the ones it takes (README, Engines).")
    shards: int | None = Field(None, ge=1, description="Number of duration-balanced shards (not with shard_minutes).")
    shard_minutes: float | None = Field(None, gt=0, description="Shards of about this many minutes of audio "
                                                               "(not with shards); default with a pool: 60.")
    pool: str | None = Field(None, description="Run each shard as a transcribe-shard/POOL deployment run "
                                               "(cpu, h100, g6); empty: in this process.")
    shard_attempts: int = Field(3, ge=1, description="Tries per shard on a pool before the run fails.")
    hardware: str | None = Field(None, description="Price profile (cpu, g6.xlarge, g6.2xlarge, h100, p5-per-gpu, "
                                                   "or a saved HardwareProfile block); default: the pool's.")
    base_url: str | None = Field(None, description="Where `out` is served (http(s)://HOST): rows link to "
                                                   "URL/outputs/<transcript>.")
    site: bool = Field(False, description="Also rebuild the static site in `out`/site/ (the search index is "
                                          "updated every run).")
    media_base_url: str | None = Field(None, description="Where the site's players find the media (S3, a CDN: "
                                                         "http(s)://HOST/PATH); without it they play a local "
                                                         "`source` through links in `out`/site/media/.")
    wait_for_lease: bool = Field(True, description="When another run is writing to `out`, wait for it "
                                                   "(else stop at once with one line).")
    canary: str = Field(SHIPPED_CANARY, description="Labelled set scored after each run that transcribed something: "
                                                    "shipped, a folder with references.tsv, or off.")
    canary_references: str | None = Field(None, description="The canary set's references TSV "
                                                            "(default: FOLDER/references.tsv).")
    canary_threshold: float = Field(DEFAULT_CANARY_THRESHOLD, ge=0, description="Fail the run when the canary's "
                                                                                "WER is above this.")
    diarize: bool = Field(False, description="Label who speaks when: segments and words get S1, S2, … "
                                             "(needs the diarize extra).")
    min_speakers: int | None = Field(None, ge=1, description="With diarize: at least this many speakers per file.")
    max_speakers: int | None = Field(None, ge=1, description="With diarize: at most this many speakers per file "
                                                             "(default 8).")
    languages: list[str] = Field(default_factory=list, description="Only files in these languages (codes, comma-"
                                 "separated; -CODE leaves one out: -en is every language but English); the others "
                                 "get a skipped row naming their language.")
    language_check: bool = Field(True, description="Identify every file's language on its speech and flag a file "
                                                   "the model cannot read (language_mismatch); always on when "
                                                   "languages is set. An English-only model asks Whisper base "
                                                   "(int8, ~0.07 s a short file on 2 CPU cores).")
    language_model: str | None = Field(None, description="Multilingual CTranslate2 Whisper folder that identifies "
                                                          "languages when the run's model cannot (default: Whisper "
                                                          "base, when installed).")

    @field_validator("source", "out")
    @classmethod
    def _known_scheme(cls, value: str, info: Any) -> str:
        location_kind(value, info.field_name, blocks=info.field_name == "source")
        return value

    @field_validator("base_url", "media_base_url")
    @classmethod
    def _http_base_url(cls, value: str | None, info: Any) -> str | None:
        try:
            return check_base_url(value)
        except ValueError as error:
            raise ValueError(str(error).replace("base_url", info.field_name, 1)) from None

    @field_validator("languages", mode="before")
    @classmethod
    def _codes(cls, value: object) -> object:
        """`en,de` (CLI) or ["en", "de"] (deployment parameters): lower-case codes, none empty."""
        codes = value.split(",") if isinstance(value, str) else value
        if not isinstance(codes, list | tuple):
            return value
        cleaned = [str(code).strip().lower() for code in codes if str(code).strip()]
        if any(not code.removeprefix("-").isalpha() for code in cleaned):
            raise ValueError(f"languages: language codes such as en, de or -en, got {value!r}")
        return cleaned

    @field_validator("model", "language", "pool", "hardware", "canary_references", "media_base_url",
                     "language_model", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # the UI's cleared text box

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.shards is not None and self.shard_minutes is not None:
            raise ValueError("shards and shard_minutes: give one or the other")
        if self.hardware is None and self.pool is not None and self.pool not in POOL_HARDWARE:
            raise ValueError(f"hardware: pool {self.pool!r} has no default price profile; pass hardware")
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers: more than max_speakers")
        if (self.min_speakers or self.max_speakers) and not self.diarize:
            raise ValueError("min_speakers, max_speakers: only with diarize")
        self.engine_config()  # engine_options are checked against the engine's own
        return self

    @classmethod
    def parse(cls, params: Mapping[str, object]) -> RunConfig:
        """Validate parameters as they come (flow run, CLI): a ConfigError of one line on the first problem."""
        try:
            return cls.model_validate(dict(params))
        except ValidationError as error:
            raise ConfigError(one_line(error)) from None

    def engine_config(self) -> EngineConfig:
        options = dict(self.engine_options) | ({} if self.vad else {"vad": False})
        return EngineConfig(engine=self.engine, model=self.model, device=self.device, compute_type=self.compute_type,
                            beam_size=self.beam_size, language=self.language, word_timestamps=self.word_timestamps,
                            pack_short_clips=self.pack_short_clips, batch_size=self.batch_size,
                            extra=validate_options(self.engine, options), speakers=self.speaker_range())

    def speaker_range(self) -> tuple[int, int] | None:
        """(min, max) speakers per file when the run diarizes, else None (and the config hash is as before)."""
        if not self.diarize:
            return None
        least = self.min_speakers or 1
        return least, max(self.max_speakers or DEFAULT_MAX_SPEAKERS, least)

    def speaker_options(self, vad_threshold: float = 0.5) -> SpeakerOptions:
        least, most = self.speaker_range() or (1, DEFAULT_MAX_SPEAKERS)
        return SpeakerOptions(diarize=self.diarize, min_speakers=least, max_speakers=most,
                              languages=tuple(self.languages), language_check=self.language_check,
                              language_model=self.language_model,
                              device=self.device, vad_threshold=vad_threshold)

    def hardware_profile(self) -> str:
        """The price profile: as given, else the pool's, else cpu (this machine)."""
        return self.hardware or POOL_HARDWARE.get(self.pool or "cpu", "cpu")

    def shard_plan(self) -> tuple[int | None, float | None]:
        """(shards, target seconds per shard): exactly one is set."""
        if self.shards is not None:
            return self.shards, None
        if self.shard_minutes is not None:
            return None, self.shard_minutes * 60
        return (None, POOL_SHARD_MINUTES * 60) if self.pool else (1, None)

    def canary_enabled(self) -> bool:
        return self.canary.strip().lower() not in ("", "off", "none")

    def check_places(self) -> None:
        """What can be checked on this machine before any work: SOURCE exists, DIR is usable, extras installed."""
        try:
            check_location(self.source, "source", must_exist=True)
            check_location(self.out, "out", must_exist=False)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        missing = [name for name in ("resemblyzer", "spectralcluster") if importlib.util.find_spec(name) is None]
        if self.diarize and missing:
            raise ConfigError(f"diarize: needs {', '.join(missing)}, not installed here: "
                              "pip install 'transcribe-all[diarize]'")


@dataclass(frozen=True, slots=True)
class RunRef:
    """What a run's shards and batches need besides its `RunConfig`: set once by the parent."""

    run_id: str
    config_hash: str
    source: str  # the resolved location (a MediaLibrary block's folder or URI, not the block's name)
    access: S3Access | None = None  # names the credentials block; never the secrets


def one_line(error: ValidationError) -> str:
    """The first problem pydantic found, as `name: message`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown parameter; valid: {', '.join(RunConfig.model_fields)}"
    if first["type"] == "missing":
        return f"{where}: required"
    if not where or message.split(":", 1)[0] in RunConfig.model_fields or message.startswith("engine_options"):
        return message  # our own validators name the parameter already
    return f"{where}: {message} (got {first.get('input')!r})"
