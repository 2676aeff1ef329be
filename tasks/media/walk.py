"""Walk a local library without hanging and without leaving it.

What the walk decides from `lstat`/`stat` alone, before anything is opened:
- only regular files are listed for reading. A FIFO, socket or device (or a link to one,
  such as `x.wav` → `/dev/zero`) would block or never end: one whose name has a media
  extension is a `failed` row ("not a regular file"), others are left out like any
  non-media file (sniffing them would mean opening them);
- a symlink that resolves outside SOURCE is not followed unless asked
  (`follow_links_outside`): a file link with a media extension and a folder link are each a
  `failed` row saying so, and every such link is counted in the scan's log line. Links
  inside SOURCE are followed; a folder reached twice (a loop) is walked once;
- a folder that cannot be listed is a `failed` row for the folder (its source ends in
  `/`) and is counted in the scan's log line, instead of vanishing from the run.

Names become manifest keys through `encode_name` (non-UTF-8 bytes as `%XX`), and locators
too, so both can travel in Parquet; `decode_name` gives the path back.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from tasks.media.sources import LINK_OUTSIDE, SourceFile, WalkCounts, change_key, encode_name, has_media_extension


def walk(root: Path, exclude: set[Path], follow_outside: bool, counts: WalkCounts) -> Iterator[SourceFile]:
    """Every file under `root` to consider, in name order, folders after files."""
    real_root = os.path.realpath(root)
    walker = _Walker(real_root, exclude, follow_outside, counts)
    try:
        entries = _listing(str(root))
    except OSError as error:
        raise ValueError(f"SOURCE: cannot list {root}: {error.strerror or error}") from error
    walker.seen.add(_identity(str(root)))
    yield from walker.entries(entries, "")


class _Walker:
    def __init__(self, real_root: str, exclude: set[Path], follow_outside: bool, counts: WalkCounts) -> None:
        self.real_root, self.exclude, self.follow_outside, self.counts = real_root, exclude, follow_outside, counts
        self.seen: set[tuple[int, int] | None] = set()

    def entries(self, entries: list[os.DirEntry[str]], prefix: str) -> Iterator[SourceFile]:
        folders = []
        for entry in entries:
            source = prefix + encode_name(entry.name)
            folder = _is_folder(entry)
            if entry.is_symlink() and not self.follow_outside and not self._inside(entry.path):
                if (outside := self._outside(entry, source, folder)) is not None:
                    yield outside
            elif folder:
                folders.append((entry, source))
            elif (described := self._describe(entry, source)) is not None:
                yield described
        for entry, source in folders:
            yield from self._folder(entry.path, source + "/")

    def _folder(self, path: str, prefix: str) -> Iterator[SourceFile]:
        identity = _identity(path)
        if (identity is not None and identity in self.seen) or (self.exclude and Path(path).resolve() in self.exclude):
            return  # a loop, a second link to a folder already walked, or the output folder
        self.seen.add(identity)
        try:
            entries = _listing(path)
        except OSError as error:
            self.counts.folders_unreadable += 1
            yield SourceFile(prefix, encode_name(path), 0, 0, f"cannot list folder: {error.strerror or error}")
            return
        yield from self.entries(entries, prefix)

    def _outside(self, entry: os.DirEntry[str], source: str, folder: bool) -> SourceFile | None:
        """A link out of SOURCE: its row if it names media or a folder. Only `stat` touches the target,
        so a link to a device still says so."""
        if not folder:
            described = self._describe(entry, source)
            if described is None or described.error is not None:
                return described  # not a regular file, or dangling: that is its row
        self.counts.links_outside += 1
        if folder or has_media_extension(entry.name):
            return SourceFile(source + ("/" if folder else ""), encode_name(entry.path), 0, 0, LINK_OUTSIDE)
        return None

    def _describe(self, entry: os.DirEntry[str], source: str) -> SourceFile | None:
        locator = encode_name(entry.path)
        try:
            info = entry.stat()  # follows a link: a link to /dev/zero is a character device
        except OSError as error:
            return SourceFile(source, locator, 0, 0, f"cannot read: {error.strerror}")
        if not stat.S_ISREG(info.st_mode):
            self.counts.not_regular += 1
            if not has_media_extension(entry.name):
                return None
            from tasks.media.audio import file_kind

            return SourceFile(source, locator, 0, 0, f"not a regular file ({file_kind(info.st_mode)}): not read")
        return SourceFile(source, locator, info.st_size, info.st_mtime_ns, change_key=change_key(info))

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)


def _listing(folder: str) -> list[os.DirEntry[str]]:
    """A folder's entries in name order (`os.scandir`: cheaper than `Path` objects at 100,000 files)."""
    with os.scandir(folder) as listing:
        return sorted(listing, key=lambda entry: entry.name)


def _identity(folder: str) -> tuple[int, int] | None:
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows links; a dangling one is a file that cannot be read
    except OSError:
        return False
