"""Where media comes from: the `MediaSource` interface and the local-folder source.

The scan only needs to list files, read their first bytes, stream their content
and get a local path PyAV can open; `tasks/media/sources_s3.py` implements the same for S3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from tasks.media.s3 import S3Access

# Extensions kept without sniffing. Anything else is kept only if its bytes say media.
MEDIA_EXTENSIONS = frozenset(
    [".wav", ".wave", ".flac", ".mp3", ".m4a", ".m4b", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff", ".amr", ".webm", ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".3gp"]
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    source: str  # manifest key: path relative to the root, or a URI
    locator: str  # what this source needs to open it
    size_bytes: int
    mtime_ns: int
    error: str | None = None  # listing found it but could not stat it


class MediaSource(Protocol):
    description: str

    def list_files(self) -> Iterator[SourceFile]: ...

    def open(self, locator: str) -> BinaryIO: ...

    def local_path(self, locator: str) -> AbstractContextManager[Path]: ...


def looks_like_media(name: str, head: bytes) -> bool:
    """Keep a file by its extension, or else by the magic bytes of a media container."""
    if Path(name).suffix.lower() in MEDIA_EXTENSIONS:
        return True
    return (
        (head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "))
        or head[:4] in (b"fLaC", b"OggS", b"FORM", b"\x1a\x45\xdf\xa3")
        or head[:3] == b"ID3"
        or head[4:8] == b"ftyp"
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0)
    )


class LocalSource:
    """A folder on disk, walked recursively; symlinks followed, loops walked once."""

    def __init__(self, root: str | Path, exclude: tuple[Path, ...] = ()) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise ValueError(f"SOURCE: not a folder: {root}")
        self.description = str(self.root)
        self._exclude = {p.resolve() for p in exclude}

    def list_files(self) -> Iterator[SourceFile]:
        yield from self._walk(str(self.root), "", set())

    def _walk(self, folder: str, prefix: str, seen: set[tuple[int, int]]) -> Iterator[SourceFile]:
        """Files of `folder` then its sub-folders, each in name order; `prefix` is its path from the root.

        `os.scandir` rather than `os.walk` + `Path`: at 100,000 files the per-file path objects
        cost more than the stat calls.
        """
        if not self._first_visit(folder, seen) or (self._exclude and Path(folder).resolve() in self._exclude):
            return
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            return  # an unreadable folder is left out, as os.walk does
        folders = []
        for entry in entries:
            if _is_folder(entry):  # follows symlinks: a dangling one is listed as a file that cannot be read
                folders.append(entry)
            else:
                yield self._describe(entry, prefix + entry.name)
        for entry in folders:
            yield from self._walk(entry.path, f"{prefix}{entry.name}/", seen)

    def open(self, locator: str) -> BinaryIO:
        return open(locator, "rb")

    def local_path(self, locator: str) -> AbstractContextManager[Path]:
        return nullcontext(Path(locator))

    @staticmethod
    def _describe(entry: os.DirEntry[str], source: str) -> SourceFile:
        try:
            stat = entry.stat()
        except OSError as error:
            return SourceFile(source, entry.path, 0, 0, f"cannot read: {error.strerror}")
        return SourceFile(source, entry.path, stat.st_size, stat.st_mtime_ns)

    @staticmethod
    def _first_visit(folder: str, seen: set[tuple[int, int]]) -> bool:
        try:
            stat = os.stat(folder)
        except OSError:
            return False
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def open_source(uri: str, exclude: tuple[str, ...] = (), access: S3Access | None = None) -> MediaSource:
    """The MediaSource for a SOURCE argument: a local folder or `s3://bucket/prefix`.

    `exclude` lists output roots (paths or s3:// URIs) to leave out of the listing.
    """
    if uri.startswith("s3://"):
        from tasks.media.s3 import S3Access, require_aws

        require_aws()
        from tasks.media.sources_s3 import S3Source

        remote_outputs = tuple(e for e in exclude if e.startswith("s3://"))
        return S3Source(uri, access or S3Access.from_settings(), remote_outputs)
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ValueError(f"SOURCE: {scheme}:// is not supported (use a folder or s3://bucket/prefix): {uri}")
    return LocalSource(uri, exclude=tuple(Path(e) for e in exclude if "://" not in e))
