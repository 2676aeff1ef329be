"""Scan a media library: list, sniff, hash and probe every new or changed file.

Incremental: a file whose path, size, mtime and change key match an earlier manifest
row keeps that row's hash and duration and is not opened at all. The change key is what
git's index compares besides size and mtime for a local file, its inode and ctime: a
swap (`mv A t; mv B A; mv t B`) or a rewrite that puts the mtime back changes the ctime,
which no user call can set. For S3 it is the object's ETag. Rows written before the key
existed have none, so each such file is hashed once more. The cost: anything else that
changes a ctime (chmod, chown, a new hard link) or an inode (a restore from backup, a file
system whose inode numbers are not stable) makes the file be hashed again, never
transcribed again (the ledger goes by content).

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

from tasks.media.audio import (
    WAV_HEADER_BYTES,
    MediaError,
    open_regular,
    probe_container,
    probe_duration,
    wav_duration,
)
from tasks.media.library import open_source
from tasks.media.local import LocalSource
from tasks.media.s3 import S3Access
from tasks.media.sources import MediaSource, SourceFile, change_key, decode_name, looks_like_media
from tasks.output.layout import output_layout
from tasks.output.manifests import read_manifest, read_staging
from tasks.records import MediaItem

HASH_CHUNK = 1 << 20
SNIFF_BYTES = 64
BATCH = 64  # files per thread-pool task


@dataclass(frozen=True, slots=True)
class Known:
    """What an earlier run found for a file, valid while its size, mtime and change key are unchanged."""

    size_bytes: int
    mtime_ns: int
    content_sha256: str
    duration_s: float
    change_key: str | None = None  # None in rows written before it existed: never matches a listed file


@dataclass(frozen=True, slots=True)
class Scan:
    items: list[MediaItem]  # sorted by source
    reused: int  # hash and duration taken from the manifest, file not opened
    inspected: int  # opened, sniffed, hashed and probed


def previous_scan(out: Path) -> dict[str, Known]:
    """source → its latest manifest or staged row, for rows whose scan succeeded and that did not fail."""
    columns = ["source", "size_bytes", "mtime_ns", "content_sha256", "duration_s", "change_key", "finished_at",
               "status"]
    rows = pa.concat_tables([read_manifest(out, columns), read_staging(out, columns)])
    rows = rows.filter(pc.and_(pc.is_valid(rows["content_sha256"]), pc.is_valid(rows["duration_s"])))
    rows = rows.sort_by("finished_at")  # later rows overwrite earlier ones below
    values = (rows[name].to_pylist() for name in columns)
    latest = {
        source: (Known(size, mtime, sha, duration, key), status)
        for source, size, mtime, sha, duration, key, _, status in zip(*values, strict=True)
    }
    # A file whose latest row failed is probed again: the reason may be gone, or judged differently now.
    return {source: known for source, (known, status) in latest.items() if status != "failed"}


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
            if known and listed.error is None and unchanged(listed, known):
                reused.append(MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns,
                                        known.content_sha256, known.duration_s, change_key=listed.change_key))
            else:
                yield listed

    def inspect_batch(batch: list[SourceFile]) -> list[MediaItem | None]:
        return [_inspect_local(f) if local else _inspect_remote(source, f) for f in batch]

    with ThreadPoolExecutor(max_workers=workers or min(16, (os.cpu_count() or 2) * 2)) as pool:
        found = [item for batch in pool.map(inspect_batch, _batches(to_inspect(), BATCH)) for item in batch]
    items = reused + [item for item in found if item is not None]
    items.sort(key=lambda i: i.source)
    return Scan(items, len(reused), len(found))


def unchanged(listed: SourceFile, known: Known) -> bool:
    """Same size, mtime and change key as the row: the file was not touched since it was hashed."""
    return (listed.size_bytes, listed.mtime_ns, listed.change_key) == (known.size_bytes, known.mtime_ns,
                                                                       known.change_key)


def _batches(files: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    iterator = iter(files)
    while batch := list(islice(iterator, size)):
        yield batch


def _inspect_local(listed: SourceFile) -> MediaItem | None:
    """One open: sniff, hash and (for a plain WAV) the duration from the same bytes."""
    item = MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns, error=listed.error,
                     change_key=listed.change_key)
    if listed.error is not None:
        return item
    path = decode_name(listed.locator)
    try:
        with open_regular(path) as handle:
            head = handle.read(SNIFF_BYTES)
            if not looks_like_media(listed.source, head):
                return None
            opened = os.fstat(handle.fileno())  # what is hashed: the row records this size and mtime
            size = opened.st_size
            head += handle.read(max(0, min(WAV_HEADER_BYTES, size) - len(head)))
            item = replace(item, size_bytes=size, mtime_ns=opened.st_mtime_ns, change_key=change_key(opened),
                           content_sha256=_sha256(handle, first=head, size=size))
            _check_unchanged(handle, opened)
        if size == 0:
            return replace(item, error="empty file: zero bytes")
        duration = wav_duration(head, size)
        return replace(item, duration_s=probe_container(path) if duration is None else duration)
    except MediaError as error:
        return replace(item, error=str(error))
    except OSError as error:
        return replace(item, error=f"cannot read: {error.strerror or error}")


def _check_unchanged(handle: BinaryIO, opened: os.stat_result) -> None:
    """A file written to while it was hashed has no settled hash: fail it now, the next run retries it."""
    now = os.fstat(handle.fileno())
    if (now.st_size, now.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
        raise MediaError("changed while it was read (still being written?): the next run reads it again")


def _inspect_remote(source: MediaSource, listed: SourceFile) -> MediaItem | None:
    item = MediaItem(listed.source, listed.locator, listed.size_bytes, listed.mtime_ns, error=listed.error,
                     change_key=listed.change_key)
    if listed.error is not None:
        return item
    try:
        with source.open(listed.locator) as handle:
            if not looks_like_media(listed.source, handle.read(SNIFF_BYTES)):
                return None
        # Hash the same local copy the probe reads: a remote file crosses the network once here.
        with source.local_path(listed.locator) as path:
            with open(path, "rb") as local:
                item = replace(item, content_sha256=_sha256(local, size=os.fstat(local.fileno()).st_size))
            if listed.size_bytes == 0:
                return replace(item, error="empty file: zero bytes")
            return replace(item, duration_s=probe_duration(path))
    except MediaError as error:
        return replace(item, error=str(error))
    except OSError as error:
        return replace(item, error=f"cannot read: {error.strerror or error}")


def _sha256(handle: BinaryIO, first: bytes = b"", size: int | None = None) -> str:
    """The hash of `first` and what follows it, reading at most `size` bytes in all.

    Bounded: a file that grows while it is read, or a /proc-like file whose size is 0 yet
    reads forever, cannot keep the scan reading.
    """
    digest = hashlib.sha256(first)
    left = None if size is None else size - len(first)
    while (left is None or left > 0) and (chunk := handle.read(HASH_CHUNK if left is None else min(HASH_CHUNK, left))):
        digest.update(chunk)
        left = None if left is None else left - len(chunk)
    return digest.hexdigest()


@task(name="scan-library", retries=2, retry_delay_seconds=[2, 10])
def scan_library_task(
    source: str, out: str, access: S3Access | None = None, follow_links_outside: bool = False
) -> list[MediaItem]:
    """Scan the library but the output folder, reusing the manifest's rows (retried: a listing can fail)."""
    previous = previous_scan(output_layout(out).read_root())
    files = open_source(source, exclude=(out,), access=access, follow_links_outside=follow_links_outside)
    result = scan(files, previous)
    logger = get_run_logger()
    logger.info("scan: %d files, %d reused from the manifest, %d hashed",
                len(result.items), result.reused, result.inspected)
    if isinstance(files, LocalSource) and (walked := files.walked).links_outside + walked.folders_unreadable:
        logger.warning("scan: %d symlinks resolve outside SOURCE and were not followed (--follow-links-outside "
                       "follows them); %d folders could not be listed (each a failed row)",
                       walked.links_outside, walked.folders_unreadable)
    return result.items
