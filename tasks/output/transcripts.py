"""Per-file outputs (JSON, SRT, VTT) and the path rules that keep them inside DIR.

Where a transcript goes is the output layout's call (tasks/output/layout.py: by content ×
config). Source keys are untrusted (a remote listing can hold `../x` or control
characters), so every key and output path goes through `safe_relative_path`.
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path, PurePosixPath

from tasks.records import Segment, Transcript, Word


class UnsafePathError(ValueError):
    pass


def safe_relative_path(key: str) -> PurePosixPath:
    """A relative POSIX path that cannot climb out of its root, or UnsafePathError."""
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise UnsafePathError(f"unsafe source name {key!r}: control characters")
    raw_parts = key.replace("\\", "/").split("/")
    # Checked on the raw text: PurePosixPath would fold '.' and '//' away, and two keys would share outputs.
    if any(part in ("..", ".", "") for part in raw_parts):
        raise UnsafePathError(f"unsafe source name {key!r}: absolute, empty or '.'/'..' path segments")
    return PurePosixPath(*raw_parts)


def output_path(out: Path, relative: str) -> Path:
    """`out / relative`, checked: never outside `out`."""
    root = out.resolve()
    target = root / safe_relative_path(relative)
    if not target.resolve().is_relative_to(root):
        raise UnsafePathError(f"unsafe output path {relative!r}: resolves outside the output folder")
    return target


SUFFIXES = (".json", ".srt", ".vtt")  # every file written per transcript, the JSON first (rows point at it)


def transcript_files(json_path: Path) -> list[Path]:
    """Every file written for the transcript whose JSON is `json_path` (what gets shipped to DIR)."""
    return [json_path.with_suffix(suffix) for suffix in SUFFIXES]


def write_transcript_files(out: Path, stem: str, transcript: Transcript, meta: Mapping[str, object]) -> Path:
    """Write STEM.json, STEM.srt and STEM.vtt (`SUFFIXES`) under `out` atomically; return the JSON path.

    `stem` comes from the output layout (content × config), so the JSON's `content_sha256`
    always matches every row that points at it.
    """
    document = {**meta, "text": transcript.text, "language": transcript.language,
                "language_probability": transcript.language_probability, "speakers": transcript.speakers,
                "segments": [_plain(s) for s in transcript.segments],
                "words": [_plain(w) for w in transcript.words], "info": dict(transcript.info),
                "quality": asdict(transcript.quality) if transcript.quality else None}
    json_path = output_path(out, stem + ".json")
    atomic_write_text(json_path, json.dumps(document, ensure_ascii=False, indent=1))
    atomic_write_text(output_path(out, stem + ".srt"), to_srt(transcript.segments))
    atomic_write_text(output_path(out, stem + ".vtt"), to_vtt(transcript.segments))
    return json_path


def _plain(record: Segment | Word) -> dict[str, object]:
    """A segment or word as JSON; `speaker` only when the run diarized (the format is otherwise unchanged)."""
    fields = asdict(record)
    if fields.get("speaker") is None:
        fields.pop("speaker", None)
    return fields


def to_srt(segments: tuple[Segment, ...]) -> str:
    blocks = [
        f"{n}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{_srt_text(s)}\n"
        for n, s in enumerate((s for s in segments if s.text), start=1)
    ]
    return "\n".join(blocks)


def _srt_text(segment: Segment) -> str:
    return f"[{segment.speaker}] {segment.text}" if segment.speaker else segment.text


def to_vtt(segments: tuple[Segment, ...]) -> str:
    cues = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{_vtt_text(s)}\n" for s in segments if s.text]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_text(segment: Segment) -> str:
    """A voice span names the speaker (WebVTT `<v S1>`); cue text escapes &, < and > as WebVTT requires."""
    if not segment.speaker:
        return segment.text
    text = segment.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<v {segment.speaker}>{text}"


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A hidden temp file beside `path` to write; renamed onto `path` only if the block completes.

    Readers never see half a file, and the leading dot keeps dataset readers from listing it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
