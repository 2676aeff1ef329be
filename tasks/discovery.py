"""Scan a media library: list, sniff, hash and probe every file.

Hashing and header probes are I/O and C code that release the GIL, so a thread
pool overlaps them; no full decode happens here.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import BinaryIO

from prefect import task

from tasks.audio import MediaError, probe_duration
from tasks.records import MediaItem
from tasks.s3 import S3Access
from tasks.sources import MediaSource, SourceFile, looks_like_media, open_source

HASH_CHUNK = 1 << 20
SNIFF_BYTES = 64


def scan_library(source: MediaSource, workers: int | None = None) -> list[MediaItem]:
    """Every media file of the source with its hash and duration (or the error why not)."""
    workers = workers or min(16, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = pool.map(lambda f: _inspect(source, f), source.list_files())
        return sorted((item for item in found if item is not None), key=lambda i: i.source)


def _inspect(source: MediaSource, listed: SourceFile) -> MediaItem | None:
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


def _sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


@task(name="scan-library", retries=2, retry_delay_seconds=[2, 10])
def scan_library_task(source: str, out: str, access: S3Access | None = None) -> list[MediaItem]:
    """Scan the library, leaving out the output folder (retried: a listing can fail for a moment)."""
    return scan_library(open_source(source, exclude=(out,), access=access))
