"""A media library in a local folder (walked by `tasks/media/walk.py`: what is and is not opened)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

from tasks.media.sources import SourceFile, WalkCounts, decode_name


class LocalSource:
    """A folder on disk, walked recursively (see `tasks/media/walk.py` for what is and is not opened)."""

    def __init__(self, root: str | Path, exclude: tuple[Path, ...] = (), follow_links_outside: bool = False) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise ValueError(f"SOURCE: not a folder: {root}")
        self.description = str(self.root)
        self._exclude = {p.resolve() for p in exclude}
        self.follow_links_outside = follow_links_outside
        self.walked = WalkCounts()

    def list_files(self) -> Iterator[SourceFile]:
        from tasks.media.walk import walk

        self.walked = WalkCounts()
        yield from walk(self.root, self._exclude, self.follow_links_outside, self.walked)

    def open(self, locator: str) -> BinaryIO:
        from tasks.media.audio import open_regular

        return open_regular(decode_name(locator))

    def local_path(self, locator: str) -> AbstractContextManager[Path]:
        return nullcontext(Path(decode_name(locator)))
