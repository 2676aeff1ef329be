"""Scan a media library: list, sniff, hash and probe every new or changed file.

Incremental: a file whose path, size and mtime match an earlier manifest row keeps
that row's hash and duration and is not opened at all. The trade-off: bytes rewritten
in place with the same size and mtime keep their old hash (as rsync assumes too).

A local file is opened once: the first bytes decide whether it is media, feed the hash
and, for a plain WAV, give the duration from the RIFF header (`wav_duration`); only
other formats get an FFmpeg probe. A remote file is sniffed with a ranged read and
downloaded once for hashing and probing. Hashing, reads and PyAV release the GIL, so
a thread pool overlaps them, fed in batches to keep the per-file overhead small.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
from prefect import get_run_logger, task

from tasks.media.audio import WAV_HEADER_BYTES, MediaError, probe_container, probe_duration, wav_duration
from tasks.media.s3 import S3Access
from tasks.media.sources import LocalSource, MediaSource, SourceFile, looks_like_media, open_source
from tasks.output.layout import output_layout
from tasks.output.manifests import read_manifest, read_staging
from tasks.records import MediaItem

HASH_CHUNK = 1 << 20
SNIFF_BYTES = 64
BATCH = 64  # files per thread-pool task


@dataclass(frozen=True, slots=True)
class Known:
    """What an earlier run found for a file, valid while its size and mtime are unchanged."""

    size_bytes: int
    mtime_ns: int
    content_sha256: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class Scan:
    items: list[MediaItem]  # sorted by source
    reused: int  # hash and duration taken from the manifest, file not opened
    inspected: int  # opened, sniffed, hashed and probed


def previous_scan(out: Path) -> dict[str, Known]:
    """source → its latest manifest or staged row, for rows whose scan succeeded (hash and duration set)."""
    columns = ["source", "size_bytes", "mtime_ns", "content_sha256", "duration_s", "finished_at"]
    rows = pa.concat_tables([read_manifest(out, columns), read_staging(out, columns)])
    rows = rows.filter(pc.and_(pc.is_valid(rows["content_sha256"]), pc.is_valid(rows["duration_s"])))
    rows = rows.sort_by("finished_at")  # later rows overwrite earlier ones below
    return {
        source: Known(size, mtime, sha, duration)
        for source, size, mtime, sha, duration in zip(
            *(rows[name].to_pylist() for name in columns[:5]), strict=True
        )
    }


def scan_library(
    source: MediaSource, previous: Mapping[str, Known] | None = None, workers: int | None = None
) -> list[MediaItem]:
    """Every media file of the source with its hash and duration (or the error why not)."""
    return scan(source, previous, workers).items


def scan(source: MediaSource, previous: Mapping[str, Known] | None = None, workers: int | None = None) -> Scan:
    """`scan_library`, with how many files were reused from `previous` and how many were opened."""
    previous = previous or {}
    local = isinstance(source, LocalSource)
    reused: list[MediaItem] = []

    def to_inspect() -> Iterator[SourceFile]:
        for listed in source.list_files():
            known = previous.get(listed.source)
            if known and listed.error is None and (listed.size_bytes, listed.mtime_ns) == (
                known.size_bytes, known.mtime_ns
            ):
                reused.append(MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns,
                                        known.content_sha256, known.duration_s))
            else:
                yield listed

    def inspect_batch(batch: list[SourceFile]) -> list[MediaItem | None]:
        return [_inspect_local(f) if local else _inspect_remote(source, f) for f in batch]

    with ThreadPoolExecutor(max_workers=workers or min(16, (os.cpu_count() or 2) * 2)) as pool:
        found = [item for batch in pool.map(inspect_batch, _batches(to_inspect(), BATCH)) for item in batch]
    items = reused + [item for item in found if item is not None]
    items.sort(key=lambda i: i.source)
    return Scan(items, len(reused), len(found))


def _batches(files: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    iterator = iter(files)
    while batch := list(islice(iterator, size)):
        yield batch


def _inspect_local(listed: SourceFile) -> MediaItem | None:
    """One open: sniff, hash and (for a plain WAV) the duration from the same bytes."""
    item = MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns, error=listed.error)
    if listed.error is not None:
        return item
    try:
        with open(listed.locator, "rb", buffering=0) as handle:
            head = handle.read(SNIFF_BYTES)
            if not looks_like_media(listed.source, head):
                return None
            head += handle.read(WAV_HEADER_BYTES - len(head))
            item = replace(item, content_sha256=_sha256(handle, first=head))
            size = handle.tell()
        if listed.size_bytes == 0:
            return replace(item, error="empty file: zero bytes")
        duration = wav_duration(head, size)
        return replace(item, duration_s=probe_container(listed.locator) if duration is None else duration)
    except MediaError as error:
        return replace(item, error=str(error))
    except OSError as error:
        return replace(item, error=f"cannot read: {error.strerror or error}")


def _inspect_remote(source: MediaSource, listed: SourceFile) -> MediaItem | None:
    item = MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns, error=listed.error)
    if listed.error is not None:
        return item
    try:
        with source.open(listed.locator) as handle:
            if not looks_like_media(listed.source, handle.read(SNIFF_BYTES)):
                return None
        # Hash the same local copy the probe reads: a remote file crosses the network once here.
        with source.local_path(listed.locator) as path:
            with open(path, "rb") as local:
                item = replace(item, content_sha256=_sha256(local))
            if listed.size_bytes == 0:
                return replace(item, error="empty file: zero bytes")
            return replace(item, duration_s=probe_duration(path))
    except MediaError as error:
        return replace(item, error=str(error))
    except OSError as error:
        return replace(item, error=f"cannot read: {error.strerror or error}")


def _sha256(handle: BinaryIO, first: bytes = b"") -> str:
    digest = hashlib.sha256(first)
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


@task(name="scan-library", retries=2, retry_delay_seconds=[2, 10])
def scan_library_task(source: str, out: str, access: S3Access | None = None) -> list[MediaItem]:
    """Scan the library but the output folder, reusing the manifest's rows (retried: a listing can fail)."""
    previous = previous_scan(output_layout(out).read_root())
    result = scan(open_source(source, exclude=(out,), access=access), previous)
    get_run_logger().info("scan: %d files, %d reused from the manifest, %d hashed",
                          len(result.items), result.reused, result.inspected)
    return result.items
