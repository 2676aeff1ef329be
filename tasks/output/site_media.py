"""How a file page's player reaches the media: `site/media/` beside the pages, or a base URL.

A local SOURCE usually sits outside DIR, so with DIR as the web root no relative link can
reach it. `site/media/` therefore holds one symbolic link per playable file (or, opt-in, a
copy), named like the file's page (`meetings-standup-wav-70f4e64a.wav`): ASCII, no `%`, no
control characters. Any static server can serve those names, which is not true of the real
ones: Python's http.server cannot open a name that is not UTF-8 at all. One link per file
rather than one link to SOURCE also exposes only what the scan read as media, never a FIFO
or a link out of SOURCE that the scan refused. http.server follows the links; nginx does
unless `disable_symlinks` is on; a server or bucket that will not follows gets `--copy-media`.

With `--media-base-url` (S3, a CDN) the URL is `BASE/<source>`, percent-encoded once from
the file's real name bytes: a local key's `%XX` form (tasks/media/sources.py) is decoded
first, so `100%.wav` (key `100%25.wav`) is `BASE/100%25.wav`, not `BASE/100%2525.wav`.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

MEDIA = "media"  # DIR/site/media/
PLAYABLE = ("ok", "skipped")  # rows whose file the scan read as media; other rows get no player
_EXTENSION = re.compile(r"\.[a-z0-9]{1,8}")


@dataclass(frozen=True, slots=True)
class MediaLinks:
    """Where the players' media comes from: a local SOURCE folder, or a base URL (which wins)."""

    source_root: str | None = None  # an absolute local SOURCE: site/media/ gets a link (or copy) per file
    media_base_url: str | None = None  # where SOURCE's files are served: `BASE/<source>`
    keys_encoded: bool = True  # sources are a local scan's keys (`%XX` form), not raw S3 keys
    copy: bool = False  # copy files into site/media/ instead of linking them

    def base_url(self, source: str) -> str:
        assert self.media_base_url is not None
        return f"{self.media_base_url.rstrip('/')}/{quote(self.raw_name(source), safe='/')}"

    def raw_name(self, source: str) -> bytes:
        """The file's real name bytes under SOURCE."""
        if self.keys_encoded:
            return unquote_to_bytes(source)  # exact: encode_name writes `%XX` only for what it escaped
        return source.encode("utf-8", "surrogateescape")

    def describe(self) -> str:
        if self.media_base_url:
            return f"media from {self.media_base_url}"
        if self.source_root:
            return f"media {'copied' if self.copy else 'linked'} from {self.source_root} into site/{MEDIA}/"
        return "no media (give --source SOURCE or --media-base-url URL)"


def media_name(page: str, raw_name: bytes) -> str:
    """`<page stem><.ext>`: the page's safe name, and the extension servers pick a Content-Type by."""
    ext = os.path.splitext(raw_name.decode("utf-8", "replace"))[1].lower()
    return page.removesuffix(".html") + (ext if _EXTENSION.fullmatch(ext) else "")


def sync_media(folder: Path, wanted: dict[str, bytes], copy: bool) -> set[str]:
    """Make `folder` hold exactly `wanted` (name → absolute path of the file); the names now playable.

    A file that is not (or no longer) a regular file gets nothing: its player would hang on a
    FIFO or show a dead link. Existing links and copies that are still right are left alone.
    """
    if folder.is_symlink():
        folder.unlink()  # site/ is ours: never write links into whatever this points at
    if not wanted and not folder.is_dir():
        return set()
    folder.mkdir(parents=True, exist_ok=True)
    placed = set()
    for name, target in wanted.items():
        try:
            info = os.stat(target)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and _place(folder / name, target, info, copy):
            placed.add(name)
    for entry in os.scandir(folder):
        if entry.name not in placed and not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
    return placed


def _place(path: Path, target: bytes, info: os.stat_result, copy: bool) -> bool:
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        current = None
    if current is not None and stat.S_ISDIR(current.st_mode):
        return False  # not ours to replace
    if not copy and current is not None and stat.S_ISLNK(current.st_mode) and os.readlink(path) == os.fsdecode(target):
        return True
    if copy and current is not None and stat.S_ISREG(current.st_mode) \
            and (current.st_size, current.st_mtime_ns) == (info.st_size, info.st_mtime_ns):
        return True
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.unlink(missing_ok=True)
    try:
        if copy:
            shutil.copy2(target, os.fsencode(tmp))  # keeps the mtime: the next build sees it is current
        else:
            os.symlink(target, tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True
