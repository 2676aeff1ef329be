"""Where media comes from: the `MediaSource` interface and what every source shares.

The scan only needs to list files, read their first bytes, stream their content and
get a local path PyAV can open. `tasks/media/local.py` (a folder) and
`tasks/media/sources_s3.py` (an S3 prefix) implement it; `tasks/media/library.py`
opens the right one for a SOURCE string. This module imports neither.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote_to_bytes

# Extensions kept without sniffing. Anything else is kept only if its bytes say media.
MEDIA_EXTENSIONS = frozenset(
    [
        ".wav", ".wave", ".flac", ".mp3", ".m4a", ".m4b", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aif", ".aiff",
        ".amr", ".webm", ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".3gp",
    ]
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    source: str  # manifest key: path relative to the root (`encode_name`), or a URI
    locator: str  # what this source needs to open it (valid UTF-8: it travels in Parquet)
    size_bytes: int
    mtime_ns: int
    error: str | None = None  # listing found it but could not stat it
    change_key: str | None = None  # what else must match to count as unchanged: `change_key()`, or S3's ETag


def change_key(info: os.stat_result) -> str:
    """A local file's inode and ctime, as git's index keeps them: a rename, a swap or a rewrite that
    restores the mtime changes the ctime (the kernel sets it; no user call can), so together with size
    and mtime they tell a file that was not touched."""
    return f"{info.st_ino}:{info.st_ctime_ns}"


class MediaSource(Protocol):
    description: str

    def list_files(self) -> Iterator[SourceFile]: ...

    def open(self, locator: str) -> BinaryIO: ...

    def local_path(self, locator: str) -> AbstractContextManager[Path]: ...


def has_media_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS


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


LINK_OUTSIDE = "symlink resolves outside SOURCE: not followed (--follow-links-outside follows it)"


def encode_name(name: str) -> str:
    """A file name (as `os` gives it: undecodable bytes as surrogates) as valid UTF-8, losslessly.

    Every byte that is not part of valid UTF-8, every control character and every `%` is
    written `%XX` (two upper-case hex digits), so `decode_name` gives the exact bytes back:
    `caf\\xe9.wav` (Latin-1) → `caf%E9.wav`, `100%.wav` → `100%25.wav`. Names without those
    characters stay as they are.
    """
    if "%" not in name and name.isprintable() and not any("\udc80" <= ch <= "\udcff" for ch in name):
        return name
    out = []
    for ch in name:
        if "\udc80" <= ch <= "\udcff":  # a byte that is not valid UTF-8 (surrogateescape)
            out.append(f"%{ord(ch) - 0xDC00:02X}")
        elif ch == "%" or unicodedata.category(ch) == "Cc":
            out.append("".join(f"%{byte:02X}" for byte in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def decode_name(text: str) -> str:
    """The inverse of `encode_name`: the name `os` functions accept (surrogateescape)."""
    if "%" not in text:
        return text
    return os.fsdecode(unquote_to_bytes(text))


@dataclass(slots=True)
class WalkCounts:
    """What a walk of a local folder left out, for the scan's log line."""

    links_outside: int = 0  # symlinks that resolve outside SOURCE, not followed
    folders_unreadable: int = 0  # folders that could not be listed (each also a failed row)
    not_regular: int = 0  # FIFOs, sockets, devices (each with a media name also a failed row)
