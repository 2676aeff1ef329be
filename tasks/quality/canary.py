"""The WER canary: a small labelled set transcribed in every run, to catch silent regressions.

A changed model, setting or library version can make every transcript worse with no
error anywhere. So each run also transcribes a labelled set with the run's own engine
and settings (same model, VAD and guards) and scores it with `tasks/quality/wer.py`'s
normalised WER. A run whose canary WER is above the threshold still writes and merges
its transcripts, marks its manifest rows `canary_failed`, records `canary_wer` in its
runs row, and then fails, so a nightly deployment alerts.

The project ships a set made of its example clips (`examples/library` with
`examples/references.tsv`); Whisper tiny.en scores 0.232 on it. A labelled set is
a folder of audio and a TSV with `source` (path relative to the folder) and `text`
columns. With a pool of workers the canary runs where the parent flow runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import get_run_logger, task

from tasks.engines import load_transcriber
from tasks.engines.base import EngineConfig, Transcriber
from tasks.media.audio import MediaError, decode_audio, probe_duration
from tasks.output.layout import merged_part, output_layout
from tasks.output.manifest_merge import READ_BUFFER_BYTES, ROW_GROUP_ROWS, conform
from tasks.output.manifests import MANIFEST_SCHEMA
from tasks.output.transcripts import atomic_path, atomic_write_bytes
from tasks.quality.canary_set import CanarySetError, LabelledSet, resolve_canary
from tasks.quality.guarded import QualityOptions, transcribe_guarded
from tasks.quality.wer import word_error_rate
from tasks.records import Clip, Transcript
from tasks.run_config import RunConfig
from tasks.settings import worker_settings
from tasks.transcribe import run_engine

CANARY_FAILED = "canary_failed"


class CanaryFailed(RuntimeError):
    """The run's canary WER is above its threshold: the run's transcripts are suspect."""


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


def canary_key(labelled: LabelledSet, config: EngineConfig, config_hash: str) -> str:
    """Same model × options × placement × labelled set (names, texts, sizes, mtimes) → the same WER."""
    digest = hashlib.sha256(f"{config_hash}|{config.device}|{config.compute_type}|{config.batch_size}".encode())
    for source, text in labelled.references:
        stat = (labelled.folder / source).stat()
        digest.update(f"|{source}\t{text}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def cached_canary(key: str, threshold: float, cache: Path) -> CanaryResult | None:
    """The result scored earlier on this machine for `key`, judged against today's threshold."""
    try:
        saved = json.loads((cache / f"{key}.json").read_text(encoding="utf-8"))
        return CanaryResult(float(saved["wer"]), threshold, int(saved["files"]), float(saved["audio_s"]), 0.0)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_canary(key: str, result: CanaryResult, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    payload = {"wer": result.wer, "files": result.files, "audio_s": result.audio_s}
    atomic_write_bytes(cache / f"{key}.json", json.dumps(payload).encode())


@task(name="check-canary-set")
def resolve_canary_task(config: RunConfig) -> LabelledSet | None:
    """Check the labelled set before any work, so a wrong path fails the run at once."""
    return resolve_canary(config.canary, config.canary_references, config.engine)


@task(name="run-canary")
def run_canary_task(config: EngineConfig, labelled: LabelledSet, threshold: float, config_hash: str) -> CanaryResult:
    """WER of the labelled set with the run's engine and settings; reused when nothing it depends on changed."""
    logger = get_run_logger()
    cache = worker_settings().cache_dir / "canary"
    key = canary_key(labelled, config, config_hash)
    earlier = cached_canary(key, threshold, cache)
    if earlier is not None:
        logger.info("canary: reusing WER %.3f scored earlier for the same model, options and set", earlier.wer)
        return earlier
    result = score_canary(load_transcriber(config), labelled, QualityOptions.from_config(config), threshold)
    save_canary(key, result, cache)
    return result


@task(name="mark-run")
def mark_run_task(out: str, run_id: str, flag: str) -> int:
    """Flag every transcribed row of the run in its merged manifest."""
    layout = output_layout(out)
    root = layout.read_root()
    marked = mark_run(root, run_id, flag)
    if marked:
        layout.publish([root / merged_part(run_id)], keep=True)
    return marked
