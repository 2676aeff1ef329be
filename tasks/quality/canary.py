"""The WER canary: a small labelled set transcribed in every run, to catch silent regressions.

A changed model, setting or library version can make every transcript worse with no
error anywhere. So each run also transcribes a labelled set with the run's own engine
and settings (same model, VAD and guards) and scores it with `tasks/quality/wer.py`'s
normalised WER. A run whose canary WER is above the threshold still writes and merges
its transcripts, marks its manifest rows `canary_failed`, records `canary_wer` in its
runs row, and then fails, so a nightly deployment alerts.

The project ships a set made of its example clips (`examples/library` with
`examples/references.tsv`); Whisper tiny.en scores about 0.26 on it. A labelled set is
a folder of audio and a TSV with `source` (path relative to the folder) and `text`
columns. With a pool of workers the canary runs where the parent flow runs.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task

from tasks.engines import load_transcriber
from tasks.engines.base import EngineConfig, Transcriber
from tasks.media.audio import MediaError, decode_audio, probe_duration
from tasks.output.layout import merged_part, output_layout
from tasks.output.manifest_merge import READ_BUFFER_BYTES, ROW_GROUP_ROWS, conform
from tasks.output.manifests import MANIFEST_SCHEMA
from tasks.output.transcripts import atomic_path
from tasks.quality.guarded import QualityOptions, transcribe_guarded
from tasks.quality.wer import word_error_rate
from tasks.records import Clip, Transcript
from tasks.transcribe import run_engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHIPPED = "shipped"  # the `canary` value that means the shipped set
DEFAULT_THRESHOLD = 0.35  # tiny.en scores ~0.26 on the shipped set; a broken decoder ~1.0
CANARY_FAILED = "canary_failed"


class CanarySetError(ValueError):
    """The labelled set cannot be used: a missing folder, TSV, column or audio file."""


class CanaryFailed(RuntimeError):
    """The run's canary WER is above its threshold: the run's transcripts are suspect."""


@dataclass(frozen=True, slots=True)
class LabelledSet:
    folder: Path
    references: tuple[tuple[str, str], ...]  # (source relative to folder, reference text)


@dataclass(frozen=True, slots=True)
class CanaryResult:
    wer: float
    threshold: float
    files: int
    audio_s: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.wer <= self.threshold

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"canary WER {self.wer:.3f} {verdict} (threshold {self.threshold:.3f}, {self.files} files)"


def resolve_canary(canary: str | None, references: str | None, engine: str) -> LabelledSet | None:
    """The labelled set a run's `canary` parameter names: `shipped`, a folder, or off/None."""
    if canary is None or canary.strip().lower() in ("", "off", "none"):
        return None
    if canary == SHIPPED:
        if engine == "fake":
            return None  # the fake engine says no words: there is nothing to score
        folder, tsv = EXAMPLES / "library", EXAMPLES / "references.tsv"
        if not tsv.is_file():
            raise CanarySetError(f"canary: the shipped set is not in this install ({tsv}); "
                                 "pass canary=FOLDER with a references.tsv, or canary=off")
    else:
        folder = Path(canary)
        tsv = Path(references) if references else folder / "references.tsv"
    if not folder.is_dir():
        raise CanarySetError(f"canary: not a folder: {folder}; pass a folder of labelled audio, or canary=off")
    pairs = load_references(tsv)
    missing = [source for source, _ in pairs if not (folder / source).is_file()]
    if missing:
        raise CanarySetError(f"canary: {len(missing)} files listed in {tsv} are not in {folder}, e.g. {missing[0]}")
    return LabelledSet(folder, pairs)


def load_references(tsv: Path) -> tuple[tuple[str, str], ...]:
    """`source` and `text` columns of a tab-separated file with a header."""
    try:
        with tsv.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except OSError as error:
        raise CanarySetError(f"canary: cannot read references {tsv}: {error.strerror or error}") from error
    if not rows or not {"source", "text"} <= set(rows[0]):
        raise CanarySetError(f"canary: {tsv} needs a header with tab-separated `source` and `text` columns")
    return tuple((row["source"], row["text"] or "") for row in rows)


