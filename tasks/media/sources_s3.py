"""`S3Source`: a media library under `s3://bucket/prefix`, behind the same `MediaSource` interface.

A file's `source` (the manifest key) is its key relative to the prefix, so transcripts
mirror the library's layout exactly as for a local folder; its `locator` is the full
key. Keys are untrusted: one that could climb out of an output root (`..`, absolute,
control characters) is listed with an error and never downloaded, so the planner
records it as a `failed` row. `open` reads the object through ranged GETs (seekable, and
a sniff of the first bytes fetches 64 KiB, not the object); `local_path` downloads it to
a temp file for PyAV under the worker's cache folder (not /tmp, often a small tmpfs),
deleted afterwards. Header probing reads that downloaded copy, not ranged reads.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from tasks.media.s3 import S3Access, S3Location, as_os_error, boto_errors, parse_s3_uri, s3_client
from tasks.media.sources import SourceFile
from tasks.output.transcripts import UnsafePathError, safe_relative_path
from tasks.settings import worker_settings

_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def describe_object(location: S3Location, obj: dict[str, Any]) -> SourceFile | None:
    """One listed object as a SourceFile; None for "folder" markers; an error for unsafe keys."""
    key: str = obj["Key"]
    source = key[len(location.prefix):]
    if not source or source.endswith("/"):
        return None
    mtime_ns = int(obj["LastModified"].timestamp() * 1_000_000) * 1000
    try:
        safe_relative_path(source)
    except UnsafePathError as error:
        reason = f"unsafe key, not read: {error}; rename the object to transcribe it"
        return SourceFile(source, key, int(obj["Size"]), mtime_ns, reason)
    return SourceFile(source, key, int(obj["Size"]), mtime_ns, change_key=obj.get("ETag"))


class S3Source:
    """Every object under `s3://bucket/prefix`, listed page by page in key order."""

    def __init__(self, uri: str, access: S3Access, exclude: tuple[str, ...] = ()) -> None:
        self.location = parse_s3_uri(uri, "SOURCE")
        self.description = self.location.uri
        self._client = s3_client(access)
        outputs = [parse_s3_uri(u, "--out") for u in exclude]
        # Like a local DIR inside SOURCE: only an output prefix strictly inside the library is left out.
        self._exclude = tuple(o.prefix for o in outputs if _strictly_inside(o, self.location))

    def list_files(self) -> Iterator[SourceFile]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=self.location.prefix
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    if self._exclude and obj["Key"].startswith(self._exclude):
                        continue
                    listed = describe_object(self.location, obj)
                    if listed is not None:
                        yield listed
        except boto_errors() as error:
            raise as_os_error(error, self.description) from error

    def open(self, locator: str) -> BinaryIO:
        return io.BufferedReader(_ObjectReader(self._client, self.location.bucket, locator), 1 << 20)

    @contextmanager
    def local_path(self, locator: str) -> Iterator[Path]:
        suffix = PurePosixPath(locator).suffix
        downloads = worker_settings().cache_dir / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="s3-", dir=downloads) as folder:
            path = Path(folder) / ("media" + (suffix if _SAFE_SUFFIX.match(suffix) else ""))
            try:
                self._client.download_file(self.location.bucket, locator, str(path))
            except boto_errors() as error:
                raise as_os_error(error, f"s3://{self.location.bucket}/{locator}") from error
            yield path


def _strictly_inside(inner: S3Location, outer: S3Location) -> bool:
    return inner.bucket == outer.bucket and inner.prefix != outer.prefix and inner.prefix.startswith(outer.prefix)


class _ObjectReader(io.RawIOBase):
    """Reads an object through ranged GETs: small windows first (a sniff costs 64 KiB), growing to 8 MiB.

    A seek just moves the position; the next read asks for a window from there.
    """

    FIRST_WINDOW, MAX_WINDOW = 64 << 10, 8 << 20

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._position, self._window = 0, self.FIRST_WINDOW
        self._size: int | None = None  # known after the first GET
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        while not self._at_end():
            if self._body is None:
                self._body = self._get()
                continue
            data = self._body.read(len(buffer))
            if data:
                buffer[: len(data)] = data
                self._position += len(data)
                return len(data)
            self._drop_body()  # this window is used up: the next loop asks for the next one
        return 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise OSError("S3 objects are read forward or from an absolute offset")
        target = offset if whence == io.SEEK_SET else self._position + offset
        if target != self._position:
            self._drop_body()
            self._position, self._window = target, self.FIRST_WINDOW
        return self._position

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _at_end(self) -> bool:
        return self._size is not None and self._position >= self._size

    def _get(self) -> Any:
        last = self._position + self._window - 1
        self._window = min(self._window * 2, self.MAX_WINDOW)
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key,
                                               Range=f"bytes={self._position}-{last}")
        except boto_errors() as error:
            if _error_code(error) == "InvalidRange":  # at or past the end (an empty object, say)
                self._size = self._position
                return io.BytesIO()
            raise as_os_error(error, f"s3://{self._bucket}/{self._key}") from error
        total = response.get("ContentRange", "").rpartition("/")[2]
        self._size = int(total) if total.isdigit() else int(response["ContentLength"])
        return response["Body"]

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None
