"""The records passed between layers: scan → shard → transcribe → manifest.

Every record is a frozen, slotted dataclass so a stage cannot mutate what an
earlier stage produced, and so the data path reads the same in every module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

Status = Literal["ok", "failed", "skipped", "removed"]  # removed: gone from SOURCE since the last run
SAMPLE_RATE = 16_000


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One file of the library, as the scan found it."""

    source: str  # path relative to the library root, or a URI: the manifest key
    locator: str  # what the MediaSource needs to open it (absolute path, S3 key)
    size_bytes: int
    mtime_ns: int
    content_sha256: str | None = None
    duration_s: float | None = None
    error: str | None = None  # set when the scan could not hash or probe it
    change_key: str | None = None  # local: inode and ctime; S3: the ETag (tasks/media/sources.py)

    @property
    def ok(self) -> bool:
        return self.error is None and self.duration_s is not None


@dataclass(frozen=True, slots=True)
class Shard:
    """A duration-balanced group of files that one worker transcribes."""

    shard_id: int
    items: tuple[MediaItem, ...]

    @property
    def audio_s(self) -> float:
        return sum(item.duration_s or 0.0 for item in self.items)


@dataclass(frozen=True, slots=True)
class ShardRef:
    """What a shard's flow run is given: its id, a summary for the UI, and where its file list is.

    The list itself is a Parquet file under DIR (tasks/output/shard_plans.py): Prefect caps a flow
    run's parameters at 512 KB, about 2,500 files.
    """

    shard_id: int
    files: int
    audio_s: float
    plan: str  # path of the shard's file list, relative to DIR


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    word: str
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One decode of a file that the quality guards looked at (see `tasks/quality/guards.py`)."""

    decode: str  # "default", or "safer" for the retry
    flags: tuple[str, ...]
    text: str
    kept: bool = False


@dataclass(frozen=True, slots=True)
class Quality:
    """What the quality guards found: flags for the manifest, speech seconds, retry attempts."""

    flags: tuple[str, ...] = ()
    speech_s: float | None = None  # seconds of speech found by voice-activity detection
    attempts: tuple[Attempt, ...] = ()  # empty unless the file was retried


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine returns for one clip; times are on the clip's own clock."""

    text: str
    segments: tuple[Segment, ...]
    words: tuple[Word, ...] = ()
    language: str | None = None
    info: Mapping[str, str] = field(default_factory=dict)  # per-file decode notes
    quality: Quality | None = None  # set after the engine, by the quality guards


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one file has no transcript (it becomes the row's `error`); never stops the other files."""

    reason: str

    def __str__(self) -> str:
        return self.reason

    def within(self, context: str) -> Failure:
        """The same failure, saying where it happened (e.g. which piece of a long file)."""
        return Failure(f"{self.reason} ({context})")


@dataclass(frozen=True, slots=True)
class Clip:
    """Decoded audio handed to an engine: 16 kHz mono float32."""

    key: str
    samples: npt.NDArray[np.float32]
    audio_stream: int | None = None  # the file's stream decoded (tasks/media/audio.py: select_audio_stream)
    note: str | None = None  # e.g. "2 audio streams (#1, #2): transcribed #1 (...)"
    # Where the speech is (start, end seconds on the clip's clock), when voice-activity detection
    # already found it for an engine that windows a long clip by its speech (tasks/quality/guarded.py)
    speech: tuple[tuple[float, float], ...] | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class FileResult:
    """The outcome for one file in one run: becomes one manifest row."""

    item: MediaItem
    status: Status
    shard_id: int
    finished_at: datetime
    transcript: Transcript | None = None
    error: str | None = None
    processing_s: float = 0.0
    done_in_run: str | None = None  # for `skipped`: the run that holds the ok row
    transcript_path: str | None = None  # the JSON output, relative to the output folder
    audio_stream: int | None = None  # the file's audio stream that was transcribed


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds spent per pipeline stage (summed over workers)."""

    scan_s: float = 0.0
    decode_s: float = 0.0
    inference_s: float = 0.0
    write_s: float = 0.0

    def __add__(self, other: StageTimes) -> StageTimes:
        return StageTimes(
            self.scan_s + other.scan_s,
            self.decode_s + other.decode_s,
            self.inference_s + other.inference_s,
            self.write_s + other.write_s,
        )
