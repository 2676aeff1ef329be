"""The static site in DIR/site/: the archive, one page per file, run history, and a Pagefind index.

Pages are built from the search index (tasks/output/search.py), not by re-reading the
manifest, and are rewritten only when their bytes change. Search in the browser is
Pagefind (PyPI `pagefind[bin]`, a Rust indexer): it splits its index into small
fragments that the browser fetches for the words typed, so 100,000 pages do not mean
100,000 downloads. The listing is static HTML pages of 500 files, which also work
from `file://`; Pagefind itself needs http(s) (it fetches its index).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.output.history import charts, svg_chart, table_rows
from tasks.output.layout import SITE
from tasks.output.search import connect, py_source
from tasks.output.site_assets import CSS, JS
from tasks.output.site_media import MEDIA, PLAYABLE, MediaLinks, media_name, sync_media
from tasks.output.site_pages import (
    LIST_PAGE_ROWS,
    FileEntry,
    display_name,
    file_page,
    listing_page,
    page_name,
    runs_page,
    url_path,
)
from tasks.output.transcripts import atomic_write_text

SITE_DIR = SITE
PUBLISHED = ".published.json"  # what the last S3 upload shipped: path → sha256


class SiteError(RuntimeError):
    """The site could not be built (Pagefind missing or failing)."""


@dataclass(frozen=True, slots=True)
class SiteBuild:
    folder: Path
    files: int
    pages_written: int
    pages_removed: int
    searchable: bool  # a Pagefind index was built (False for an archive with no files)
    media: str = ""  # how many pages have a player, and where their media comes from


def build_site(db_path: Path, site_dir: Path, links: MediaLinks, runs: list[dict[str, object]]) -> SiteBuild:
    """Write every page that changed, remove pages of files gone from the index, re-run Pagefind."""
    entries = list(_entries(db_path))
    written = sum(_write(site_dir / "assets" / name, text) for name, text in (("site.css", CSS), ("site.js", JS)))
    media = _media_urls(site_dir, entries, links)
    written += _file_pages(db_path, site_dir / "files", entries, media, links)
    pages = max(1, -(-len(entries) // LIST_PAGE_ROWS))
    for n in range(1, pages + 1):
        chunk = entries[(n - 1) * LIST_PAGE_ROWS:n * LIST_PAGE_ROWS]
        written += _write(site_dir / ("index.html" if n == 1 else f"list/{n}.html"),
                          listing_page(chunk, n, pages, len(entries)))
    run_ids = [str(r["run_id"]) for r in runs]
    svgs = [svg_chart(c, run_ids) for c in charts(runs)]
    written += _write(site_dir / "runs.html", runs_page(table_rows(runs), svgs))
    removed = _remove_stale(site_dir / "files", {e.page for e in entries})
    removed += _remove_stale(site_dir / "list", {f"{n}.html" for n in range(2, pages + 1)})
    searchable = bool(entries) and (written > 0 or removed > 0 or not (site_dir / "pagefind").is_dir())
    if searchable:
        run_pagefind(site_dir)
    return SiteBuild(site_dir, len(entries), written, removed, (site_dir / "pagefind").is_dir(),
                     f"{len(media):,} players, {links.describe()}")


_ENTRIES = """SELECT f.source, f.status, f.error, f.duration_s, COALESCE(f.language, c.language), f.flags, c.id,
  COALESCE(f.transcript_path, c.transcript_path)
