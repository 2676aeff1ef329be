"""Archives for search and site tests, written with the project's own manifest writer (no model run)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.output.manifests import RunContext, finalize_run, write_part
from tasks.records import FileResult, MediaItem, Quality, Segment, Transcript
from transcribe_all.cli import main


@dataclass(frozen=True)
class Row:
    source: str
    segments: Sequence[tuple[float, float, str]] = ()
    status: str = "ok"
    content: str | None = None  # defaults to a hash of the text: same text, same content
    flags: tuple[str, ...] = ()
    duration_s: float = 10.0
    done_in_run: str | None = None
    transcript_path: str | None = None


def content_of(row: Row) -> str:
    text = row.content or "|".join(t for _, _, t in row.segments) or row.source
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def write_run(out: Path, run_id: str, rows: Sequence[Row], config_hash: str = "cfg1",
              base_url: str | None = None) -> None:
    """Stage then merge one run's rows, as a real run does."""
    ctx = RunContext(run_id, "ctranslate2", "tiny.en", config_hash, base_url=base_url)
    results = [_result(row) for row in rows]
    write_part(out, run_id, "part-test", results, ctx)
    finalize_run(out, run_id)


def _result(row: Row) -> FileResult:
    item = MediaItem(row.source, row.source, 1000, 1, None if row.status == "failed" else content_of(row),
                     row.duration_s if row.status != "failed" else None,
                     "not media" if row.status == "failed" else None)
    transcript = None
    if row.status == "ok":
        segments = tuple(Segment(s, e, t) for s, e, t in row.segments)
        transcript = Transcript(" ".join(t for _, _, t in row.segments), segments, language="en",
                                quality=Quality(flags=row.flags, speech_s=row.duration_s))
    path = row.transcript_path or (f"transcripts/{row.source}.json" if row.status == "ok" else None)
    return FileResult(item, row.status, 0 if row.status == "ok" else -1, datetime.now(UTC), transcript,  # type: ignore[arg-type]
                      error="not media" if row.status == "failed" else None, done_in_run=row.done_in_run,
                      transcript_path=path)


def search_json(*argv: str) -> list[dict[str, object]]:
    """`transcribe-all search ... --json`, in this process (a subprocess per query costs seconds here)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["search", *argv, "--json"]) == 0
    result = json.loads(printed.getvalue())
    assert isinstance(result, list)
    return result