def score_canary(transcriber: Transcriber, labelled: LabelledSet, options: QualityOptions,
                 threshold: float) -> CanaryResult:
    """Transcribe the set as a batch of the run would be, and score it."""
    started = time.perf_counter()
    clips = []
    for source, _ in labelled.references:
        path = labelled.folder / source
        try:
            clips.append(Clip(source, decode_audio(path, probe_duration(path))))
        except MediaError as error:
            raise CanarySetError(f"canary: cannot decode {path}: {error}") from error
    outputs = transcribe_guarded(transcriber, clips, options, run_engine)
    hypotheses = [o.text if isinstance(o, Transcript) else "" for o in outputs]  # a failure scores as deletions
    wer = word_error_rate([text for _, text in labelled.references], hypotheses)
    return CanaryResult(round(wer, 4), threshold, len(clips), round(sum(c.duration_s for c in clips), 3),
                        round(time.perf_counter() - started, 3))


def mark_run(out: Path, run_id: str, flag: str) -> int:
    """Add `flag` to the quality flags of every transcribed row of a merged run; how many.

    Counts on three columns first, then rewrites the part a row group at a time (atomically), so
    the run's text is never all in memory and an already-marked run is not rewritten.
    """
    path = out / merged_part(run_id)
    if not path.is_file():
        return 0
    narrow = pq.ParquetFile(path).iter_batches(ROW_GROUP_ROWS, columns=["status", "shard_id", "quality_flags"])
    marked = sum(_with_flag(batch, flag)[1] for batch in narrow)
    if marked:
        part = pq.ParquetFile(path, buffer_size=READ_BUFFER_BYTES, pre_buffer=False)
        with atomic_path(path) as tmp, pq.ParquetWriter(tmp, MANIFEST_SCHEMA, compression="zstd") as writer:
            for batch in part.iter_batches(ROW_GROUP_ROWS):
                writer.write_batch(_with_flag(conform(batch, MANIFEST_SCHEMA), flag)[0])
    return marked


def _with_flag(batch: pa.RecordBatch, flag: str) -> tuple[pa.RecordBatch, int]:
    """The batch with `flag` added to its ok rows written by a shard (not the planner), and how many."""
    eligible = pc.and_(pc.equal(batch.column("status"), "ok"), pc.greater_equal(batch.column("shard_id"), 0))
    flags = batch.column("quality_flags").to_pylist()
    marked = [n for n in np.flatnonzero(pc.fill_null(eligible, False).to_numpy(zero_copy_only=False))
              if flag not in (flags[n] or [])]
    for n in marked:
        flags[n] = [*(flags[n] or []), flag]
    column = batch.schema.get_field_index("quality_flags")
    return batch.set_column(column, "quality_flags", pa.array(flags, batch.schema.field(column).type)), len(marked)


@task(name="check-canary-set")
def resolve_canary_task(canary: str | None, references: str | None, engine: str) -> LabelledSet | None:
    """Check the labelled set before any work, so a wrong path fails the run at once."""
    return resolve_canary(canary, references, engine)


@task(name="run-canary")
def run_canary_task(config: EngineConfig, labelled: LabelledSet, threshold: float) -> CanaryResult:
    """Transcribe the labelled set with the run's engine and settings; WER against the references."""
    return score_canary(load_transcriber(config), labelled, QualityOptions.from_config(config), threshold)


@task(name="mark-run")
def mark_run_task(out: str, run_id: str, flag: str) -> int:
    """Flag every transcribed row of the run in its merged manifest."""
    layout = output_layout(out)
    root = layout.read_root()
    marked = mark_run(root, run_id, flag)
    if marked:
        layout.publish([root / merged_part(run_id)], keep=True)
    return marked