FROM files f LEFT JOIN contents c ON c.content_sha256 = f.content_sha256 AND c.config_hash = f.config_hash
WHERE f.status != 'removed' ORDER BY f.source"""  # a file gone from SOURCE loses its page


def _entries(db_path: Path) -> list[FileEntry]:
    with connect(db_path) as db:
        rows = db.execute(_ENTRIES).fetchall()
    return [FileEntry(py_source(src), status, error, duration, language, tuple(json.loads(flags or "[]")),
                      content_id, path, page_name(py_source(src)))
            for src, status, error, duration, language, flags, content_id, path in rows]


def _media_urls(site_dir: Path, entries: list[FileEntry], links: MediaLinks) -> dict[str, str]:
    """Each playable page's player URL; site/media/ synced with a local SOURCE (emptied otherwise)."""
    playable = [e for e in entries if e.status in PLAYABLE and not e.source.endswith("/")]
    if links.media_base_url:
        sync_media(site_dir / MEDIA, {}, links.copy)
        return {e.page: links.base_url(e.source) for e in playable}
    names: dict[str, str] = {}  # page → its name in site/media/
    targets: dict[str, bytes] = {}  # name in site/media/ → the file under SOURCE
    if links.source_root:
        root = os.fsencode(links.source_root)
        for entry in playable:
            raw = links.raw_name(entry.source)
            names[entry.page] = media_name(entry.page, raw)
            targets[names[entry.page]] = os.path.join(root, raw)
    placed = sync_media(site_dir / MEDIA, targets, links.copy)
    return {page: f"../{MEDIA}/{name}" for page, name in names.items() if name in placed}


def _file_pages(db_path: Path, folder: Path, entries: list[FileEntry], media: dict[str, str],
                links: MediaLinks) -> int:
    written = 0
    with connect(db_path) as db:
        for entry in entries:
            segments = db.execute('SELECT start, "end", text FROM segments WHERE content_id = ? ORDER BY start, id',
                                  (entry.content_id,)).fetchall() if entry.content_id is not None else []
            path = entry.transcript_path
            vtt = "../../" + url_path(path[:-len(".json")] + ".vtt") if path and path.endswith(".json") else None
            note = None if entry.page in media or entry.status not in PLAYABLE else _no_media(links, entry)
            written += _write(folder / entry.page, file_page(entry, segments, media.get(entry.page), vtt, note))
    return written


def _no_media(links: MediaLinks, entry: FileEntry) -> str:
    if links.source_root:
        shown = display_name(os.fsdecode(os.path.join(os.fsencode(links.source_root), links.raw_name(entry.source))))
        return f"No media: {shown} is not a file in SOURCE any more."
    return "No media link: build the site with --source SOURCE or --media-base-url URL."


def _write(path: Path, text: str) -> int:
    """1 if the file was (re)written, 0 if it already held exactly this."""
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return 0
    # Temp file + rename, without the fsync of atomic_write_text: a page can be rebuilt, and 100,000
    # fsyncs would dominate the build.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return 1


def _remove_stale(folder: Path, keep: set[str]) -> int:
    stale = [p for p in folder.glob("*.html") if p.name not in keep] if folder.is_dir() else []
    for path in stale:
        path.unlink()
    return len(stale)


def run_pagefind(site_dir: Path) -> None:
    """Index the file pages into site/pagefind/, swapped in whole so a reader never sees half an index."""
    fresh, old = site_dir / ".pagefind-new", site_dir / ".pagefind-old"
    shutil.rmtree(fresh, ignore_errors=True)
    command = [sys.executable, "-m", "pagefind", "--site", str(site_dir), "--glob", "files/*.html",
               "--output-path", str(fresh), "--silent"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SiteError(f"site: pagefind did not run: {error}") from error
    if done.returncode != 0 or not (fresh / "pagefind.js").is_file():
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SiteError("site: pagefind failed" + (f": {detail[-1]}" if detail else "")
                        + " (install it with: pip install 'pagefind[bin]')")
    shutil.rmtree(old, ignore_errors=True)
    if (site_dir / "pagefind").is_dir():
        (site_dir / "pagefind").rename(old)
    fresh.rename(site_dir / "pagefind")
    shutil.rmtree(old, ignore_errors=True)


def publish_site(upload: Callable[[list[Path]], None], delete: Callable[[list[str]], None], root: Path,
                 site_dir: Path) -> int:
    """Ship the site's changed files to an S3 DIR and delete the ones gone; how many were uploaded."""
    record = site_dir / PUBLISHED
    before: dict[str, str] = json.loads(record.read_text()) if record.is_file() else {}
    now = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(site_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")}
    changed = [root / name for name, digest in now.items() if before.get(name) != digest]
    upload(changed)
    delete([name for name in before if name not in now])
    atomic_write_text(record, json.dumps(now))
    return len(changed)
